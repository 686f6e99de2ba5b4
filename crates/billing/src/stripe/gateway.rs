//! [`StripeGateway`]: the [`PaymentGateway`] the engine charges through
//! when Stripe is configured.
//!
//! A charge is exactly the engine's amount (an upgrade's quoted proration,
//! never Stripe's own): with a saved payment method, an invoice with one
//! invoice item, finalized and paid off-session
//! (docs.stripe.com/invoicing/integration); without one, a `payment`-mode
//! Checkout Session. Every call's idempotency key derives from the charge's
//! own key (`upgrade:{change}` → `upgrade:{change}:invoice`, `…:item`,
//! `…:finalize`, `…:pay`), so the `stripe.charge` job that backs each charge
//! can repeat it without charging twice.

use std::collections::HashMap;

use stripe::StripeRequest as _;
use stripe_billing::{
    invoice::{
        CreateInvoice, CreateInvoicePendingInvoiceItemsBehavior, FinalizeInvoiceInvoice, PayInvoice,
    },
    invoice_item::CreateInvoiceItem,
};
use stripe_shared::InvoiceStatus;
use tenantry_domain::{Currency, Money};
use tenantry_store::{Pool, jobs, jobs::kinds::StripeCharge, stripe as store, tenants};

use super::{CallError, Stripe, StripeMethod, catalog, checkout};
use crate::gateway::{
    ChargeOutcome, ChargeRequest, CheckoutRequest, CheckoutSession, GatewayError, GatewayFuture,
    PaymentGateway, RefundOutcome, RefundRequest,
};

/// The Stripe payment gateway.
#[derive(Debug, Clone)]
pub struct StripeGateway {
    stripe: Stripe,
    pool: Pool,
}

impl StripeGateway {
    /// A gateway calling `stripe`, remembering what it made in `pool`.
    pub fn new(stripe: Stripe, pool: Pool) -> Self {
        Self { stripe, pool }
    }

    /// The client.
    pub fn stripe(&self) -> &Stripe {
        &self.stripe
    }
}

impl PaymentGateway for StripeGateway {
    /// The signup's Checkout Session ([`checkout::open_signup_checkout`]).
    fn create_checkout(&self, request: CheckoutRequest) -> GatewayFuture<'_, CheckoutSession> {
        Box::pin(async move {
            checkout::open_signup_checkout(&self.stripe, &self.pool, request.subscription_id).await
        })
    }

    /// Enqueues the `stripe.charge` job (so a charge interrupted here is
    /// finished by a worker), then does its work at once to answer.
    fn charge(&self, request: ChargeRequest) -> GatewayFuture<'_, ChargeOutcome> {
        Box::pin(async move {
            {
                let mut conn = self.pool.get().await?;
                jobs::enqueue(&mut conn, &charge_job(&request)).await?;
            }
            charge(&self.stripe, &self.pool, &request).await
        })
    }

    /// A Stripe refund of the PaymentIntent the payment went through
    /// (docs.stripe.com/api/refunds/create), key `{refund key}`; an invoice
    /// or Checkout Session reference is first read for its PaymentIntent.
    fn refund(&self, request: RefundRequest) -> GatewayFuture<'_, RefundOutcome> {
        Box::pin(async move { refund(&self.stripe, &request).await })
    }
}

/// The PaymentIntent a payment went through: `pi_…` itself, or read from
/// the Checkout Session (`payment_intent`) or invoice (`payments`, or the
/// older `payment_intent`) it names.
async fn payment_intent_of(stripe: &Stripe, reference: &str) -> Result<String, GatewayError> {
    if reference.starts_with("pi_") {
        return Ok(reference.to_owned());
    }
    let path = if reference.starts_with("cs_") {
        format!("/checkout/sessions/{reference}")
    } else if reference.starts_with("in_") {
        format!("/invoices/{reference}")
    } else {
        return Err(GatewayError::Refused(format!(
            "{reference:?} names no Stripe payment to refund"
        )));
    };
    let obj = stripe
        .raw(
            "read the payment",
            StripeMethod::Get,
            &path,
            &serde_json::json!({}),
            None,
        )
        .await?;
    super::events::payment_intent(&obj)
        .map(str::to_owned)
        .ok_or_else(|| GatewayError::Refused(format!("{reference} has no PaymentIntent to refund")))
}

/// Refunds `r.amount` of the payment `r.payment` names; a payment that is
/// no Stripe object (`pi_…`, `cs_…`, `in_…`) is [`RefundOutcome::AwaitingOperator`].
///
/// # Errors
/// [`GatewayError`].
pub async fn refund(stripe: &Stripe, r: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
    // A payment that never went through Stripe (a bank transfer staff
    // recorded) goes back the way it came: by hand.
    if !["pi_", "cs_", "in_"]
        .iter()
        .any(|p| r.payment.starts_with(p))
    {
        return Ok(RefundOutcome::AwaitingOperator);
    }
    let pi = payment_intent_of(stripe, &r.payment).await?;
    let units = r
        .amount
        .minor_units()
        .map_err(|e| GatewayError::Refused(format!("amount: {e}")))?;
    let made = stripe
        .raw(
            "refund",
            StripeMethod::Post,
            "/refunds",
            &serde_json::json!({"payment_intent": pi, "amount": units, "reason": "requested_by_customer",
                                "metadata": {"tenant_id": r.tenant_id.to_string(), "refund": r.idempotency_key, "why": r.reason}}),
            Some(&r.idempotency_key),
        )
        .await?;
    Ok(RefundOutcome::Refunded {
        reference: made["id"].as_str().unwrap_or_default().to_owned(),
    })
}

/// The `stripe.charge` job of a charge request.
pub fn charge_job(r: &ChargeRequest) -> StripeCharge {
    StripeCharge {
        tenant_id: r.tenant_id,
        subscription_id: r.subscription_id,
        amount: r.amount.amount(),
        currency: r.amount.currency().code().to_owned(),
        description: r.description.clone(),
        idempotency_key: r.idempotency_key.clone(),
        saved_payment_method: r.saved_payment_method,
    }
}

/// A charge request back from a `stripe.charge` job.
///
/// # Errors
/// A message when its currency is not an ISO 4217 code.
pub fn charge_request(job: StripeCharge) -> Result<ChargeRequest, String> {
    let currency = Currency::parse(&job.currency).map_err(|e| e.to_string())?;
    Ok(ChargeRequest {
        tenant_id: job.tenant_id,
        subscription_id: job.subscription_id,
        amount: Money::rounded(job.amount, currency),
        description: job.description,
        idempotency_key: job.idempotency_key,
        saved_payment_method: job.saved_payment_method,
    })
}

/// Charges exactly `r.amount`: see the module docs.
///
/// # Errors
/// [`GatewayError::Unavailable`] when Stripe stays unreachable (the job
/// retries), [`GatewayError::Refused`].
pub async fn charge(
    stripe: &Stripe,
    pool: &Pool,
    r: &ChargeRequest,
) -> Result<ChargeOutcome, GatewayError> {
    let mut conn = pool.get().await?;
    // Paid already (a job repeated after its answer was recorded): nothing to do.
    if let Some(c) = tenantry_store::billing::find_charge(&mut conn, &r.idempotency_key).await?
        && c.status == "paid"
    {
        return Ok(ChargeOutcome::Paid {
            reference: c.provider_reference.unwrap_or_default(),
        });
    }
    let customer = checkout::ensure_customer(stripe, &mut conn, r.tenant_id).await?;
    let units = r
        .amount
        .minor_units()
        .map_err(|e| GatewayError::Refused(format!("amount: {e}")))?;
    let currency = r.amount.currency().code().to_lowercase();
    let mut meta = checkout::ids(r.tenant_id, r.subscription_id);
    meta.insert("charge".into(), r.idempotency_key.clone());
    if let Some(change) = r.idempotency_key.strip_prefix("upgrade:") {
        meta.insert("plan_change_id".into(), change.to_owned());
    }
    if !r.saved_payment_method {
        let (sub, _) = tenants::subscription_of(&mut conn, r.tenant_id).await?;
        let (_, product) = store::plan_with_product(&mut conn, sub.plan_id).await?;
        let product_id = catalog::product_of(stripe, &mut conn, &product).await?;
        let session = checkout::open_payment_checkout(
            stripe,
            &mut conn,
            &r.idempotency_key,
            r.tenant_id,
            &customer,
            &product_id,
            units,
            &currency,
            meta,
        )
        .await?;
        return Ok(ChargeOutcome::ActionRequired {
            reference: session.id,
            checkout_url: session.url,
        });
    }
    drop(conn);
    invoice_and_pay(stripe, r, &customer, units, &currency, meta).await
}

/// Our invoice for charge `key`, looked up in Stripe by the metadata we set
/// (`charge`), newest first: a charge retried after Stripe forgot its
/// idempotency keys (24 h: docs.stripe.com/api/idempotent_requests) finds
/// what the first attempt made instead of making another.
async fn our_invoice(
    stripe: &Stripe,
    customer: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, GatewayError> {
    let mut after: Option<String> = None;
    loop {
        let mut q = serde_json::json!({"customer": customer, "limit": 100});
        if let Some(a) = &after {
            q["starting_after"] = serde_json::json!(a);
        }
        let page = stripe
            .raw("list invoices", StripeMethod::Get, "/invoices", &q, None)
            .await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if let Some(found) = data.iter().find(|i| {
            i["metadata"]["charge"] == key
                && i["status"] != "void"
                && i["status"] != "uncollectible"
        }) {
            return Ok(Some(found.clone()));
        }
        after = data
            .last()
            .and_then(|i| i["id"].as_str().map(str::to_owned));
        if page["has_more"] != true || after.is_none() {
            return Ok(None);
        }
    }
}

async fn invoice_and_pay(
    stripe: &Stripe,
    r: &ChargeRequest,
    customer: &str,
    units: i64,
    currency: &str,
    meta: HashMap<String, String>,
) -> Result<ChargeOutcome, GatewayError> {
    let k = &r.idempotency_key;
    let stripe_currency = checkout::stripe_currency(currency)?;
    let invoice_id = match our_invoice(stripe, customer, k).await? {
        Some(inv) if inv["status"] == "paid" => {
            return Ok(ChargeOutcome::Paid {
                reference: inv["id"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Some(inv) => {
            let id = inv["id"].as_str().unwrap_or_default().to_owned();
            if inv["status"] == "draft" {
                return finalize_and_pay(stripe, k, id).await;
            }
            return pay_invoice(stripe, k, id).await;
        }
        None => create_invoice(stripe, r, customer, units, stripe_currency, meta).await?,
    };
    finalize_and_pay(stripe, k, invoice_id).await
}

/// Finalizes our draft invoice, then pays it — unless finalizing paid it
/// already (the customer's credit balance covered it: Stripe marks an
/// invoice with nothing due `paid` at finalization).
async fn finalize_and_pay(
    stripe: &Stripe,
    k: &str,
    invoice_id: String,
) -> Result<ChargeOutcome, GatewayError> {
    let key = Stripe::key(&format!("{k}:finalize"))?;
    let req = FinalizeInvoiceInvoice::new(invoice_id.clone()).auto_advance(false);
    let finalized = stripe
        .call("finalize invoice", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
    if finalized.status == Some(InvoiceStatus::Paid) {
        return Ok(ChargeOutcome::Paid {
            reference: invoice_id,
        });
    }
    pay_invoice(stripe, k, invoice_id).await
}

/// Our invoice for `r` with its one item, as a draft; returns its id.
async fn create_invoice(
    stripe: &Stripe,
    r: &ChargeRequest,
    customer: &str,
    units: i64,
    stripe_currency: stripe_types::Currency,
    meta: HashMap<String, String>,
) -> Result<String, GatewayError> {
    let k = &r.idempotency_key;
    let key = Stripe::key(&format!("{k}:invoice"))?;
    let req = CreateInvoice::new()
        .customer(customer)
        .currency(stripe_currency.clone())
        .auto_advance(false)
        .pending_invoice_items_behavior(CreateInvoicePendingInvoiceItemsBehavior::Exclude)
        .description(r.description.as_str())
        .metadata(meta.clone());
    let invoice = stripe
        .call("create invoice", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
    let invoice_id = invoice
        .id
        .map(|i| i.to_string())
        .ok_or_else(|| GatewayError::Refused("the invoice has no id".into()))?;
    let key = Stripe::key(&format!("{k}:item"))?;
    let req = CreateInvoiceItem::new()
        .customer(customer)
        .invoice(invoice_id.as_str())
        .amount(units)
        .currency(stripe_currency)
        .description(r.description.as_str())
        .metadata(meta);
    stripe
        .call("create invoice item", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
    Ok(invoice_id)
}

/// Pays our open invoice off-session.
async fn pay_invoice(
    stripe: &Stripe,
    k: &str,
    invoice_id: String,
) -> Result<ChargeOutcome, GatewayError> {
    let key = Stripe::key(&format!("{k}:pay"))?;
    let req = PayInvoice::new(invoice_id.clone()).off_session(true);
    match stripe
        .call("pay invoice", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await
    {
        Ok(paid) if paid.status == Some(InvoiceStatus::Paid) => Ok(ChargeOutcome::Paid {
            reference: invoice_id,
        }),
        Ok(other) => {
            void_declined(stripe, k, &invoice_id).await?;
            Ok(ChargeOutcome::Declined {
                reason: format!("invoice {invoice_id} is {:?} after payment", other.status),
            })
        }
        Err(CallError::Declined(reason)) => {
            void_declined(stripe, k, &invoice_id).await?;
            Ok(ChargeOutcome::Declined { reason })
        }
        Err(e) => Err(e.into()),
    }
}

/// A declined invoice of ours is voided: nothing more is collected on it
/// (the plan change it was for is refused), and the customer's credit
/// balance it used at finalization goes back to the customer
/// (docs.stripe.com/api/invoices/void).
async fn void_declined(stripe: &Stripe, k: &str, invoice_id: &str) -> Result<(), GatewayError> {
    stripe
        .raw(
            "void invoice",
            StripeMethod::Post,
            &format!("/invoices/{invoice_id}/void"),
            &serde_json::json!({}),
            Some(&format!("{k}:void")),
        )
        .await?;
    Ok(())
}
