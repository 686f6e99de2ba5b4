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

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tenantry_domain::TenantSlug;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

/// A tenant's database name, which is also its role name: `t_` followed by
/// the tenant slug with `-` turned into `_` (`acme-corp` → `t_acme_corp`).
///
/// At most 63 bytes (PostgreSQL's `NAMEDATALEN - 1`) of `[a-z0-9_]`, starting
/// with `t_`: the prefix keeps tenant objects apart from the server's own
/// (`postgres`, `pg_*` roles), so dropping a [`TenantDbName`] can never drop
/// anything else. Safe to splice into SQL once quoted as an identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantDbName(String);

/// Why a string is not a [`TenantDbName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantDbNameError {
    /// Longer than 63 bytes (PostgreSQL would silently truncate it).
    #[error("must be at most 63 bytes (got {0})")]
    TooLong(usize),
    /// Does not start with `t_` followed by at least one character.
    #[error("must start with \"t_\" and name something after it")]
    Prefix,
    /// A character outside `[a-z0-9_]`.
    #[error("may contain only lowercase letters, digits and '_' (found {0:?})")]
    Character(char),
}

impl TenantDbName {
    /// Longest name PostgreSQL keeps whole (`NAMEDATALEN - 1`), in bytes.
    pub const MAX_LEN: usize = 63;
    /// Prefix of every tenant database and role.
    pub const PREFIX: &'static str = "t_";
    /// Slugs up to this length map directly (`t_` + 60 = 62 bytes); longer
    /// ones get a hash suffix and exactly 63 bytes, so the two forms never
    /// collide.
    const DIRECT_MAX: usize = 60;

    /// Validates a stored name.
    ///
    /// # Errors
    /// [`TenantDbNameError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, TenantDbNameError> {
        if s.len() > Self::MAX_LEN {
            return Err(TenantDbNameError::TooLong(s.len()));
        }
        if s.len() <= Self::PREFIX.len() || !s.starts_with(Self::PREFIX) {
            return Err(TenantDbNameError::Prefix);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(TenantDbNameError::Character(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name for a tenant: `t_<slug, '-' → '_'>`. A slug longer than 60
    /// characters keeps its first 48, then `_` and 12 hex digits of the
    /// SHA-256 of the whole slug (63 bytes in all), so distinct slugs give
    /// distinct names.
    pub fn from_slug(slug: &TenantSlug) -> Self {
        let s = slug.as_str();
        let underscored = |t: &str| t.replace('-', "_");
        if s.len() <= Self::DIRECT_MAX {
            return Self(format!("{}{}", Self::PREFIX, underscored(s)));
        }
        let digest = Sha256::digest(s.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        // Slugs are ASCII, so byte 48 is a character boundary.
        let head = s.get(..48).unwrap_or(s);
        Self(format!("{}{}_{hex}", Self::PREFIX, underscored(head)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted as an SQL identifier.
    fn ident(&self) -> String {
        escape_identifier(&self.0)
    }
}

impl AsRef<str> for TenantDbName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantDbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantDbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantDbName({:?})", self.0)
    }
}

impl FromStr for TenantDbName {
    type Err = TenantDbNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A new tenant database password: 32 URL-safe characters (24 random bytes
/// from the OS, base64url), to be stored sealed with the
/// [`Keyring`](tenantry_store::crypto::Keyring) before
/// [`DatabaseServer::ensure_database`] runs.
pub fn generate_password() -> SecretString {
    SecretString::from(tenantry_store::crypto::random_token(24))
}

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

    fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
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
    fn from_pg(action: &'static str, e: &tokio_postgres::Error) -> Self {
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

    async fn connect(&self) -> Result<Client, TenantDbError> {
        let (client, connection) = self
            .config()?
            .connect(NoTls)
            .await
            .map_err(|e| TenantDbError::from_pg("connect as the admin role", &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "tenant database admin connection closed");
            }
        });
        // Waits for locks (ours, or a DROP DATABASE's) end as a transient error.
        exec(&client, "set lock_timeout", "SET lock_timeout = '30s'").await?;
        Ok(client)
    }

    /// Creates role `name` (`LOGIN`, no other privilege) with `password` and
    /// database `name` owned by it, whichever is missing; a role that exists
    /// gets `password` again (so a retried step converges to the password
    /// the caller stored) and a database that exists is given back to its
    /// role. `CONNECT` on the database is revoked from `PUBLIC`, so other
    /// tenants' roles cannot connect to it.
    ///
    /// # Errors
    /// [`TenantDbError`]: `Invalid` for an empty password; the server's
    /// errors sorted by [`TenantDbError::is_transient`].
    pub async fn ensure_database(
        &self,
        name: &TenantDbName,
        password: &SecretString,
    ) -> Result<(), TenantDbError> {
        if password.expose_secret().is_empty() {
            return Err(TenantDbError::Invalid(
                "a tenant database password must not be empty".into(),
            ));
        }
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = ensure_locked(&client, name, password).await;
        unlock(&client, name).await;
        result
    }

    /// Writes `pg_dump -Fc` of database `name` to
    /// `backup_dir/<name>-<UTC timestamp>.dump` (e.g.
    /// `t_acme-20261121T143000.123Z.dump`, created with the directory if need
    /// be) and returns that path. The dump is written to a `.partial` file,
    /// synced, then renamed, so a file with the final name is always a
    /// complete dump; a failed dump leaves no file.
    ///
    /// `pg_dump` connects as the admin role, its password in `PGPASSWORD`.
    ///
    /// # Errors
    /// [`TenantDbError::NoSuchDatabase`] when there is nothing to dump,
    /// [`TenantDbError::Dump`] when `pg_dump` fails, [`TenantDbError::Io`]
    /// for the directory or file, and connection errors.
    pub async fn backup(
        &self,
        name: &TenantDbName,
        backup_dir: &Path,
    ) -> Result<PathBuf, TenantDbError> {
        if !self.exists(name).await? {
            return Err(TenantDbError::NoSuchDatabase(name.clone()));
        }
        tokio::fs::create_dir_all(backup_dir)
            .await
            .map_err(TenantDbError::io(format!(
                "create the backup directory {}",
                backup_dir.display()
            )))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let path = backup_dir.join(format!("{name}-{stamp}.dump"));
        let partial = backup_dir.join(format!("{name}-{stamp}.dump.partial"));

        let result = self.run_pg_dump(name, &partial).await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        let synced = async {
            let file = tokio::fs::File::open(&partial).await?;
            file.sync_all().await?;
            tokio::fs::rename(&partial, &path).await?;
            // Make the rename itself durable.
            tokio::fs::File::open(backup_dir).await?.sync_all().await
        };
        if let Err(e) = synced.await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(TenantDbError::Io {
                action: format!("store the dump at {}", path.display()),
                source: e,
            });
        }
        Ok(path)
    }

    async fn run_pg_dump(&self, name: &TenantDbName, out: &Path) -> Result<(), TenantDbError> {
        let config = self.config()?;
        let mut cmd = tokio::process::Command::new(&self.pg_dump);
        cmd.arg("--format=custom")
            .arg("--no-password")
            .arg("--file")
            .arg(out)
            .arg("--dbname")
            .arg(name.as_str());
        match config.get_hosts().first() {
            Some(Host::Tcp(h)) => {
                cmd.arg("--host").arg(h);
            }
            Some(Host::Unix(p)) => {
                cmd.arg("--host").arg(p);
            }
            None => {}
        }
        if let Some(port) = config.get_ports().first() {
            cmd.arg("--port").arg(port.to_string());
        }
        if let Some(user) = config.get_user() {
            cmd.arg("--username").arg(user);
        }
        // Only the admin's password, and only through the environment.
        cmd.env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE")
            .env(
                "PGCONNECT_TIMEOUT",
                self.connect_timeout.as_secs().max(2).to_string(),
            );
        if let Some(pw) = config.get_password() {
            let pw = String::from_utf8(pw.to_vec()).map_err(|_| {
                TenantDbError::Invalid("the admin password is not valid UTF-8".into())
            })?;
            cmd.env("PGPASSWORD", pw);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = cmd
            .output()
            .await
            .map_err(TenantDbError::io(format!("run {}", self.pg_dump.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let transient = [
            "could not connect",
            "connection to server",
            "server closed the connection",
            "Connection refused",
            "timeout expired",
            "the database system is",
            "too many clients",
        ]
        .iter()
        .any(|m| stderr.contains(m));
        Err(TenantDbError::Dump {
            name: name.clone(),
            status: output.status.to_string(),
            stderr,
            transient,
        })
    }

    /// Ends every session of role `name` and on database `name`, then drops
    /// the database (`WITH (FORCE)`) and the role, each `IF EXISTS`: a no-op
    /// for what is already gone, so it may be re-run. The role is set
    /// `NOLOGIN` first so it cannot reconnect in between. Takes no backup:
    /// see [`DatabaseServer::backup_and_drop`].
    ///
    /// # Errors
    /// Connection errors; [`TenantDbError::Refused`] with SQLSTATE 2BP01 when
    /// the role still owns objects in another database.
    pub async fn drop_database(&self, name: &TenantDbName) -> Result<(), TenantDbError> {
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = drop_locked(&client, name).await;
        unlock(&client, name).await;
        result
    }

    /// Suspends (`login = false`) or resumes (`true`) a tenant of a shared
    /// instance at the database: `ALTER ROLE … NOLOGIN`, ending its open
    /// sessions, or `LOGIN` again. Idempotent; the data is untouched.
    ///
    /// # Errors
    /// [`TenantDbError::NoSuchRole`] when the role does not exist; connection
    /// errors.
    pub async fn set_login(&self, name: &TenantDbName, login: bool) -> Result<(), TenantDbError> {
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = set_login_locked(&client, name, login).await;
        unlock(&client, name).await;
        result
    }

    /// Deprovisioning in one re-runnable step: when database `name` exists,
    /// a final [`backup`](Self::backup) into `backup_dir` and then
    /// [`drop_database`](Self::drop_database), returning the dump's path;
    /// when it is already gone (a re-run after the drop), only the drop (it
    /// removes a role left behind) and `None`. Nothing is dropped when the
    /// backup fails.
    ///
    /// # Errors
    /// As [`backup`](Self::backup) and [`drop_database`](Self::drop_database).
    pub async fn backup_and_drop(
        &self,
        name: &TenantDbName,
        backup_dir: &Path,
    ) -> Result<Option<PathBuf>, TenantDbError> {
        let dump = match self.backup(name, backup_dir).await {
            Ok(path) => Some(path),
            Err(TenantDbError::NoSuchDatabase(_)) => None,
            Err(e) => return Err(e),
        };
        self.drop_database(name).await?;
        Ok(dump)
    }

    /// Whether database `name` exists.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn exists(&self, name: &TenantDbName) -> Result<bool, TenantDbError> {
        let client = self.connect().await?;
        Ok(database_owner(&client, name).await?.is_some())
    }
}

/// Advisory-lock class of tenant database steps ("tdb1").
const LOCK_CLASS: i32 = 0x7464_6231;

/// Serialises the steps on one tenant name across replicas and workers: a
/// session-level advisory lock (released when the connection closes, also
/// when the process dies), taken under the session's `lock_timeout`.
async fn lock(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &name.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| TenantDbError::from_pg("lock the tenant name", &e))
}

/// Releases [`lock`] (best effort: closing the connection releases it too,
/// but a caller may keep the runtime from closing it for a while).
async fn unlock(client: &Client, name: &TenantDbName) {
    if let Err(e) = client
        .execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&LOCK_CLASS, &name.as_str()],
        )
        .await
    {
        tracing::debug!(error = %e, %name, "releasing the tenant name lock failed");
    }
}

/// Whether `e` says the object exists: `code`, or the unique violation on
/// the catalog that two concurrent `CREATE`s can raise instead.
fn is_duplicate(e: &tokio_postgres::Error, code: &SqlState) -> bool {
    e.code() == Some(code) || e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// [`DatabaseServer::ensure_database`] under the name's lock.
async fn ensure_locked(
    client: &Client,
    name: &TenantDbName,
    password: &SecretString,
) -> Result<(), TenantDbError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    let role = name.ident();
    // Spelled out so a role someone widened converges back to these.
    let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    let alter = format!(
        "ALTER ROLE {role} WITH {attributes} PASSWORD {}",
        escape_literal(&verifier)
    );
    if role_exists(client, name).await? {
        exec(client, "reset the tenant role's password", &alter).await?;
    } else {
        let create = format!(
            "CREATE ROLE {role} WITH {attributes} PASSWORD {}",
            escape_literal(&verifier)
        );
        match client.batch_execute(&create).await {
            Ok(()) => {}
            // Created meanwhile by a concurrent run of the same step: 42710,
            // or 23505 when both inserted into pg_authid at once.
            Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_OBJECT) => {
                exec(client, "reset the tenant role's password", &alter).await?;
            }
            Err(e) => return Err(TenantDbError::from_pg("create the tenant role", &e)),
        }
    }

    let owner = database_owner(client, name).await?;
    match owner {
        Some(owner) if owner == name.as_str() => {}
        Some(_) => {
            exec(
                client,
                "give the tenant database to its role",
                &format!("ALTER DATABASE {role} OWNER TO {role}"),
            )
            .await?;
        }
        None => {
            let create = format!("CREATE DATABASE {role} OWNER {role}");
            match client.batch_execute(&create).await {
                Ok(()) => {}
                Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_DATABASE) => {
                    exec(
                        client,
                        "give the tenant database to its role",
                        &format!("ALTER DATABASE {role} OWNER TO {role}"),
                    )
                    .await?;
                }
                Err(e) => {
                    return Err(TenantDbError::from_pg("create the tenant database", &e));
                }
            }
        }
    }
    exec(
        client,
        "revoke PUBLIC's access to the tenant database",
        &format!("REVOKE ALL ON DATABASE {role} FROM PUBLIC"),
    )
    .await
}

/// [`DatabaseServer::set_login`] under the name's lock.
async fn set_login_locked(
    client: &Client,
    name: &TenantDbName,
    login: bool,
) -> Result<(), TenantDbError> {
    if !role_exists(client, name).await? {
        return Err(TenantDbError::NoSuchRole(name.clone()));
    }
    let role = name.ident();
    if login {
        return exec(
            client,
            "let the tenant role log in",
            &format!("ALTER ROLE {role} LOGIN"),
        )
        .await;
    }
    exec(
        client,
        "lock the tenant role out",
        &format!("ALTER ROLE {role} NOLOGIN"),
    )
    .await?;
    end_sessions(client, name).await
}

/// Ends every session of role `name` and every session on database `name`.
async fn end_sessions(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE (datname = $1 OR usename = $1) AND pid <> pg_backend_pid()",
            &[&name.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| TenantDbError::from_pg("end the tenant's sessions", &e))
}

/// [`DatabaseServer::drop_database`] under the name's lock.
async fn drop_locked(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    let role = name.ident();
    if role_exists(client, name).await? {
        match client
            .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
            .await
        {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {}
            Err(e) => return Err(TenantDbError::from_pg("lock the tenant role out", &e)),
        }
    }
    end_sessions(client, name).await?;
    exec(
        client,
        "drop the tenant database",
        &format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)"),
    )
    .await?;
    exec(
        client,
        "drop the tenant role",
        &format!("DROP ROLE IF EXISTS {role}"),
    )
    .await
}

async fn exec(client: &Client, action: &'static str, sql: &str) -> Result<(), TenantDbError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| TenantDbError::from_pg(action, &e))
}

async fn role_exists(client: &Client, name: &TenantDbName) -> Result<bool, TenantDbError> {
    client
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&name.as_str()],
        )
        .await
        .map(|row| row.is_some())
        .map_err(|e| TenantDbError::from_pg("look up the tenant role", &e))
}

/// The owner's name of database `name`, `None` when there is no such database.
async fn database_owner(
    client: &Client,
    name: &TenantDbName,
) -> Result<Option<String>, TenantDbError> {
    client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&name.as_str()],
        )
        .await
        .map(|row| row.map(|r| r.get(0)))
        .map_err(|e| TenantDbError::from_pg("look up the tenant database", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slug(s: &str) -> TenantSlug {
        TenantSlug::parse(s).unwrap()
    }

    #[test]
    fn names_come_from_slugs() {
        assert_eq!(
            TenantDbName::from_slug(&slug("acme-corp")).as_str(),
            "t_acme_corp"
        );
        let sixty = "a".repeat(60);
        assert_eq!(
            TenantDbName::from_slug(&slug(&sixty)).as_str(),
            format!("t_{sixty}")
        );
        let long = format!("{}-x", "b".repeat(61));
        let name = TenantDbName::from_slug(&slug(&long));
        assert_eq!(name.as_str().len(), 63);
        assert!(name.as_str().starts_with(&format!("t_{}_", "b".repeat(48))));
        assert_eq!(TenantDbName::parse(name.as_str()), Ok(name));
    }

    #[test]
    fn names_are_validated() {
        assert!(TenantDbName::parse("t_acme_1").is_ok());
        assert_eq!(TenantDbName::parse("t_"), Err(TenantDbNameError::Prefix));
        assert_eq!(
            TenantDbName::parse("postgres"),
            Err(TenantDbNameError::Prefix)
        );
        assert_eq!(
            TenantDbName::parse("pg_t_x"),
            Err(TenantDbNameError::Prefix)
        );
        assert_eq!(
            TenantDbName::parse("t_Acme"),
            Err(TenantDbNameError::Character('A'))
        );
        assert_eq!(
            TenantDbName::parse("t_a-b"),
            Err(TenantDbNameError::Character('-'))
        );
        assert_eq!(
            TenantDbName::parse("t_a\"; DROP ROLE postgres; --"),
            Err(TenantDbNameError::Character('"'))
        );
        assert_eq!(
            TenantDbName::parse(&format!("t_{}", "a".repeat(62))),
            Err(TenantDbNameError::TooLong(64))
        );
        assert_eq!("t_x".parse::<TenantDbName>().unwrap().to_string(), "t_x");
    }

    #[test]
    fn passwords_are_32_url_safe_characters() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 32);
        assert!(
            a.expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let server = DatabaseServer::new(SecretString::from(
            "postgres://admin:hunter2@db:5432/postgres".to_owned(),
        ));
        assert!(!format!("{server:?}").contains("hunter2"));
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let name = TenantDbName::parse("t_x").unwrap();
        assert!(
            TenantDbError::Unavailable {
                action: "a",
                reason: "r".into()
            }
            .is_transient()
        );
        assert!(
            TenantDbError::Busy {
                action: "a",
                reason: "r".into()
            }
            .is_transient()
        );
        assert!(
            !TenantDbError::Refused {
                action: "a",
                code: "42501".into(),
                reason: "r".into()
            }
            .is_transient()
        );
        assert!(!TenantDbError::NoSuchDatabase(name.clone()).is_transient());
        assert!(!TenantDbError::Invalid("x".into()).is_transient());
        let dump = |transient| TenantDbError::Dump {
            name: name.clone(),
            status: "exit status: 1".into(),
            stderr: String::new(),
            transient,
        };
        assert!(dump(true).is_transient() && !dump(false).is_transient());
    }

    proptest! {
        #[test]
        fn every_tenant_slug_gives_a_valid_distinct_name(
            a in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
            b in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        ) {
            let (Ok(sa), Ok(sb)) = (TenantSlug::parse(&a), TenantSlug::parse(&b)) else {
                return Ok(());
            };
            let (na, nb) = (TenantDbName::from_slug(&sa), TenantDbName::from_slug(&sb));
            prop_assert!(na.as_str().len() <= TenantDbName::MAX_LEN);
            prop_assert_eq!(TenantDbName::parse(na.as_str()), Ok(na.clone()));
            prop_assert_eq!(a == b, na == nb);
        }

        #[test]
        fn long_slugs_sharing_a_prefix_still_differ(tail_a in "[a-z0-9]{13,15}", tail_b in "[a-z0-9]{13,15}") {
            let head = "c".repeat(48);
            let (a, b) = (format!("{head}{tail_a}"), format!("{head}{tail_b}"));
            let (na, nb) = (
                TenantDbName::from_slug(&slug(&a)),
                TenantDbName::from_slug(&slug(&b)),
            );
            prop_assert_eq!(na.as_str().len(), 63);
            prop_assert_eq!(a == b, na == nb);
        }
    }
}
