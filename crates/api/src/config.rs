//! Configuration: flags, then environment variables (`TENANTRY_*`,
//! `DATABASE_URL`), then an optional TOML file (`--config` /
//! `TENANTRY_CONFIG`), then built-in defaults — the first that sets a value wins.
//!
//! The TOML file's keys are the flags' names in snake_case (`listen`,
//! `database_url`, `db_pool_size`…); an unknown key is an error.
//! `tenantry --help` lists every setting with its variable.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use secrecy::SecretString;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings shared by every subcommand (flags are global).
#[derive(Clone, Args)]
pub struct SettingsArgs {
    /// PostgreSQL URL, e.g. postgres://tenantry:PASSWORD@db:5432/tenantry (a secret: never logged).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub database_url: Option<String>,

    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "TENANTRY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,tenantry_api=debug`).
    #[arg(long, env = "TENANTRY_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Log format.
    #[arg(
        long,
        env = "TENANTRY_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Most database connections held open by this process.
    #[arg(long, env = "TENANTRY_DB_POOL_SIZE", default_value_t = 16, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,

    /// Seconds to wait for a database connection before answering 503.
    #[arg(long, env = "TENANTRY_DB_TIMEOUT_SECS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub db_timeout_secs: u64,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "TENANTRY_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_timeout_secs: u64,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "TENANTRY_HTTP_WORKERS", global = true)]
    pub http_workers: Option<usize>,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "TENANTRY_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    pub max_body_bytes: usize,
}

impl fmt::Debug for SettingsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Settings::from(self.clone()), f)
    }
}

/// Validated settings, secrets wrapped.
#[derive(Clone)]
pub struct Settings {
    /// PostgreSQL URL (secret), when configured.
    pub database_url: Option<SecretString>,
    /// Listen address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Log filter.
    pub log: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Pool size.
    pub db_pool_size: u32,
    /// Pool wait / connect timeout.
    pub db_timeout: Duration,
    /// Graceful shutdown timeout.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads.
    pub http_workers: Option<usize>,
    /// Request body limit, bytes.
    pub max_body_bytes: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[REDACTED]"),
            )
            .field("listen", &self.listen)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeout", &self.db_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("http_workers", &self.http_workers)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl From<SettingsArgs> for Settings {
    fn from(a: SettingsArgs) -> Self {
        Self {
            database_url: a
                .database_url
                .filter(|u| !u.is_empty())
                .map(SecretString::from),
            listen: a.listen,
            log: a.log,
            log_format: a.log_format,
            db_pool_size: a.db_pool_size,
            db_timeout: Duration::from_secs(a.db_timeout_secs),
            shutdown_timeout: Duration::from_secs(a.shutdown_timeout_secs),
            http_workers: a.http_workers,
            max_body_bytes: a.max_body_bytes,
        }
    }
}

impl Settings {
    /// The database URL, or an error telling how to provide one.
    ///
    /// # Errors
    /// When `DATABASE_URL` is not set.
    pub fn require_database_url(&self) -> anyhow::Result<&SecretString> {
        self.database_url.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "DATABASE_URL is not set: pass --database-url, set DATABASE_URL, put database_url \
                 in the --config file, or use `make run`, which starts a private PostgreSQL"
            )
        })
    }

    /// Settings for tests and embedding: defaults, listening on a free port.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            database_url: Some(SecretString::from(database_url.to_owned())),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: "warn".into(),
            log_format: LogFormat::Text,
            db_pool_size: 4,
            db_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
            http_workers: Some(1),
            max_body_bytes: 256 * 1024,
        }
    }
}

/// Reads a TOML config file into `(key, value)` pairs for the flags' defaults.
///
/// # Errors
/// When the file cannot be read or is not a flat TOML table of scalars.
pub fn read_config_file(path: &PathBuf) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    // Only the message: the error's excerpt of the file could show a secret.
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))?;
    table
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => anyhow::bail!(
                    "config file {}: {k} must be a string, integer or boolean (got {})",
                    path.display(),
                    other.type_str()
                ),
            };
            Ok((k, value))
        })
        .collect()
}
