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

    /// JWT signing keys, `KID:BASE64` comma-separated (≥ 32 bytes each); the first signs, all verify (a secret).
    #[arg(
        long,
        env = "TENANTRY_JWT_KEYS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub jwt_keys: Option<String>,

    /// Keys sealing secrets at rest (TOTP seeds, node credentials), `KID:BASE64` of 32 bytes; the first seals (a secret).
    #[arg(
        long,
        env = "TENANTRY_SECRET_KEYS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub secret_keys: Option<String>,

    /// Lifetime of access tokens, seconds.
    #[arg(
        long,
        env = "TENANTRY_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 900,
        global = true
    )]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens (the login session), seconds.
    #[arg(long, env = "TENANTRY_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600, global = true)]
    pub refresh_token_ttl_secs: u64,

    /// Development only: send the refresh cookie without `Secure` (plain-HTTP hosts other than localhost).
    #[arg(
        long,
        env = "TENANTRY_INSECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub insecure_cookies: bool,

    /// argon2id memory cost, KiB (OWASP: 19456).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_MEMORY_KIB",
        default_value_t = 19_456,
        global = true
    )]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (OWASP: 2).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    pub argon2_iterations: u32,

    /// argon2id parallelism (OWASP: 1).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    pub argon2_parallelism: u32,

    /// Failed logins in a row that lock an account.
    #[arg(long, env = "TENANTRY_LOGIN_MAX_FAILURES", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub login_max_failures: u32,

    /// How long a locked account stays locked, seconds.
    #[arg(
        long,
        env = "TENANTRY_LOGIN_LOCK_SECS",
        default_value_t = 900,
        global = true
    )]
    pub login_lock_secs: u64,

    /// Login attempts allowed per client IP per minute (burst of the same size).
    #[arg(long, env = "TENANTRY_LOGIN_RATE_PER_MINUTE", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_rate_per_minute: u32,

    /// Proxies whose `X-Forwarded-For` is believed: comma-separated IPs or CIDRs.
    #[arg(
        long,
        env = "TENANTRY_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: String,

    /// Browser origins allowed by CORS (with credentials), comma-separated, e.g. https://app.example.com.
    #[arg(long, env = "TENANTRY_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,

    /// Send `Strict-Transport-Security` (when served over TLS, directly or behind a proxy).
    #[arg(long, env = "TENANTRY_HSTS", default_value_t = false, global = true)]
    pub hsts: bool,

    /// Issuer shown in authenticator apps.
    #[arg(
        long,
        env = "TENANTRY_TOTP_ISSUER",
        default_value = "Tenantry",
        global = true
    )]
    pub totp_issuer: String,

    /// The URL clients reach this API at (links in invitations, sandbox checkout pages) [default: http://LISTEN].
    #[arg(long, env = "TENANTRY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Signups allowed per client IP per minute (burst of the same size).
    #[arg(long, env = "TENANTRY_SIGNUP_RATE_PER_MINUTE", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub signup_rate_per_minute: u32,

    /// How long an invitation stays valid, hours.
    #[arg(long, env = "TENANTRY_INVITATION_TTL_HOURS", default_value_t = 72, global = true,
          value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub invitation_ttl_hours: u32,

    /// Proration convention: `stripe` (per second, Stripe's) or `thirty_day` (price / 30 per whole day).
    #[arg(long, env = "TENANTRY_PRORATION", default_value = "stripe", global = true,
          value_parser = ["stripe", "thirty_day"])]
    pub proration: String,

    /// Hours an upgrade may stay unpaid before it expires.
    #[arg(
        long,
        env = "TENANTRY_PAYMENT_WINDOW_HOURS",
        default_value_t = 24,
        global = true
    )]
    pub payment_window_hours: u32,

    /// Days a subscription may stay past due before its tenant is suspended.
    #[arg(
        long,
        env = "TENANTRY_DUNNING_GRACE_DAYS",
        default_value_t = 3,
        global = true
    )]
    pub dunning_grace_days: u32,

    /// Days past due before the subscription ends and the tenant is deprovisioned (after a final backup).
    #[arg(
        long,
        env = "TENANTRY_DUNNING_TERMINATION_DAYS",
        default_value_t = 14,
        global = true
    )]
    pub dunning_termination_days: u32,

    /// Seconds between billing processor runs inside `serve` (0: none; use `tenantry billing process-due`).
    #[arg(
        long,
        env = "TENANTRY_BILLING_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    pub billing_interval_secs: u64,

    /// Sandbox mode: admins may move the billing clock (`POST /v1/sandbox/clock`). Never in production.
    #[arg(long, env = "TENANTRY_SANDBOX", default_value_t = false, global = true)]
    pub sandbox: bool,

    /// Job worker tasks run by `serve` (0: none; run `tenantry worker` instead) and by `worker`.
    #[arg(long, env = "TENANTRY_WORKERS", default_value_t = 2, global = true)]
    pub workers: usize,

    /// Seconds between job-queue polls when no NOTIFY wakes the workers.
    #[arg(
        long,
        env = "TENANTRY_JOB_POLL_SECS",
        default_value_t = 5,
        global = true
    )]
    pub job_poll_secs: u64,

    /// Seconds without a heartbeat after which a running job is re-queued (its worker died); heartbeats go every third of it.
    #[arg(
        long,
        env = "TENANTRY_JOB_LEASE_SECS",
        default_value_t = 30,
        global = true
    )]
    pub job_lease_secs: u64,

    /// Tenants are served at `https://{slug}.{TENANTRY_BASE_DOMAIN}`.
    #[arg(
        long,
        env = "TENANTRY_BASE_DOMAIN",
        default_value = "tenantry.localhost",
        global = true
    )]
    pub base_domain: String,

    /// PostgreSQL servers for tenant databases (an admin URL each): `URL` for all products, or `default=URL,odoo=URL2` by product slug. Unset: the control plane's own server (DATABASE_URL).
    #[arg(
        long,
        env = "TENANTRY_TENANT_DATABASE_URLS",
        global = true,
        hide_env_values = true
    )]
    pub tenant_database_urls: Option<String>,

    /// Host name tenant apps reach the tenant database server at (`{{db_host}}`, `DATABASE_HOST`), e.g. the Docker bridge gateway 172.17.0.1; default: the host of its URL.
    #[arg(long, env = "TENANTRY_TENANT_DATABASE_HOST", global = true)]
    pub tenant_database_host: Option<String>,

    /// Seconds a Docker deploy waits for the app to answer HTTP on its port before it fails (and removes the container).
    #[arg(
        long,
        env = "TENANTRY_DOCKER_READY_TIMEOUT_SECS",
        default_value_t = 120,
        global = true
    )]
    pub docker_ready_timeout_secs: u64,

    /// Directory of compose stack templates (`<dir>/<stack>/docker-compose.yml`).
    #[arg(
        long,
        env = "TENANTRY_STACKS_DIR",
        default_value = "./docker/stacks",
        global = true
    )]
    pub stacks_dir: std::path::PathBuf,

    /// Milliseconds between polls of a running Proxmox task's status.
    #[arg(
        long,
        env = "TENANTRY_PROXMOX_TASK_POLL_MS",
        default_value_t = 1000,
        global = true
    )]
    pub proxmox_task_poll_ms: u64,

    /// Directory of final backups (`pg_dump`) taken before a tenant database is dropped.
    #[arg(
        long,
        env = "TENANTRY_BACKUP_DIR",
        default_value = "./var/backups",
        global = true
    )]
    pub backup_dir: std::path::PathBuf,

    /// Seconds between node health checks enqueued by `serve` (0: none).
    #[arg(
        long,
        env = "TENANTRY_NODE_CHECK_SECS",
        default_value_t = 60,
        global = true
    )]
    pub node_check_secs: u64,

    /// Seconds of back-off after a job's first failed attempt, doubling after each next one (at most one hour).
    #[arg(
        long,
        env = "TENANTRY_JOB_BACKOFF_SECS",
        default_value_t = 5,
        global = true
    )]
    pub job_backoff_secs: u64,

    /// Payments: `stripe`, `sandbox` (no money moves) or `disabled` (an operator marks payments) [default: stripe when a Stripe key is set, else sandbox].
    #[arg(long, env = "TENANTRY_PAYMENTS", global = true,
          value_parser = ["stripe", "sandbox", "disabled"])]
    pub payments: Option<String>,

    /// Stripe secret API key, `sk_…` (a secret).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_SECRET_KEY",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub stripe_secret_key: Option<String>,

    /// Stripe webhook signing secrets, `whsec_…`, comma-separated: any one verifies, for rotation (a secret).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_WEBHOOK_SECRETS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub stripe_webhook_secrets: Option<String>,

    /// Stripe API base URL (a local stand-in in tests and the demo).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_API_BASE",
        default_value = "https://api.stripe.com/",
        global = true
    )]
    pub stripe_api_base: String,

    /// Where Checkout sends a customer who paid (`{CHECKOUT_SESSION_ID}` is replaced by Stripe) [default: PUBLIC_URL/billing/success?session_id={CHECKOUT_SESSION_ID}].
    #[arg(long, env = "TENANTRY_STRIPE_SUCCESS_URL", global = true)]
    pub stripe_success_url: Option<String>,

    /// Where Checkout sends a customer who gave up [default: PUBLIC_URL/billing/canceled].
    #[arg(long, env = "TENANTRY_STRIPE_CANCEL_URL", global = true)]
    pub stripe_cancel_url: Option<String>,

    /// Seconds between Stripe reconciliations inside `serve` (a `stripe.reconcile` job; 0: none).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS",
        default_value_t = 900,
        global = true
    )]
    pub stripe_reconcile_interval_secs: u64,
}

/// How customers pay.
#[derive(Debug, Clone)]
pub enum Payments {
    /// No money moves: checkout URLs lead to a sandbox page.
    Sandbox,
    /// Payments are off: paid plans wait for an operator to mark payment.
    Disabled,
    /// Stripe.
    Stripe(tenantry_billing::stripe::StripeSettings),
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
}

/// Where tenants are served and their databases kept.
#[derive(Clone)]
pub struct ProvisioningSettings {
    /// `https://{slug}.{base_domain}`.
    pub base_domain: String,
    /// `TENANTRY_TENANT_DATABASE_URLS` as given (secret).
    pub tenant_database_urls: Option<SecretString>,
    /// Final backups go here.
    pub backup_dir: std::path::PathBuf,
    /// Proxmox task polling period.
    pub task_poll: Duration,
    /// Host apps reach the tenant database server at.
    pub tenant_database_host: Option<String>,
    /// Compose stack templates.
    pub stacks_dir: std::path::PathBuf,
    /// How long a Docker deploy waits for HTTP.
    pub docker_ready_timeout: Duration,
}

impl fmt::Debug for ProvisioningSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisioningSettings")
            .field("base_domain", &self.base_domain)
            .field(
                "tenant_database_urls",
                &self.tenant_database_urls.as_ref().map(|_| "[REDACTED]"),
            )
            .field("backup_dir", &self.backup_dir)
            .field("task_poll", &self.task_poll)
            .field("tenant_database_host", &self.tenant_database_host)
            .field("stacks_dir", &self.stacks_dir)
            .field("docker_ready_timeout", &self.docker_ready_timeout)
            .finish()
    }
}

/// How the job workers run.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Worker tasks (0: none in `serve`).
    pub workers: usize,
    /// Polling period.
    pub poll_interval: Duration,
    /// Lease: a job without a heartbeat for this long is re-queued.
    pub lease: Duration,
    /// Back-off after the first failed attempt.
    pub backoff_base: Duration,
    /// Period of the node health checks (zero: none).
    pub node_check_interval: Duration,
}

impl JobSettings {
    /// The worker configuration these settings describe, for `workers` tasks.
    pub fn worker_config(&self, workers: usize) -> tenantry_store::worker::WorkerConfig {
        let mut c = tenantry_store::worker::WorkerConfig::new(workers);
        c.poll_interval = self.poll_interval;
        c.lease = self.lease;
        c.heartbeat_interval = (self.lease / 3).max(Duration::from_millis(100));
        c.backoff.base = self.backoff_base;
        c
    }
}

/// Identity and access settings.
#[derive(Clone)]
pub struct AuthSettings {
    /// JWT signing keys (secret).
    pub jwt_keys: Option<SecretString>,
    /// Secret-sealing keys (secret).
    pub secret_keys: Option<SecretString>,
    /// Access token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_token_ttl: Duration,
    /// Omit `Secure` on the refresh cookie (development only).
    pub insecure_cookies: bool,
    /// argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    pub argon2_parallelism: u32,
    /// Failures that lock an account.
    pub login_max_failures: u32,
    /// Lock duration.
    pub login_lock: Duration,
    /// Login attempts per IP per minute.
    pub login_rate_per_minute: u32,
    /// Trusted proxies.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// CORS origins.
    pub cors_origins: Vec<String>,
    /// Send HSTS.
    pub hsts: bool,
    /// TOTP issuer.
    pub totp_issuer: String,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_keys", &self.jwt_keys.as_ref().map(|_| "[REDACTED]"))
            .field(
                "secret_keys",
                &self.secret_keys.as_ref().map(|_| "[REDACTED]"),
            )
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("insecure_cookies", &self.insecure_cookies)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_lock", &self.login_lock)
            .field("login_rate_per_minute", &self.login_rate_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_origins", &self.cors_origins)
            .field("hsts", &self.hsts)
            .finish_non_exhaustive()
    }
}

/// Parses a comma-separated list of IPs or CIDRs (a bare IP is a /32 or /128).
///
/// # Errors
/// A message naming the bad entry.
pub fn parse_proxies(s: &str) -> Result<Vec<ipnet::IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("TENANTRY_TRUSTED_PROXIES: {e:?} is not an IP or CIDR"))
        })
        .collect()
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
            .field("auth", &self.auth)
            .field("jobs", &self.jobs)
            .field("provisioning", &self.provisioning)
            .field("payments", &self.payments)
            .finish_non_exhaustive()
    }
}

impl From<SettingsArgs> for Settings {
    fn from(a: SettingsArgs) -> Self {
        let payments = payments(&a);
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
            raw_trusted_proxies: a.trusted_proxies.clone(),
            public_url: a
                .public_url
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| format!("http://{}", a.listen))
                .trim_end_matches('/')
                .to_owned(),
            signup_rate_per_minute: a.signup_rate_per_minute,
            invitation_ttl: Duration::from_secs(u64::from(a.invitation_ttl_hours) * 3600),
            billing: tenantry_billing::EngineSettings {
                convention: a.proration.parse().unwrap_or_default(),
                payment_window: chrono::Duration::hours(i64::from(a.payment_window_hours)),
                grace: chrono::Duration::days(i64::from(a.dunning_grace_days)),
                termination: chrono::Duration::days(i64::from(a.dunning_termination_days)),
                sandbox: a.sandbox,
                ..tenantry_billing::EngineSettings::default()
            },
            billing_interval: Duration::from_secs(a.billing_interval_secs),
            provisioning: ProvisioningSettings {
                base_domain: a.base_domain.trim_matches('.').to_owned(),
                tenant_database_urls: a
                    .tenant_database_urls
                    .filter(|u| !u.is_empty())
                    .map(SecretString::from),
                backup_dir: a.backup_dir,
                task_poll: Duration::from_millis(a.proxmox_task_poll_ms.max(10)),
                tenant_database_host: a.tenant_database_host.filter(|h| !h.is_empty()),
                stacks_dir: a.stacks_dir,
                docker_ready_timeout: Duration::from_secs(a.docker_ready_timeout_secs.max(1)),
            },
            payments,
            stripe_reconcile_interval: Duration::from_secs(a.stripe_reconcile_interval_secs),
            jobs: JobSettings {
                workers: a.workers,
                poll_interval: Duration::from_secs(a.job_poll_secs.max(1)),
                lease: Duration::from_secs(a.job_lease_secs.max(1)),
                backoff_base: Duration::from_secs(a.job_backoff_secs),
                node_check_interval: Duration::from_secs(a.node_check_secs),
            },
            auth: AuthSettings {
                jwt_keys: a.jwt_keys.filter(|k| !k.is_empty()).map(SecretString::from),
                secret_keys: a
                    .secret_keys
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
                access_token_ttl: Duration::from_secs(a.access_token_ttl_secs),
                refresh_token_ttl: Duration::from_secs(a.refresh_token_ttl_secs),
                insecure_cookies: a.insecure_cookies,
                argon2_memory_kib: a.argon2_memory_kib,
                argon2_iterations: a.argon2_iterations,
                argon2_parallelism: a.argon2_parallelism,
                login_max_failures: a.login_max_failures,
                login_lock: Duration::from_secs(a.login_lock_secs),
                login_rate_per_minute: a.login_rate_per_minute,
                // Validated again (with an error) when the server starts.
                trusted_proxies: parse_proxies(&a.trusted_proxies).unwrap_or_default(),
                cors_origins: a
                    .cors_origins
                    .split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
                hsts: a.hsts,
                totp_issuer: a.totp_issuer,
            },
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

    /// The billing clock these settings call for (sandbox offset or real time).
    pub fn billing_clock(&self) -> tenantry_billing::Clock {
        tenantry_billing::Clock::new(self.billing.sandbox)
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
            },
            payments: Payments::Sandbox,
            stripe_reconcile_interval: Duration::ZERO,
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

fn payments(a: &SettingsArgs) -> Payments {
    let key = a.stripe_secret_key.clone().filter(|k| !k.is_empty());
    let public = a
        .public_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{}", a.listen));
    let public = public.trim_end_matches('/');
    match (a.payments.as_deref(), key) {
        (Some("disabled"), _) => Payments::Disabled,
        (Some("sandbox"), _) | (None, None) => Payments::Sandbox,
        // `stripe` without a key: requests fail with Stripe's 401 (reported as refused).
        (_, key) => Payments::Stripe(tenantry_billing::stripe::StripeSettings {
            secret_key: SecretString::from(key.unwrap_or_default()),
            webhook_secrets: a
                .stripe_webhook_secrets
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned()))
                .collect(),
            api_base: format!("{}/", a.stripe_api_base.trim_end_matches('/')),
            success_url: a
                .stripe_success_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| {
                    format!("{public}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")
                }),
            cancel_url: a
                .stripe_cancel_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| format!("{public}/billing/canceled")),
            tolerance_secs: 300,
            retries: 3,
        }),
    }
}

/// A fresh `KID:BASE64` list of one random 32-byte key.
pub fn random_key_list(kid: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("{kid}:{}", STANDARD.encode(key))
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
