//! The credit ledger: credits granted to a customer (a failed migration's
//! payment, a prepaid new billing cycle on Stripe) and credit applied to
//! charges. A subscription's balance in a currency is the sum of its rows.
//! Every row names its cause in `source` (unique), so each is recorded once
//! however often the code that records it runs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{Page, PageRequest, StoreError, schema::credits};

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = credits, check_for_backend(diesel::pg::Pg))]
pub struct Credit {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Major unit of `currency`: positive when granted, negative when applied.
    pub amount: Decimal,
    /// ISO 4217, upper case.
    pub currency: String,
    /// `granted` or `applied`.
    pub kind: String,
    /// Why, for people (`migration_failed`, `renewal`, `prepaid_billing_cycle`…).
    pub reason: String,
    /// What caused it (`plan_change:{id}:migration_failed`, `charge:{id}`,
    /// `invoice:{id}`…); unique.
    pub source: String,
    /// Applied rows: the charge paid from it.
    pub charge_id: Option<Uuid>,
    /// Stripe: the customer balance transaction carrying it (`cbtxn_…`).
    pub provider_reference: Option<String>,
    /// Recorded.
    pub created_at: DateTime<Utc>,
}

/// A ledger row to record.
#[derive(Debug, Clone)]
pub struct NewCredit<'a> {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Positive: granted; negative: applied.
    pub amount: Decimal,
    /// ISO 4217.
    pub currency: &'a str,
    /// Why.
    pub reason: &'a str,
    /// What caused it (unique).
    pub source: &'a str,
    /// Applied rows: the charge.
    pub charge_id: Option<Uuid>,
    /// The provider's reference, when known.
    pub provider_reference: Option<&'a str>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Records a row unless its `source` is already recorded; returns the new
/// row (`None`: recorded before, nothing done). A zero amount records nothing.
///
/// # Errors
/// [`StoreError`].
pub async fn record(
    conn: &mut AsyncPgConnection,
    c: &NewCredit<'_>,
) -> Result<Option<Credit>, StoreError> {
    if c.amount.is_zero() {
        return Ok(None);
    }
    let row = Credit {
        id: Uuid::now_v7(),
        tenant_id: c.tenant_id,
        subscription_id: c.subscription_id,
        amount: c.amount,
        currency: c.currency.to_owned(),
        kind: if c.amount.is_sign_positive() {
            "granted"
        } else {
            "applied"
        }
        .to_owned(),
        reason: c.reason.to_owned(),
        source: c.source.to_owned(),
        charge_id: c.charge_id,
        provider_reference: c.provider_reference.map(str::to_owned),
        created_at: c.at,
    };
    Ok(diesel::insert_into(credits::table)
        .values(&row)
        .on_conflict(credits::source)
        .do_nothing()
        .returning(Credit::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Sets the provider's reference of a credit (once carried to Stripe).
///
/// # Errors
/// [`StoreError`].
pub async fn set_provider_reference(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    reference: &str,
) -> Result<Credit, StoreError> {
    Ok(diesel::update(credits::table.find(id))
        .set(credits::provider_reference.eq(reference))
        .returning(Credit::as_returning())
        .get_result(conn)
        .await?)
}

/// A subscription's granted credits not carried to its provider yet
/// (no `provider_reference`), oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn unpushed(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(credits::table
        .filter(credits::subscription_id.eq(subscription_id))
        .filter(credits::kind.eq("granted"))
        .filter(credits::provider_reference.is_null())
        .order(credits::id)
        .select(credits::id)
        .load(conn)
        .await?)
}

/// A credit by id.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Credit, StoreError> {
    Ok(credits::table
        .find(id)
        .select(Credit::as_select())
        .first(conn)
        .await?)
}

/// A subscription's balance per currency (what is left to apply), major
/// units, currencies in order; currencies whose balance is zero are left out.
///
/// # Errors
/// [`StoreError`].
pub async fn balances(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<Vec<(String, Decimal)>, StoreError> {
    let rows: Vec<(String, Option<Decimal>)> = credits::table
        .filter(credits::subscription_id.eq(subscription_id))
        .group_by(credits::currency)
        .select((credits::currency, diesel::dsl::sum(credits::amount)))
        .order(credits::currency)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, s)| s.filter(|s| !s.is_zero()).map(|s| (c, s)))
        .collect())
}

/// A tenant's ledger, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    page: PageRequest,
) -> Result<Page<Credit>, StoreError> {
    let mut q = credits::table
        .filter(credits::tenant_id.eq(tenant_id))
        .order(credits::id)
        .limit(page.fetch())
        .select(Credit::as_select())
        .into_boxed();
    if let Some(after) = page.after {
        q = q.filter(credits::id.gt(after));
    }
    Ok(Page::from_overfetch(q.load(conn).await?, page, |c| c.id))
}
