//! A tenant staff delete ends its subscription at once, whatever its
//! period: billing stops (a Stripe subscription is canceled now, without
//! proration: docs.stripe.com/api/subscriptions/cancel), and a tenant that
//! was never served (its subscription still `incomplete`: provisioning
//! failed, or never finished) gets every period it paid for back in full,
//! through the provider (`billing.refund`; one it cannot refund raises the
//! `refund.manual` alert for an operator). A served tenant's unused time is
//! not refunded automatically: deleting it is the operator's decision.

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::SubscriptionStatus;
use tenantry_store::{
    AsyncPgConnection, StoreError,
    activity::{Actor, Entry},
    billing::{self as store, Charge},
    jobs::{self, kinds::BillingRefund},
    stripe as stripe_store, tenants,
};
use uuid::Uuid;

/// Ends the subscription of tenant `tenant_id`, deleted by `actor` at
/// `now` (in the transaction that moves the tenant to `deprovisioning`):
/// `canceled` with a `subscription.canceled` activity row and, when Stripe
/// bills it, a `stripe.sync_price` that cancels it there; a never-served
/// tenant's paid periods refunded ([`refund_unserved`]). A subscription
/// that already ended is left alone. Returns the refunds started.
///
/// # Errors
/// [`StoreError`].
pub async fn tenant_deleted(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<Vec<Charge>, StoreError> {
    let (sub, _) = tenants::subscription_of(conn, tenant_id).await?;
    let Some(before) = stripe_store::end_for_deleted_tenant(conn, sub.id).await? else {
        return Ok(Vec::new());
    };
    crate::stripe::jobs::enqueue_price_sync(conn, sub.id).await?;
    Entry::by(actor, "subscription.canceled")
        .at(now)
        .tenant(Some(tenant_id))
        .target("subscription", sub.id)
        .change(
            Some(json!({"status": before})),
            Some(json!({"status": SubscriptionStatus::Canceled.as_str(), "reason": "tenant deleted"})),
        )
        .record(conn)
        .await?;
    if before != SubscriptionStatus::Incomplete.as_str() {
        return Ok(Vec::new());
    }
    refund_unserved(conn, now, sub.id, actor).await
}

/// Refunds in full every period a never-served subscription paid (what the
/// provider was paid for it: charge `refund:charge:{id}`, once), each with a
/// `billing.refund` job and a `charge.refund_requested` activity row.
async fn refund_unserved(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    subscription_id: Uuid,
    actor: &Actor,
) -> Result<Vec<Charge>, StoreError> {
    let mut refunds = Vec::new();
    for paid in store::paid_periods(conn, subscription_id).await? {
        if paid.amount <= rust_decimal::Decimal::ZERO {
            continue;
        }
        let refund = store::upsert_charge(
            conn,
            &Charge {
                id: Uuid::now_v7(),
                kind: "refund".into(),
                plan_change_id: None,
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                idempotency_key: format!("refund:charge:{}", paid.id),
                created_at: now,
                updated_at: now,
                credit_applied: rust_decimal::Decimal::ZERO,
                ..paid.clone()
            },
        )
        .await?;
        jobs::enqueue(
            conn,
            &BillingRefund {
                tenant_id: refund.tenant_id,
                charge_id: refund.id,
            },
        )
        .await?;
        Entry::by(actor, "charge.refund_requested")
            .at(now)
            .tenant(Some(refund.tenant_id))
            .target("charge", refund.id)
            .change(
                None,
                Some(json!({"amount": refund.amount.normalize().to_string(), "currency": refund.currency, "refunds": paid.id, "reason": "the tenant was deleted before its service started"})),
            )
            .record(conn)
            .await?;
        refunds.push(refund);
    }
    Ok(refunds)
}
