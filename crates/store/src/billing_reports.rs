//! Operator reports on billing, read-only and across tenants: charges and
//! plan changes with filters, and the billing summary (monthly recurring
//! revenue, subscriptions per plan, past-due subscriptions and what they
//! owe, downgrades coming due).
//!
//! Amounts are exact: `NUMERIC` sums in SQL, read as [`Decimal`]; nothing
//! here rounds (the caller rounds once, to the currency's minor unit).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Nullable, Numeric, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use tenantry_domain::{
    BillingInterval, SubscriptionStatus,
    billing::{ChangeKind, PlanChangeStatus},
};
use uuid::Uuid;

use crate::{
    Page, PageRequest, StoreError,
    billing::{Charge, PlanChange},
    schema::{charges, plan_changes, plans},
};

/// Every charge status (`charges.status`): `processing` is a charge claimed
/// by a processor, `canceled` an abandoned upgrade's charge.
pub const CHARGE_STATUSES: &[&str] = &["pending", "processing", "paid", "failed", "canceled"];

/// Every charge kind (`charges.kind`): a renewal of a period, an upgrade's
/// prorated amount, or a refund (money going back).
pub const CHARGE_KINDS: &[&str] = &["renewal", "upgrade", "refund"];

/// The charge statuses of money asked and not (yet) received.
const UNPAID: &[&str] = &["pending", "processing", "failed"];

/// The charge kinds that ask the customer for money.
const ASKING: &[&str] = &["renewal", "upgrade"];

diesel::define_sql_function! {
    /// SQL `coalesce` of an optional and a required instant.
    fn coalesce(x: Nullable<Timestamptz>, y: Timestamptz) -> Timestamptz;
}

/// Filters of the charge list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeFilter {
    /// Only this tenant's charges.
    pub tenant_id: Option<Uuid>,
    /// Only charges in this status (one of [`CHARGE_STATUSES`]).
    pub status: Option<String>,
    /// Only charges of this kind (one of [`CHARGE_KINDS`]).
    pub kind: Option<String>,
    /// Only charges whose instant (`coalesce(period_start, created_at)`: the
    /// period a renewal pays for, else when the charge was made) is at or
    /// after this.
    pub from: Option<DateTime<Utc>>,
    /// … and before this.
    pub to: Option<DateTime<Utc>>,
}

/// Charges matching `filter`, oldest first (id order), one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list_charges(
    conn: &mut AsyncPgConnection,
    filter: &ChargeFilter,
    page: PageRequest,
) -> Result<Page<Charge>, StoreError> {
    let mut q = charges::table.select(Charge::as_select()).into_boxed();
    if let Some(t) = filter.tenant_id {
        q = q.filter(charges::tenant_id.eq(t));
    }
    if let Some(s) = &filter.status {
        q = q.filter(charges::status.eq(s.clone()));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(charges::kind.eq(k.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(coalesce(charges::period_start, charges::created_at).ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(coalesce(charges::period_start, charges::created_at).lt(to));
    }
    if let Some(after) = page.after {
        q = q.filter(charges::id.gt(after));
    }
    let rows = q.order(charges::id).limit(page.fetch()).load(conn).await?;
    Ok(Page::from_overfetch(rows, page, |c| c.id))
}

/// Filters of the plan change list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanChangeFilter {
    /// Only changes in one of these statuses (empty: any).
    pub statuses: Vec<PlanChangeStatus>,
    /// Only this tenant's changes.
    pub tenant_id: Option<Uuid>,
    /// Only upgrades or only downgrades.
    pub kind: Option<ChangeKind>,
    /// Only changes taking effect before this instant (`effective_at <
    /// due_before`; changes without an effective instant never match).
    pub due_before: Option<DateTime<Utc>>,
}

/// A plan change with the codes of its plans.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanChangeReport {
    /// The change.
    pub change: PlanChange,
    /// Code of the plan before.
    pub from_plan: String,
    /// Code of the plan after.
    pub to_plan: String,
}

/// Plan changes of every tenant matching `filter`, oldest first (id order),
/// one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list_plan_changes(
    conn: &mut AsyncPgConnection,
    filter: &PlanChangeFilter,
    page: PageRequest,
) -> Result<Page<PlanChangeReport>, StoreError> {
    let mut q = plan_changes::table
        .select(PlanChange::as_select())
        .into_boxed();
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        q = q.filter(plan_changes::status.eq_any(statuses));
    }
    if let Some(t) = filter.tenant_id {
        q = q.filter(plan_changes::tenant_id.eq(t));
    }
    if let Some(k) = filter.kind {
        q = q.filter(plan_changes::kind.eq(k.as_str()));
    }
    if let Some(d) = filter.due_before {
        q = q.filter(plan_changes::effective_at.lt(d));
    }
    if let Some(after) = page.after {
        q = q.filter(plan_changes::id.gt(after));
    }
    let rows: Vec<PlanChange> = q
        .order(plan_changes::id)
        .limit(page.fetch())
        .load(conn)
        .await?;
    let mut ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|c| [c.from_plan_id, c.to_plan_id])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let codes: std::collections::HashMap<Uuid, String> = plans::table
        .filter(plans::id.eq_any(ids))
        .select((plans::id, plans::code))
        .load::<(Uuid, String)>(conn)
        .await?
        .into_iter()
        .collect();
    let code = |id: Uuid| codes.get(&id).cloned().unwrap_or_default();
    let page = Page::from_overfetch(rows, page, |c| c.id);
    Ok(page.map(|change| PlanChangeReport {
        from_plan: code(change.from_plan_id),
        to_plan: code(change.to_plan_id),
        change,
    }))
}

/// Sums of recurring plan prices in one currency, over the subscriptions
/// that count toward recurring revenue.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RecurringTotals {
    /// ISO 4217 code.
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// Sum of the prices of monthly plans, major unit, per month.
    #[diesel(sql_type = Numeric)]
    pub monthly: Decimal,
    /// Sum of the prices of yearly plans, major unit, per year.
    #[diesel(sql_type = Numeric)]
    pub yearly: Decimal,
}

impl RecurringTotals {
    /// Monthly recurring revenue, exact and unrounded: the monthly prices
    /// plus a twelfth of the yearly ones (major unit per month).
    ///
    /// Returns `None` when the result overflows a [`Decimal`].
    pub fn mrr(&self) -> Option<Decimal> {
        self.yearly
            .checked_div(Decimal::from(12))
            .and_then(|y| self.monthly.checked_add(y))
    }
}

/// How many subscriptions are on one plan.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PlanCount {
    /// Product slug.
    #[diesel(sql_type = Text)]
    pub product: String,
    /// Plan code.
    #[diesel(sql_type = Text)]
    pub plan: String,
    /// Subscriptions.
    #[diesel(sql_type = BigInt)]
    pub subscriptions: i64,
}

/// An amount in one currency.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CurrencyAmount {
    /// ISO 4217 code.
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// Major unit.
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
}

/// A scheduled downgrade and its tenant.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DueDowngrade {
    /// The plan change.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub plan_change_id: Uuid,
    /// Tenant.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub tenant_id: Uuid,
    /// Tenant slug.
    #[diesel(sql_type = Text)]
    pub tenant_slug: String,
    /// Product slug.
    #[diesel(sql_type = Text)]
    pub product: String,
    /// Code of the plan before.
    #[diesel(sql_type = Text)]
    pub from_plan: String,
    /// Code of the plan after.
    #[diesel(sql_type = Text)]
    pub to_plan: String,
    /// When it takes effect.
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
}

/// The billing summary's figures (see [`summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Recurring price sums per currency, currency order.
    pub recurring: Vec<RecurringTotals>,
    /// Active subscriptions per product and plan, in (product, plan) order.
    pub active: Vec<PlanCount>,
    /// Past-due subscriptions.
    pub past_due: i64,
    /// What past-due subscriptions owe per currency, currency order.
    pub outstanding: Vec<CurrencyAmount>,
    /// Scheduled downgrades due before the horizon.
    pub downgrades_due: i64,
    /// The first `listed` of them, by effective instant.
    pub downgrades: Vec<DueDowngrade>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn statuses(s: &[SubscriptionStatus]) -> Vec<&'static str> {
    s.iter().map(|s| s.as_str()).collect()
}

/// The billing summary:
/// - recurring price sums per currency over subscriptions `active` or
///   `past_due`, on their current plan: monthly plans' prices and yearly
///   plans' prices apart (lifetime plans do not recur and are left out);
/// - `active` subscriptions counted per product and plan;
/// - `past_due` subscriptions counted, and what they owe per currency: the
///   sum of their renewal and upgrade charges not paid (`pending`,
///   `processing` or `failed`);
/// - scheduled downgrades whose `effective_at` is before `horizon` (so also
///   any overdue one the processor has not applied yet): their count, and
///   the first `listed` by `(effective_at, id)`.
///
/// # Errors
/// [`StoreError`].
pub async fn summary(
    conn: &mut AsyncPgConnection,
    horizon: DateTime<Utc>,
    listed: i64,
) -> Result<Summary, StoreError> {
    let recurring = diesel::sql_query(
        "SELECT p.currency,
                coalesce(sum(p.price) FILTER (WHERE p.billing_interval = $2), 0) AS monthly,
                coalesce(sum(p.price) FILTER (WHERE p.billing_interval = $3), 0) AS yearly
         FROM subscriptions s
         JOIN plans p ON p.id = s.plan_id
         WHERE s.status = ANY($1) AND p.billing_interval IN ($2, $3)
         GROUP BY p.currency
         ORDER BY p.currency",
    )
    .bind::<Array<Text>, _>(statuses(&[
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
    ]))
    .bind::<Text, _>(BillingInterval::Month.as_str())
    .bind::<Text, _>(BillingInterval::Year.as_str())
    .load::<RecurringTotals>(conn)
    .await?;

    let active = diesel::sql_query(
        "SELECT pr.slug AS product, p.code AS plan, count(*) AS subscriptions
         FROM subscriptions s
         JOIN plans p ON p.id = s.plan_id
         JOIN products pr ON pr.id = p.product_id
         WHERE s.status = $1
         GROUP BY pr.slug, p.code
         ORDER BY pr.slug, p.code",
    )
    .bind::<Text, _>(SubscriptionStatus::Active.as_str())
    .load::<PlanCount>(conn)
    .await?;

    let past_due = diesel::sql_query("SELECT count(*) AS n FROM subscriptions WHERE status = $1")
        .bind::<Text, _>(SubscriptionStatus::PastDue.as_str())
        .get_result::<Count>(conn)
        .await?
        .n;

    let outstanding = diesel::sql_query(
        "SELECT c.currency, sum(c.amount) AS amount
         FROM charges c
         JOIN subscriptions s ON s.id = c.subscription_id
         WHERE s.status = $1 AND c.status = ANY($2) AND c.kind = ANY($3)
         GROUP BY c.currency
         ORDER BY c.currency",
    )
    .bind::<Text, _>(SubscriptionStatus::PastDue.as_str())
    .bind::<Array<Text>, _>(UNPAID)
    .bind::<Array<Text>, _>(ASKING)
    .load::<CurrencyAmount>(conn)
    .await?;

    let downgrades_due = diesel::sql_query(
        "SELECT count(*) AS n FROM plan_changes
         WHERE kind = $1 AND status = $2 AND effective_at < $3",
    )
    .bind::<Text, _>(ChangeKind::Downgrade.as_str())
    .bind::<Text, _>(PlanChangeStatus::Scheduled.as_str())
    .bind::<Timestamptz, _>(horizon)
    .get_result::<Count>(conn)
    .await?
    .n;
    let downgrades = diesel::sql_query(
        "SELECT pc.id AS plan_change_id, pc.tenant_id, t.slug AS tenant_slug, pr.slug AS product,
                fp.code AS from_plan, tp.code AS to_plan, pc.effective_at
         FROM plan_changes pc
         JOIN tenants t ON t.id = pc.tenant_id
         JOIN plans fp ON fp.id = pc.from_plan_id
         JOIN plans tp ON tp.id = pc.to_plan_id
         JOIN products pr ON pr.id = fp.product_id
         WHERE pc.kind = $1 AND pc.status = $2 AND pc.effective_at < $3
         ORDER BY pc.effective_at, pc.id
         LIMIT $4",
    )
    .bind::<Text, _>(ChangeKind::Downgrade.as_str())
    .bind::<Text, _>(PlanChangeStatus::Scheduled.as_str())
    .bind::<Timestamptz, _>(horizon)
    .bind::<BigInt, _>(listed)
    .load::<DueDowngrade>(conn)
    .await?;

    Ok(Summary {
        recurring,
        active,
        past_due,
        outstanding,
        downgrades_due,
        downgrades,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrr_adds_a_twelfth_of_the_yearly_prices() {
        let t = RecurringTotals {
            currency: "USD".into(),
            monthly: Decimal::new(2900, 2),
            yearly: Decimal::new(29000, 2),
        };
        // 29 + 290 / 12 = 53.1666…
        let mrr = t.mrr().unwrap();
        assert!(
            mrr > Decimal::new(531666, 4) && mrr < Decimal::new(531667, 4),
            "{mrr}"
        );
    }
}
