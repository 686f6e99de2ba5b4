//! `/v1/auth/*` and `/v1/me`: the one login endpoint for every role, session
//! refresh and logout, and two-factor setup.

use actix_governor::{Governor, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::{HttpRequest, HttpResponse, cookie::Cookie, dev::ServiceRequest, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tenantry_store::identity;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{
        ClientInfo, Principal, client,
        service::{self, LoginInput, Session, TotpSetup},
    },
    error::ApiResult,
    extract::Json,
};

/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "tenantry_refresh";
/// Path the refresh cookie is scoped to.
pub const REFRESH_COOKIE_PATH: &str = "/v1/auth";
/// Header a cookie-authenticated request must carry (any non-empty value):
/// a cross-site form cannot set it, and a cross-origin script cannot without
/// a CORS preflight that only `TENANTRY_CORS_ORIGINS` pass.
pub const CSRF_HEADER: &str = "x-tenantry-csrf";

/// An access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

fn session_response(state: &AppState, session: Session) -> HttpResponse {
    let settings = &state.auth.settings;
    let cookie = Cookie::build(
        REFRESH_COOKIE,
        session.refresh_token.expose_secret().to_owned(),
    )
    .path(REFRESH_COOKIE_PATH)
    .http_only(true)
    .secure(!settings.insecure_cookies)
    .same_site(actix_web::cookie::SameSite::Strict)
    .max_age(actix_web::cookie::time::Duration::seconds(
        i64::try_from(settings.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX),
    ))
    .finish();
    HttpResponse::Ok()
        .cookie(cookie)
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: session.access_token,
            token_type: "Bearer",
            expires_in: session.expires_in,
        })
}

fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = Cookie::build(REFRESH_COOKIE, "")
        .path(REFRESH_COOKIE_PATH)
        .http_only(true)
        .secure(!state.auth.settings.insecure_cookies)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    cookie.make_removal();
    cookie
}

fn require_csrf_header(req: &HttpRequest) -> ApiResult<()> {
    match req.headers().get(CSRF_HEADER) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(ApiError::Forbidden {
            code: "csrf-check-failed",
            detail: format!("cookie-authenticated requests must send the {CSRF_HEADER} header"),
        }),
    }
}

/// Keys rate limits by client IP (trusted proxies honoured), an IPv6
/// client by its /64 ([`client::rate_limit_key`]).
#[derive(Debug, Clone)]
pub struct ClientIpKey(pub Vec<ipnet::IpNet>);

impl KeyExtractor for ClientIpKey {
    type Key = std::net::IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        client::request_ip(req.request(), &self.0)
            .map(client::rate_limit_key)
            .ok_or_else(|| SimpleKeyExtractionError::new("cannot tell the client's address"))
    }
}

/// Registers `POST /v1/auth/login`, rate-limited per client IP.
pub fn register_login(cfg: &mut web::ServiceConfig, settings: &crate::config::AuthSettings) {
    let per_minute = settings.login_rate_per_minute.max(1);
    let governor = GovernorConfigBuilder::default()
        .milliseconds_per_request((60_000 / u64::from(per_minute)).max(1))
        .burst_size(per_minute)
        .key_extractor(ClientIpKey(settings.trusted_proxies.clone()))
        .finish();
    let resource = web::resource("/auth/login").route(web::post().to(login));
    match governor {
        Some(config) => {
            cfg.service(resource.wrap(Governor::new(&config)));
        }
        None => {
            // Only a zero period or burst is refused, and both are ≥ 1 here.
            tracing::error!(
                "login rate limiter refused its configuration; login is not rate-limited"
            );
            cfg.service(resource);
        }
    }
}

/// Sign in (every role uses this one endpoint).
///
/// Answers the access token and sets the refresh token in an `HttpOnly;
/// Secure; SameSite=Strict` cookie scoped to `/v1/auth`. Wrong email and
/// wrong password give the same `401 invalid-credentials`; 5 failures in a
/// row lock the account for 15 minutes (configurable); each client IP may
/// try 10 times a minute (`429` with `Retry-After`).
#[utoipa::path(
    post, path = "/auth/login", context_path = "/v1", tag = "auth",
    request_body = LoginInput,
    responses(
        (status = 200, description = "Signed in; refresh cookie set", body = TokenResponse),
        (status = 401, description = "`invalid-credentials`, `totp-required` or `totp-invalid`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed input", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(input): Json<LoginInput>,
) -> ApiResult<HttpResponse> {
    let session = service::login(&state, input, &client).await?;
    Ok(session_response(&state, session))
}

/// Exchange the refresh cookie for a new access token (the cookie rotates).
///
/// Needs the `X-Tenantry-CSRF` header. A refresh token used twice revokes
/// its whole session (reuse detection).
#[utoipa::path(
    context_path = "/v1", tag = "auth",
    params(("x-tenantry-csrf" = String, Header, description = "Any non-empty value (CSRF defence)")),
    responses(
        (status = 200, description = "New access token; refresh cookie rotated", body = TokenResponse),
        (status = 401, description = "No, expired, revoked or reused refresh token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf-check-failed`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    require_csrf_header(&req)?;
    let token = req
        .cookie(REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty());
    let Some(token) = token else {
        return Err(ApiError::Unauthorized {
            code: "unauthorized",
            detail: "no session cookie: sign in".into(),
        });
    };
    match service::refresh(&state, &token, &client).await {
        Ok(session) => Ok(session_response(&state, session)),
        Err(e) => {
            // A refused session is over: clear the cookie along with the problem.
            let mut res = actix_web::ResponseError::error_response(&e);
            res.add_cookie(&removal_cookie(&state))
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("set-cookie: {e}")))?;
            Ok(res)
        }
    }
}

/// End the session of the refresh cookie (all its rotated tokens).
#[utoipa::path(
    context_path = "/v1", tag = "auth",
    params(("x-tenantry-csrf" = String, Header, description = "Any non-empty value (CSRF defence)")),
    responses(
        (status = 204, description = "Signed out; cookie cleared"),
        (status = 403, description = "`csrf-check-failed`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    require_csrf_header(&req)?;
    let token = req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned());
    service::logout(&state, token.as_deref(), &client).await?;
    Ok(HttpResponse::NoContent()
        .cookie(removal_cookie(&state))
        .finish())
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// User id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// `admin`, `operator`, `tenant_owner` or `tenant_member`.
    pub role: String,
    /// The tenant the caller is confined to, if any.
    pub tenant_id: Option<Uuid>,
    /// Whether two-factor authentication is on.
    pub totp_enabled: bool,
    /// `session` (JWT) or `api_token`.
    pub authenticated_by: &'static str,
    /// The API token's scopes, when authenticated by one.
    pub scopes: Option<Vec<String>>,
}

/// Who am I.
#[utoipa::path(
    context_path = "/v1", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/me")]
pub async fn me(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<MeResponse>> {
    let mut conn = state.pool.get().await?;
    let user = identity::find_user(&mut conn, principal.user_id).await?;
    Ok(web::Json(MeResponse {
        id: user.id,
        email: user.email,
        role: user.role,
        tenant_id: principal.tenant_id,
        totp_enabled: user.totp_enabled,
        authenticated_by: if principal.token.is_some() {
            "api_token"
        } else {
            "session"
        },
        scopes: principal
            .token
            .map(|t| t.scopes.iter().map(ToString::to_string).collect()),
    }))
}

/// Start setting up TOTP: a new secret to scan (2FA stays off until enabled).
#[utoipa::path(
    context_path = "/v1", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Secret, otpauth URL and QR code", body = TotpSetup),
        (status = 409, description = "`totp-already-enabled`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/totp/setup")]
pub async fn totp_setup(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
) -> ApiResult<HttpResponse> {
    principal.require_session()?;
    let setup = service::totp_setup(&state, &principal, &client).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(setup))
}

/// A TOTP code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The 6-digit code from the authenticator app.
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, each usable instead of a TOTP code once.
    pub recovery_codes: Vec<String>,
}

/// Turn TOTP on with a valid code; answers 10 single-use recovery codes.
#[utoipa::path(
    context_path = "/v1", tag = "auth", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, description = "2FA on", body = RecoveryCodes),
        (status = 401, description = "`totp-invalid`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`totp-already-enabled` or `totp-not-set-up`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/totp/enable")]
pub async fn totp_enable(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(body): Json<TotpCode>,
) -> ApiResult<HttpResponse> {
    principal.require_session()?;
    let codes = service::totp_enable(&state, &principal, &body.code, &client).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(RecoveryCodes {
            recovery_codes: codes,
        }))
}

/// Password and code to turn TOTP off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisable {
    /// The account password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// A current TOTP code or a recovery code.
    pub code: String,
}

/// Turn TOTP off.
#[utoipa::path(
    context_path = "/v1", tag = "auth", security(("bearer" = [])),
    request_body = TotpDisable,
    responses(
        (status = 204, description = "2FA off"),
        (status = 401, description = "Wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`totp-not-enabled`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/totp/disable")]
pub async fn totp_disable(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(body): Json<TotpDisable>,
) -> ApiResult<HttpResponse> {
    principal.require_session()?;
    service::totp_disable(&state, &principal, &body.password, &body.code, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}
