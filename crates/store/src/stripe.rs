//! Stripe's rows: the events received (deduplicated by event id), the
//! catalog's Stripe twins, the checkout sessions opened, and the
//! subscription state Stripe's webhooks move (periods paid, dunning).
//!
//! Every function runs on the caller's connection, so the webhook path
//! records an event and applies its effects in one transaction.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    StoreError,
    schema::{stripe_catalog, stripe_checkouts, stripe_events, subscriptions},
    tenants::Subscription,
};

/// A Stripe event as recorded.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_events, check_for_backend(diesel::pg::Pg))]
pub struct StripeEvent {
    /// Stripe's event id (`evt_…`).
    pub id: String,
    /// Its type, e.g. `invoice.paid`.
    #[diesel(column_name = type_)]
    pub kind: String,
    /// The API version its `data` was rendered with.
    pub api_version: Option<String>,
    /// The event as received.
    pub payload: serde_json::Value,
    /// `webhook`, `reconcile` or `operator`.
    pub source: String,
    /// When we first received it.
    pub received_at: DateTime<Utc>,
    /// When its effects were applied (or found to be none).
    pub processed_at: Option<DateTime<Utc>>,
    /// Why it had no effect, if it had none for a reason worth keeping.
    pub error: Option<String>,
}

/// Records an event unless its id is already recorded. Returns whether it
/// was new (`false`: a duplicate delivery, which must change nothing).
///
/// # Errors
/// [`StoreError`].
pub async fn insert_event(
    conn: &mut AsyncPgConnection,
    event: &StripeEvent,
) -> Result<bool, StoreError> {
    let n = diesel::insert_into(stripe_events::table)
        .values(event)
        .on_conflict(stripe_events::id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Marks an event processed, with the reason it had no effect, if any.
///
/// # Errors
/// [`StoreError`].
pub async fn mark_processed(
    conn: &mut AsyncPgConnection,
    id: &str,
    at: DateTime<Utc>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(stripe_events::table.find(id))
        .set((
            stripe_events::processed_at.eq(at),
            stripe_events::error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The ids among `ids` that are already recorded.
///
/// # Errors
/// [`StoreError`].
pub async fn known_events(
    conn: &mut AsyncPgConnection,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(stripe_events::table
        .filter(stripe_events::id.eq_any(ids))
        .select(stripe_events::id)
        .load(conn)
        .await?)
}

/// One recorded event.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_event(conn: &mut AsyncPgConnection, id: &str) -> Result<StripeEvent, StoreError> {
    Ok(stripe_events::table
        .find(id)
        .select(StripeEvent::as_select())
        .first(conn)
        .await?)
}

/// The one-row answer of the statements below that report whether their
/// guarded update changed anything (`SELECT EXISTS (…) AS changed`).
#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    changed: bool,
}

/// A catalog object's Stripe twin.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_catalog, check_for_backend(diesel::pg::Pg))]
pub struct CatalogTwin {
    /// Our product's or plan's id.
    pub local_id: Uuid,
    /// `product` or `price`.
    pub kind: String,
    /// `prod_…` or `price_…`.
    pub stripe_id: String,
    /// What it was made from (see the migration).
    pub fingerprint: String,
    /// When last written.
    pub synced_at: DateTime<Utc>,
}

/// The Stripe twin of a product or plan, if synced.
///
/// # Errors
/// [`StoreError`].
pub async fn twin(
    conn: &mut AsyncPgConnection,
    local_id: Uuid,
) -> Result<Option<CatalogTwin>, StoreError> {
    Ok(stripe_catalog::table
        .find(local_id)
        .select(CatalogTwin::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Stores (or replaces) a twin.
///
/// Two syncs of the same object run at once (a signup's checkout and a
/// job) get the same Stripe object back (same idempotency key) and both
/// save it. `ON CONFLICT (local_id)` settles the primary key, but when both
/// inserts pass PostgreSQL's pre-check together the loser still trips the
/// other unique index, `stripe_id` (only arbiter indexes are speculative):
/// that is the same twin already saved, not a conflict.
///
/// # Errors
/// [`StoreError::Conflict`] when `stripe_id` belongs to another local object;
/// other [`StoreError`]s.
pub async fn save_twin(conn: &mut AsyncPgConnection, t: &CatalogTwin) -> Result<(), StoreError> {
    let saved: Result<usize, StoreError> = diesel::insert_into(stripe_catalog::table)
        .values(t)
        .on_conflict(stripe_catalog::local_id)
        .do_update()
        .set((
            stripe_catalog::stripe_id.eq(&t.stripe_id),
            stripe_catalog::fingerprint.eq(&t.fingerprint),
            stripe_catalog::synced_at.eq(t.synced_at),
        ))
        .execute(conn)
        .await
        .map_err(StoreError::from);
    match saved {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { constraint })
            if constraint == "stripe_catalog_stripe_id_key" =>
        {
            match twin(conn, t.local_id).await? {
                Some(now) if now.stripe_id == t.stripe_id => Ok(()),
                _ => Err(StoreError::Conflict { constraint }),
            }
        }
        Err(e) => Err(e),
    }
}

/// The plan whose Stripe Price is `price_id`.
///
/// # Errors
/// [`StoreError`].
pub async fn plan_of_price(
    conn: &mut AsyncPgConnection,
    price_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    Ok(stripe_catalog::table
        .filter(stripe_catalog::stripe_id.eq(price_id))
        .filter(stripe_catalog::kind.eq("price"))
        .select(stripe_catalog::local_id)
        .first(conn)
        .await
        .optional()?)
}

/// A checkout session we opened: its id and URL, by our key.
///
/// # Errors
/// [`StoreError`].
pub async fn checkout(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(stripe_checkouts::table
        .find(key)
        .select((stripe_checkouts::session_id, stripe_checkouts::url))
        .first(conn)
        .await
        .optional()?)
}

/// Remembers a checkout session (the first one stored for a key wins).
///
/// # Errors
/// [`StoreError`].
pub async fn save_checkout(
    conn: &mut AsyncPgConnection,
    key: &str,
    tenant_id: Uuid,
    session_id: &str,
    url: &str,
) -> Result<(), StoreError> {
    diesel::insert_into(stripe_checkouts::table)
        .values((
            stripe_checkouts::key.eq(key),
            stripe_checkouts::tenant_id.eq(tenant_id),
            stripe_checkouts::session_id.eq(session_id),
            stripe_checkouts::url.eq(url),
        ))
        .on_conflict(stripe_checkouts::key)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

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
        .for_update()
        .first(conn)
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

/// Records the customer id of a tenant's subscription (before checkout).
///
/// # Errors
/// [`StoreError`].
pub async fn set_customer(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
    customer: &str,
) -> Result<(), StoreError> {
    diesel::update(subscriptions::table.find(subscription_id))
        .set((
            subscriptions::provider_customer_id.eq(customer),
            subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
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
}

/// `sql` with a period's parameters bound: `$1` now, `$2` tenant, `$3`
/// subscription, `$4` amount, `$5` currency, `$6`/`$7` period start/end,
/// `$8` invoice id, `$9` `last` (the paid statement's activity action, the
/// failed one's reason).
fn period_statement<'a>(
    sql: &'static str,
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
/// (one per subscription and period start), the period advanced (never
/// backwards: a late invoice of an older period changes no period), past
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
    let rows: Vec<Changed> = period_statement(
        r#"
        WITH charge AS (
            INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, currency, status, period_start, period_end,
                                 attempts, provider_reference, idempotency_key, created_at, updated_at)
            VALUES (uuid_v7(), $2, $3, 'renewal', $4, $5, 'paid', $6, $7, 1, $8, 'renewal:' || $3 || ':' || extract(epoch FROM $6)::bigint, $1, $1)
            ON CONFLICT (idempotency_key) DO UPDATE
                SET status = 'paid', provider_reference = EXCLUDED.provider_reference, last_error = NULL,
                    next_attempt_at = NULL, updated_at = now()
                WHERE charges.status <> 'paid'
            RETURNING id
        ), sub AS (
            UPDATE subscriptions SET
                current_period_start = CASE WHEN current_period_end IS NULL OR current_period_end < $7 THEN $6 ELSE current_period_start END,
                current_period_end = greatest(current_period_end, $7),
                billing_anchor = coalesce(billing_anchor, $6),
                status = CASE WHEN status IN ('past_due') AND coalesce(current_period_end, $7) <= $7 THEN 'active' ELSE status END,
                past_due_since = CASE WHEN coalesce(current_period_end, $7) <= $7 THEN NULL ELSE past_due_since END,
                updated_at = now()
            WHERE id = $3 AND (current_period_end IS NULL OR current_period_end < $7 OR past_due_since IS NOT NULL)
            RETURNING id, status
        ), ten AS (
            UPDATE tenants SET status = 'active', status_reason = NULL, version = version + 1, updated_at = now()
            WHERE id = $2 AND status = 'suspended' AND status_reason = 'non-payment' AND EXISTS (SELECT 1 FROM sub)
            RETURNING id
        ), j AS (
            INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key)
            SELECT uuid_v7(), 'resume', t.id, jsonb_build_object('tenant_id', t.id), 'resume:' || t.id FROM ten t
            ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
            RETURNING id
        ), l1 AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, after)
            SELECT uuid_v7(), $1, 'stripe', $2, $9, 'subscription', $3::text,
                   jsonb_build_object('period_start', $6, 'period_end', $7, 'amount', $4::text, 'currency', $5, 'invoice', $8)
            WHERE EXISTS (SELECT 1 FROM sub)
            RETURNING id
        ), l2 AS (
            INSERT INTO activity_log (id, occurred_at, actor_label, tenant_id, action, target_type, target_id, before, after)
            SELECT uuid_v7(), $1, 'stripe', t.id, 'tenant.status_changed', 'tenant', t.id::text,
                   '{"status": "suspended"}', '{"status": "active", "reason": "payment received"}'
            FROM ten t RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM sub) AS changed
        "#,
        now,
        p,
        action,
    )
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
        "#,
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
/// deletion changes nothing).
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
            SELECT id, tenant_id, status, current_period_end FROM subscriptions WHERE id = $2 AND status <> 'canceled' FOR UPDATE
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

/// Every active product, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn active_products(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<crate::catalog::Product>, StoreError> {
    use crate::schema::products;
    Ok(products::table
        .filter(products::active.eq(true))
        .order(products::id)
        .select(crate::catalog::Product::as_select())
        .load(conn)
        .await?)
}

/// A product and a plan by the plan's id.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn plan_with_product(
    conn: &mut AsyncPgConnection,
    plan_id: Uuid,
) -> Result<(crate::catalog::Plan, crate::catalog::Product), StoreError> {
    use crate::schema::{plans, products};
    Ok(plans::table
        .inner_join(products::table)
        .filter(plans::id.eq(plan_id))
        .select((
            crate::catalog::Plan::as_select(),
            crate::catalog::Product::as_select(),
        ))
        .first(conn)
        .await?)
}

/// The email of a tenant's owner (the first one; or the one invited to own it).
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn owner_email(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<String, StoreError> {
    use crate::schema::{invitations, users};
    let user = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::role.eq("tenant_owner"))
        .order(users::id)
        .select(users::email)
        .first(conn)
        .await
        .optional()?;
    match user {
        Some(e) => Ok(e),
        None => Ok(invitations::table
            .filter(invitations::tenant_id.eq(tenant_id))
            .filter(invitations::role.eq("tenant_owner"))
            .order(invitations::id)
            .select(invitations::email)
            .first(conn)
            .await?),
    }
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
