//! Billing's rules on provisioning's facts ([`ProvisioningEvents`]): what
//! follows, for the subscription and the plan change, when a tenant's
//! service starts or its migration fails. Run in provisioning's transaction.

use async_trait::async_trait;
use serde_json::json;
use tenantry_domain::billing::PlanChangeStatus;
use tenantry_store::{
    AsyncPgConnection, StoreError,
    activity::Entry,
    billing::{self as store, credits},
    events::ProvisioningEvents,
    tenants,
};
use uuid::Uuid;

/// Billing's [`ProvisioningEvents`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BillingFollowUp;

#[async_trait]
impl ProvisioningEvents for BillingFollowUp {
    /// A subscription is `incomplete` until its tenant is first served, then
    /// `active` (a paid signup stays `incomplete` while it is provisioned).
    async fn service_started(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
    ) -> Result<(), StoreError> {
        tenants::activate_incomplete_subscription(conn, tenant_id).await
    }

    /// The customer keeps what they had: tenant and subscription go back to
    /// the change's old plan (and its old billing period, when the change
    /// had started a new one), the change is `failed`, and what was paid for
    /// it comes back as a credit — exactly once: the `migration_failed`
    /// provisioning event is consumed here, the credit's source
    /// (`plan_change:{id}:migration_failed`) is unique, and a change already
    /// `failed` is left alone. A Stripe-billed customer's credit goes to
    /// Stripe as a customer balance transaction (`stripe.push_credit`).
    async fn migration_failed(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        plan_change_id: Uuid,
    ) -> Result<(), StoreError> {
        let change = store::lock_change(conn, plan_change_id).await?;
        store::consume_migration_failed(conn, plan_change_id).await?;
        if change.status == PlanChangeStatus::Failed {
            return Ok(());
        }
        tenants::set_plan(
            conn,
            tenant_id,
            change.from_plan_id,
            &change.from_deployment,
        )
        .await?;
        store::restore_period(conn, &change).await?;
        let now = chrono::Utc::now();
        store::set_change_status(
            conn,
            plan_change_id,
            PlanChangeStatus::Failed,
            now,
            change.payment_reference.as_deref(),
        )
        .await?;
        let paid = store::find_charge(conn, &format!("upgrade:{plan_change_id}"))
            .await?
            .is_some_and(|c| c.status == "paid");
        if paid && change.amount > rust_decimal::Decimal::ZERO {
            let source = format!("plan_change:{plan_change_id}:migration_failed");
            if let Some(credit) = credits::record(
                conn,
                &credits::NewCredit {
                    tenant_id,
                    subscription_id: change.subscription_id,
                    amount: change.amount,
                    currency: &change.currency,
                    reason: "migration_failed",
                    source: &source,
                    charge_id: None,
                    provider_reference: None,
                    at: now,
                },
            )
            .await?
            {
                crate::stripe::jobs::enqueue_credit_push(conn, &credit).await?;
                Entry::anonymous("billing", "credit.granted")
                    .tenant(Some(tenant_id))
                    .target("plan_change", plan_change_id)
                    .change(
                        None,
                        Some(json!({"amount": credit.amount.normalize().to_string(), "currency": credit.currency, "reason": credit.reason, "credit_id": credit.id})),
                    )
                    .record(conn)
                    .await?;
            }
        }
        crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
        Ok(())
    }
}
