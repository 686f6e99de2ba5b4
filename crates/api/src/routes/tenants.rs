//! `/v1/signup`, `/v1/tenants/*`, `/v1/invitations/accept`.

use actix_governor::{Governor, GovernorConfigBuilder};
use actix_web::{HttpRequest, HttpResponse, delete, get, http::header, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tenantry_domain::{Currency, Money, Scope, TenantStatus};
use tenantry_store::{
    activity::{self, ActivityFilter},
    tenants::{self as store, Subscription, TenantFilter, TenantView},
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::{Json, Query},
    pagination::{Page, PageParams},
    routes::{activity::ActivityDto, auth::ClientIpKey, catalog::MoneyDto, jobs::JobDto},
    tenants::{self as service, CreateTenantInput, Created, SignupInput},
};

/// A customer workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDto {
    /// Id.
    pub id: Uuid,
    /// Slug, also the subdomain.
    pub slug: String,
    /// Company name.
    pub company_name: String,
    /// Product slug.
    pub product: String,
    /// Current plan code.
    pub plan: String,
    /// `shared`, `dedicated` or `dedicated_ha`.
    pub deployment: String,
    /// `pending_payment`, `provisioning`, `active`, `paused`, `suspended`,
    /// `failed`, `migrating`, `deprovisioning` or `deleted`.
    pub status: String,
    /// Why it is in that status, when known.
    pub status_reason: Option<String>,
    /// When it first became active.
    pub provisioned_at: Option<DateTime<Utc>>,
    /// Version (also the `ETag`): send it back as `If-Match` when updating.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tenant's subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDto {
    /// Id.
    pub id: Uuid,
    /// Plan code.
    pub plan: String,
    /// `incomplete`, `active`, `past_due`, `canceled` or `expired`.
    pub status: String,
    /// Start of the current billing period.
    pub current_period_start: Option<DateTime<Utc>>,
    /// End of the current billing period (exclusive); `null` for lifetime plans and unpaid subscriptions.
    pub current_period_end: Option<DateTime<Utc>>,
    /// When the next charge falls due (the period end of an active recurring subscription).
    pub next_charge_at: Option<DateTime<Utc>>,
    /// What the next charge will be (the plan's price).
    pub next_charge_amount: Option<MoneyDto>,
    /// Whole days left in the current period.
    pub days_remaining: Option<i64>,
    /// The open plan change, if any: a scheduled downgrade or an upgrade awaiting payment.
    pub scheduled_plan_change: Option<serde_json::Value>,
    /// Payment provider: `none` or `stripe`.
    pub provider: String,
    /// The provider's customer id.
    pub provider_customer_id: Option<String>,
    /// The provider's subscription id.
    pub provider_subscription_id: Option<String>,
}

/// A created tenant and what comes next.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenantDto {
    /// The tenant.
    pub tenant: TenantDto,
    /// Its subscription.
    pub subscription: SubscriptionDto,
    /// Where the customer pays, for a paid plan awaiting payment.
    pub checkout_url: Option<String>,
    /// The provisioning job, when provisioning started.
    pub job: Option<JobDto>,
    /// The owner's single-use invitation link (tenants created by operators); shown once.
    pub owner_invitation_url: Option<String>,
}

/// A tenant and the job a change started.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantJobDto {
    /// The tenant.
    pub tenant: TenantDto,
    /// The job.
    pub job: Option<JobDto>,
}

fn tenant_dto(v: TenantView) -> TenantDto {
    TenantDto {
        id: v.tenant.id,
        slug: v.tenant.slug,
        company_name: v.tenant.company_name,
        product: v.product_slug,
        plan: v.plan_code,
        deployment: v.tenant.deployment,
        status: v.tenant.status,
        status_reason: v.tenant.status_reason,
        provisioned_at: v.tenant.provisioned_at,
        version: v.tenant.version,
        created_at: v.tenant.created_at,
        updated_at: v.tenant.updated_at,
    }
}

/// The API view of a subscription at `now` (the billing clock's), the next
/// charge at `next_plan`'s price (the plan a scheduled change moves to by then).
fn subscription_dto(
    s: Subscription,
    plan: &tenantry_store::catalog::Plan,
    next_plan: &tenantry_store::catalog::Plan,
    now: DateTime<Utc>,
) -> ApiResult<SubscriptionDto> {
    let recurring = s.status == "active" && s.current_period_end.is_some();
    let currency =
        Currency::parse(&next_plan.currency).map_err(|e| ApiError::Internal(e.into()))?;
    let price = Money::rounded(next_plan.price, currency);
    Ok(SubscriptionDto {
        id: s.id,
        plan: plan.code.clone(),
        status: s.status,
        current_period_start: s.current_period_start,
        current_period_end: s.current_period_end,
        next_charge_at: recurring.then_some(s.current_period_end).flatten(),
        next_charge_amount: recurring.then(|| MoneyDto {
            amount: price.amount().to_string(),
            currency: currency.code().to_owned(),
        }),
        days_remaining: s
            .current_period_end
            .map(|end| (end - now).num_days().max(0)),
        scheduled_plan_change: None,
        provider: s.provider,
        provider_customer_id: s.provider_customer_id,
        provider_subscription_id: s.provider_subscription_id,
    })
}

fn etag(version: i32) -> header::EntityTag {
    header::EntityTag::new_strong(version.to_string())
}

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
    let subscription = subscription_dto(created.subscription, &created.plan, &created.plan, now)?;
    Ok(res.json(CreatedTenantDto {
        tenant: tenant_dto(created.tenant),
        subscription,
        checkout_url: created.checkout_url,
        job: created.job.map(JobDto::from),
        owner_invitation_url: created.owner_invitation_url,
    }))
}

/// Registers `POST /v1/signup`, rate-limited per client IP.
pub fn register_signup(cfg: &mut web::ServiceConfig, settings: &crate::config::Settings) {
    let per_minute = settings.signup_rate_per_minute.max(1);
    let governor = GovernorConfigBuilder::default()
        .milliseconds_per_request((60_000 / u64::from(per_minute)).max(1))
        .burst_size(per_minute)
        .key_extractor(ClientIpKey(settings.auth.trusted_proxies.clone()))
        .finish();
    let resource = web::resource("/signup").route(web::post().to(signup));
    match governor {
        Some(config) => {
            cfg.service(resource.wrap(Governor::new(&config)));
        }
        None => {
            tracing::error!(
                "signup rate limiter refused its configuration; signup is not rate-limited"
            );
            cfg.service(resource);
        }
    }
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
        (status = 201, description = "Created; pay at `checkout_url`", body = CreatedTenantDto),
        (status = 202, description = "Free plan: provisioning started", body = CreatedTenantDto),
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
    created_response(service::signup(&state, input, &client).await?)
}

/// Create a tenant for a customer (staff). The owner gets an invitation link.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenantInput,
    responses(
        (status = 201, description = "Created, awaiting payment", body = CreatedTenantDto),
        (status = 202, description = "Created; provisioning started (free plan or skip_payment)", body = CreatedTenantDto),
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
    require_staff(&principal)?;
    created_response(service::create_for_customer(&state, &principal, input, &client).await?)
}

fn require_staff(principal: &Principal) -> ApiResult<()> {
    if principal.role.is_staff() && principal.tenant_id.is_none() {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "forbidden",
            detail: "only platform staff may do this".into(),
        })
    }
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
    responses((status = 200, description = "A page of tenants", body = Page<TenantDto>))
)]
#[get("/tenants")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<TenantQuery>,
) -> ApiResult<web::Json<Page<TenantDto>>> {
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
    let rows =
        store::list_tenants(&mut conn, &filter, service::visibility(&principal), page).await?;
    Ok(web::Json(Page::try_from_store(rows, |v| {
        Ok(tenant_dto(v))
    })?))
}

/// One tenant, by id or slug. The `ETag` is its version.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "The tenant", body = TenantDto, headers(("ETag" = String, description = "The version"))),
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
    let view = service::find(&mut conn, &principal, &id).await?;
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
        (status = 200, description = "Updated", body = TenantDto, headers(("ETag" = String, description = "The new version"))),
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
        &state,
        &principal,
        &id,
        &patch.company_name,
        expected,
        &client,
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
    job: Option<&str>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::TenantsWrite)?;
    require_staff(principal)?;
    let (view, job) = service::transition(state, principal, id, to, job, client).await?;
    let mut res = if job.is_some() {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(TenantJobDto {
            tenant: tenant_dto(view),
            job: job.map(JobDto::from),
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
        (status = 202, description = "Provisioning started", body = TenantJobDto),
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
    require_staff(&principal)?;
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
    let (view, job) =
        service::mark_signup_paid(&state, &principal, &id, reference, &client).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(header::ETag(etag(view.tenant.version)))
        .json(TenantJobDto {
            tenant: tenant_dto(view),
            job: job.map(JobDto::from),
        }))
}

/// Pause a tenant (`active → paused`): a `suspend` job stops its dedicated
/// container, or disables a shared tenant's database login.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Paused; the job stops its instance", body = TenantJobDto),
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
    status_change(
        &state,
        &principal,
        &client,
        &id,
        TenantStatus::Paused,
        Some("suspend"),
    )
    .await
}

/// Resume a paused or suspended tenant (`→ active`): a `resume` job starts
/// its container again (or re-enables its database login).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Active again; the job starts its instance", body = TenantJobDto),
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
    status_change(
        &state,
        &principal,
        &client,
        &id,
        TenantStatus::Active,
        Some("resume"),
    )
    .await
}

/// Provision a `failed` tenant again (`failed → provisioning`), from where
/// the failed attempt stopped: what it built is found again, not rebuilt.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Provisioning again", body = TenantJobDto),
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
    status_change(
        &state,
        &principal,
        &client,
        &id,
        TenantStatus::Provisioning,
        Some("provision"),
    )
    .await
}

/// Where a tenant runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentDto {
    /// Id.
    pub id: Uuid,
    /// `shared` or `dedicated`.
    pub kind: String,
    /// `provisioning`, `active` or `retired`.
    pub status: String,
    /// The tenant's URL.
    pub url: String,
    /// The node's name.
    pub node: Option<String>,
    /// The instance id (also the container's owner tag).
    pub instance_id: Option<Uuid>,
    /// The container's id on its node (Proxmox vmid, Docker container id).
    pub container_id: Option<String>,
    /// Host port (dedicated).
    pub host_port: Option<i32>,
    /// The tenant's database (its role has the same name).
    pub database: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// The tenant's deployments, newest first: the `active` one serves it; a
/// `provisioning` one is being built (provisioning, migration); `retired`
/// ones are history.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "Its deployments", body = Vec<DeploymentDto>),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/deployments")]
pub async fn deployments(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<DeploymentDto>>> {
    principal.require(Scope::TenantsRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &principal, &id).await?;
    let mut out = Vec::new();
    for d in tenantry_store::deployments::history(&mut conn, view.tenant.id)
        .await?
        .into_iter()
        .rev()
    {
        let node = match d.node_id {
            Some(n) => tenantry_store::nodes::get(&mut conn, n)
                .await
                .ok()
                .map(|n| n.name),
            None => None,
        };
        let container_id = match d.instance_id {
            Some(i) => tenantry_store::nodes::get_instance(&mut conn, i)
                .await
                .ok()
                .and_then(|i| i.external_id),
            None => None,
        };
        out.push(DeploymentDto {
            id: d.id,
            kind: d.kind,
            status: d.status,
            url: d.url,
            node,
            instance_id: d.instance_id,
            container_id,
            host_port: d.host_port,
            database: d.database_name,
            created_at: d.created_at,
        });
    }
    Ok(web::Json(out))
}

/// Delete a tenant: starts deprovisioning (`202` with the job). Its activity
/// log and history are kept.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 202, description = "Deprovisioning started", body = TenantJobDto),
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
        Some("deprovision"),
    )
    .await
}

/// A tenant's activity, oldest first.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), PageParams),
    responses(
        (status = 200, description = "A page of entries", body = Page<ActivityDto>),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/activity")]
pub async fn tenant_activity(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<ActivityDto>>> {
    principal.require(Scope::TenantsRead)?;
    let page = params.to_request()?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &principal, &id).await?;
    let filter = ActivityFilter {
        tenant_id: Some(view.tenant.id),
        ..ActivityFilter::default()
    };
    let rows = activity::list(&mut conn, &filter, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |a| {
        Ok(crate::routes::activity::dto(a))
    })?))
}

/// A tenant's subscription: plan, status, period, next charge, days left.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionDto),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/subscription")]
pub async fn get_subscription(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<SubscriptionDto>> {
    principal.require(Scope::BillingRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &principal, &id).await?;
    let (sub, plan) = store::subscription_of(&mut conn, view.tenant.id).await?;
    let now = state.settings.billing_clock().now(&mut conn).await?;
    let open = tenantry_store::billing::open_change(&mut conn, view.tenant.id).await?;
    // A downgrade scheduled for the period end sets the next charge's price.
    let next_plan = match &open {
        Some(c)
            if c.status == "scheduled"
                && c.effective_at.is_some()
                && c.effective_at <= sub.current_period_end =>
        {
            tenantry_store::catalog::find_plan_by_id(&mut conn, c.to_plan_id).await?
        }
        _ => plan.clone(),
    };
    let mut dto = subscription_dto(sub, &plan, &next_plan, now)?;
    if let Some(change) = open {
        let change = crate::routes::billing::change_dto(&mut conn, change).await?;
        dto.scheduled_plan_change = serde_json::to_value(change).ok();
    }
    Ok(web::Json(dto))
}

/// A member of a tenant, or someone invited.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
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
        (status = 200, description = "Members, then pending invitations", body = [MemberDto]),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<MemberDto>>> {
    principal.require(Scope::TenantsRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &principal, &id).await?;
    let mut out: Vec<MemberDto> = store::members_of(&mut conn, view.tenant.id)
        .await?
        .into_iter()
        .map(|u| MemberDto {
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
            .map(|i| MemberDto {
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
pub struct InvitationDto {
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

fn require_owner_or_staff(principal: &Principal) -> ApiResult<()> {
    if principal.role.is_staff() || principal.role == tenantry_domain::Role::TenantOwner {
        principal.require(Scope::TenantsWrite)
    } else {
        Err(ApiError::Forbidden {
            code: "forbidden",
            detail: "only the tenant's owner or staff may manage members".into(),
        })
    }
}

/// Invite a `tenant_member` (tenant owner or staff).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = InviteInput,
    responses(
        (status = 201, description = "Invited", body = InvitationDto),
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
    require_owner_or_staff(&principal)?;
    let (inv, url) = service::invite(&state, &principal, &id, &input.email, &client).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(InvitationDto {
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
    require_owner_or_staff(&principal)?;
    let (id, user_id) = path.into_inner();
    service::remove_member(&state, &principal, &id, user_id, &client).await?;
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
pub struct AcceptedDto {
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
        (status = 201, description = "Account created", body = AcceptedDto),
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
    let user = service::accept_invitation(&state, &input.token, &input.password, &client).await?;
    Ok(HttpResponse::Created().json(AcceptedDto {
        user_id: user.id,
        email: user.email,
        role: user.role,
        tenant_id: user.tenant_id,
    }))
}
