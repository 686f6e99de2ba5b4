//! The embedded diesel migrations (`migrations/` at the workspace root) and
//! the commands that apply, revert and list them.
//!
//! Applying and reverting hold a PostgreSQL session advisory lock, so several
//! `tenantry serve` replicas starting together apply each migration once:
//! the first takes the lock and migrates, the others wait, then find nothing
//! pending (the habit of Lemmy's `schema_setup`).

use std::collections::HashSet;

use diesel::{
    Connection, RunQueryDsl,
    migration::{Migration, MigrationSource},
    pg::Pg,
    sql_types::BigInt,
};
use diesel_async::{AsyncPgConnection, async_connection_wrapper::AsyncConnectionWrapper};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

/// Every migration, embedded at compile time.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock key migrations hold (ASCII "tenantry").
const MIGRATION_LOCK_KEY: i64 = 0x7465_6e61_6e74_7279;

/// Why a migration command failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    /// A migration (or the lock around it) failed; the message names it.
    #[error("migration failed: {0}")]
    Failed(String),
    /// The blocking task running the migrations died.
    #[error("migration task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// A migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Version as diesel records it (the digits of the directory's date prefix).
    pub version: String,
    /// The migration's directory name, e.g. `2026-11-21-000001_catalog`.
    pub name: String,
    /// Applied to this database.
    pub applied: bool,
}

type Wrapper = AsyncConnectionWrapper<AsyncPgConnection>;

/// Runs `f` on a fresh connection to `url` on a blocking thread, holding the
/// migration advisory lock (diesel's migration harness is synchronous).
async fn with_locked_connection<T: Send + 'static>(
    url: &SecretString,
    f: impl FnOnce(&mut Wrapper) -> Result<T, MigrationError> + Send + 'static,
) -> Result<T, MigrationError> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = Wrapper::establish(url.expose_secret()).map_err(MigrationError::Connect)?;
        lock(&mut conn, "pg_advisory_lock")?;
        let result = f(&mut conn);
        lock(&mut conn, "pg_advisory_unlock")?;
        result
    })
    .await?
}

fn lock(conn: &mut Wrapper, function: &str) -> Result<(), MigrationError> {
    diesel::sql_query(format!("SELECT {function}($1)"))
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .map(drop)
        .map_err(|e| MigrationError::Failed(format!("{function}: {e}")))
}

/// Applies every pending migration in order; returns the names applied.
///
/// # Errors
/// [`MigrationError`]; a failing migration is rolled back with its transaction.
pub async fn run_pending(url: &SecretString) -> Result<Vec<String>, MigrationError> {
    with_locked_connection(url, |conn| {
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| MigrationError::Failed(e.to_string()))?;
        names_of(applied.iter().map(ToString::to_string))
    })
    .await
}

/// Reverts the last `n` applied migrations (fewer when fewer are applied);
/// returns the names reverted, newest first.
///
/// # Errors
/// [`MigrationError`] when a `down.sql` fails.
pub async fn revert(url: &SecretString, n: usize) -> Result<Vec<String>, MigrationError> {
    with_locked_connection(url, move |conn| {
        let mut reverted = Vec::new();
        for _ in 0..n {
            let applied = conn
                .applied_migrations()
                .map_err(|e| MigrationError::Failed(e.to_string()))?;
            if applied.is_empty() {
                break;
            }
            let v = conn
                .revert_last_migration(MIGRATIONS)
                .map_err(|e| MigrationError::Failed(e.to_string()))?;
            reverted.push(v.to_string());
        }
        names_of(reverted)
    })
    .await
}

/// Every embedded migration, oldest first, with whether it is applied.
///
/// # Errors
/// [`MigrationError`] when the database cannot be read.
pub async fn status(url: &SecretString) -> Result<Vec<MigrationStatus>, MigrationError> {
    with_locked_connection(url, |conn| {
        let applied: HashSet<String> = conn
            .applied_migrations()
            .map_err(|e| MigrationError::Failed(e.to_string()))?
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(embedded()?
            .into_iter()
            .map(|(version, name)| MigrationStatus {
                applied: applied.contains(&version),
                version,
                name,
            })
            .collect())
    })
    .await
}

/// The directory names of the migrations with these versions.
fn names_of(versions: impl IntoIterator<Item = String>) -> Result<Vec<String>, MigrationError> {
    let all = embedded()?;
    Ok(versions
        .into_iter()
        .map(|v| {
            all.iter()
                .find(|(version, _)| *version == v)
                .map_or(v, |(_, name)| name.clone())
        })
        .collect())
}

/// `(version, name)` of every embedded migration, oldest first.
///
/// # Errors
/// [`MigrationError::Failed`] when the embedded set cannot be read.
pub fn embedded() -> Result<Vec<(String, String)>, MigrationError> {
    let mut migrations: Vec<(String, String)> = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|e| MigrationError::Failed(e.to_string()))?
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    migrations.sort();
    Ok(migrations)
}

/// How many embedded migrations this database has not applied; used by `/readyz`.
///
/// # Errors
/// [`crate::StoreError`] when the database cannot be read (including when no
/// migration was ever run, so the bookkeeping table is missing).
pub async fn pending_count(conn: &mut AsyncPgConnection) -> Result<usize, crate::StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let query = diesel::sql_query("SELECT version FROM __diesel_schema_migrations");
    let applied: HashSet<String> = diesel_async::RunQueryDsl::load::<Row>(query, conn)
        .await?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let embedded = embedded().map_err(|e| crate::StoreError::Unavailable(Box::new(e)))?;
    Ok(embedded
        .iter()
        .filter(|(version, _)| !applied.contains(version))
        .count())
}
