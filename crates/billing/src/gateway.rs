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

/// A payment provider.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Opens a checkout for a signup's first payment.
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession>;
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
