//! Access tokens: JWTs signed with HMAC-SHA256, the algorithm pinned, the
//! key chosen by the `kid` header among the configured keys (so a retired
//! key keeps verifying during rotation, RFC 7515 §4.1.4).

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's role.
    pub role: String,
    /// The user's tenant, for tenant roles.
    pub tenant_id: Option<Uuid>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
}

/// The configured signing keys.
pub struct JwtKeys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        f.debug_struct("JwtKeys")
            .field("signing_kid", &self.signing_kid)
            .field("verifying_kids", &kids)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. Callers answer 401 whatever the reason; the
/// reason is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `kid`, or one we do not know.
    #[error("unknown or missing key id")]
    UnknownKey,
    /// Bad signature, wrong algorithm, expired, malformed.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The only algorithm accepted.
pub const ALGORITHM: Algorithm = Algorithm::HS256;

impl JwtKeys {
    /// Keys from a `KID:BASE64` list (each ≥ 32 bytes, RFC 7518 §3.2); the first signs.
    ///
    /// # Errors
    /// When the list is malformed.
    pub fn from_config(spec: &SecretString, ttl: Duration) -> anyhow::Result<Self> {
        let keys = tenantry_store::crypto::parse_key_list(spec, 32)
            .map_err(|e| anyhow::anyhow!("TENANTRY_JWT_KEYS: {e}"))?;
        let (signing_kid, signing_bytes) = &keys[0];
        Ok(Self {
            signing_kid: signing_kid.clone(),
            signing: EncodingKey::from_secret(signing_bytes.expose_secret()),
            verifying: keys
                .iter()
                .map(|(kid, k)| (kid.clone(), DecodingKey::from_secret(k.expose_secret())))
                .collect(),
            ttl,
        })
    }

    /// Lifetime of the tokens issued, seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// Signs an access token for a user.
    ///
    /// # Errors
    /// Only on an encoding failure (a bug).
    pub fn issue(
        &self,
        user_id: Uuid,
        role: &str,
        tenant_id: Option<Uuid>,
    ) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role: role.to_owned(),
            tenant_id,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::now_v7(),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.signing_kid.clone());
        encode(&header, &claims, &self.signing).map_err(|e| anyhow::anyhow!("signing a JWT: {e}"))
    }

    /// Verifies a token: known `kid`, HS256 only, valid signature, not expired.
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        decode::<Claims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}
