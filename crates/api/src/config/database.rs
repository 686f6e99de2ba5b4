//! The control plane's own PostgreSQL: its URL (a secret) and the
//! connection pool every request and job draws from.

use clap::Args;
use secrecy::SecretString;

use super::Settings;

/// Flags of the control plane's database.
#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://tenantry:PASSWORD@db:5432/tenantry (a secret: never logged).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    #[arg(display_order = 1)]
    pub database_url: Option<String>,

    /// Most database connections held open by this process.
    #[arg(long, env = "TENANTRY_DB_POOL_SIZE", default_value_t = 16, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    #[arg(display_order = 5)]
    pub db_pool_size: u32,

    /// Seconds to wait for a database connection before answering 503.
    #[arg(long, env = "TENANTRY_DB_TIMEOUT_SECS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    #[arg(display_order = 6)]
    pub db_timeout_secs: u64,
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

    /// A one-connection pool, for CLI commands.
    ///
    /// # Errors
    /// When `DATABASE_URL` is missing.
    pub fn cli_pool(&self) -> anyhow::Result<tenantry_store::Pool> {
        Ok(tenantry_store::Pool::new(
            self.require_database_url()?,
            tenantry_store::PoolSettings {
                max_size: 1,
                timeout: self.db_timeout,
            },
        )?)
    }
}
