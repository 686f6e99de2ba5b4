//! Billing's rules on provisioning's facts ([`ProvisioningEvents`]): what
//! follows, for the subscription and the plan change, when a tenant's
//! service starts or its migration fails. Run in provisioning's transaction.

use async_trait::async_trait;
use tenantry_domain::billing::PlanChangeStatus;
use tenantry_store::{
    AsyncPgConnection, StoreError, billing as store, events::ProvisioningEvents, tenants,
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
    /// the change's old plan, and the change is `failed` (its credit is
    /// computed from the recorded `migration_failed` event). Once.
    async fn migration_failed(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        plan_change_id: Uuid,
    ) -> Result<(), StoreError> {
        let change = store::lock_change(conn, plan_change_id).await?;
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
        store::set_change_status(
            conn,
            plan_change_id,
            PlanChangeStatus::Failed,
            chrono::Utc::now(),
            change.payment_reference.as_deref(),
        )
        .await?;
        Ok(())
    }
}
