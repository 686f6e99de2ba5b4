//! Charges: one row per upgrade's prorated amount or per renewal of a
//! billing period, keyed so a retry never charges twice; the subscriptions
//! due for renewal, the renewal charges claimed for an attempt, and the
//! payment outcomes recorded (period advanced, or past due).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Count, grace_interval};
use crate::{StoreError, schema::charges};

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
    /// The part of the price paid from the credit ledger, major unit
    /// (`amount` is what the provider is asked for).
    pub credit_applied: Decimal,
}

/// A subscription's paid renewal charges (each a billing period paid,
/// the first one included), oldest period first.
///
/// # Errors
/// [`StoreError`].
pub async fn paid_periods(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<Vec<Charge>, StoreError> {
    Ok(charges::table
        .filter(charges::subscription_id.eq(subscription_id))
        .filter(charges::kind.eq("renewal"))
        .filter(charges::status.eq("paid"))
        .filter(charges::period_start.is_not_null())
        .order((charges::period_start, charges::id))
        .select(Charge::as_select())
        .load(conn)
        .await?)
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

/// The charge with this key, if there is one.
///
/// # Errors
/// [`StoreError`].
pub async fn find_charge(
    conn: &mut AsyncPgConnection,
    idempotency_key: &str,
) -> Result<Option<Charge>, StoreError> {
    Ok(charges::table
        .filter(charges::idempotency_key.eq(idempotency_key))
        .select(Charge::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The tenant's charge a provider's payment object paid (or tried to):
/// by its `provider_reference` (e.g. a Stripe invoice id), else by our
/// idempotency key when the provider carries it (`metadata.charge`).
///
/// # Errors
/// [`StoreError`].
pub async fn charge_of_payment(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    reference: &str,
    key: Option<&str>,
) -> Result<Option<Charge>, StoreError> {
    let by_reference = charges::table
        .filter(charges::tenant_id.eq(tenant_id))
        .filter(charges::provider_reference.eq(reference))
        .filter(charges::kind.ne("refund"))
        .select(Charge::as_select())
        .first(conn)
        .await
        .optional()?;
    match (by_reference, key) {
        (Some(c), _) => Ok(Some(c)),
        (None, Some(k)) => Ok(find_charge(conn, k)
            .await?
            .filter(|c| c.tenant_id == tenant_id)),
        (None, None) => Ok(None),
    }
}

/// Adds `amount` of credit to what a charge was paid with
/// (`credit_applied`): a provider used the customer's balance on it.
///
/// # Errors
/// [`StoreError`].
pub async fn add_credit_applied(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    amount: Decimal,
) -> Result<(), StoreError> {
    diesel::update(charges::table.find(id))
        .set((
            charges::credit_applied.eq(charges::credit_applied + amount),
            charges::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a charge's status (`canceled`: an abandoned upgrade's).
///
/// # Errors
/// [`StoreError`].
pub async fn set_charge_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
) -> Result<(), StoreError> {
    diesel::update(charges::table.find(id))
        .set((
            charges::status.eq(status),
            charges::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The refund of a plan change's payment, if one was made.
///
/// # Errors
/// [`StoreError`].
pub async fn refund_of(
    conn: &mut AsyncPgConnection,
    plan_change_id: Uuid,
) -> Result<Option<Charge>, StoreError> {
    Ok(charges::table
        .filter(charges::idempotency_key.eq(format!("refund:{plan_change_id}")))
        .select(Charge::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A charge by id, locked.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn lock_charge(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Charge, StoreError> {
    Ok(charges::table
        .find(id)
        .select(Charge::as_select())
        .for_no_key_update()
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
/// A new charge is paid first from the subscription's credit balance
/// (`credit_applied`; `amount` is what is left to charge, possibly 0).
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
    // One statement: new charges are inserted already claimed, paid first
    // from the subscription's credit balance in their currency (the ledger
    // row `charge:{id}` records what was used, once); existing ones are
    // claimed only when due for another attempt (or their lease ran out).
    Ok(diesel::sql_query(
        r#"
        WITH input AS (
            SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::numeric[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[])
                AS u(t, s, a, c, ps, pe, k)
        ), credit AS (
            SELECT i.k, least(i.a, greatest(coalesce(
                       (SELECT sum(cr.amount) FROM credits cr WHERE cr.subscription_id = i.s AND cr.currency = i.c), 0), 0)) AS used
            FROM input i
        ), claimed AS (
            INSERT INTO charges (id, tenant_id, subscription_id, kind, amount, credit_applied, currency, status, period_start, period_end,
                                 next_attempt_at, idempotency_key, created_at, updated_at)
            SELECT uuid_v7(), i.t, i.s, 'renewal', i.a - cr.used, cr.used, i.c, 'processing', i.ps, i.pe, $1 + $9, i.k, $1, $1
            FROM input i JOIN credit cr ON cr.k = i.k
            ON CONFLICT (idempotency_key) DO UPDATE
                SET status = 'processing', next_attempt_at = EXCLUDED.next_attempt_at, updated_at = now()
                WHERE charges.status = 'pending'
                   OR (charges.status IN ('failed', 'processing') AND charges.next_attempt_at <= $1)
            RETURNING charges.*, (xmax = 0) AS inserted
        ), used AS (
            INSERT INTO credits (id, tenant_id, subscription_id, amount, currency, kind, reason, source, charge_id, created_at)
            SELECT uuid_v7(), c.tenant_id, c.subscription_id, -c.credit_applied, c.currency, 'applied', 'renewal', 'charge:' || c.id, c.id, $1
            FROM claimed c WHERE c.inserted AND c.credit_applied > 0
            ON CONFLICT (source) DO NOTHING
            RETURNING id
        )
        SELECT * FROM claimed
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
        let [suspended, active, kind, actor] = super::dunning::resume_binds("scheduler");
        let rows: Vec<Count> = diesel::sql_query(format!(
            "WITH paid AS (SELECT unnest($2::uuid[]) AS tenant_id), {} SELECT count(*) AS n FROM resumed",
            super::dunning::resume_paid(1, 3)
        ))
        .bind::<Timestamptz, _>(now)
        .bind::<Array<SqlUuid>, _>(&paid_tenants)
        .bind::<Text, _>(suspended)
        .bind::<Text, _>(active)
        .bind::<Text, _>(kind)
        .bind::<Text, _>(actor)
        .load(conn)
        .await?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    })
    .await
}
