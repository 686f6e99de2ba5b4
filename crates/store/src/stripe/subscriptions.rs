//! Stripe-billed subscriptions: finding and locking ours by Stripe's ids,
//! linking them to a Stripe Customer and Subscription, and the state
//! Stripe's invoices and webhooks move: a billing period paid, a payment
//! failed (dunning starts), a subscription canceled at period end.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{StoreError, schema::subscriptions, tenants::Subscription};

/// A subscription, locked for an event's effects.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn lock_subscription(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Subscription, StoreError> {
    Ok(subscriptions::table
        .find(id)
        .select(Subscription::as_select())
        .for_no_key_update()
        .first(conn)
        .await?)
}

/// Moves a subscription's `price_version` (what its provider should bill
/// changed), locking it; returns it.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn bump_price_version(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Subscription, StoreError> {
    Ok(diesel::update(subscriptions::table.find(id))
        .set(subscriptions::price_version.eq(subscriptions::price_version + 1))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?)
}

/// Sets the anchor a subscription's periods count from (Stripe's
/// `billing_cycle_anchor` after it moved).
///
/// # Errors
/// [`StoreError`].
pub async fn set_billing_anchor(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    anchor: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(subscriptions::table.find(id))
        .set((
            subscriptions::billing_anchor.eq(anchor),
            subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the provider was seen to match `version`; returns whether
/// that is still the latest (`false`: a change came meanwhile, sync again).
///
/// # Errors
/// [`StoreError`].
pub async fn mark_price_synced(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    version: i64,
) -> Result<bool, StoreError> {
    let latest: i64 = diesel::update(subscriptions::table.find(id))
        .set(
            subscriptions::price_synced_version.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "greatest(price_synced_version, ",
            )
            .bind::<diesel::sql_types::BigInt, _>(version)
            .sql(")")),
        )
        .returning(subscriptions::price_version)
        .get_result(conn)
        .await?;
    Ok(latest == version)
}

/// Enqueues `stripe.sync_price` (kind `kind`) for every Stripe-billed
/// subscription whose provider was not seen to match its latest
/// `price_version` and has no live sync job; returns how many. The billing
/// processor runs it, so a sync that ended just as a change came is
/// followed by another.
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue_unsynced(
    conn: &mut AsyncPgConnection,
    kind: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        r#"
        INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
        SELECT uuid_v7(), $1, s.tenant_id, jsonb_build_object('tenant_id', s.tenant_id, 'subscription_id', s.id), $1 || ':' || s.id
        FROM subscriptions s
        WHERE s.price_version > s.price_synced_version AND s.provider = 'stripe'
          AND s.provider_subscription_id IS NOT NULL AND s.status IN ('active', 'past_due', 'canceled', 'expired')
        ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
        "#,
    )
    .bind::<Text, _>(kind)
    .execute(conn)
    .await?)
}

/// Our subscription billed by this Stripe subscription, or this Stripe
/// customer's (when `subscription` is unknown).
///
/// # Errors
/// [`StoreError`].
pub async fn subscription_by_provider(
    conn: &mut AsyncPgConnection,
    stripe_subscription: Option<&str>,
    stripe_customer: Option<&str>,
) -> Result<Option<Uuid>, StoreError> {
    if let Some(s) = stripe_subscription {
        let found = subscriptions::table
            .filter(subscriptions::provider_subscription_id.eq(s))
            .select(subscriptions::id)
            .first(conn)
            .await
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    match stripe_customer {
        Some(c) => Ok(subscriptions::table
            .filter(subscriptions::provider_customer_id.eq(c))
            .select(subscriptions::id)
            .first(conn)
            .await
            .optional()?),
        None => Ok(None),
    }
}

/// Links a subscription to Stripe: provider `stripe` and the ids known so
/// far (a `None` keeps what is stored); `saved_payment_method` only turns on.
///
/// # Errors
/// [`StoreError`].
pub async fn link_provider(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    customer: Option<&str>,
    subscription: Option<&str>,
    saved_payment_method: bool,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "UPDATE subscriptions SET provider = 'stripe',
                provider_customer_id = coalesce($2, provider_customer_id),
                provider_subscription_id = coalesce($3, provider_subscription_id),
                saved_payment_method = saved_payment_method OR $4,
                updated_at = now()
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Text>, _>(customer)
    .bind::<Nullable<Text>, _>(subscription)
    .bind::<diesel::sql_types::Bool, _>(saved_payment_method)
    .execute(conn)
    .await?;
    Ok(())
}

/// The one-row answer of the statements below that report whether their
/// guarded update changed anything (`SELECT EXISTS (…) AS changed`).
#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    changed: bool,
}

/// A paid period of a Stripe-billed subscription.
#[derive(Debug, Clone)]
pub struct PaidPeriod {
    /// Our subscription.
    pub subscription_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Period start.
    pub start: DateTime<Utc>,
    /// Period end.
    pub end: DateTime<Utc>,
    /// Amount paid, major unit.
    pub amount: rust_decimal::Decimal,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The Stripe invoice id.
    pub reference: String,
    /// The period starts a new billing cycle (Stripe moved the subscription
    /// to a Price of another interval): the anchor moves to its start.
    pub anchor_reset: bool,
}

/// `sql` with a period's parameters bound: `$1` now, `$2` tenant, `$3`
/// subscription, `$4` amount, `$5` currency, `$6`/`$7` period start/end,
/// `$8` invoice id, `$9` `last` (the paid statement's activity action, the
/// failed one's reason).
fn period_statement<'a>(
    sql: String,
    now: DateTime<Utc>,
    p: &'a PaidPeriod,
    last: &'a str,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Timestamptz, _>(now)
        .bind::<SqlUuid, _>(p.tenant_id)
        .bind::<SqlUuid, _>(p.subscription_id)
        .bind::<diesel::sql_types::Numeric, _>(p.amount)
        .bind::<Text, _>(&p.currency)
        .bind::<Timestamptz, _>(p.start)
        .bind::<Timestamptz, _>(p.end)
        .bind::<Text, _>(&p.reference)
        .bind::<Text, _>(last)
}

/// Records a paid renewal of a Stripe-billed subscription: the charge row
/// (one per subscription and period start; the first period of a restarted
/// or replaced cycle has its own key, `…:cycle:{invoice}`, as it may start
/// in the very second the period it replaces did — even a cycle restarted
/// in the second another began), the period advanced (never
/// backwards: a late invoice of an older period changes no period; the
/// first invoice of a new cycle — another interval, `anchor_reset` — sets
/// Stripe's period and anchor exactly), past
/// due cleared, a tenant suspended for non-payment reactivated with a
/// `resume` job, and activity rows (`action`, e.g. `subscription.renewed`).
/// Returns whether anything changed.
///
/// # Errors
/// [`StoreError`].
pub async fn record_paid_period(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    p: &PaidPeriod,
    action: &str,
) -> Result<bool, StoreError> {
    let [suspended, active, kind, actor] = crate::billing::resume_binds("stripe");
    let rows: Vec<Changed> = period_statement(
        format!(
            r#"
        WITH charge AS (
            INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, currency, status, period_start, period_end,
                                 attempts, provider_reference, idempotency_key, created_at, updated_at)
            VALUES (uuid_v7(), $2, $3, 'renewal', $4, $5, 'paid', $6, $7, 1, $8,
                    'renewal:' || $3 || ':' || extract(epoch FROM $6)::bigint || CASE WHEN $14 THEN ':cycle:' || $8 ELSE '' END, $1, $1)
            ON CONFLICT (idempotency_key) DO UPDATE
                SET status = 'paid', provider_reference = EXCLUDED.provider_reference, last_error = NULL,
                    next_attempt_at = NULL, updated_at = now()
                WHERE charges.status <> 'paid'
            RETURNING id
        ), sub AS (
            UPDATE subscriptions SET
                current_period_start = CASE WHEN $14 OR current_period_end IS NULL OR current_period_end < $7 THEN $6 ELSE current_period_start END,
                current_period_end = CASE WHEN $14 THEN $7 ELSE greatest(current_period_end, $7) END,
                billing_anchor = CASE WHEN $14 THEN $6 ELSE coalesce(billing_anchor, $6) END,
                status = CASE WHEN status IN ('past_due') AND coalesce(current_period_end, $7) <= $7 THEN 'active' ELSE status END,
                past_due_since = CASE WHEN coalesce(current_period_end, $7) <= $7 THEN NULL ELSE past_due_since END,
                updated_at = now()
            WHERE id = $3 AND (current_period_end IS NULL OR current_period_end < $7 OR past_due_since IS NOT NULL
                               -- a new cycle (another interval): Stripe's period is the one billed
                               OR ($14 AND (current_period_start, current_period_end) IS DISTINCT FROM ($6, $7) AND $7 > coalesce(current_period_start, $6)))
            RETURNING id, status
        ), paid AS (
            SELECT $2::uuid AS tenant_id WHERE EXISTS (SELECT 1 FROM sub)
        ), {resume}, l1 AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, after)
            SELECT uuid_v7(), $1, 'stripe', $2, $9, 'subscription', $3::text,
                   jsonb_build_object('period_start', $6, 'period_end', $7, 'amount', $4::text, 'currency', $5, 'invoice', $8)
            WHERE EXISTS (SELECT 1 FROM sub)
            RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM sub) AS changed
        "#,
            resume = crate::billing::resume_paid(1, 10)
        ),
        now,
        p,
        action,
    )
    .bind::<Text, _>(suspended)
    .bind::<Text, _>(active)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(actor)
    .bind::<diesel::sql_types::Bool, _>(p.anchor_reset)
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.changed))
}

/// Records a failed renewal payment of a Stripe-billed subscription
/// (dunning starts: `past_due` since now unless already): the charge row
/// failed with the reason, an activity row. A failure of a period already
/// paid (a late or out-of-order delivery) changes nothing. Returns whether
/// anything changed.
///
/// # Errors
/// [`StoreError`].
pub async fn record_failed_period(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    p: &PaidPeriod,
    reason: &str,
) -> Result<bool, StoreError> {
    let rows: Vec<Changed> = period_statement(
        r#"
        WITH sub AS (
            UPDATE subscriptions SET status = 'past_due', past_due_since = coalesce(past_due_since, $1), updated_at = now()
            WHERE id = $3 AND status IN ('active', 'past_due') AND (current_period_end IS NULL OR current_period_end < $7)
            RETURNING id
        ), charge AS (
            INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, currency, status, period_start, period_end,
                                 attempts, provider_reference, last_error, idempotency_key, created_at, updated_at)
            SELECT uuid_v7(), $2, $3, 'renewal', $4, $5, 'failed', $6, $7, 1, $8, $9,
                   'renewal:' || $3 || ':' || extract(epoch FROM $6)::bigint, $1, $1
            FROM sub
            ON CONFLICT (idempotency_key) DO UPDATE
                SET attempts = charges.attempts + 1, last_error = EXCLUDED.last_error, updated_at = now()
                WHERE charges.status <> 'paid'
            RETURNING id
        ), l AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, after)
            SELECT uuid_v7(), $1, 'stripe', $2, 'subscription.payment_failed', 'subscription', $3::text,
                   jsonb_build_object('reason', $9, 'status', 'past_due', 'invoice', $8, 'period_start', $6, 'period_end', $7)
            FROM sub RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM sub) AS changed
        "#
        .to_owned(),
        now,
        p,
        reason,
    )
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.changed))
}

/// Ends a subscription that Stripe deleted: `canceled`, service kept until
/// the current period's end (nothing is refunded), its open plan change
/// canceled, an activity row. Returns whether anything changed (a second
/// deletion changes nothing, nor does the deletion of a subscription our
/// dunning already ended: it stays `expired`).
///
/// # Errors
/// [`StoreError`].
pub async fn cancel_at_period_end(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    subscription_id: Uuid,
    reason: &str,
) -> Result<bool, StoreError> {
    let rows: Vec<Changed> = diesel::sql_query(
        r#"
        WITH before AS (
            SELECT id, tenant_id, status, current_period_end FROM subscriptions WHERE id = $2 AND status NOT IN ('canceled', 'expired') FOR NO KEY UPDATE
        ), sub AS (
            UPDATE subscriptions s SET status = 'canceled', updated_at = now() FROM before b WHERE s.id = b.id RETURNING s.id
        ), changes AS (
            UPDATE plan_changes SET status = 'canceled', updated_at = now()
            FROM before b WHERE plan_changes.tenant_id = b.tenant_id AND plan_changes.status IN ('pending', 'scheduled')
            RETURNING plan_changes.id
        ), l AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'stripe', b.tenant_id, 'subscription.canceled', 'subscription', b.id::text,
                   jsonb_build_object('status', b.status),
                   jsonb_build_object('status', 'canceled', 'service_until', b.current_period_end, 'reason', $3)
            FROM before b RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM sub) AS changed
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<SqlUuid, _>(subscription_id)
    .bind::<Text, _>(reason)
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.changed))
}

/// Ends a subscription now because its tenant was deleted: `active`,
/// `past_due` or `incomplete` becomes `canceled` (the caller moves its
/// `price_version`, so a provider's subscription is canceled too). Returns
/// the status it had, or `None` when it had already ended.
///
/// # Errors
/// [`StoreError`].
pub async fn end_for_deleted_tenant(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<Option<String>, StoreError> {
    #[derive(QueryableByName)]
    struct Before {
        #[diesel(sql_type = Text)]
        status: String,
    }
    let rows: Vec<Before> = diesel::sql_query(
        r#"
        WITH before AS (
            SELECT id, status FROM subscriptions
            WHERE id = $1 AND status IN ('active', 'past_due', 'incomplete') FOR NO KEY UPDATE
        ), sub AS (
            UPDATE subscriptions s SET status = 'canceled', past_due_since = NULL, updated_at = now()
            FROM before b WHERE s.id = b.id RETURNING s.id
        )
        SELECT b.status FROM before b JOIN sub ON sub.id = b.id
        "#,
    )
    .bind::<SqlUuid, _>(subscription_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| r.status))
}

/// The id of a tenant's most recent plan change (any status), if any.
///
/// # Errors
/// [`StoreError`].
pub async fn latest_change(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    use crate::schema::plan_changes;
    Ok(plan_changes::table
        .filter(plan_changes::tenant_id.eq(tenant_id))
        .order(plan_changes::id.desc())
        .select(plan_changes::id)
        .first(conn)
        .await
        .optional()?)
}

/// A subscription's latest plan change, when its migration failed: what
/// the failure put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailedChange {
    /// The change was a move to a lifetime plan: the Stripe subscription
    /// the recurring plan needs may have ended at its period end meanwhile
    /// (it was set to, for the lifetime plan).
    pub from_lifetime: bool,
    /// The change had started a new billing period (another interval),
    /// and the period it replaced was put back.
    pub period_restored: bool,
}

#[derive(QueryableByName)]
struct LastChange {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    to_interval: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    had_previous: bool,
}

/// The subscription's latest plan change if its migration failed
/// (`None`: no change, or the latest did not fail).
///
/// # Errors
/// [`StoreError`].
pub async fn last_failed_change(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<Option<FailedChange>, StoreError> {
    let rows: Vec<LastChange> = diesel::sql_query(
        "SELECT c.status, p.billing_interval AS to_interval, c.previous_period_start IS NOT NULL AS had_previous
         FROM plan_changes c JOIN plans p ON p.id = c.to_plan_id
         WHERE c.subscription_id = $1 ORDER BY c.id DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(subscription_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .find(|r| r.status == "failed")
        .map(|r| FailedChange {
            from_lifetime: r.to_interval == "lifetime",
            period_restored: r.had_previous,
        }))
}

/// Replaces the Stripe subscription a subscription is billed through, from
/// `old` (only if that is still the one stored) to `new`, with an activity
/// row; returns whether it did.
///
/// # Errors
/// [`StoreError`].
pub async fn replace_provider_subscription(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    id: Uuid,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let rows: Vec<Changed> = diesel::sql_query(
        r#"
        WITH sub AS (
            UPDATE subscriptions SET provider_subscription_id = $4, updated_at = now()
            WHERE id = $2 AND provider_subscription_id = $3
            RETURNING id, tenant_id
        ), l AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'stripe', sub.tenant_id, 'subscription.provider_replaced', 'subscription', sub.id::text,
                   jsonb_build_object('provider_subscription_id', $3::text), jsonb_build_object('provider_subscription_id', $4::text)
            FROM sub RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM sub) AS changed
        "#,
    )
    .bind::<Timestamptz, _>(now)
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(old)
    .bind::<Text, _>(new)
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.changed))
}
