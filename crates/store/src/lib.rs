//! Tenantry's persistence on PostgreSQL: the diesel schema, rows and queries,
//! the embedded migrations, and the connection pool.
//!
//! Every function takes the connection it runs on, so callers compose them in
//! one transaction when they must change several tables at once. Errors are
//! [`StoreError`], whose variants tell "not there" from "conflict" from
//! "database unavailable" so the API can answer 404, 409 or 503.

pub mod activity;
pub mod billing;
pub mod catalog;
pub mod crypto;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod migrations;
pub mod pagination;
pub mod pool;
pub mod tenants;
#[rustfmt::skip]
pub mod schema;

pub use diesel::result::Error as DieselError;
pub use diesel_async::{AsyncConnection, AsyncPgConnection};
pub use error::StoreError;
pub use pagination::{Page, PageRequest};
pub use pool::{Pool, PoolSettings, PoolStatus};
