//! The payment gateway: what signup needs from a payment provider.
//!
//! [`PaymentGateway`] is implemented by Stripe (the Stripe issue) and, until
//! then and in tests, by [`SandboxGateway`], which takes no money: its
//! checkout URLs point at a sandbox page and payment is confirmed by an
//! operator or a test.

use std::{future::Future, pin::Pin};

use tenantry_domain::Money;
use uuid::Uuid;

/// What a checkout is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The tenant paying (Stripe's `client_reference_id`).
    pub tenant_id: Uuid,
    /// Its subscription (in the session's metadata).
    pub subscription_id: Uuid,
    /// The customer's email.
    pub email: String,
    /// Product slug and plan code, for the provider's line item.
    pub product: String,
    /// Plan code.
    pub plan: String,
    /// Price per interval (or once, for lifetime).
    pub price: Money,
}

/// A checkout the customer is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// The provider's session id.
    pub id: String,
    /// Where to send the customer.
    pub url: String,
}

/// Why the gateway could not help.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The provider is unreachable or failing; retry later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request.
    #[error("payment provider refused: {0}")]
    Refused(String),
}

/// A boxed future of a gateway call.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// Money to take from a customer now (a renewal or a prorated upgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The tenant paying.
    pub tenant_id: Uuid,
    /// Its subscription.
    pub subscription_id: Uuid,
    /// Exactly what to charge.
    pub amount: Money,
    /// Shown on the invoice.
    pub description: String,
    /// Sent to the provider so a retry never charges twice (ours: derived from our ids).
    pub idempotency_key: String,
    /// Whether the provider holds a payment method it may charge without the customer.
    pub saved_payment_method: bool,
}

/// What a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Paid with the saved payment method.
    Paid {
        /// The provider's reference (charge or invoice id).
        reference: String,
    },
    /// The customer must pay at a checkout.
    ActionRequired {
        /// The checkout session id.
        reference: String,
        /// Where to send the customer.
        checkout_url: String,
    },
    /// The saved payment method was declined.
    Declined {
        /// The provider's reason.
        reason: String,
    },
    /// Payments are off: an operator records the payment
    /// (`POST /v1/tenants/{id}/plan-changes/{change}/mark-paid`).
    AwaitingOperator,
}

/// Money to give back to a customer (a payment that came too late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The tenant refunded.
    pub tenant_id: Uuid,
    /// Exactly what to give back.
    pub amount: Money,
    /// What the payment went through (Stripe: the PaymentIntent `pi_…`, or
    /// the invoice or Checkout Session that holds it).
    pub payment: String,
    /// Ours, derived from the refund charge (`refund:{change}`).
    pub idempotency_key: String,
    /// Why, for the provider's records.
    pub reason: String,
}

/// What a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The provider refunded it.
    Refunded {
        /// The provider's refund id.
        reference: String,
    },
    /// The provider cannot give it back (payments are off, or the payment
    /// never went through it): an operator gives the money back by hand and
    /// records it (`refunds::record_manual_refund`).
    AwaitingOperator,
}

/// A payment provider.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Opens a checkout for a signup's first payment.
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession>;

    /// Charges an amount now: to the saved payment method when there is one,
    /// else through a checkout.
    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome>;

    /// Gives a payment back, in full or in part; repeating it with the same
    /// key refunds once.
    fn refund(&self, request: RefundRequest) -> GatewayFuture<'_, RefundOutcome>;
}

/// The gateway when payments are off (`TENANTRY_PAYMENTS=disabled`): no
/// checkout, no charge; paid plans wait for an operator to mark payment.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisabledGateway;

impl PaymentGateway for DisabledGateway {
    fn create_checkout(&self, _request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession> {
        Box::pin(async { Err(GatewayError::Refused("payments are disabled".into())) })
    }

    fn charge(&self, _request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async { Ok(ChargeOutcome::AwaitingOperator) })
    }

    fn refund(&self, _request: RefundRequest) -> GatewayFuture<'_, RefundOutcome> {
        Box::pin(async { Ok(RefundOutcome::AwaitingOperator) })
    }
}

/// A gateway that takes no money: checkout URLs lead to a sandbox page.
#[derive(Debug, Clone)]
pub struct SandboxGateway {
    base_url: String,
}

impl SandboxGateway {
    /// Checkout URLs will be `{base_url}/checkout/{session id}`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
        }
    }
}

impl PaymentGateway for SandboxGateway {
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession> {
        Box::pin(async move {
            let id = format!("cs_sandbox_{}", request.subscription_id.simple());
            Ok(CheckoutSession {
                url: format!("{}/checkout/{id}", self.base_url),
                id,
            })
        })
    }

    /// A saved method is "charged" (no money moves); without one, a sandbox checkout.
    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async move { Ok(sandbox_outcome(&self.base_url, &request)) })
    }

    /// No money moved, so none moves back: the refund is recorded.
    fn refund(&self, request: RefundRequest) -> GatewayFuture<'_, RefundOutcome> {
        Box::pin(async move {
            Ok(RefundOutcome::Refunded {
                reference: format!("re_sandbox_{}", request.idempotency_key.replace(':', "_")),
            })
        })
    }
}

fn sandbox_outcome(base_url: &str, request: &ChargeRequest) -> ChargeOutcome {
    if request.saved_payment_method {
        ChargeOutcome::Paid {
            reference: format!("ch_sandbox_{}", request.idempotency_key),
        }
    } else {
        let reference = format!("cs_sandbox_{}", request.idempotency_key.replace(':', "_"));
        ChargeOutcome::ActionRequired {
            checkout_url: format!("{base_url}/checkout/{reference}"),
            reference,
        }
    }
}

/// A sandbox gateway whose saved-method charges for chosen tenants are
/// declined, and which records every charge asked of it: the test
/// implementation the billing tests drive dunning with.
#[derive(Debug, Default)]
pub struct ScriptedGateway {
    declined: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    charges: std::sync::Mutex<Vec<ChargeRequest>>,
    refunds: std::sync::Mutex<Vec<RefundRequest>>,
}

impl ScriptedGateway {
    /// Declines (or, with `false`, accepts again) the tenant's saved method.
    pub fn decline(&self, tenant_id: Uuid, declined: bool) {
        if let Ok(mut set) = self.declined.lock() {
            if declined {
                set.insert(tenant_id);
            } else {
                set.remove(&tenant_id);
            }
        }
    }

    /// Every charge asked so far.
    pub fn charges(&self) -> Vec<ChargeRequest> {
        self.charges.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every refund asked so far (a repeated key counts once).
    pub fn refunds(&self) -> Vec<RefundRequest> {
        self.refunds.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl PaymentGateway for ScriptedGateway {
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession> {
        Box::pin(async move {
            let id = format!("cs_test_{}", request.subscription_id.simple());
            Ok(CheckoutSession {
                url: format!("https://checkout.test/{id}"),
                id,
            })
        })
    }

    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async move {
            if let Ok(mut c) = self.charges.lock() {
                c.push(request.clone());
            }
            let declined = self
                .declined
                .lock()
                .map(|d| d.contains(&request.tenant_id))
                .unwrap_or(false);
            if declined && request.saved_payment_method {
                return Ok(ChargeOutcome::Declined {
                    reason: "card_declined".into(),
                });
            }
            Ok(sandbox_outcome("https://checkout.test", &request))
        })
    }

    fn refund(&self, request: RefundRequest) -> GatewayFuture<'_, RefundOutcome> {
        Box::pin(async move {
            let reference = format!("re_test_{}", request.idempotency_key.replace(':', "_"));
            if let Ok(mut r) = self.refunds.lock()
                && !r
                    .iter()
                    .any(|x| x.idempotency_key == request.idempotency_key)
            {
                r.push(request);
            }
            Ok(RefundOutcome::Refunded { reference })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_domain::Currency;

    #[tokio::test]
    async fn sandbox_sessions_are_derived_from_the_subscription() {
        let g = SandboxGateway::new("https://pay.example.test/");
        let sub = Uuid::now_v7();
        let s = g
            .create_checkout(CheckoutRequest {
                tenant_id: Uuid::now_v7(),
                subscription_id: sub,
                email: "a@b.cd".into(),
                product: "odoo".into(),
                plan: "basic".into(),
                price: Money::from_minor_units(2900, Currency::parse("USD").unwrap()),
            })
            .await
            .unwrap();
        assert_eq!(s.id, format!("cs_sandbox_{}", sub.simple()));
        assert_eq!(s.url, format!("https://pay.example.test/checkout/{}", s.id));
    }
}
