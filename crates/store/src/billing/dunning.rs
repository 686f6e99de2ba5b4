//! Dunning: tenants of past-due subscriptions suspended after the grace
//! period and deprovisioned at termination, and the end of service of
//! canceled subscriptions whose paid billing period is over, both through
//! one `end_service` statement.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Interval, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{Count, grace_interval};
use crate::StoreError;

/// Suspends tenants whose subscription has been past due longer than
/// `grace` (active → suspended, a `suspend` job to stop their instances).
///
/// # Errors
/// [`StoreError`].
pub async fn suspend_overdue(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Result<i64, StoreError> {
    let rows: Vec<Count> = diesel::sql_query(
        r#"
        WITH due AS (
            SELECT t.id FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id
            WHERE s.status = 'past_due' AND s.past_due_since <= $1 - $2 AND t.status = 'active'
            FOR UPDATE OF t SKIP LOCKED
        ), suspended AS (
            UPDATE tenants SET status = 'suspended', status_reason = 'non-payment', version = version + 1, updated_at = now()
            FROM due WHERE tenants.id = due.id RETURNING tenants.id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), 'suspend', s.id, jsonb_build_object('tenant_id', s.id), 'suspend:' || s.id FROM suspended s
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', s.id, 'tenant.status_changed', 'tenant', s.id::text,
                   '{"status": "active"}', '{"status": "suspended", "reason": "non-payment"}'
            FROM suspended s RETURNING id
        )
        SELECT count(*) AS n FROM suspended
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Interval, _>(grace_interval(grace))
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

/// Ends subscriptions past due longer than `termination`: subscription
/// `expired`, tenant `deprovisioning` with a `deprovision` job (final backup
/// first), open plan change canceled.
///
/// # Errors
/// [`StoreError`].
pub async fn terminate_overdue(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    termination: chrono::Duration,
) -> Result<i64, StoreError> {
    end_service(
        conn,
        now,
        "s.status = 'past_due' AND s.past_due_since <= $1 - $2",
        termination,
        "non-payment",
    )
    .await
}

/// Ends the service of canceled subscriptions whose paid period is over
/// (a subscription deleted in Stripe keeps its service until then): tenant
/// `deprovisioning` with reason `canceled` and a `deprovision` job (final
/// backup first). The subscription stays `canceled`. Returns how many
/// tenants it moved.
///
/// # Errors
/// [`StoreError`].
pub async fn end_canceled(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    end_service(
        conn,
        now,
        "s.status = 'canceled' AND s.current_period_end <= $1 - $2",
        chrono::Duration::zero(),
        "canceled",
    )
    .await
}

/// Deprovisions the tenants whose subscription meets `due` (SQL over `s`,
/// the subscription, with `$1` = now and `$2` = `window`) and whose tenant
/// still runs: a past-due subscription `expired`, tenant `deprovisioning`
/// for `reason`, open plan changes canceled, one `deprovision` job (final
/// backup first), an activity row. Returns how many tenants it moved.
async fn end_service(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    due: &'static str,
    window: chrono::Duration,
    reason: &'static str,
) -> Result<i64, StoreError> {
    let rows: Vec<Count> = diesel::sql_query(format!(
        r#"
        WITH due AS (
            SELECT s.id AS subscription_id, t.id AS tenant_id, t.status AS old_status
            FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
            WHERE {due}
              AND t.status IN ('active', 'paused', 'suspended', 'failed')
            FOR UPDATE OF s, t SKIP LOCKED
        ), subs AS (
            UPDATE subscriptions SET status = 'expired', updated_at = now()
            FROM due WHERE subscriptions.id = due.subscription_id AND subscriptions.status = 'past_due'
            RETURNING subscriptions.id
        ), ten AS (
            UPDATE tenants SET status = 'deprovisioning', status_reason = $3, version = version + 1, updated_at = now()
            FROM due WHERE tenants.id = due.tenant_id RETURNING tenants.id
        ), canceled AS (
            UPDATE plan_changes SET status = 'canceled', updated_at = now()
            FROM due WHERE plan_changes.tenant_id = due.tenant_id AND plan_changes.status IN ('pending', 'scheduled')
            RETURNING plan_changes.id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), 'deprovision', d.tenant_id, jsonb_build_object('tenant_id', d.tenant_id, 'final_backup', true), 'deprovision:' || d.tenant_id
            FROM due d
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', d.tenant_id, 'tenant.status_changed', 'tenant', d.tenant_id::text,
                   jsonb_build_object('status', d.old_status), jsonb_build_object('status', 'deprovisioning', 'reason', $3::text)
            FROM due d RETURNING id
        )
        SELECT count(*) AS n FROM due
        "#
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Interval, _>(grace_interval(window))
    .bind::<diesel::sql_types::Text, _>(reason)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}
