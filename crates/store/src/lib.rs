//! Tenantry's persistence on PostgreSQL: the diesel schema, rows and queries,
//! the embedded migrations, and the connection pool.
//!
//! Every function takes the connection it runs on, so callers compose them in
//! one transaction when they must change several tables at once. Errors are
//! [`StoreError`], whose variants tell "not there" from "conflict" from
//! "database unavailable" so the API can answer 404, 409 or 503.

pub mod activity;
pub mod alerts;
pub mod billing;
pub mod billing_reports;
pub mod catalog;
pub mod crypto;
pub mod deployments;
pub mod domains;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod migrations;
pub mod nodes;
pub mod pagination;
pub mod parsed;
pub mod periodic;
pub mod pool;
pub mod routing;
pub mod stripe;
pub mod tenants;
pub mod worker;
#[rustfmt::skip]
pub mod schema;

pub use diesel::result::Error as DieselError;
pub use diesel_async::{AsyncConnection, AsyncPgConnection};
pub use error::{StoreError, error_chain};
pub use pagination::{Page, PageRequest};
pub use pool::{Pool, PoolSettings, PoolStatus, SessionLock};

/// Takes the transaction-scoped advisory lock `key` (`pg_advisory_xact_lock`):
/// transactions taking the same key run one after the other.
///
/// # Errors
/// [`StoreError`].
pub async fn advisory_xact_lock(conn: &mut AsyncPgConnection, key: i64) -> Result<(), StoreError> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}
