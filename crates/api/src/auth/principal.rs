//! The authenticated caller, from `Authorization: Bearer <JWT | tnt_…>`.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use tenantry_domain::{Role, Scope, UserStatus};
use tenantry_store::{crypto::token_hash, identity};
use uuid::Uuid;

use crate::{ApiError, AppState};

/// Prefix of API token secrets.
pub const API_TOKEN_PREFIX: &str = "tnt_";

/// An API token a caller authenticated with.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The token's id.
    pub id: Uuid,
    /// What it may do (further narrowed by the owner's role).
    pub scopes: Vec<Scope>,
}

/// The caller of a protected route.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (the token's owner for API tokens).
    pub user_id: Uuid,
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// The one tenant the caller may see: the user's for tenant roles, the
    /// token's binding for tenant-bound API tokens; `None` for staff sessions.
    pub tenant_id: Option<Uuid>,
    /// Set when authenticated by an API token.
    pub token: Option<TokenGrant>,
}

impl Principal {
    /// Allows the call when the role grants `scope` and, for API tokens, the
    /// token carries it.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let by_token = self
            .token
            .as_ref()
            .is_none_or(|t| t.scopes.contains(&scope));
        if self.role.grants(scope) && by_token {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                detail: format!("this call needs the {scope} permission"),
            })
        }
    }

    /// Allows admins only.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                detail: "only an admin may do this".into(),
            })
        }
    }

    /// Allows interactive sessions (JWT) only: managing API tokens and 2FA
    /// is not something a token may do.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require_session(&self) -> Result<(), ApiError> {
        if self.token.is_none() {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                detail: "this call needs a signed-in session, not an API token".into(),
            })
        }
    }

    /// Platform staff (`admin`, `operator`) not confined to a tenant, or
    /// `403 forbidden` saying `detail`: the one staff check.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require_staff_because(&self, detail: &str) -> Result<(), ApiError> {
        if self.role.is_staff() && self.tenant_id.is_none() {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                detail: detail.to_owned(),
            })
        }
    }

    /// A tenant's owner or platform staff, with `tenants:write`; else
    /// `403 forbidden` saying `detail` (a member manages neither members
    /// nor domains). Which tenant is checked by the lookup that follows:
    /// a tenant user sees only their own.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require_owner_or_staff_because(&self, detail: &str) -> Result<(), ApiError> {
        if self.role.is_staff() || self.role == Role::TenantOwner {
            self.require(Scope::TenantsWrite)
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                detail: detail.to_owned(),
            })
        }
    }

    /// [`Self::require_staff_because`] with the general reason.
    ///
    /// # Errors
    /// `403 forbidden`.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        self.require_staff_because("only platform staff may do this")
    }

    /// The label written in the activity log.
    pub fn label(&self) -> String {
        self.email.clone()
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized {
        code: "unauthorized",
        detail: detail.to_owned(),
    }
}

async fn authenticate(
    state: web::Data<AppState>,
    bearer: Option<String>,
) -> Result<Principal, ApiError> {
    let token =
        bearer.ok_or_else(|| unauthorized("an `Authorization: Bearer` token is required"))?;
    let mut conn = state.pool.get().await?;
    if token.starts_with(API_TOKEN_PREFIX) {
        let (grant, user) = identity::use_api_token(&mut conn, &token_hash(&token))
            .await?
            .ok_or_else(|| unauthorized("the API token is unknown, expired or revoked"))?;
        if user.status != UserStatus::Active.as_str() {
            return Err(unauthorized("the API token's owner is disabled"));
        }
        let role: Role = user
            .role
            .parse()
            .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
        let scopes = grant
            .scopes
            .iter()
            .flatten()
            .filter_map(|s| s.parse::<Scope>().ok())
            .collect();
        return Ok(Principal {
            user_id: user.id,
            email: user.email,
            role,
            tenant_id: grant.tenant_id.or(user.tenant_id),
            token: Some(TokenGrant {
                id: grant.id,
                scopes,
            }),
        });
    }
    let claims = state.auth.jwt.verify(&token).map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        unauthorized("the access token is invalid or expired")
    })?;
    let user = match identity::find_user(&mut conn, claims.sub).await {
        Ok(u) => u,
        Err(tenantry_store::StoreError::NotFound) => {
            return Err(unauthorized("the user no longer exists"));
        }
        Err(e) => return Err(e.into()),
    };
    if user.status != UserStatus::Active.as_str() || user.role != claims.role {
        return Err(unauthorized("the access token no longer matches the user"));
    }
    let role: Role = user
        .role
        .parse()
        .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
    Ok(Principal {
        user_id: user.id,
        email: user.email,
        role,
        tenant_id: user.tenant_id,
        token: None,
    })
}

/// The token of an `Authorization: Bearer <token>` header, trimmed; `None`
/// when there is none (or it is empty).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))?;
            authenticate(state, bearer).await
        })
    }
}
