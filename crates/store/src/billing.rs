//! Plan changes, charges, renewal and dunning state, and the sandbox clock.
//!
//! The set-based functions (`apply_due_changes`, `expire_unpaid_upgrades`,
//! `suspend_overdue`, `terminate_overdue`) claim their rows with `FOR UPDATE
//! SKIP LOCKED`, so several processors can run at once and each row is
//! handled exactly once.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Interval, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    Page, PageRequest, StoreError,
    schema::{charges, plan_changes, sandbox_clock, subscriptions, tenants},
};

/// A plan change row (history is never deleted).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = plan_changes, check_for_backend(diesel::pg::Pg))]
pub struct PlanChange {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Plan before.
    pub from_plan_id: Uuid,
    /// Plan after.
    pub to_plan_id: Uuid,
    /// Deployment before.
    pub from_deployment: String,
    /// Deployment after.
    pub to_deployment: String,
    /// `upgrade` or `downgrade`.
    pub kind: String,
    /// `on_payment`, `end_of_term` or `immediate`.
    pub timing: String,
    /// `pending`, `scheduled`, `applied`, `canceled`, `expired` or `failed`.
    pub status: String,
    /// Amount charged for it, major unit.
    pub amount: Decimal,
    /// ISO 4217.
    pub currency: String,
    /// The quote's lines.
    pub lines: serde_json::Value,
    /// The quote's instant.
    pub proration_date: Option<DateTime<Utc>>,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// When it takes (or took) effect.
    pub effective_at: Option<DateTime<Utc>>,
    /// When applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// An unpaid upgrade expires then.
    pub payment_due_by: Option<DateTime<Utc>>,
    /// Checkout session or charge id.
    pub payment_reference: Option<String>,
    /// The user who asked (None: the scheduler).
    pub actor_id: Option<Uuid>,
    /// Actor as shown.
    pub actor_label: String,
    /// Why (required for staff overrides).
    pub reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Inserts a plan change.
///
/// # Errors
/// [`StoreError::Conflict`] (`plan_changes_one_open`) when the tenant already
/// has a pending or scheduled change.
pub async fn insert_change(
    conn: &mut AsyncPgConnection,
    change: &PlanChange,
) -> Result<(), StoreError> {
    diesel::insert_into(plan_changes::table)
        .values(change)
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's open (pending or scheduled) change, if any.
///
/// # Errors
/// [`StoreError`].
pub async fn open_change(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Option<PlanChange>, StoreError> {
    Ok(plan_changes::table
        .filter(plan_changes::tenant_id.eq(tenant_id))
        .filter(plan_changes::status.eq_any(["pending", "scheduled"]))
        .select(PlanChange::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Locks a plan change.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn lock_change(conn: &mut AsyncPgConnection, id: Uuid) -> Result<PlanChange, StoreError> {
    Ok(plan_changes::table
        .find(id)
        .select(PlanChange::as_select())
        .for_update()
        .first(conn)
        .await?)
}

/// Sets a change's status (and `applied_at` when applied).
///
/// # Errors
/// [`StoreError`].
pub async fn set_change_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
    at: DateTime<Utc>,
    payment_reference: Option<&str>,
) -> Result<PlanChange, StoreError> {
    let applied_at = (status == "applied").then_some(at);
    Ok(diesel::update(plan_changes::table.find(id))
        .set((
            plan_changes::status.eq(status),
            plan_changes::applied_at.eq(applied_at),
            plan_changes::payment_reference.eq(payment_reference),
            plan_changes::updated_at.eq(diesel::dsl::now),
        ))
        .returning(PlanChange::as_returning())
        .get_result(conn)
        .await?)
}

/// A tenant's plan changes, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn list_changes(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    page: PageRequest,
) -> Result<Page<PlanChange>, StoreError> {
    let mut q = plan_changes::table
        .filter(plan_changes::tenant_id.eq(tenant_id))
        .order(plan_changes::id)
        .limit(page.fetch())
        .select(PlanChange::as_select())
        .into_boxed();
    if let Some(after) = page.after {
        q = q.filter(plan_changes::id.gt(after));
    }
    Ok(Page::from_overfetch(q.load(conn).await?, page, |c| c.id))
}

/// Switches a tenant and its subscription to a change's plan and enqueues
/// the `migrate` job when the deployment kind differs; marks the change
/// applied. Runs in the caller's transaction on a locked change.
///
/// # Errors
/// [`StoreError`].
pub async fn apply_change(
    conn: &mut AsyncPgConnection,
    change: &PlanChange,
    at: DateTime<Utc>,
) -> Result<(PlanChange, Option<crate::jobs::Job>), StoreError> {
    diesel::update(tenants::table.find(change.tenant_id))
        .set((
            tenants::plan_id.eq(change.to_plan_id),
            tenants::deployment.eq(&change.to_deployment),
            tenants::version.eq(tenants::version + 1),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    diesel::update(subscriptions::table.find(change.subscription_id))
        .set((
            subscriptions::plan_id.eq(change.to_plan_id),
            subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let job = if change.from_deployment == change.to_deployment {
        None
    } else {
        Some(
            crate::jobs::enqueue(
                conn,
                "migrate",
                Some(change.tenant_id),
                serde_json::json!({"tenant_id": change.tenant_id, "plan_change_id": change.id, "from": change.from_deployment, "to": change.to_deployment}),
                Some(&format!("migrate:{}", change.tenant_id)),
            )
            .await?,
        )
    };
    let applied = set_change_status(
        conn,
        change.id,
        "applied",
        at,
        change.payment_reference.as_deref(),
    )
    .await?;
    Ok((applied, job))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Applies up to `batch` scheduled changes due at `now`, set-based: plan and
/// deployment switched, `migrate` jobs enqueued where the deployment kind
/// changes, activity rows written (actor `scheduler`). Returns how many.
///
/// # Errors
/// [`StoreError`].
pub async fn apply_due_changes(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<i64, StoreError> {
    let rows: Vec<Count> = diesel::sql_query(
        r#"
        WITH due AS (
            SELECT id FROM plan_changes
            WHERE status = 'scheduled' AND effective_at <= $1
            ORDER BY effective_at, id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ), applied AS (
            UPDATE plan_changes pc
            SET status = 'applied', applied_at = $1, updated_at = now()
            FROM due WHERE pc.id = due.id
            RETURNING pc.*
        ), t AS (
            UPDATE tenants
            SET plan_id = a.to_plan_id, deployment = a.to_deployment, version = version + 1, updated_at = now()
            FROM applied a WHERE tenants.id = a.tenant_id
            RETURNING tenants.id
        ), s AS (
            UPDATE subscriptions
            SET plan_id = a.to_plan_id, updated_at = now()
            FROM applied a WHERE subscriptions.id = a.subscription_id
            RETURNING subscriptions.id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), 'migrate', a.tenant_id,
                   jsonb_build_object('tenant_id', a.tenant_id, 'plan_change_id', a.id, 'from', a.from_deployment, 'to', a.to_deployment),
                   'migrate:' || a.tenant_id
            FROM applied a WHERE a.from_deployment <> a.to_deployment
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', a.tenant_id, 'plan_change.applied', 'plan_change', a.id::text,
                   jsonb_build_object('plan_id', a.from_plan_id, 'deployment', a.from_deployment),
                   jsonb_build_object('plan_id', a.to_plan_id, 'deployment', a.to_deployment)
            FROM applied a
            RETURNING id
        )
        SELECT count(*) AS n FROM applied
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(batch)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

/// Expires upgrades left unpaid past their payment window (so they stop
/// blocking other changes, Paymenter #1266). Returns how many.
///
/// # Errors
/// [`StoreError`].
pub async fn expire_unpaid_upgrades(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let rows: Vec<Count> = diesel::sql_query(
        r#"
        WITH due AS (
            SELECT id FROM plan_changes WHERE status = 'pending' AND payment_due_by <= $1
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE plan_changes pc SET status = 'expired', updated_at = now()
            FROM due WHERE pc.id = due.id RETURNING pc.*
        ), log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id)
            SELECT uuid_v7(), $1, 'scheduler', e.tenant_id, 'plan_change.expired', 'plan_change', e.id::text FROM expired e
            RETURNING id
        )
        SELECT count(*) AS n FROM expired
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

/// Cancels the tenant's open change, if any (customer cancellation, or the
/// tenant being terminated or deleted: Lago PR #345).
///
/// # Errors
/// [`StoreError`].
pub async fn cancel_open_change(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    status_filter: &[&str],
) -> Result<Option<PlanChange>, StoreError> {
    Ok(diesel::update(
        plan_changes::table
            .filter(plan_changes::tenant_id.eq(tenant_id))
            .filter(plan_changes::status.eq_any(status_filter)),
    )
    .set((
        plan_changes::status.eq("canceled"),
        plan_changes::updated_at.eq(diesel::dsl::now),
    ))
    .returning(PlanChange::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// A charge row.
#[derive(
    Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Identifiable, Insertable,
)]
#[diesel(table_name = charges, check_for_backend(diesel::pg::Pg))]
pub struct Charge {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// `renewal` or `upgrade`.
    pub kind: String,
    /// The plan change paid for (upgrades).
    pub plan_change_id: Option<Uuid>,
    /// Amount, major unit.
    pub amount: Decimal,
    /// ISO 4217.
    pub currency: String,
    /// `pending`, `paid`, `failed`.
    pub status: String,
    /// Renewals: period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Renewals: period end.
    pub period_end: Option<DateTime<Utc>>,
    /// Attempts so far.
    pub attempts: i32,
    /// Retry not before.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The provider's reference.
    pub provider_reference: Option<String>,
    /// Last decline reason.
    pub last_error: Option<String>,
    /// One charge per renewal period or plan change.
    pub idempotency_key: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Inserts a charge, or returns the existing one with the same key.
///
/// # Errors
/// [`StoreError`].
pub async fn upsert_charge(
    conn: &mut AsyncPgConnection,
    charge: &Charge,
) -> Result<Charge, StoreError> {
    diesel::insert_into(charges::table)
        .values(charge)
        .on_conflict(charges::idempotency_key)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(charges::table
        .filter(charges::idempotency_key.eq(&charge.idempotency_key))
        .select(Charge::as_select())
        .first(conn)
        .await?)
}

/// Records a charge attempt's outcome.
///
/// # Errors
/// [`StoreError`].
pub async fn record_charge_attempt(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    paid: bool,
    reference: Option<&str>,
    error: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<Charge, StoreError> {
    Ok(diesel::update(charges::table.find(id))
        .set((
            charges::status.eq(if paid { "paid" } else { "failed" }),
            charges::attempts.eq(charges::attempts + 1),
            charges::provider_reference.eq(reference),
            charges::last_error.eq(error),
            charges::next_attempt_at.eq(next_attempt_at),
            charges::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Charge::as_returning())
        .get_result(conn)
        .await?)
}

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

fn grace_interval(d: chrono::Duration) -> diesel::pg::data_types::PgInterval {
    diesel::pg::data_types::PgInterval::from_microseconds(d.num_microseconds().unwrap_or(i64::MAX))
}

/// The sandbox clock's offset from real time, seconds.
///
/// # Errors
/// [`StoreError`].
pub async fn sandbox_offset(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    Ok(sandbox_clock::table
        .select(sandbox_clock::offset_seconds)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

/// Sets the sandbox clock's offset.
///
/// # Errors
/// [`StoreError`].
pub async fn set_sandbox_offset(
    conn: &mut AsyncPgConnection,
    offset_seconds: i64,
) -> Result<(), StoreError> {
    diesel::insert_into(sandbox_clock::table)
        .values((
            sandbox_clock::singleton.eq(true),
            sandbox_clock::offset_seconds.eq(offset_seconds),
        ))
        .on_conflict(sandbox_clock::singleton)
        .do_update()
        .set(sandbox_clock::offset_seconds.eq(offset_seconds))
        .execute(conn)
        .await?;
    Ok(())
}

/// A subscription whose period has ended, with its plan's price.
#[derive(Debug, Clone, QueryableByName)]
pub struct RenewalCandidate {
    /// Subscription.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub subscription_id: Uuid,
    /// Tenant.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub tenant_id: Uuid,
    /// Start of the ended period.
    #[diesel(sql_type = Timestamptz)]
    pub current_period_start: DateTime<Utc>,
    /// End of the ended period.
    #[diesel(sql_type = Timestamptz)]
    pub current_period_end: DateTime<Utc>,
    /// Anchor of the periods.
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    pub billing_anchor: Option<DateTime<Utc>>,
    /// Whether a saved payment method may be charged.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub saved_payment_method: bool,
    /// The (current) plan's price.
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    pub price: Decimal,
    /// Its currency.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub currency: String,
    /// Its interval (`month` or `year`).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub billing_interval: String,
}

/// Recurring subscriptions (active or past due) whose period ended at
/// `now`, except those Stripe bills itself (provider `stripe`: their
/// renewals arrive as `invoice.paid` / `invoice.payment_failed` webhooks), after `after` in `(period end, id)` order, at most `limit`.
///
/// # Errors
/// [`StoreError`].
pub async fn renewal_candidates(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<RenewalCandidate>, StoreError> {
    let (after_end, after_id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, Uuid::nil()));
    Ok(diesel::sql_query(
        r#"
        SELECT s.id AS subscription_id, s.tenant_id, s.current_period_start, s.current_period_end, s.billing_anchor,
               s.saved_payment_method, p.price, p.currency, p.billing_interval
        FROM subscriptions s JOIN plans p ON p.id = s.plan_id
        WHERE s.status IN ('active', 'past_due') AND s.current_period_end <= $1 AND p.billing_interval <> 'lifetime'
          AND s.provider <> 'stripe'
          AND (s.current_period_end, s.id) > ($2, $3)
        ORDER BY s.current_period_end, s.id
        LIMIT $4
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(after_end)
    .bind::<diesel::sql_types::Uuid, _>(after_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// A renewal charge to create (if its key is new).
#[derive(Debug, Clone)]
pub struct NewRenewal {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Amount, major unit.
    pub amount: Decimal,
    /// ISO 4217.
    pub currency: String,
    /// The period paid for.
    pub period_start: DateTime<Utc>,
    /// Its end.
    pub period_end: DateTime<Utc>,
    /// `renewal:{subscription}:{period start}`.
    pub idempotency_key: String,
}

/// Creates renewal charges (one per subscription and period, whatever runs
/// again), then claims those due for an attempt: new ones, and failed or
/// abandoned ones whose `next_attempt_at` has come. A claim is a lease
/// (`processing` until `now + lease`), so a crashed run's charges are
/// retried after it, and two processors never attempt the same charge.
///
/// # Errors
/// [`StoreError`].
pub async fn claim_renewal_charges(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    renewals: &[NewRenewal],
    lease: chrono::Duration,
) -> Result<Vec<Charge>, StoreError> {
    use diesel::sql_types::{Array, Interval as SqlInterval, Numeric, Text, Uuid as SqlUuid};
    // One statement: new charges are inserted already claimed; existing ones
    // are claimed only when due for another attempt (or their lease ran out).
    Ok(diesel::sql_query(
        r#"
        INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, currency, status, period_start, period_end,
                             next_attempt_at, idempotency_key, created_at, updated_at)
        SELECT uuid_v7(), u.t, u.s, 'renewal', u.a, u.c, 'processing', u.ps, u.pe, $1 + $9, u.k, $1, $1
        FROM unnest($2::uuid[], $3::uuid[], $4::numeric[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[])
             AS u(t, s, a, c, ps, pe, k)
        ON CONFLICT (idempotency_key) DO UPDATE
            SET status = 'processing', next_attempt_at = EXCLUDED.next_attempt_at, updated_at = now()
            WHERE charges.status = 'pending'
               OR (charges.status IN ('failed', 'processing') AND charges.next_attempt_at <= $1)
        RETURNING charges.*
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Array<SqlUuid>, _>(renewals.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(renewals.iter().map(|r| r.subscription_id).collect::<Vec<_>>())
    .bind::<Array<Numeric>, _>(renewals.iter().map(|r| r.amount).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(renewals.iter().map(|r| r.currency.clone()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(renewals.iter().map(|r| r.period_start).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(renewals.iter().map(|r| r.period_end).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(renewals.iter().map(|r| r.idempotency_key.clone()).collect::<Vec<_>>())
    .bind::<SqlInterval, _>(grace_interval(lease))
    .load(conn)
    .await?)
}

/// What the provider said about one renewal charge.
#[derive(Debug, Clone)]
pub struct RenewalResult {
    /// The charge.
    pub charge: Charge,
    /// Paid?
    pub paid: bool,
    /// The provider's reference.
    pub reference: Option<String>,
    /// Why not paid.
    pub error: Option<String>,
    /// The activity action to record (`subscription.renewed`, `…payment_failed`, `…payment_required`).
    pub action: String,
    /// The activity's `after`.
    pub details: serde_json::Value,
}

/// Records a batch of renewal outcomes at once: charges paid or failed
/// (retry at `retry_at`), paid subscriptions moved to the period paid for,
/// unpaid ones past due, activity rows, and tenants suspended for
/// non-payment reactivated (with a `resume` job) by a payment. Returns how
/// many tenants were reactivated.
///
/// # Errors
/// [`StoreError`].
pub async fn record_renewals(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    retry_at: DateTime<Utc>,
    results: &[RenewalResult],
) -> Result<i64, StoreError> {
    use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Uuid as SqlUuid};
    use diesel_async::AsyncConnection as _;
    let ids: Vec<Uuid> = results.iter().map(|r| r.charge.id).collect();
    let paid: Vec<bool> = results.iter().map(|r| r.paid).collect();
    let refs: Vec<Option<String>> = results.iter().map(|r| r.reference.clone()).collect();
    let errs: Vec<Option<String>> = results.iter().map(|r| r.error.clone()).collect();
    let subs: Vec<Uuid> = results.iter().map(|r| r.charge.subscription_id).collect();
    let tenants_: Vec<Uuid> = results.iter().map(|r| r.charge.tenant_id).collect();
    let starts: Vec<Option<DateTime<Utc>>> =
        results.iter().map(|r| r.charge.period_start).collect();
    let ends: Vec<Option<DateTime<Utc>>> = results.iter().map(|r| r.charge.period_end).collect();
    let actions: Vec<String> = results.iter().map(|r| r.action.clone()).collect();
    let details: Vec<serde_json::Value> = results.iter().map(|r| r.details.clone()).collect();
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::sql_query(
            r#"
            UPDATE charges c SET status = CASE WHEN u.paid THEN 'paid' ELSE 'failed' END,
                   attempts = c.attempts + 1, provider_reference = u.ref, last_error = u.err,
                   next_attempt_at = CASE WHEN u.paid THEN NULL ELSE $2 END, updated_at = now()
            FROM unnest($3::uuid[], $4::bool[], $5::text[], $6::text[]) AS u(id, paid, ref, err)
            WHERE c.id = u.id
            "#,
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(retry_at)
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Bool>, _>(&paid)
        .bind::<Array<Nullable<Text>>, _>(&refs)
        .bind::<Array<Nullable<Text>>, _>(&errs)
        .execute(conn)
        .await?;
        diesel::sql_query(
            r#"
            UPDATE subscriptions s SET
                status = CASE WHEN u.paid THEN 'active' ELSE 'past_due' END,
                current_period_start = CASE WHEN u.paid THEN u.ps ELSE s.current_period_start END,
                current_period_end = CASE WHEN u.paid THEN u.pe ELSE s.current_period_end END,
                past_due_since = CASE WHEN u.paid THEN NULL ELSE coalesce(s.past_due_since, $1) END,
                updated_at = now()
            FROM unnest($2::uuid[], $3::bool[], $4::timestamptz[], $5::timestamptz[]) AS u(id, paid, ps, pe)
            WHERE s.id = u.id
            "#,
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Array<SqlUuid>, _>(&subs)
        .bind::<Array<Bool>, _>(&paid)
        .bind::<Array<Nullable<Timestamptz>>, _>(&starts)
        .bind::<Array<Nullable<Timestamptz>>, _>(&ends)
        .execute(conn)
        .await?;
        diesel::sql_query(
            r#"
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, after)
            SELECT uuid_v7(), $1, 'scheduler', u.t, u.a, 'subscription', u.s::text, u.d
            FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::jsonb[]) AS u(t, s, a, d)
            "#,
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Array<SqlUuid>, _>(&tenants_)
        .bind::<Array<SqlUuid>, _>(&subs)
        .bind::<Array<Text>, _>(&actions)
        .bind::<Array<Jsonb>, _>(&details)
        .execute(conn)
        .await?;
        let paid_tenants: Vec<Uuid> = results.iter().filter(|r| r.paid).map(|r| r.charge.tenant_id).collect();
        let rows: Vec<Count> = diesel::sql_query(
            r#"
            WITH r AS (
                UPDATE tenants SET status = 'active', status_reason = NULL, version = version + 1, updated_at = now()
                WHERE id = ANY($2) AND status = 'suspended' RETURNING id
            ), j AS (
                INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
                SELECT uuid_v7(), 'resume', r.id, jsonb_build_object('tenant_id', r.id), 'resume:' || r.id FROM r
                ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
                RETURNING id
            ), l AS (
                INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
                SELECT uuid_v7(), $1, 'scheduler', r.id, 'tenant.status_changed', 'tenant', r.id::text,
                       '{"status": "suspended"}', '{"status": "active", "reason": "payment received"}'
                FROM r RETURNING id
            )
            SELECT count(*) AS n FROM r
            "#,
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Array<SqlUuid>, _>(&paid_tenants)
        .load(conn)
        .await?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    })
    .await
}
