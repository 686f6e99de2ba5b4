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
                reason: "the payment came after its plan change could be applied".into(),
            })
            .await?;
        let RefundOutcome::Refunded { reference } = outcome else {
            // An operator gives it back by hand; the alert raised with the refund says so.
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
