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

use super::Count;
use crate::{
    Page, PageRequest, StoreError,
    schema::{plan_changes, subscriptions, tenants},
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
