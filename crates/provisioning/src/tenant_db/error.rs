//! Why a tenant database operation failed, sorted into transient (a job
//! retries with back-off) and permanent (an operator acts) by SQLSTATE
//! class.

use tokio_postgres::error::SqlState;

use super::TenantDbName;

/// Why a tenant database operation failed. [`TenantDbError::is_transient`]
/// tells a job whether to retry with back-off or give up.
#[derive(Debug, thiserror::Error)]
pub enum TenantDbError {
    /// A setting or argument is unusable (the admin URL does not parse, an
    /// empty password). Permanent.
    #[error("{0}")]
    Invalid(String),
    /// The server cannot be reached or went away: connection refused or
    /// timed out, connection lost, shutting down, too many connections.
    /// Transient.
    #[error("the database server is unavailable while trying to {action}: {reason}")]
    Unavailable {
        /// What was being done.
        action: &'static str,
        /// The cause chain.
        reason: String,
    },
    /// The server turned a statement down for now: a lock, a serialization
    /// failure or deadlock, an object in use (`CREATE DATABASE` while its
    /// template is in use). Transient.
    #[error("the database server is busy, could not {action}: {reason}")]
    Busy {
        /// What was being done.
        action: &'static str,
        /// The server's message.
        reason: String,
    },
    /// The server refused: permission denied, authentication failed, the
    /// role still owns objects elsewhere… Permanent until an operator acts.
    #[error("the database server refused to {action}: {reason} (SQLSTATE {code})")]
    Refused {
        /// What was being done.
        action: &'static str,
        /// The SQLSTATE code.
        code: String,
        /// The server's message.
        reason: String,
    },
    /// A backup of a database that does not exist. Permanent.
    #[error("there is no database {0}")]
    NoSuchDatabase(TenantDbName),
    /// Suspending or resuming a role that does not exist. Permanent.
    #[error("there is no role {0}")]
    NoSuchRole(TenantDbName),
    /// `pg_dump` exited with an error; `transient` when its message says it
    /// could not reach the server.
    #[error("pg_dump of {name} failed ({status}): {stderr}")]
    Dump {
        /// The database.
        name: TenantDbName,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
        /// Whether it looked like a connection problem.
        transient: bool,
    },
    /// A local I/O error: the backup directory, running `pg_dump`. Permanent.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl tenantry_store::worker::Retryable for TenantDbError {
    fn is_transient(&self) -> bool {
        TenantDbError::is_transient(self)
    }
}

impl TenantDbError {
    /// Whether retrying later may succeed (a job backs off and retries these;
    /// the others need an operator).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Busy { .. } => true,
            Self::Dump { transient, .. } => *transient,
            Self::Invalid(_)
            | Self::Refused { .. }
            | Self::NoSuchDatabase(_)
            | Self::NoSuchRole(_)
            | Self::Io { .. } => false,
        }
    }

    pub(super) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io {
            action: action.into(),
            source,
        }
    }

    /// Sorts a driver error into transient and permanent by SQLSTATE class
    /// (PostgreSQL appendix A): 08 connection, 53 resources, 57P0x shutdown
    /// and 57014 cancel/timeout are unavailability; 40001/40P01 (retry the
    /// transaction), 55006 (object in use) and 55P03 (lock not available)
    /// are busy, as is XX000 "tuple concurrently updated"; every other code
    /// is a refusal. An error without SQLSTATE
    /// comes from the socket (refused, reset, timed out, closed): unavailable.
    pub(super) fn from_pg(action: &'static str, e: &tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return Self::Unavailable {
                action,
                reason: chain(e),
            };
        };
        let code = db.code().code();
        let reason = db.message().to_owned();
        let busy = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::OBJECT_IN_USE,
            SqlState::LOCK_NOT_AVAILABLE,
        ];
        if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P0")
            || *db.code() == SqlState::QUERY_CANCELED
        {
            Self::Unavailable { action, reason }
        } else if busy.contains(db.code())
            // Two sessions changing one catalog row (GRANT, ALTER ROLE) at once.
            || (*db.code() == SqlState::INTERNAL_ERROR && reason.contains("concurrently updated"))
        {
            Self::Busy { action, reason }
        } else {
            Self::Refused {
                action,
                code: code.to_owned(),
                reason,
            }
        }
    }
}

/// `e` and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}
