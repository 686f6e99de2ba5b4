//! Identity and access: the keys that sign tokens and seal secrets, token
//! lifetimes, password hashing, login lock-out and rate limit, the proxies
//! whose `X-Forwarded-For` is believed, CORS, HSTS and the TOTP issuer.

use std::{fmt, time::Duration};

use clap::Args;
use secrecy::SecretString;

/// Flags of identity and access.
#[derive(Clone, Args)]
pub struct AuthArgs {
    /// JWT signing keys, `KID:BASE64` comma-separated (≥ 32 bytes each); the first signs, all verify (a secret).
    #[arg(
        long,
        env = "TENANTRY_JWT_KEYS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    #[arg(display_order = 10)]
    pub jwt_keys: Option<String>,

    /// Keys sealing secrets at rest (TOTP seeds, node credentials), `KID:BASE64` of 32 bytes; the first seals (a secret).
    #[arg(
        long,
        env = "TENANTRY_SECRET_KEYS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    #[arg(display_order = 11)]
    pub secret_keys: Option<String>,

    /// Lifetime of access tokens, seconds.
    #[arg(
        long,
        env = "TENANTRY_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 900,
        global = true
    )]
    #[arg(display_order = 12)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens (the login session), seconds.
    #[arg(long, env = "TENANTRY_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600, global = true)]
    #[arg(display_order = 13)]
    pub refresh_token_ttl_secs: u64,

    /// Development only: send the refresh cookie without `Secure` (plain-HTTP hosts other than localhost).
    #[arg(
        long,
        env = "TENANTRY_INSECURE_COOKIES",
        default_value_t = false,
        value_parser = super::boolish(),
        global = true
    )]
    #[arg(display_order = 14)]
    pub insecure_cookies: bool,

    /// argon2id memory cost, KiB (OWASP: 19456).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_MEMORY_KIB",
        default_value_t = 19_456,
        global = true
    )]
    #[arg(display_order = 15)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (OWASP: 2).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    #[arg(display_order = 16)]
    pub argon2_iterations: u32,

    /// argon2id parallelism (OWASP: 1).
    #[arg(
        long,
        env = "TENANTRY_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    #[arg(display_order = 17)]
    pub argon2_parallelism: u32,

    /// Failed logins in a row that lock an account.
    #[arg(long, env = "TENANTRY_LOGIN_MAX_FAILURES", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    #[arg(display_order = 18)]
    pub login_max_failures: u32,

    /// How long a locked account stays locked, seconds.
    #[arg(
        long,
        env = "TENANTRY_LOGIN_LOCK_SECS",
        default_value_t = 900,
        global = true
    )]
    #[arg(display_order = 19)]
    pub login_lock_secs: u64,

    /// Login attempts allowed per client IP per minute (burst of the same size).
    #[arg(long, env = "TENANTRY_LOGIN_RATE_PER_MINUTE", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    #[arg(display_order = 20)]
    pub login_rate_per_minute: u32,

    /// Proxies whose `X-Forwarded-For` is believed: comma-separated IPs or CIDRs.
    #[arg(
        long,
        env = "TENANTRY_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    #[arg(display_order = 21)]
    pub trusted_proxies: String,

    /// Browser origins allowed by CORS (with credentials), comma-separated, e.g. https://app.example.com.
    #[arg(long, env = "TENANTRY_CORS_ORIGINS", default_value = "", global = true)]
    #[arg(display_order = 22)]
    pub cors_origins: String,

    /// Send `Strict-Transport-Security` (when served over TLS, directly or behind a proxy).
    #[arg(
        long,
        env = "TENANTRY_HSTS",
        default_value_t = false,
        value_parser = super::boolish(),
        global = true
    )]
    #[arg(display_order = 23)]
    pub hsts: bool,

    /// Issuer shown in authenticator apps.
    #[arg(
        long,
        env = "TENANTRY_TOTP_ISSUER",
        default_value = "Tenantry",
        global = true
    )]
    #[arg(display_order = 24)]
    pub totp_issuer: String,
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

impl AuthArgs {
    /// The validated settings these flags give.
    pub(super) fn into_settings(self) -> AuthSettings {
        AuthSettings {
            jwt_keys: self
                .jwt_keys
                .filter(|k| !k.is_empty())
                .map(SecretString::from),
            secret_keys: self
                .secret_keys
                .filter(|k| !k.is_empty())
                .map(SecretString::from),
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_secs),
            insecure_cookies: self.insecure_cookies,
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            login_max_failures: self.login_max_failures,
            login_lock: Duration::from_secs(self.login_lock_secs),
            login_rate_per_minute: self.login_rate_per_minute,
            // Validated again (with an error) when the server starts.
            trusted_proxies: parse_proxies(&self.trusted_proxies).unwrap_or_default(),
            cors_origins: self
                .cors_origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            hsts: self.hsts,
            totp_issuer: self.totp_issuer,
        }
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
