//! The catalog load: products and their plans created or updated from the
//! catalog file, matched by product slug and plan code, idempotently and in
//! one transaction.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenantry_domain::catalog::ProductSpec;

use super::{plans::upsert_plan, products::upsert_product};
use crate::StoreError;

/// What a catalog load changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Products inserted.
    pub products_created: usize,
    /// Products whose fields changed.
    pub products_updated: usize,
    /// Plans inserted.
    pub plans_created: usize,
    /// Plans whose fields changed.
    pub plans_updated: usize,
    /// Products and plans already exactly as given.
    pub unchanged: usize,
}

/// Advisory lock key serialising catalog loads (ASCII "catalog").
const CATALOG_LOCK_KEY: i64 = 0x0063_6174_616c_6f67;

/// Creates or updates the given products and their plans, matched by product
/// slug and plan code, in one transaction. Loading the same catalog twice
/// changes nothing the second time (no row is rewritten, `updated_at` stays).
/// Products and plans not in `catalog` are left as they are; a product in the
/// catalog is (re)activated.
///
/// # Errors
/// [`StoreError`]; on error nothing is changed.
pub async fn load_catalog(
    conn: &mut AsyncPgConnection,
    catalog: &[ProductSpec],
) -> Result<LoadReport, StoreError> {
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(CATALOG_LOCK_KEY)
            .execute(conn)
            .await?;
        let mut report = LoadReport::default();
        for spec in catalog {
            let product_id = upsert_product(conn, spec, &mut report).await?;
            for plan in &spec.plans {
                upsert_plan(conn, product_id, plan, &mut report).await?;
            }
        }
        Ok(report)
    })
    .await
}
