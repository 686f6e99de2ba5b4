//! Identity and access: password hashing, JWT access tokens, refresh-token
//! sessions, TOTP, API tokens, and the [`Principal`] every protected handler
//! extracts.

pub mod client;
pub mod jwt;
pub use tenantry_tenancy::password;
pub mod principal;
pub mod service;
pub mod totp;

use std::sync::Arc;

use anyhow::Context as _;
use tenantry_store::crypto::Keyring;

pub use client::ClientInfo;
pub use principal::Principal;

use crate::config::AuthSettings;

/// Everything authentication needs, built once at start-up.
#[derive(Clone)]
pub struct Auth {
    /// Settings.
    pub settings: Arc<AuthSettings>,
    /// JWT keys.
    pub jwt: Arc<jwt::JwtKeys>,
    /// Keys sealing TOTP seeds.
    pub keyring: Arc<Keyring>,
    /// Password hasher.
    pub hasher: Arc<password::Hasher>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Builds the keys and hasher from settings.
    ///
    /// # Errors
    /// When a key list is missing or malformed, or the argon2 parameters are invalid.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let jwt_keys = settings.jwt_keys.as_ref().context(
            "TENANTRY_JWT_KEYS is not set: give one or more KID:BASE64 keys of at least 32 bytes \
             (e.g. k1:$(openssl rand -base64 32)); `make run` generates local ones",
        )?;
        let secret_keys = settings.secret_keys.as_ref().context(
            "TENANTRY_SECRET_KEYS is not set: give one or more KID:BASE64 keys of 32 bytes \
             (e.g. k1:$(openssl rand -base64 32)); `make run` generates local ones",
        )?;
        Ok(Self {
            settings: Arc::new(settings.clone()),
            jwt: Arc::new(jwt::JwtKeys::from_config(
                jwt_keys,
                settings.access_token_ttl,
            )?),
            keyring: Arc::new(Keyring::from_config(secret_keys).context("TENANTRY_SECRET_KEYS")?),
            hasher: Arc::new(password::Hasher::new(
                settings.argon2_memory_kib,
                settings.argon2_iterations,
                settings.argon2_parallelism,
            )?),
        })
    }
}
