//! Configuration: flags, then environment variables (`TENANTRY_*`,
//! `DATABASE_URL`), then an optional TOML file (`--config` /
//! `TENANTRY_CONFIG`), then built-in defaults — the first that sets a value wins.
//!
//! The TOML file's keys are the flags' names in snake_case (`listen`,
//! `database_url`, `db_pool_size`…); an unknown key is an error.
//! `tenantry --help` lists every setting with its variable.
//!
//! One module per area, each with its flags (a clap `Args` struct, flattened
//! into [`SettingsArgs`]) and what they become once validated:
//!
//! - `database`: the control plane's PostgreSQL, its URL and pool;
//! - `http`: the HTTP server: listen address, public URL, workers, limits;
//! - `logging`: the log filter and format;
//! - `auth`: identity and access ([`AuthSettings`]);
//! - `signup`: signups and invitations;
//! - `billing`: the billing engine (`tenantry_billing::EngineSettings`);
//! - `jobs`: the job workers ([`JobSettings`]);
//! - `provisioning`: where tenants run ([`ProvisioningSettings`]);
//! - `payments`: how customers pay ([`Payments`]);
//! - `routing`: the reverse proxy in front of tenants ([`RoutingSettings`]);
//! - `domains`: custom domains' DNS verification ([`DomainSettings`]).
//!
//! Every flag has a `display_order`, its place in `--help` (`--config` is 0),
//! so the list keeps one order whichever file declares a flag; a new flag
//! takes the next number, or a place in the list and the rest move down.

mod auth;
mod billing;
mod database;
mod domains;
mod http;
mod jobs;
mod logging;
mod payments;
mod provisioning;
mod routing;
mod signup;

pub use auth::{AuthSettings, parse_proxies, random_key_list};
pub use domains::DomainSettings;
pub use jobs::JobSettings;
pub use logging::LogFormat;
pub use payments::{Payments, stripe_accepts_currency};
pub use provisioning::ProvisioningSettings;
pub use routing::RoutingSettings;

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use secrecy::SecretString;

/// The parser of every boolean setting: what people type, in any case —
/// `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off` (also `y`/`n`, `t`/`f`),
/// from a flag, its variable or the config file alike.
pub(crate) fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// Settings shared by every subcommand (flags are global).
#[derive(Clone, Args)]
pub struct SettingsArgs {
    /// The control plane's database.
    #[command(flatten)]
    database: database::DatabaseArgs,

    /// The HTTP server.
    #[command(flatten)]
    http: http::HttpArgs,

    /// Logs.
    #[command(flatten)]
    logging: logging::LogArgs,

    /// Identity and access.
    #[command(flatten)]
    auth: auth::AuthArgs,

    /// Signups and invitations.
    #[command(flatten)]
    signup: signup::SignupArgs,

    /// The billing engine.
    #[command(flatten)]
    billing: billing::BillingArgs,

    /// The job workers.
    #[command(flatten)]
    jobs: jobs::JobArgs,

    /// Provisioning.
    #[command(flatten)]
    provisioning: provisioning::ProvisioningArgs,

    /// Payments.
    #[command(flatten)]
    payments: payments::PaymentArgs,

    /// Routing.
    #[command(flatten)]
    routing: routing::RoutingArgs,

    /// Custom domains.
    #[command(flatten)]
    domains: domains::DomainArgs,
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
    /// The bearer token `GET /metrics` requires (`None`: open).
    pub metrics_token: Option<SecretString>,
    /// Identity and access settings.
    pub auth: AuthSettings,
    /// `TENANTRY_TRUSTED_PROXIES` as given, validated at start-up.
    pub raw_trusted_proxies: String,
    /// Public URL of the API.
    pub public_url: String,
    /// Signups per IP per minute.
    pub signup_rate_per_minute: u32,
    /// Invitation lifetime.
    pub invitation_ttl: Duration,
    /// Billing engine settings.
    pub billing: tenantry_billing::EngineSettings,
    /// Seconds between processor runs in `serve` (0: none).
    pub billing_interval: Duration,
    /// Job workers (count, timings).
    pub jobs: JobSettings,
    /// How customers pay.
    pub payments: Payments,
    /// Seconds between Stripe reconciliations in `serve` (0: none).
    pub stripe_reconcile_interval: Duration,
    /// Provisioning settings.
    pub provisioning: ProvisioningSettings,
    /// The reverse proxy in front of tenants.
    pub routing: RoutingSettings,
    /// Custom domains' DNS verification.
    pub domains: DomainSettings,
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
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("auth", &self.auth)
            .field("jobs", &self.jobs)
            .field("provisioning", &self.provisioning)
            .field("payments", &self.payments)
            .field("routing", &self.routing)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl From<SettingsArgs> for Settings {
    fn from(a: SettingsArgs) -> Self {
        let payments = payments::payments(&a.payments, &a.http);
        let public_url = a
            .http
            .public_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("http://{}", a.http.listen))
            .trim_end_matches('/')
            .to_owned();
        Self {
            routing: a.routing.into_settings(&public_url),
            domains: a.domains.into_settings(),
            database_url: a
                .database
                .database_url
                .filter(|u| !u.is_empty())
                .map(SecretString::from),
            listen: a.http.listen,
            log: a.logging.log,
            log_format: a.logging.log_format,
            db_pool_size: a.database.db_pool_size,
            db_timeout: Duration::from_secs(a.database.db_timeout_secs),
            shutdown_timeout: Duration::from_secs(a.http.shutdown_timeout_secs),
            http_workers: a.http.http_workers,
            max_body_bytes: a.http.max_body_bytes,
            metrics_token: a
                .http
                .metrics_token
                .clone()
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            raw_trusted_proxies: a.auth.trusted_proxies.clone(),
            public_url,
            signup_rate_per_minute: a.signup.signup_rate_per_minute,
            invitation_ttl: Duration::from_secs(u64::from(a.signup.invitation_ttl_hours) * 3600),
            // Read before `a.billing` moves into the engine's settings.
            billing_interval: Duration::from_secs(a.billing.billing_interval_secs),
            billing: a.billing.into_settings(),
            provisioning: a.provisioning.into_settings(),
            payments,
            stripe_reconcile_interval: Duration::from_secs(
                a.payments.stripe_reconcile_interval_secs,
            ),
            jobs: a.jobs.into_settings(),
            auth: a.auth.into_settings(),
        }
    }
}

impl Settings {
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
            metrics_token: None,
            raw_trusted_proxies: String::new(),
            public_url: "http://tenantry.test".into(),
            signup_rate_per_minute: 1000,
            invitation_ttl: Duration::from_secs(72 * 3600),
            billing: tenantry_billing::EngineSettings {
                sandbox: true,
                ..tenantry_billing::EngineSettings::default()
            },
            billing_interval: Duration::ZERO,
            provisioning: ProvisioningSettings {
                base_domain: "tenantry.test".into(),
                tenant_database_urls: None,
                backup_dir: std::env::temp_dir().join("tenantry-test-backups"),
                task_poll: Duration::from_millis(20),
                tenant_database_host: None,
                stacks_dir: std::path::PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../docker/stacks"
                )),
                docker_ready_timeout: Duration::from_secs(60),
                // pve-sim's containers serve nothing unless a test asks.
                upstream_ready_timeout: Duration::ZERO,
            },
            payments: Payments::Sandbox,
            routing: RoutingSettings {
                caddy: None,
                reconcile_every: Duration::ZERO,
                traefik: tenantry_provisioning::routing::TraefikSettings {
                    entry_points: Vec::new(),
                    cert_resolver: None,
                    api_url: "http://tenantry.test".into(),
                },
            },
            stripe_reconcile_interval: Duration::ZERO,
            domains: DomainSettings::default(),
            jobs: JobSettings {
                workers: 0,
                poll_interval: Duration::from_secs(1),
                lease: Duration::from_secs(10),
                backoff_base: Duration::from_millis(50),
                node_check_interval: Duration::ZERO,
            },
            auth: AuthSettings {
                jwt_keys: Some(SecretString::from(random_key_list("test-jwt"))),
                secret_keys: Some(SecretString::from(random_key_list("test-seal"))),
                access_token_ttl: Duration::from_secs(900),
                refresh_token_ttl: Duration::from_secs(3600),
                insecure_cookies: false,
                // Cheap hashing keeps tests fast; production uses the OWASP defaults.
                argon2_memory_kib: 1024,
                argon2_iterations: 1,
                argon2_parallelism: 1,
                login_max_failures: 5,
                login_lock: Duration::from_secs(900),
                login_rate_per_minute: 1000,
                trusted_proxies: Vec::new(),
                cors_origins: vec!["https://app.example.test".into()],
                hsts: true,
                totp_issuer: "Tenantry".into(),
            },
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
