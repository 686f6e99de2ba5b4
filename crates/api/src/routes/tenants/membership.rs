//! A tenant's members and invitations, and accepting an invitation.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tenantry_domain::Scope;
use tenantry_store::tenants as store;
use tenantry_tenancy as service;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::Json,
};

/// A member of a tenant, or someone invited.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// User id (`null` for a pending invitation).
    pub user_id: Option<Uuid>,
    /// Email.
    pub email: String,
    /// `tenant_owner` or `tenant_member`.
    pub role: String,
    /// `active`, `disabled` or `invited`.
    pub status: String,
}

/// Members and pending invitations of a tenant.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "Members, then pending invitations", body = [Member]),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<Member>>> {
    principal.require(Scope::TenantsRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &crate::audit::viewer(&principal), &id).await?;
    let mut out: Vec<Member> = store::members_of(&mut conn, view.tenant.id)
        .await?
        .into_iter()
        .map(|u| Member {
            user_id: Some(u.id),
            email: u.email,
            role: u.role,
            status: u.status,
        })
        .collect();
    out.extend(
        store::pending_invitations(&mut conn, view.tenant.id)
            .await?
            .into_iter()
            .map(|i| Member {
                user_id: None,
                email: i.email,
                role: i.role,
                status: "invited".into(),
            }),
    );
    Ok(web::Json(out))
}

/// Someone to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    /// Their email.
    pub email: String,
}

/// An invitation and its single-use link (shown once; no mail is sent yet).
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// Id.
    pub id: Uuid,
    /// Email invited.
    pub email: String,
    /// Role they will have.
    pub role: String,
    /// Until when it can be accepted.
    pub expires_at: DateTime<Utc>,
    /// The link with the token, to send them.
    pub invitation_url: String,
}

/// Invite a `tenant_member` (tenant owner or staff).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = InviteInput,
    responses(
        (status = 201, description = "Invited", body = Invitation),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email-taken`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/members")]
pub async fn invite(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
    Json(input): Json<InviteInput>,
) -> ApiResult<HttpResponse> {
    principal
        .require_owner_or_staff_because("only the tenant's owner or staff may manage members")?;
    let caller = crate::audit::caller(&principal, &client);
    let (inv, url) = service::invite(&state.tenancy, &caller, &id, &input.email).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(Invitation {
            id: inv.id,
            email: inv.email,
            role: inv.role,
            expires_at: inv.expires_at,
            invitation_url: url,
        }))
}

/// Remove a `tenant_member` (tenant owner or staff).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), ("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such member of this tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/tenants/{id}/members/{user_id}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<HttpResponse> {
    principal
        .require_owner_or_staff_because("only the tenant's owner or staff may manage members")?;
    let (id, user_id) = path.into_inner();
    let caller = crate::audit::caller(&principal, &client);
    service::remove_member(&state.tenancy, &caller, &id, user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    /// The token from the invitation link.
    pub token: String,
    /// The password to sign in with, 12–256 characters.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// The account an accepted invitation created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// User id.
    pub user_id: Uuid,
    /// Email (the login).
    pub email: String,
    /// Role.
    pub role: String,
    /// Tenant joined.
    pub tenant_id: Option<Uuid>,
}

/// Accept an invitation (public): creates the account; then sign in.
#[utoipa::path(
    context_path = "/v1", tag = "tenants",
    request_body = AcceptInput,
    responses(
        (status = 201, description = "Account created", body = Accepted),
        (status = 404, description = "Unknown, used or expired invitation", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Weak password", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/invitations/accept")]
pub async fn accept(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(input): Json<AcceptInput>,
) -> ApiResult<HttpResponse> {
    let caller = crate::audit::anonymous_caller("", &client);
    let user =
        service::accept_invitation(&state.tenancy, &input.token, &input.password, &caller).await?;
    Ok(HttpResponse::Created().json(Accepted {
        user_id: user.id,
        email: user.email,
        role: user.role,
        tenant_id: user.tenant_id,
    }))
}
