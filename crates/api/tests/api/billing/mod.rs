//! The billing engine through the API (and, for dunning, with a scripted
//! gateway): what the topic files share — a tenant with its owner, its
//! subscription as the owner sees it, a saved payment method, timestamps.

mod downgrades;
mod dunning;
mod money;
mod oracle;
mod processor;
mod reports;
mod requests;
mod upgrades;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantry_domain::Role;

use tenantry_store::events::ProvisioningEvents as _;

use crate::helpers::{Session, TestApp};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

async fn owner_of(app: &TestApp, slug: &str, product: &str, plan: &str) -> (uuid::Uuid, Session) {
    let t = app.tenant_on(slug, product, plan).await;
    let s = app
        .user(&format!("owner@{slug}.test"), Role::TenantOwner, Some(t))
        .await;
    (t, s)
}

async fn subscription(app: &TestApp, t: uuid::Uuid, token: &str) -> Value {
    app.get_as(&format!("/v1/tenants/{t}/subscription"), token)
        .await
        .json()
        .await
        .unwrap()
}

async fn set_saved_method(app: &TestApp, t: uuid::Uuid) {
    app.sql()
        .await
        .execute(
            "UPDATE subscriptions SET saved_payment_method = true WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
}

/// Billing's follow-up as the app wires it (the sandbox's clock).
pub(crate) fn follow_up() -> tenantry_billing::BillingFollowUp {
    tenantry_billing::BillingFollowUp {
        clock: tenantry_billing::engine::Clock::new(true),
    }
}

/// Provisioning's side of a failed migration, as it runs it: the event
/// recorded, billing's follow-up, in one transaction.
pub(crate) async fn fail_migration(app: &TestApp, tenant: uuid::Uuid, change: uuid::Uuid) {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    tenantry_store::AsyncConnection::transaction::<_, tenantry_store::StoreError, _>(
        &mut conn,
        async |conn| {
            tenantry_store::deployments::record_migration_failed(
                conn,
                tenant,
                Some(change),
                serde_json::json!({"reason": "test"}),
            )
            .await?;
            follow_up().migration_failed(conn, tenant, change).await
        },
    )
    .await
    .unwrap();
}
