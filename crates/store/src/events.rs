//! What provisioning tells billing, inside provisioning's own transaction.
//!
//! `billing` and `provisioning` never depend on each other (DESIGN.md
//! "Layout"). Provisioning announces the facts billing's rules depend on
//! through [`ProvisioningEvents`]; billing implements it (its rules: a
//! subscription starts when its tenant's service starts; a failed migration
//! puts the tenant back on its old plan and fails the plan change), and the
//! binary wires one to the other. The calls run in the transaction that
//! records the fact, so both sides change together or not at all.

use async_trait::async_trait;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::StoreError;

/// Billing's side of provisioning's facts. Every method runs inside the
/// caller's transaction and must be idempotent (a job step may run again).
#[async_trait]
pub trait ProvisioningEvents: Send + Sync + 'static {
    /// Tenant `tenant_id`'s service has started: its deployment became
    /// active for the first time (or again after a retry).
    ///
    /// # Errors
    /// [`StoreError`]: the caller's transaction rolls back.
    async fn service_started(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
    ) -> Result<(), StoreError>;

    /// A migration asked by `plan_change_id` failed and was rolled back
    /// (the `migration_failed` event is recorded in the same transaction).
    ///
    /// # Errors
    /// [`StoreError`]: the caller's transaction rolls back.
    async fn migration_failed(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        plan_change_id: Uuid,
    ) -> Result<(), StoreError>;
}
