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

use super::{CallError, Stripe, catalog, checkout};
use crate::gateway::{
    ChargeOutcome, ChargeRequest, CheckoutRequest, CheckoutSession, GatewayError, GatewayFuture,
    PaymentGateway,
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

async fn invoice_and_pay(
    stripe: &Stripe,
    r: &ChargeRequest,
    customer: &str,
    units: i64,
    currency: &str,
    meta: HashMap<String, String>,
) -> Result<ChargeOutcome, GatewayError> {
    let k = &r.idempotency_key;
    let stripe_currency = currency
        .parse::<stripe_types::Currency>()
        .unwrap_or_default();
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
    let key = Stripe::key(&format!("{k}:finalize"))?;
    let req = FinalizeInvoiceInvoice::new(invoice_id.clone()).auto_advance(false);
    stripe
        .call("finalize invoice", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
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
        Ok(other) => Ok(ChargeOutcome::Declined {
            reason: format!("invoice {invoice_id} is {:?} after payment", other.status),
        }),
        Err(CallError::Declined(reason)) => Ok(ChargeOutcome::Declined { reason }),
        Err(e) => Err(e.into()),
    }
}
