//! Tenant databases: a PostgreSQL role and a database of its own for each
//! tenant, on the product's database server (issue "Provisioning II").
//!
//! Every operation is a step a job may re-run after a crash, so each one
//! converges rather than assumes: [`DatabaseServer::ensure_database`] creates
//! what is missing and resets the password of a role that already exists to
//! the one the caller stored (encrypted, in `store`);
//! [`DatabaseServer::drop_database`] is a no-op for what is already gone. A
//! re-run therefore never leaves an orphan database or a second role.
//! Deprovisioning takes a final [`DatabaseServer::backup`] (`pg_dump -Fc`)
//! first and drops nothing unless it succeeded
//! ([`DatabaseServer::backup_and_drop`]).
//!
//! Passwords never reach the server in clear text: the role's password is
//! set to a SCRAM-SHA-256 verifier computed here (what `psql`'s `\password`
//! and libpq's `PQencryptPasswordConn` do), so it appears in no server log,
//! `pg_stat_activity` row or error message. `pg_dump` gets the admin password
//! in `PGPASSWORD`, never on its command line.

mod backup;
mod error;
mod lifecycle;
mod name;
mod sql;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Config;

pub use self::error::TenantDbError;
pub use self::name::{TenantDbName, TenantDbNameError};

/// A new tenant database password: 32 URL-safe characters (24 random bytes
/// from the OS, base64url), to be stored sealed with the
/// [`Keyring`](tenantry_store::crypto::Keyring) before
/// [`DatabaseServer::ensure_database`] runs.
pub fn generate_password() -> SecretString {
    SecretString::from(tenantry_store::crypto::random_token(24))
}

/// A product's PostgreSQL server, reached as a role that may `CREATE ROLE`
/// and `CREATE DATABASE` (a superuser, or `CREATEROLE CREATEDB`).
///
/// Connections are plain TCP (or a Unix socket): TLS to the database server
/// is not supported yet, so an admin URL with `sslmode=require` fails to
/// connect (a permanent error).
#[derive(Clone)]
pub struct DatabaseServer {
    admin_url: SecretString,
    pg_dump: PathBuf,
    connect_timeout: Duration,
}

impl fmt::Debug for DatabaseServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseServer")
            .field("admin_url", &"[REDACTED]")
            .field("pg_dump", &self.pg_dump)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl DatabaseServer {
    /// A server administered through `admin_url`
    /// (`postgres://admin:secret@host:5432/postgres`), running `pg_dump` from
    /// `PATH`, giving up on a connection after 10 s.
    pub fn new(admin_url: SecretString) -> Self {
        Self {
            admin_url,
            pg_dump: PathBuf::from("pg_dump"),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Uses this `pg_dump` (it must be at least the server's major version).
    #[must_use]
    pub fn with_pg_dump(mut self, path: impl Into<PathBuf>) -> Self {
        self.pg_dump = path.into();
        self
    }

    /// Gives up connecting after `timeout` (when the URL sets no
    /// `connect_timeout` of its own).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn config(&self) -> Result<Config, TenantDbError> {
        let mut config = Config::from_str(self.admin_url.expose_secret())
            .map_err(|e| TenantDbError::Invalid(format!("the admin URL does not parse: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        Ok(config)
    }
}
