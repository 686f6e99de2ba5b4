//! The login, refresh and logout flows and 2FA management.
//!
//! Errors a client can act on are [`ApiError`]s; every outcome that matters
//! to a security review (success, failure, lock, reuse) writes an activity row.

use std::sync::Arc;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tenantry_domain::{Email, UserStatus};
use tenantry_store::{
    crypto::{Sealed, random_token, token_hash},
    identity::{self, Rotation, User},
};
use uuid::Uuid;

use super::{ClientInfo, Principal, password::Hasher, totp};
use crate::{ApiError, AppState};

/// A signed-in session: the access token and the refresh token for the cookie.
#[derive(Debug)]
pub struct Session {
    /// JWT access token.
    pub access_token: String,
    /// Its lifetime, seconds.
    pub expires_in: u64,
    /// Refresh token for the cookie (a secret).
    pub refresh_token: SecretString,
}

/// What `POST /v1/auth/login` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// Email (case-insensitive).
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// Current TOTP code, when 2FA is enabled.
    pub totp_code: Option<String>,
    /// A single-use recovery code, instead of a TOTP code.
    pub recovery_code: Option<String>,
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid-credentials",
        detail: "email or password is incorrect".into(),
    }
}

/// Checks a TOTP code (accepted once per time step) or a recovery code.
async fn second_factor(
    state: &AppState,
    conn: &mut tenantry_store::AsyncPgConnection,
    user: &User,
    totp_code: Option<&str>,
    recovery_code: Option<&str>,
) -> Result<bool, ApiError> {
    if let Some(code) = recovery_code {
        let hash = token_hash(&code.trim().to_lowercase());
        return Ok(identity::use_recovery_code(conn, user.id, &hash).await?);
    }
    let Some(code) = totp_code else {
        return Ok(false);
    };
    let generator = user_totp(state, user)?;
    let Some(step) = totp::matching_step(&generator, code) else {
        return Ok(false);
    };
    Ok(identity::accept_totp_step(conn, user.id, i64::try_from(step).unwrap_or(i64::MAX)).await?)
}

fn user_totp(state: &AppState, user: &User) -> Result<totp_rs::TOTP, ApiError> {
    let (Some(blob), Some(key_id)) = (&user.totp_secret, &user.totp_key_id) else {
        return Err(ApiError::Conflict {
            code: "totp-not-set-up",
            detail: "no TOTP secret: call POST /v1/auth/totp/setup first".into(),
        });
    };
    let seed = state
        .auth
        .keyring
        .open(
            &Sealed {
                key_id: key_id.clone(),
                blob: blob.clone(),
            },
            user.id.as_bytes(),
        )
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("opening a TOTP seed")))?;
    totp::build(
        seed.expose_secret(),
        &state.auth.settings.totp_issuer,
        &user.email,
    )
    .map_err(ApiError::Internal)
}

async fn start_session(
    state: &AppState,
    conn: &mut tenantry_store::AsyncPgConnection,
    user: &User,
) -> Result<Session, ApiError> {
    let refresh = random_token(32);
    let ttl = chrono::Duration::from_std(state.auth.settings.refresh_token_ttl)
        .map_err(|e| ApiError::Internal(e.into()))?;
    identity::start_refresh_family(conn, user.id, &token_hash(&refresh), Utc::now() + ttl).await?;
    session(state, user, refresh)
}

/// A session for `user` with a fresh access token and `refresh` for the cookie.
fn session(state: &AppState, user: &User, refresh: String) -> Result<Session, ApiError> {
    Ok(Session {
        access_token: state
            .auth
            .jwt
            .issue(user.id, &user.role, user.tenant_id)
            .map_err(ApiError::Internal)?,
        expires_in: state.auth.jwt.ttl_secs(),
        refresh_token: SecretString::from(refresh),
    })
}

/// Signs a user in. Wrong email, wrong password, locked and disabled
/// accounts all answer the same `401 invalid-credentials`, after the same
/// argon2 work; 2FA without a code answers `401 totp-required`.
///
/// # Errors
/// [`ApiError::Unauthorized`], or a store error.
pub async fn login(
    state: &AppState,
    input: LoginInput,
    client: &ClientInfo,
) -> Result<Session, ApiError> {
    let email = Email::parse(&input.email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or(input.email.clone());
    let mut conn = state.pool.get().await?;
    let user = identity::find_user_by_email(&mut conn, &email).await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = super::password::verify_blocking(&state.auth.hasher, &input.password, phc)
        .await
        .map_err(ApiError::Internal)?;

    let Some(user) = user else {
        crate::audit::by_anonymous(&email, "auth.login_failed", client)
            .record(&mut conn)
            .await?;
        return Err(invalid_credentials());
    };
    let audit = |action: &str| {
        crate::audit::by_anonymous(&user.email, action, client)
            .actor(user.id, user.tenant_id)
            .target("user", user.id)
    };
    if user.locked_until.is_some_and(|t| t > Utc::now()) {
        audit("auth.login_locked").record(&mut conn).await?;
        return Err(invalid_credentials());
    }
    // Counts a failed attempt (password or second factor) and locks the
    // account at the limit: one atomic `UPDATE` decides it.
    let failed = async |conn: &mut tenantry_store::AsyncPgConnection,
                        action: &str|
           -> Result<(), ApiError> {
        let settings = &state.auth.settings;
        let lock = chrono::Duration::from_std(settings.login_lock)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let (_, locked_now) = identity::record_login_failure(
            conn,
            user.id,
            i32::try_from(settings.login_max_failures).unwrap_or(5),
            lock,
        )
        .await?;
        audit(action).record(conn).await?;
        if locked_now {
            audit("auth.account_locked").record(conn).await?;
        }
        Ok(())
    };
    if !password_ok || user.status != UserStatus::Active.as_str() {
        failed(&mut conn, "auth.login_failed").await?;
        return Err(invalid_credentials());
    }
    if user.totp_enabled {
        if input.totp_code.is_none() && input.recovery_code.is_none() {
            audit("auth.totp_required").record(&mut conn).await?;
            return Err(ApiError::Unauthorized {
                code: "totp-required",
                detail:
                    "this account has two-factor authentication: send totp_code (or recovery_code)"
                        .into(),
            });
        }
        if !second_factor(
            state,
            &mut conn,
            &user,
            input.totp_code.as_deref(),
            input.recovery_code.as_deref(),
        )
        .await?
        {
            failed(&mut conn, "auth.totp_failed").await?;
            return Err(ApiError::Unauthorized {
                code: "totp-invalid",
                detail: "the two-factor code is wrong, expired or already used".into(),
            });
        }
    }
    identity::record_login_success(&mut conn, user.id).await?;
    let session = start_session(state, &mut conn, &user).await?;
    audit("auth.login").record(&mut conn).await?;
    Ok(session)
}

/// Rotates a refresh token into a new session. Presenting an already
/// rotated token revokes its whole family.
///
/// # Errors
/// `401 unauthorized` for an unknown, expired, revoked or reused token.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    client: &ClientInfo,
) -> Result<Session, ApiError> {
    let mut conn = state.pool.get().await?;
    let new_refresh = random_token(32);
    let ttl = chrono::Duration::from_std(state.auth.settings.refresh_token_ttl)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let outcome = identity::rotate_refresh_token(
        &mut conn,
        &token_hash(refresh_token),
        &token_hash(&new_refresh),
        Utc::now() + ttl,
    )
    .await?;
    let refused = |detail: &str| ApiError::Unauthorized {
        code: "unauthorized",
        detail: detail.to_owned(),
    };
    match outcome {
        Rotation::Invalid => Err(refused(
            "the session is unknown, expired or ended: sign in again",
        )),
        Rotation::ReuseDetected { user_id, family_id } => {
            let user = identity::find_user(&mut conn, user_id).await?;
            crate::audit::by_anonymous(&user.email, "auth.refresh_reuse_detected", client)
                .actor(user.id, user.tenant_id)
                .target("session", family_id)
                .record(&mut conn)
                .await?;
            Err(refused(
                "this refresh token was already used: the session is revoked, sign in again",
            ))
        }
        Rotation::Rotated { user_id, family_id } => {
            let user = identity::find_user(&mut conn, user_id).await?;
            if user.status != UserStatus::Active.as_str() {
                identity::revoke_family(&mut conn, family_id).await?;
                return Err(refused("the user is disabled"));
            }
            session(state, &user, new_refresh)
        }
    }
}

/// Ends the session (refresh-token family) the cookie belongs to. Unknown
/// tokens are ignored: logging out twice is not an error.
///
/// # Errors
/// A store error.
pub async fn logout(
    state: &AppState,
    refresh_token: Option<&str>,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let Some(token) = refresh_token else {
        return Ok(());
    };
    let mut conn = state.pool.get().await?;
    if let Some((family_id, user_id)) =
        identity::refresh_token_family(&mut conn, &token_hash(token)).await?
    {
        identity::revoke_family(&mut conn, family_id).await?;
        let user = identity::find_user(&mut conn, user_id).await?;
        crate::audit::by_anonymous(&user.email, "auth.logout", client)
            .actor(user.id, user.tenant_id)
            .target("session", family_id)
            .record(&mut conn)
            .await?;
    }
    Ok(())
}

/// A new TOTP secret to scan, not yet enabled.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// The secret, base32 (for manual entry).
    pub secret: String,
    /// `otpauth://totp/…` URL (Key URI Format).
    pub otpauth_url: String,
    /// The URL as a QR code: PNG, base64.
    pub qr_png_base64: String,
}

/// Creates (or replaces) the caller's pending TOTP secret.
///
/// # Errors
/// `409 totp-already-enabled`.
pub async fn totp_setup(
    state: &AppState,
    principal: &Principal,
    client: &ClientInfo,
) -> Result<TotpSetup, ApiError> {
    let mut conn = state.pool.get().await?;
    let user = identity::find_user(&mut conn, principal.user_id).await?;
    if user.totp_enabled {
        return Err(ApiError::Conflict {
            code: "totp-already-enabled",
            detail: "two-factor authentication is already on; disable it first".into(),
        });
    }
    let seed = totp::new_seed().map_err(ApiError::Internal)?;
    let generator = totp::build(&seed, &state.auth.settings.totp_issuer, &user.email)
        .map_err(ApiError::Internal)?;
    let sealed = state.auth.keyring.seal(&seed, user.id.as_bytes());
    identity::set_pending_totp(&mut conn, user.id, &sealed.blob, &sealed.key_id).await?;
    crate::audit::by(principal, "auth.totp_setup", client)
        .target("user", user.id)
        .record(&mut conn)
        .await?;
    Ok(TotpSetup {
        secret: generator.get_secret_base32(),
        otpauth_url: generator.get_url(),
        qr_png_base64: generator
            .get_qr_base64()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("QR code: {e}")))?,
    })
}

/// Turns 2FA on after a valid code; returns 10 single-use recovery codes.
///
/// # Errors
/// `409 totp-already-enabled` / `totp-not-set-up`, `401 totp-invalid`.
pub async fn totp_enable(
    state: &AppState,
    principal: &Principal,
    code: &str,
    client: &ClientInfo,
) -> Result<Vec<String>, ApiError> {
    let mut conn = state.pool.get().await?;
    let user = identity::find_user(&mut conn, principal.user_id).await?;
    if user.totp_enabled {
        return Err(ApiError::Conflict {
            code: "totp-already-enabled",
            detail: "two-factor authentication is already on".into(),
        });
    }
    if !second_factor(state, &mut conn, &user, Some(code), None).await? {
        return Err(ApiError::Unauthorized {
            code: "totp-invalid",
            detail: "the code is wrong, expired or already used".into(),
        });
    }
    let codes = totp::recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| token_hash(c)).collect();
    identity::enable_totp(&mut conn, user.id, &hashes).await?;
    crate::audit::by(principal, "auth.totp_enabled", client)
        .target("user", user.id)
        .change(
            Some(serde_json::json!({"totp_enabled": false})),
            Some(serde_json::json!({"totp_enabled": true})),
        )
        .record(&mut conn)
        .await?;
    Ok(codes)
}

/// Turns 2FA off; needs the password and a current code (or a recovery code).
///
/// # Errors
/// `401 invalid-credentials` / `totp-invalid`, `409 totp-not-enabled`.
pub async fn totp_disable(
    state: &AppState,
    principal: &Principal,
    password: &SecretString,
    code: &str,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    let user = identity::find_user(&mut conn, principal.user_id).await?;
    if !user.totp_enabled {
        return Err(ApiError::Conflict {
            code: "totp-not-enabled",
            detail: "two-factor authentication is off".into(),
        });
    }
    if !super::password::verify_blocking(
        &state.auth.hasher,
        password,
        Some(user.password_hash.clone()),
    )
    .await
    .map_err(ApiError::Internal)?
    {
        return Err(invalid_credentials());
    }
    let ok = second_factor(state, &mut conn, &user, Some(code), None).await?
        || second_factor(state, &mut conn, &user, None, Some(code)).await?;
    if !ok {
        return Err(ApiError::Unauthorized {
            code: "totp-invalid",
            detail: "the code is wrong, expired or already used".into(),
        });
    }
    identity::disable_totp(&mut conn, user.id).await?;
    crate::audit::by(principal, "auth.totp_disabled", client)
        .target("user", user.id)
        .change(
            Some(serde_json::json!({"totp_enabled": true})),
            Some(serde_json::json!({"totp_enabled": false})),
        )
        .record(&mut conn)
        .await?;
    Ok(())
}

/// Creates a user (used by `tenantry admin create`).
///
/// # Errors
/// `422` for a bad email or password, `409` when the email is taken.
pub async fn create_user(
    state_pool: &tenantry_store::Pool,
    hasher: &Arc<Hasher>,
    email: &str,
    password: &SecretString,
    role: tenantry_domain::Role,
    tenant_id: Option<Uuid>,
) -> Result<User, ApiError> {
    let mut errors = tenantry_domain::ValidationErrors::new();
    let email = errors.check("email", Email::parse(email));
    errors.check("password", super::password::check_new_password(password));
    let email = errors.into_result(|| email)?;
    let phc = super::password::hash_blocking(hasher, password)
        .await
        .map_err(ApiError::Internal)?;
    let mut conn = state_pool.get().await?;
    identity::create_user(
        &mut conn,
        &identity::NewUser {
            id: Uuid::now_v7(),
            email: email.as_str(),
            password_hash: &phc,
            role: role.as_str(),
            tenant_id,
        },
    )
    .await
    .map_err(|e| match e {
        tenantry_store::StoreError::Conflict { .. } => ApiError::Conflict {
            code: "email-taken",
            detail: format!("a user with email {email} already exists"),
        },
        other => other.into(),
    })
}
