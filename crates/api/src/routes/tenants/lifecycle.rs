//! A tenant's lifecycle: signup, create, list, read, rename, pause, resume,
//! retry provisioning, delete, and marking a signup paid.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::header, patch, post, web};
use serde::Deserialize;
use tenantry_billing::engine::SubscriptionView;
use tenantry_domain::{Scope, TenantStatus};
use tenantry_store::tenants::{self as store, TenantFilter};
use utoipa::{IntoParams, ToSchema};

use super::{CreatedTenant, Tenant, TenantJob, etag, subscription_dto, tenant_dto};
use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::{Json, Query},
    pagination::{Page, PageParams},
    routes::jobs::Job,
};
use tenantry_tenancy::{self as service, CreateTenantInput, Created, SignupInput};

fn created_response(created: Created) -> ApiResult<HttpResponse> {
    let mut res = if created.job.is_some() {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Created()
    };
    res.insert_header((
        header::LOCATION,
        format!("/v1/tenants/{}", created.tenant.tenant.id),
    ));
    let now = created.subscription.created_at;
    let plan = created.plan.clone();
    let view = SubscriptionView::new(
        created.subscription,
        created.plan,
        &plan,
        None,
        Vec::new(),
        now,
    )?;
    let subscription = subscription_dto(view);
    Ok(res.json(CreatedTenant {
        tenant: tenant_dto(created.tenant),
        subscription,
        checkout_url: created.checkout_url,
        job: created.job.map(Job::from),
        owner_invitation_url: created.owner_invitation_url,
    }))
}

/// Sign up for a product and plan (public).
///
/// Creates the tenant (`pending_payment`), its owner and its subscription
/// (`incomplete`) in one transaction. A paid plan answers `201` with the
/// checkout URL to pay at; a free plan starts provisioning and answers `202`
/// with the job. Rate-limited per client IP.
#[utoipa::path(
    post, path = "/signup", context_path = "/v1", tag = "tenants",
    request_body = SignupInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key and body")),
    responses(
        (status = 201, description = "Created; pay at `checkout_url`", body = CreatedTenant),
        (status = 202, description = "Free plan: provisioning started", body = CreatedTenant),
        (status = 409, description = "`slug-taken` or `email-taken`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many signups from this address", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    Json(input): Json<SignupInput>,
) -> ApiResult<HttpResponse> {
    let caller = crate::audit::anonymous_caller(&input.email, &client);
    created_response(service::signup(&state.tenancy, input, &caller).await?)
}

/// Create a tenant for a customer (staff). The owner gets an invitation link.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenantInput,
    responses(
        (status = 201, description = "Created, awaiting payment", body = CreatedTenant),
        (status = 202, description = "Created; provisioning started (free plan or skip_payment)", body = CreatedTenant),
        (status = 403, description = "Needs tenants:write as staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slug-taken` or `email-taken`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(input): Json<CreateTenantInput>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TenantsWrite)?;
    principal.require_staff()?;
    let caller = crate::audit::caller(&principal, &client);
    created_response(service::create_for_customer(&state.tenancy, &caller, input).await?)
}

/// Filters of the tenant list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this product (slug).
    pub product: Option<String>,
    /// Only this plan (code).
    pub plan: Option<String>,
    /// Text in the slug or company name (case-insensitive).
    pub q: Option<String>,
    /// Most items, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Tenants, oldest first (tenant users see only their own).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(TenantQuery),
    responses((status = 200, description = "A page of tenants", body = Page<Tenant>))
)]
#[get("/tenants")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<TenantQuery>,
) -> ApiResult<web::Json<Page<Tenant>>> {
    principal.require(Scope::TenantsRead)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    if let Some(s) = &q.status {
        s.parse::<TenantStatus>()
            .map_err(|message| ApiError::BadRequest {
                detail: format!("invalid query parameter status: {message}"),
                errors: vec![crate::error::FieldProblem {
                    field: "status".into(),
                    message,
                }],
            })?;
    }
    let filter = TenantFilter {
        status: q.status,
        product: q.product,
        plan: q.plan,
        q: q.q,
    };
    let mut conn = state.pool.get().await?;
    let rows = store::list_tenants(
        &mut conn,
        &filter,
        crate::audit::viewer(&principal).visibility(),
        page,
    )
    .await?;
    Ok(web::Json(Page::try_from_store(rows, |v| {
        Ok(tenant_dto(v))
    })?))
}

/// One tenant, by id or slug. The `ETag` is its version.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "The tenant", body = Tenant, headers(("ETag" = String, description = "The version"))),
        (status = 404, description = "No such tenant (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TenantsRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &crate::audit::viewer(&principal), &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(tenant_dto(view)))
}

/// What may be patched on a tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New company name.
    pub company_name: String,
}

/// Change a tenant's company name. With `If-Match`, only if the version is unchanged (else `412`).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; a stale one answers 412"),
    ),
    request_body = TenantPatch,
    responses(
        (status = 200, description = "Updated", body = Tenant, headers(("ETag" = String, description = "The new version"))),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 412, description = "`precondition-failed`: changed since read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/tenants/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    req: HttpRequest,
    id: web::Path<String>,
    Json(patch): Json<TenantPatch>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TenantsWrite)?;
    let expected = if_match_version(&req)?;
    let view = service::rename(
        &state.tenancy,
        &crate::audit::caller(&principal, &client),
        &id,
        &patch.company_name,
        expected,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(tenant_dto(view)))
}

/// The version an `If-Match` header names (`None` without one or with `*`).
fn if_match_version(req: &HttpRequest) -> ApiResult<Option<i32>> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.trim_start_matches("W/").trim_matches('"');
    tag.parse::<i32>().map(Some).map_err(|_| {
        ApiError::PreconditionFailed(format!("If-Match {text:?} is not an ETag of this tenant"))
    })
}

async fn status_change(
    state: &AppState,
    principal: &Principal,
    client: &ClientInfo,
    id: &str,
    to: TenantStatus,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TenantsWrite)?;
    principal.require_staff()?;
    let caller = crate::audit::caller(principal, client);
    let (view, job) = service::transition(&state.tenancy, &caller, id, to).await?;
    let mut res = if job.is_some() {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(TenantJob {
            tenant: tenant_dto(view),
            job: job.map(Job::from),
        }))
}

/// How a signup was paid.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkSignupPaidInput {
    /// The payment's reference (bank transfer, receipt…), 1–200 characters.
    pub reference: String,
}

/// Staff: record that a tenant awaiting its first payment paid outside the
/// provider (or with `TENANTRY_PAYMENTS=disabled`): `pending_payment →
/// provisioning` with the `provision` job (`202`), as a paid checkout does.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = MarkSignupPaidInput,
    responses(
        (status = 202, description = "Provisioning started", body = TenantJob),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid-transition`: not awaiting payment", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or overlong reference", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/mark-paid")]
pub async fn mark_paid(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
    Json(input): Json<MarkSignupPaidInput>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingWrite)?;
    principal.require_staff()?;
    let reference = input.reference.trim();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(ApiError::Validation {
            detail: "reference must be 1 to 200 characters".into(),
            errors: vec![crate::error::FieldProblem {
                field: "reference".into(),
                message: "must be 1 to 200 characters".into(),
            }],
        });
    }
    let (view, job) = service::mark_signup_paid(
        &state.tenancy,
        &crate::audit::caller(&principal, &client),
        &id,
        reference,
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(TenantJob {
            tenant: tenant_dto(view),
            job: job.map(Job::from),
        }))
}

/// Pause a tenant (`active → paused`): a `suspend` job stops its dedicated
/// container, or disables a shared tenant's database login.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Paused; the job stops its instance", body = TenantJob),
        (status = 409, description = "`invalid-transition` from the current status", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    status_change(&state, &principal, &client, &id, TenantStatus::Paused).await
}

/// Resume a paused or suspended tenant (`→ active`): a `resume` job starts
/// its container again (or re-enables its database login).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Active again; the job starts its instance", body = TenantJob),
        (status = 409, description = "`invalid-transition`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/resume")]
pub async fn resume(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    status_change(&state, &principal, &client, &id, TenantStatus::Active).await
}

/// Provision a `failed` tenant again (`failed → provisioning`), from where
/// the failed attempt stopped: what it built is found again, not rebuilt.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Provisioning again", body = TenantJob),
        (status = 409, description = "`invalid-transition`: the tenant is not `failed`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/retry-provisioning")]
pub async fn retry_provisioning(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    status_change(&state, &principal, &client, &id, TenantStatus::Provisioning).await
}

/// Delete a tenant: starts deprovisioning (`202` with the job). Its
/// subscription ends at once (`canceled`; a Stripe subscription is canceled,
/// nothing more is billed); a tenant never served gets every period it paid
/// refunded in full through the payment provider. Its activity log and
/// history are kept.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Deprovisioning started", body = TenantJob),
        (status = 409, description = "`invalid-transition`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/tenants/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    status_change(
        &state,
        &principal,
        &client,
        &id,
        TenantStatus::Deprovisioning,
    )
    .await
}
