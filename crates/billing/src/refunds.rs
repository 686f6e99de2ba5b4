//! Refunds: a payment that came when its plan change could no longer be
//! applied goes back to the customer. The engine records the refund (a
//! charge of kind `refund`, key `refund:{change}`) and enqueues the
//! `billing.refund` job in the transaction that saw the payment; the job asks
//! the gateway outside any transaction, with the charge's key, and records
//! the outcome. Repeating it refunds once.

use std::sync::Arc;

use serde_json::json;
use tenantry_domain::{Currency, Money};
use tenantry_store::{
    activity::Entry,
    billing as store,
    jobs::kinds::BillingRefund,
    worker::{Handlers, JobContext, JobError, JobHandler},
};

use crate::gateway::{PaymentGateway, RefundOutcome, RefundRequest};

/// The `billing.refund` job's handler.
#[derive(Debug, Clone)]
pub struct RefundJobs {
    /// The gateway the money goes back through.
    pub gateway: Arc<dyn PaymentGateway>,
}

impl RefundJobs {
    /// Registers the handler.
    pub fn register(self, handlers: &mut Handlers) {
        handlers.register::<BillingRefund, _>(Arc::new(self));
    }
}

#[async_trait::async_trait]
impl JobHandler<BillingRefund> for RefundJobs {
    async fn run(&self, ctx: &JobContext, job: BillingRefund) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        let charge = {
            let mut conn = ctx.pool.get().await?;
            store::lock_charge(&mut conn, job.charge_id).await?
        };
        if charge.kind != "refund" {
            return Err(JobError::Fail(format!(
                "charge {} is a {}, not a refund",
                charge.id, charge.kind
            )));
        }
        if charge.status == "paid" {
            return Ok(());
        }
        let currency =
            Currency::parse(&charge.currency).map_err(|e| JobError::Fail(e.to_string()))?;
        let outcome = self
            .gateway
            .refund(RefundRequest {
                tenant_id: charge.tenant_id,
                amount: Money::rounded(charge.amount, currency),
                payment: charge.provider_reference.clone().unwrap_or_default(),
                idempotency_key: charge.idempotency_key.clone(),
                reason: if charge.plan_change_id.is_some() {
                    "the payment came after its plan change could be applied".into()
                } else {
                    "the tenant was deleted before its service started".into()
                },
            })
            .await?;
        let RefundOutcome::Refunded { reference } = outcome else {
            // The provider cannot give it back (payments off, or a payment
            // that never went through it, such as a bank transfer staff
            // recorded): an operator does, then records it.
            let mut conn = ctx.pool.get().await?;
            tenantry_store::alerts::raise(
                &mut conn,
                &tenantry_store::alerts::NewAlert {
                    kind: MANUAL_REFUND_ALERT,
                    severity: tenantry_store::alerts::Severity::Warning,
                    message: &format!(
                        "give {} {} back to the tenant by hand (payment {:?} did not go through the payment provider), then record it: POST /v1/charges/{}/mark-refunded",
                        charge.amount.normalize(),
                        charge.currency,
                        charge.provider_reference.as_deref().unwrap_or(""),
                        charge.id
                    ),
                    tenant_id: Some(charge.tenant_id),
                    subject: &format!("charge:{}", charge.id),
                },
            )
            .await?;
            return Ok(());
        };
        let mut conn = ctx.pool.get().await?;
        store::record_charge_attempt(&mut conn, charge.id, true, Some(&reference), None, None)
            .await?;
        Entry::anonymous("billing", "charge.refunded")
            .tenant(Some(charge.tenant_id))
            .target("charge", charge.id)
            .change(
                None,
                Some(json!({"amount": charge.amount.normalize().to_string(), "currency": charge.currency, "refund": reference, "plan_change_id": charge.plan_change_id})),
            )
            .record(&mut conn)
            .await?;
        Ok(())
    }
}

/// The alert asking an operator to give a payment back by hand.
pub const MANUAL_REFUND_ALERT: &str = "refund.manual";

/// Staff record that they gave a refund back by hand (the provider could
/// not: a bank transfer, or payments off): the pending refund charge
/// becomes `paid` with their `reference`, an activity row, the
/// [`MANUAL_REFUND_ALERT`] resolved. Recording it again with the same
/// reference changes nothing.
///
/// # Errors
/// [`BillingError::NotFound`] when `charge_id` names no refund;
/// [`BillingError::WrongState`] when it was refunded with another
/// reference, or is not waiting for a refund.
pub async fn record_manual_refund(
    pool: &tenantry_store::Pool,
    charge_id: uuid::Uuid,
    reference: &str,
    actor: &tenantry_store::activity::Actor,
) -> Result<tenantry_store::billing::Charge, crate::engine::BillingError> {
    use crate::engine::BillingError;
    use tenantry_store::AsyncConnection as _;
    let mut conn = pool.get().await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        let charge = match store::lock_charge(conn, charge_id).await {
            Ok(c) if c.kind == "refund" => c,
            Ok(_) | Err(tenantry_store::StoreError::NotFound) => {
                return Err(BillingError::NotFound(format!("refund {charge_id}")));
            }
            Err(e) => return Err(e.into()),
        };
        match charge.status.as_str() {
            "paid" if charge.provider_reference.as_deref() == Some(reference) => return Ok(charge),
            "paid" => {
                return Err(BillingError::WrongState(format!(
                    "refund {charge_id} was already recorded (reference {:?})",
                    charge.provider_reference.as_deref().unwrap_or("")
                )));
            }
            "pending" | "failed" => {}
            other => {
                return Err(BillingError::WrongState(format!(
                    "refund {charge_id} is {other}, not waiting to be given back"
                )));
            }
        }
        let paid =
            store::record_charge_attempt(conn, charge.id, true, Some(reference), None, None).await?;
        Entry::by(actor, "charge.refunded")
            .tenant(Some(charge.tenant_id))
            .target("charge", charge.id)
            .change(
                Some(json!({"status": charge.status, "payment": charge.provider_reference})),
                Some(json!({"status": "paid", "amount": charge.amount.normalize().to_string(), "currency": charge.currency, "refund": reference, "by_hand": true, "plan_change_id": charge.plan_change_id})),
            )
            .record(conn)
            .await?;
        tenantry_store::alerts::resolve(conn, MANUAL_REFUND_ALERT, &format!("charge:{}", charge.id))
            .await?;
        Ok(paid)
    })
    .await
}
