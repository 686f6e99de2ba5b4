//! Plan change rows (upgrades and downgrades, history never deleted):
//! recording one, applying it to the tenant and its subscription, applying
//! the scheduled ones due at the end of a billing period, expiring upgrades
//! whose prorated invoice stayed unpaid, and canceling an open one.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use tenantry_domain::billing::{ChangeKind, PlanChangeStatus, Timing};

use super::Count;
use crate::{Page, PageRequest, StoreError, parsed::Parsed, schema::plan_changes};

/// A plan change row (history is never deleted).
#[derive(
    Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Identifiable, Insertable,
)]
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
    /// Upgrade or downgrade.
    #[diesel(deserialize_as = Parsed<ChangeKind>, serialize_as = String)]
    pub kind: ChangeKind,
    /// When it takes effect.
    #[diesel(deserialize_as = Parsed<Timing>, serialize_as = String)]
    pub timing: Timing,
    /// Where it is.
    #[diesel(deserialize_as = Parsed<PlanChangeStatus>, serialize_as = String)]
    pub status: PlanChangeStatus,
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
    /// When applying it started a new billing period (a change of
    /// interval): the period before, so a failed migration can restore it.
    pub previous_period_start: Option<DateTime<Utc>>,
    /// The end of that period.
    pub previous_period_end: Option<DateTime<Utc>>,
    /// The billing anchor before.
    pub previous_anchor: Option<DateTime<Utc>>,
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
        .values(change.clone())
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
        .for_no_key_update()
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
    status: PlanChangeStatus,
    at: DateTime<Utc>,
    payment_reference: Option<&str>,
) -> Result<PlanChange, StoreError> {
    let applied_at = (status == PlanChangeStatus::Applied).then_some(at);
    Ok(diesel::update(plan_changes::table.find(id))
        .set((
            plan_changes::status.eq(status.as_str()),
            plan_changes::applied_at.eq(applied_at),
            plan_changes::payment_reference.eq(payment_reference),
            plan_changes::updated_at.eq(diesel::dsl::now),
        ))
        .returning(PlanChange::as_returning())
        .get_result(conn)
        .await?)
}

/// Consumes the `migration_failed` provisioning event of a plan change
/// (billing has acted on it); returns whether one was waiting.
///
/// # Errors
/// [`StoreError`].
pub async fn consume_migration_failed(
    conn: &mut AsyncPgConnection,
    plan_change_id: Uuid,
) -> Result<bool, StoreError> {
    use crate::schema::provisioning_events as e;
    let n = diesel::update(
        e::table
            .filter(e::kind.eq("migration_failed"))
            .filter(e::plan_change_id.eq(plan_change_id))
            .filter(e::consumed_at.is_null()),
    )
    .set(e::consumed_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Puts back the billing period a change replaced (a change of interval
/// starts a new one), when it did; the subscription's `price_version`
/// moves. Returns whether it did.
///
/// # Errors
/// [`StoreError`].
pub async fn restore_period(
    conn: &mut AsyncPgConnection,
    change: &PlanChange,
) -> Result<bool, StoreError> {
    use crate::schema::subscriptions as s;
    let (Some(start), Some(end)) = (change.previous_period_start, change.previous_period_end)
    else {
        return Ok(false);
    };
    let n = diesel::update(s::table.find(change.subscription_id))
        .set((
            s::current_period_start.eq(start),
            s::current_period_end.eq(end),
            s::billing_anchor.eq(change.previous_anchor.unwrap_or(start)),
            s::price_version.eq(s::price_version + 1),
            s::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Records the payment a change was applied on.
///
/// # Errors
/// [`StoreError`].
pub async fn set_payment_reference(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    reference: &str,
) -> Result<PlanChange, StoreError> {
    Ok(diesel::update(plan_changes::table.find(id))
        .set(plan_changes::payment_reference.eq(reference))
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

/// The part of a statement that applies the plan changes listed in a `due`
/// CTE (column `id`) at `$1` — the one place these rules are written:
/// - each change `applied`, its tenant and subscription on the new plan;
/// - a change of billing interval (month ↔ year) starts a new billing
///   cycle at the change, as Stripe does on a Price of another interval
///   (docs.stripe.com/billing/subscriptions/billing-cycle#changing): the
///   anchor moves to the change. An upgrade (and a staff override) paid the
///   new cycle with its charge, so its period becomes one new interval
///   (calendar months, UTC) from the quote's `proration_date`; a scheduled
///   downgrade takes effect at the old period's end (`effective_at`), which
///   stays the current period's end, so the renewal there bills the first
///   new period. The period before is kept on the change (`previous_*`) so
///   a failed migration can restore it. To `lifetime`, the current period
///   runs out and never renews;
/// - the subscription's `price_version` moves (what Stripe should bill
///   changed) and Stripe-billed subscriptions get a `stripe.sync_price` job
///   (kind `$4`, deduplicated per subscription);
/// - a `migrate` job (kind bound as `$3`, payload [`crate::jobs::kinds::Migrate`],
///   deduplicated per tenant) for every change that alters the tenant's
///   deployment: another deployment kind (shared, dedicated, dedicated HA),
///   or a dedicated plan with other cores, memory or disk (applied in place,
///   or by a move when the node lacks room).
///
/// Yields the CTE `applied` (the changed rows).
const APPLY: &str = r#"
        applied AS (
            UPDATE plan_changes pc
            SET status = 'applied', applied_at = $1, updated_at = now(),
                previous_period_start = CASE WHEN reset.yes THEN sub.current_period_start END,
                previous_period_end = CASE WHEN reset.yes THEN sub.current_period_end END,
                previous_anchor = CASE WHEN reset.yes THEN sub.billing_anchor END
            FROM due, subscriptions sub, plans fp, plans tp,
                 LATERAL (SELECT fp.billing_interval <> tp.billing_interval AND tp.billing_interval <> 'lifetime' AS yes) reset
            WHERE pc.id = due.id AND sub.id = pc.subscription_id AND fp.id = pc.from_plan_id AND tp.id = pc.to_plan_id
            RETURNING pc.*, reset.yes AS reset, tp.billing_interval AS new_interval,
                      CASE WHEN pc.timing = 'end_of_term' THEN pc.effective_at ELSE coalesce(pc.proration_date, $1) END AS new_start
        ), t AS (
            UPDATE tenants
            SET plan_id = a.to_plan_id, deployment = a.to_deployment, version = version + 1, updated_at = now()
            FROM applied a WHERE tenants.id = a.tenant_id
            RETURNING tenants.id
        ), s AS (
            UPDATE subscriptions
            SET plan_id = a.to_plan_id, updated_at = now(), price_version = price_version + 1,
                current_period_start = CASE WHEN a.reset AND a.timing <> 'end_of_term' THEN a.new_start ELSE current_period_start END,
                current_period_end = CASE WHEN a.reset AND a.timing <> 'end_of_term'
                    THEN ((a.new_start AT TIME ZONE 'UTC')
                          + CASE a.new_interval WHEN 'year' THEN interval '1 year' ELSE interval '1 month' END) AT TIME ZONE 'UTC'
                    ELSE current_period_end END,
                billing_anchor = CASE WHEN a.reset THEN a.new_start ELSE billing_anchor END
            FROM applied a WHERE subscriptions.id = a.subscription_id
            RETURNING subscriptions.id, subscriptions.tenant_id, subscriptions.provider, subscriptions.provider_subscription_id
        ), sync AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), $4, s.tenant_id, jsonb_build_object('tenant_id', s.tenant_id, 'subscription_id', s.id), $4 || ':' || s.id
            FROM s WHERE s.provider = 'stripe' AND s.provider_subscription_id IS NOT NULL
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), $3, a.tenant_id,
                   jsonb_build_object('tenant_id', a.tenant_id, 'plan_change_id', a.id, 'from', a.from_deployment, 'to', a.to_deployment),
                   $3 || ':' || a.tenant_id
            FROM applied a
            JOIN plans fp ON fp.id = a.from_plan_id
            JOIN plans tp ON tp.id = a.to_plan_id
            WHERE a.from_deployment <> a.to_deployment
               OR (a.to_deployment <> 'shared'
                   AND (fp.cpu_cores, fp.memory_mib, fp.storage_gib)
                       IS DISTINCT FROM (tp.cpu_cores, tp.memory_mib, tp.storage_gib))
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        )"#;

/// Applies one change now ([`APPLY`]): switches the tenant and its
/// subscription to its plan, enqueues the `migrate` job when the deployment
/// changes (kind, or a dedicated plan's resources), marks the change applied. Runs in the caller's transaction
/// on a locked change; returns the change and its migration job.
///
/// # Errors
/// [`StoreError`].
pub async fn apply_change(
    conn: &mut AsyncPgConnection,
    change: &PlanChange,
    at: DateTime<Utc>,
) -> Result<(PlanChange, Option<crate::jobs::Job>), StoreError> {
    use crate::jobs::{
        BackgroundJob as _,
        kinds::{Migrate, StripeSyncPrice},
    };
    let applied: PlanChange = diesel::sql_query(format!(
        "WITH due AS (SELECT $2::uuid AS id), {APPLY} SELECT * FROM applied"
    ))
    .bind::<Timestamptz, _>(at)
    .bind::<diesel::sql_types::Uuid, _>(change.id)
    .bind::<diesel::sql_types::Text, _>(Migrate::KIND)
    .bind::<diesel::sql_types::Text, _>(StripeSyncPrice::KIND)
    .get_result(conn)
    .await?;
    let job = crate::jobs::live_with_key(
        conn,
        &crate::jobs::subject_key(Migrate::KIND, applied.tenant_id),
    )
    .await?;
    Ok((applied, job))
}

/// Applies up to `batch` scheduled changes due at `now`, set-based
/// ([`APPLY`]), with activity rows (actor `scheduler`). Returns how many.
///
/// # Errors
/// [`StoreError`].
pub async fn apply_due_changes(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<i64, StoreError> {
    use crate::jobs::{
        BackgroundJob as _,
        kinds::{Migrate, StripeSyncPrice},
    };
    let rows: Vec<Count> = diesel::sql_query(format!(
        r#"
        WITH due AS (
            SELECT id FROM plan_changes
            WHERE status = 'scheduled' AND effective_at <= $1
            ORDER BY effective_at, id
            LIMIT $2
            FOR NO KEY UPDATE SKIP LOCKED
        ), {APPLY}, log AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'scheduler', a.tenant_id, 'plan_change.applied', 'plan_change', a.id::text,
                   jsonb_build_object('plan_id', a.from_plan_id, 'deployment', a.from_deployment),
                   jsonb_build_object('plan_id', a.to_plan_id, 'deployment', a.to_deployment)
            FROM applied a
            RETURNING id
        )
        SELECT count(*) AS n FROM applied
        "#
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(batch)
    .bind::<diesel::sql_types::Text, _>(Migrate::KIND)
    .bind::<diesel::sql_types::Text, _>(StripeSyncPrice::KIND)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

/// Expires upgrades left unpaid past their payment window (so they stop
/// blocking other changes, Paymenter #1266): `tenant`'s, or every tenant's
/// (the processor). Returns how many.
///
/// # Errors
/// [`StoreError`].
pub async fn expire_unpaid_upgrades(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    tenant: Option<Uuid>,
) -> Result<i64, StoreError> {
    let rows: Vec<Count> = diesel::sql_query(
        r#"
        WITH due AS (
            SELECT id FROM plan_changes WHERE status = 'pending' AND payment_due_by <= $1
                AND ($2::uuid IS NULL OR tenant_id = $2)
            FOR NO KEY UPDATE SKIP LOCKED
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
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(tenant)
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
    status_filter: &[PlanChangeStatus],
) -> Result<Option<PlanChange>, StoreError> {
    Ok(diesel::update(
        plan_changes::table
            .filter(plan_changes::tenant_id.eq(tenant_id))
            .filter(
                plan_changes::status.eq_any(status_filter.iter().map(PlanChangeStatus::as_str)),
            ),
    )
    .set((
        plan_changes::status.eq(PlanChangeStatus::Canceled.as_str()),
        plan_changes::updated_at.eq(diesel::dsl::now),
    ))
    .returning(PlanChange::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}
