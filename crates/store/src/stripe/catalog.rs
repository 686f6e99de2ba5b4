//! The catalog's Stripe twins: the Stripe Product of each of our products
//! and the Stripe Price of each plan, with the fingerprint they were synced
//! from, and the catalog rows a sync reads.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{StoreError, schema::stripe_catalog};

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
