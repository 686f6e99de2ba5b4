//! A tenant's custom domains: add one (`pending`, with the DNS TXT record
//! that proves control of it), list, remove, and check now.
//!
//! A domain is routed to the tenant once `verified`: a `domain.verify` job
//! queued with the domain looks its TXT record up, the re-check ticker
//! (`TENANTRY_DOMAIN_CHECK_SECS`) queues more for pending domains during 7
//! days, and `POST …/verify` looks at once. The database's triggers queue a
//! `routing.sync` whenever a domain is verified or removed.
//!
//! - `hostname`: the host name rules ([`CustomHostname`]);
//! - `verify`: the TXT lookup, its recording, the job and the ticker
//!   ([`DomainVerifier`]).

mod hostname;
mod verify;

pub use hostname::{CustomHostname, HostnameError};
pub use verify::{CHECK_TIMEOUT, DnsLookup, DomainVerifier, RECHECK_FOR};

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{Scope, TenantStatus, ValidationErrors};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    domains::{self as store, TenantDomain},
    jobs::{self, kinds::DomainVerify},
    tenants::TenantView,
};
use tenantry_tenancy as service;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::Json,
};

/// Most custom domains one tenant may hold.
pub const MAX_DOMAINS_PER_TENANT: u32 = 20;

/// A tenant's custom domain, and the DNS records that serve it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Domain {
    /// Id.
    pub id: Uuid,
    /// The host name, lowercase ASCII (a Unicode name is shown as its IDNA
    /// A-labels, `xn--…`).
    pub hostname: String,
    /// `pending` (not routed yet) or `verified` (routed to the tenant).
    pub status: String,
    /// Name of the DNS TXT record to publish: `_tenantry-challenge.<hostname>`.
    pub txt_name: String,
    /// Value that TXT record must hold (the domain's verification token).
    pub txt_value: String,
    /// Where to point the host name: a `CNAME` to this name (or `A`/`AAAA`
    /// records with its addresses, at a zone apex): `<slug>.<base domain>`.
    pub cname_target: String,
    /// When the TXT record was found.
    pub verified_at: Option<DateTime<Utc>>,
    /// When the record was last looked up.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Why the last lookup did not verify it (no record, NXDOMAIN, a value
    /// that does not match, a DNS failure).
    pub last_error: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

fn dto(d: TenantDomain, slug: &str, base_domain: &str) -> Domain {
    Domain {
        id: d.id,
        txt_name: hostname::challenge_name(&d.hostname),
        hostname: d.hostname,
        status: d.status,
        txt_value: d.verification_token,
        cname_target: format!("{slug}.{}", base_domain.trim_end_matches('.')),
        verified_at: d.verified_at,
        last_checked_at: d.last_checked_at,
        last_error: d.last_error,
        created_at: d.created_at,
    }
}

/// A custom domain to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomainInput {
    /// The host name, e.g. `shop.example.com` or `bücher.example` (stored
    /// as IDNA A-labels): at most 253 characters, at least two labels, no
    /// wildcard, no IP address, not under the platform's domain.
    pub hostname: String,
}

async fn tenant_of(state: &AppState, principal: &Principal, id: &str) -> ApiResult<TenantView> {
    let mut conn = state.pool.get().await?;
    Ok(service::find(&mut conn, &crate::audit::viewer(principal), id).await?)
}

/// A tenant's custom domains, oldest first (at most
/// [`MAX_DOMAINS_PER_TENANT`]).
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "The domains", body = [Domain]),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks tenants:read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/domains")]
pub async fn list_domains(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<Domain>>> {
    principal.require(Scope::TenantsRead)?;
    let view = tenant_of(&state, &principal, &id).await?;
    let mut conn = state.pool.get().await?;
    let base = &state.settings.provisioning.base_domain;
    Ok(web::Json(
        store::list(&mut conn, view.tenant.id)
            .await?
            .into_iter()
            .map(|d| dto(d, &view.tenant.slug, base))
            .collect(),
    ))
}

/// Add a custom domain (tenant owner or staff): `201` with the domain,
/// `pending`, and the records to publish — a TXT record `txt_name` holding
/// `txt_value`, and a CNAME to `cname_target`. A `domain.verify` job looks
/// the TXT record up at once; pending domains are looked up again every
/// `TENANTRY_DOMAIN_CHECK_SECS` for 7 days, and on `POST …/verify`.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = AddDomainInput,
    responses(
        (status = 201, description = "Added, pending verification", body = Domain),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the tenant's owner nor staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hostname-taken`: a tenant holds the host name already; `domain-limit-reached`: the tenant holds 20 domains; `tenant-deleted`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation-failed`: `hostname` is no host name a tenant may claim", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/domains")]
pub async fn add_domain(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
    Json(input): Json<AddDomainInput>,
) -> ApiResult<HttpResponse> {
    principal.require_owner_or_staff_because(
        "only the tenant's owner or staff may manage its domains",
    )?;
    let view = tenant_of(&state, &principal, &id).await?;
    let base = &state.settings.provisioning.base_domain;
    let mut errors = ValidationErrors::new();
    let hostname = errors.check("hostname", CustomHostname::parse(&input.hostname, base));
    let hostname = errors.into_result(|| hostname)?;
    if view.tenant.status == TenantStatus::Deleted {
        return Err(ApiError::Conflict {
            code: "tenant-deleted",
            detail: format!("tenant {} is deleted", view.tenant.slug),
        });
    }
    let tenant_id = view.tenant.id;
    let token = verification_token();
    let entry = crate::audit::by(&principal, "domain.added", &client).tenant(Some(tenant_id));
    let mut conn = state.pool.get().await?;
    let domain = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let domain = store::insert_within_limit(
                conn,
                tenant_id,
                hostname.as_str(),
                &token,
                MAX_DOMAINS_PER_TENANT,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => ApiError::Conflict {
                    code: "hostname-taken",
                    detail: format!("{hostname} is already claimed"),
                },
                other => other.into(),
            })?
            .ok_or_else(|| ApiError::Conflict {
                code: "domain-limit-reached",
                detail: format!(
                    "a tenant may hold at most {MAX_DOMAINS_PER_TENANT} custom domains: remove one first"
                ),
            })?;
            jobs::enqueue(
                conn,
                &DomainVerify {
                    tenant_id,
                    domain_id: domain.id,
                },
            )
            .await?;
            entry
                .target("tenant_domain", domain.id)
                .change(
                    None,
                    Some(serde_json::json!({"hostname": domain.hostname, "status": domain.status})),
                )
                .record(conn)
                .await?;
            Ok(domain)
        })
        .await?;
    Ok(HttpResponse::Created().json(dto(domain, &view.tenant.slug, base)))
}

/// Remove a custom domain (tenant owner or staff): it stops being routed
/// in this transaction, and the host name is free to claim again.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug"),
        ("domain_id" = Uuid, Path, description = "The domain's id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the tenant's owner nor staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no such domain of it", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/tenants/{id}/domains/{domain_id}")]
pub async fn remove_domain(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<HttpResponse> {
    principal.require_owner_or_staff_because(
        "only the tenant's owner or staff may manage its domains",
    )?;
    let (id, domain_id) = path.into_inner();
    let view = tenant_of(&state, &principal, &id).await?;
    let tenant_id = view.tenant.id;
    let entry = crate::audit::by(&principal, "domain.removed", &client).tenant(Some(tenant_id));
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let gone = store::delete(conn, tenant_id, domain_id)
            .await
            .map_err(domain_not_found)?;
        entry
            .target("tenant_domain", gone.id)
            .change(
                Some(serde_json::json!({"hostname": gone.hostname, "status": gone.status})),
                None,
            )
            .record(conn)
            .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Check a custom domain's TXT record now (tenant owner or staff), waiting
/// for the answer (10 s at most): the domain with its new status, or its
/// `last_error`. A verified domain is returned as it is.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Tenant id or slug"),
        ("domain_id" = Uuid, Path, description = "The domain's id"),
    ),
    responses(
        (status = 200, description = "Checked: `verified`, or still `pending` with `last_error`", body = Domain),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the tenant's owner nor staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no such domain of it", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/domains/{domain_id}/verify")]
pub async fn verify_domain(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<web::Json<Domain>> {
    principal.require_owner_or_staff_because(
        "only the tenant's owner or staff may manage its domains",
    )?;
    let (id, domain_id) = path.into_inner();
    let view = tenant_of(&state, &principal, &id).await?;
    {
        let mut conn = state.pool.get().await?;
        store::get(&mut conn, view.tenant.id, domain_id)
            .await
            .map_err(domain_not_found)?;
    }
    let checked = verifier(&state)
        .check(domain_id, &crate::audit::actor(&principal, &client))
        .await
        .map_err(domain_not_found)?;
    Ok(web::Json(dto(
        checked,
        &view.tenant.slug,
        &state.settings.provisioning.base_domain,
    )))
}

/// The domain checker of this app (the `domain.verify` handler, the
/// re-check ticker and `POST …/verify` share it).
pub fn verifier(state: &AppState) -> DomainVerifier {
    DomainVerifier::new(state.pool.clone(), &state.settings.domains)
}

fn domain_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("domain"),
        other => other.into(),
    }
}

/// A fresh verification token: 128 random bits from the OS, as 32
/// lowercase hex digits (what the TXT record must hold).
fn verification_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0_u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
