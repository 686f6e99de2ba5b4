//! `/v1/api-tokens`: long-lived bearer tokens for scripts.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{Role, Scope, ValidationErrors};
use tenantry_store::{
    crypto::{random_token, token_hash},
    identity::{self, ApiToken as ApiTokenRow, NewApiToken},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal, principal::API_TOKEN_PREFIX},
    error::ApiResult,
    extract::{Json, Query},
    pagination::{Page, PageParams},
};

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// What it is for, 1–100 characters.
    pub name: String,
    /// What it may do, e.g. `["catalog:read", "tenants:read"]`; each must be
    /// allowed to the creator's role.
    pub scopes: Vec<String>,
    /// When it stops working (RFC 3339); omitted: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Confine it to one tenant. Tenant users' tokens are always confined to
    /// their tenant.
    pub tenant_id: Option<Uuid>,
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiToken {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// First characters of the secret, to recognise it.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Confined to this tenant.
    pub tenant_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A created token, with its secret: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    /// The token.
    #[serde(flatten)]
    pub token: ApiToken,
    /// The secret to send as `Authorization: Bearer tnt_…`.
    pub secret: String,
}

fn dto(t: ApiTokenRow) -> ApiToken {
    ApiToken {
        id: t.id,
        user_id: t.user_id,
        name: t.name,
        prefix: t.prefix,
        scopes: t.scopes.into_iter().flatten().collect(),
        tenant_id: t.tenant_id,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at,
        created_at: t.created_at,
    }
}

/// Create an API token (signed-in sessions only). The secret is in the
/// response once; only its SHA-256 is stored.
#[utoipa::path(
    context_path = "/v1", tag = "api-tokens", security(("bearer" = [])),
    request_body = CreateApiToken,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = CreatedApiToken),
        (status = 403, description = "A scope beyond the caller's role, or called with an API token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, scopes or expiry", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api-tokens")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(input): Json<CreateApiToken>,
) -> ApiResult<HttpResponse> {
    principal.require_session()?;
    let mut errors = ValidationErrors::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push("name", "must be 1 to 100 characters");
    }
    let scopes = errors.check("scopes", Scope::parse_list(&input.scopes));
    if input.expires_at.is_some_and(|t| t <= Utc::now()) {
        errors.push("expires_at", "must be in the future");
    }
    let scopes = errors.into_result(|| scopes)?;
    if let Some(denied) = scopes.iter().find(|s| !principal.role.grants(**s)) {
        return Err(ApiError::Forbidden {
            code: "forbidden",
            detail: format!("your role ({}) cannot grant {denied}", principal.role),
        });
    }
    let tenant_id = match (principal.role.is_tenant_role(), input.tenant_id) {
        (true, Some(t)) if Some(t) != principal.tenant_id => {
            return Err(ApiError::Forbidden {
                code: "forbidden",
                detail: "a tenant user's token can only be bound to their own tenant".into(),
            });
        }
        (true, _) => principal.tenant_id,
        (false, t) => t,
    };
    let secret = format!("{API_TOKEN_PREFIX}{}", random_token(32));
    let prefix: String = secret.chars().take(12).collect();
    let mut conn = state.pool.get().await?;
    let token = identity::create_api_token(
        &mut conn,
        &NewApiToken {
            id: Uuid::now_v7(),
            user_id: principal.user_id,
            name: &name,
            token_hash: &token_hash(&secret),
            prefix: &prefix,
            scopes: scopes.iter().map(|s| Some(s.to_string())).collect(),
            tenant_id,
            expires_at: input.expires_at,
        },
    )
    .await?;
    let created = dto(token);
    crate::audit::by(&principal, "api_token.created", &client)
        .tenant(tenant_id.or(principal.tenant_id))
        .target("api_token", created.id)
        .change(None, serde_json::to_value(&created).ok())
        .record(&mut conn)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedApiToken {
            token: created,
            secret,
        }))
}

/// Live API tokens: the caller's own (an admin sees everyone's).
#[utoipa::path(
    context_path = "/v1", tag = "api-tokens", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "A page of tokens, without secrets", body = Page<ApiToken>))
)]
#[get("/api-tokens")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<ApiToken>>> {
    principal.require_session()?;
    let page = params.to_request()?;
    let owner = (principal.role != Role::Admin).then_some(principal.user_id);
    let mut conn = state.pool.get().await?;
    let rows = identity::list_api_tokens(&mut conn, owner, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |t| Ok(dto(t)))?))
}

/// Revoke a token (your own; an admin may revoke anyone's).
#[utoipa::path(
    context_path = "/v1", tag = "api-tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live token of yours", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/api-tokens/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require_session()?;
    let id = id.into_inner();
    let owner = (principal.role != Role::Admin).then_some(principal.user_id);
    let mut conn = state.pool.get().await?;
    let token = identity::revoke_api_token(&mut conn, id, owner)
        .await
        .map_err(|e| match e {
            tenantry_store::StoreError::NotFound => ApiError::not_found(format!("API token {id}")),
            other => other.into(),
        })?;
    crate::audit::by(&principal, "api_token.revoked", &client)
        .tenant(token.tenant_id.or(principal.tenant_id))
        .target("api_token", id)
        .record(&mut conn)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
