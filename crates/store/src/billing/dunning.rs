//! Dunning: tenants of past-due subscriptions suspended after the grace
//! period and deprovisioned at termination, and the end of service of
//! canceled subscriptions whose paid billing period is over, both through
//! one `end_service` statement.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Interval, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenantry_domain::TenantStatus;

use super::{Count, grace_interval};
use crate::{
    StoreError,
    jobs::{
        BackgroundJob as _,
        kinds::{Deprovision, Resume, Suspend},
    },
};

/// The CTEs that resume tenants once their overdue payment arrived — the
/// one place this rule is written: the tenants listed by CTE `paid`
/// (column `tenant_id`) that dunning suspended (`status` = `$suspended`,
/// reason `non-payment`) go back to `$active`, each with a `resume` job
/// (kind `$kind`) and an activity row by `$actor` at `$now`. Arguments are
/// the parameter numbers of those values in the statement the CTEs join;
/// bind them with [`resume_binds`]. Yields CTE `resumed`.
pub(crate) fn resume_paid(now: u8, suspended: u8) -> String {
    let (active, kind, actor) = (suspended + 1, suspended + 2, suspended + 3);
    format!(
        r#"resumed AS (
            UPDATE tenants SET status = ${active}, status_reason = NULL, version = version + 1, updated_at = now()
            WHERE id IN (SELECT tenant_id FROM paid) AND status = ${suspended} AND status_reason = 'non-payment'
            RETURNING id
        ), resume_jobs AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), ${kind}, r.id, jsonb_build_object('tenant_id', r.id), ${kind} || ':' || r.id FROM resumed r
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), resume_log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), ${now}, ${actor}, r.id, 'tenant.status_changed', 'tenant', r.id::text,
                   jsonb_build_object('status', ${suspended}::text), jsonb_build_object('status', ${active}::text, 'reason', 'payment received')
            FROM resumed r RETURNING id
        )"#
    )
}

/// The values [`resume_paid`]'s parameters take, in order from `suspended`:
/// the states from `domain` (`suspended → active` is one of its moves), the
/// `resume` kind, the actor.
pub(crate) fn resume_binds(actor: &str) -> [String; 4] {
    debug_assert!(TenantStatus::sources(TenantStatus::Active).contains(&TenantStatus::Suspended));
    [
        TenantStatus::Suspended.as_str().to_owned(),
        TenantStatus::Active.as_str().to_owned(),
        Resume::KIND.to_owned(),
        actor.to_owned(),
    ]
}

/// Suspends tenants whose subscription has been past due longer than
/// `grace` (those `domain` lets go to `suspended`: active ones), with a
/// `suspend` job to stop their instances.
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
            SELECT t.id, t.status AS old_status FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id
            WHERE s.status = 'past_due' AND s.past_due_since <= $1 - $2 AND t.status = ANY($3)
            FOR NO KEY UPDATE OF t SKIP LOCKED
        ), suspended AS (
            UPDATE tenants SET status = $4, status_reason = 'non-payment', version = version + 1, updated_at = now()
            FROM due WHERE tenants.id = due.id RETURNING tenants.id, due.old_status
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), $5, s.id, jsonb_build_object('tenant_id', s.id), $5 || ':' || s.id FROM suspended s
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', s.id, 'tenant.status_changed', 'tenant', s.id::text,
                   jsonb_build_object('status', s.old_status), jsonb_build_object('status', $4::text, 'reason', 'non-payment')
            FROM suspended s RETURNING id
        )
        SELECT count(*) AS n FROM suspended
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Interval, _>(grace_interval(grace))
    .bind::<Array<Text>, _>(TenantStatus::sources_str(TenantStatus::Suspended))
    .bind::<Text, _>(TenantStatus::Suspended.as_str())
    .bind::<Text, _>(Suspend::KIND)
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
/// still runs: a past-due subscription `expired` (its `price_version`
/// moves: a provider's subscription is then canceled), tenant `deprovisioning`
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
              AND t.status = ANY($4)
            FOR NO KEY UPDATE OF s, t SKIP LOCKED
        ), subs AS (
            UPDATE subscriptions SET status = 'expired', price_version = price_version + 1, updated_at = now()
            FROM due WHERE subscriptions.id = due.subscription_id AND subscriptions.status = 'past_due'
            RETURNING subscriptions.id
        ), ten AS (
            UPDATE tenants SET status = $5, status_reason = $3, version = version + 1, updated_at = now()
            FROM due WHERE tenants.id = due.tenant_id RETURNING tenants.id
        ), canceled AS (
            UPDATE plan_changes SET status = 'canceled', updated_at = now()
            FROM due WHERE plan_changes.tenant_id = due.tenant_id AND plan_changes.status IN ('pending', 'scheduled')
            RETURNING plan_changes.id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), $6, d.tenant_id, jsonb_build_object('tenant_id', d.tenant_id, 'final_backup', true), $6 || ':' || d.tenant_id
            FROM due d
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', d.tenant_id, 'tenant.status_changed', 'tenant', d.tenant_id::text,
                   jsonb_build_object('status', d.old_status), jsonb_build_object('status', $5::text, 'reason', $3::text)
            FROM due d RETURNING id
        )
        SELECT count(*) AS n FROM due
        "#
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Interval, _>(grace_interval(window))
    .bind::<Text, _>(reason)
    .bind::<Array<Text>, _>(TenantStatus::sources_str(TenantStatus::Deprovisioning))
    .bind::<Text, _>(TenantStatus::Deprovisioning.as_str())
    .bind::<Text, _>(Deprovision::KIND)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}
