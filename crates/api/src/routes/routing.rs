//! The route table for reverse proxies: Traefik's HTTP provider
//! configuration, the on-demand TLS check Caddy asks before it obtains a
//! certificate, the table and push state for operators, and the
//! maintenance page Traefik routes paused tenants to.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{
    Scope,
    routing::{MaintenanceReason, Route, is_tenant_subdomain},
};
use tenantry_provisioning::routing::{maintenance_page, traefik_configuration};
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState, auth::Principal, error::ApiResult};

/// Traefik's dynamic configuration for every tenant: point Traefik's HTTP
/// provider at this URL (`providers.http.endpoint`, with an
/// `Authorization: Bearer <token>` header from `providers.http.headers`;
/// a token with the `routing:read` scope). Routers `tenant-<slug>` match
/// the tenant's hosts; services reach its upstream; a `headers` middleware
/// sets `X-Tenantry-Tenant: <slug>`; paused and suspended tenants go to
/// Tenantry's maintenance page (`GET /maintenance/{reason}`, 503).
#[utoipa::path(
    context_path = "/v1", tag = "routing", security(("bearer" = [])),
    responses(
        (status = 200, description = "Traefik dynamic configuration (`http.routers`, `http.services`, `http.middlewares`)", body = Object),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither staff nor a token with routing:read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/routing/traefik")]
pub async fn traefik(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<serde_json::Value>> {
    principal.require(Scope::RoutingRead)?;
    principal.require_staff_because("only platform staff read the route table")?;
    let table = state.router.table().await?;
    Ok(web::Json(traefik_configuration(
        &state.settings.routing.traefik,
        &table,
    )))
}

/// The question Caddy's on-demand TLS asks.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TlsAllowedQuery {
    /// The host name a TLS handshake asked for.
    pub domain: String,
}

/// Whether Caddy may obtain a certificate for `domain` (Caddy's
/// `on_demand_tls.ask`: 200 allows, anything else refuses): a tenant's
/// subdomain of the base domain whose tenant exists, or a verified custom
/// domain. Public, as Caddy calls it without credentials; it says no more
/// than DNS does.
#[utoipa::path(
    context_path = "/v1", tag = "routing",
    params(TlsAllowedQuery),
    responses(
        (status = 200, description = "A certificate may be obtained"),
        (status = 404, description = "Not a host Tenantry serves", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/routing/tls-allowed")]
pub async fn tls_allowed(
    state: web::Data<AppState>,
    web::Query(q): web::Query<TlsAllowedQuery>,
) -> ApiResult<HttpResponse> {
    let host = q.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return Err(ApiError::NotFound(format!(
            "{} is not a host Tenantry serves",
            q.domain
        )));
    }
    let mut conn = state.pool.get().await?;
    let ours = match is_tenant_subdomain(state.router.base_domain(), &host) {
        Some(slug) => tenantry_store::domains::tenant_slug_live(&mut conn, &slug).await?,
        None => tenantry_store::domains::is_verified_and_routed(&mut conn, &host).await?,
    };
    if ours {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "{host} is not a host Tenantry serves"
        )))
    }
}

/// One tenant's route, as the table says.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// The tenant's slug.
    pub tenant: String,
    /// Host names: its subdomain, then its verified custom domains.
    pub hosts: Vec<String>,
    /// `upstream` or `maintenance`.
    pub kind: String,
    /// `host:port` the proxy dials (upstream routes).
    pub upstream: Option<String>,
    /// `shared` or `dedicated` (upstream routes).
    pub deployment: Option<String>,
    /// Why the maintenance page (`paused`, `suspended`, `deprovisioning`,
    /// `unavailable`).
    pub maintenance: Option<String>,
}

impl From<Route> for RouteView {
    fn from(r: Route) -> Self {
        use tenantry_domain::routing::RouteTarget as T;
        let (kind, upstream, deployment, maintenance) = match r.target {
            T::Upstream {
                upstream,
                deployment,
                ..
            } => (
                "upstream",
                Some(upstream.dial()),
                Some(
                    if deployment.is_dedicated() {
                        "dedicated"
                    } else {
                        "shared"
                    }
                    .to_owned(),
                ),
                None,
            ),
            T::Maintenance { reason } => (
                "maintenance",
                None,
                None,
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned)),
            ),
        };
        Self {
            tenant: r.tenant,
            hosts: r.hosts,
            kind: kind.into(),
            upstream,
            deployment,
            maintenance,
        }
    }
}

/// The route table and how the last push to Caddy went.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingView {
    /// Whether a Caddy is driven (`TENANTRY_CADDY_ADMIN_URL`).
    pub caddy: bool,
    /// When Caddy last took the table.
    pub pushed_at: Option<DateTime<Utc>>,
    /// Failed pushes since the last good one.
    pub failures: i32,
    /// Why the last push failed.
    pub last_error: Option<String>,
    /// The routes, by tenant slug.
    pub routes: Vec<RouteView>,
}

/// The route table and its push state (staff).
#[utoipa::path(
    context_path = "/v1", tag = "routing", security(("bearer" = [])),
    responses(
        (status = 200, description = "The table", body = RoutingView),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/routing")]
pub async fn route_table(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<RoutingView>> {
    principal.require(Scope::RoutingRead)?;
    principal.require_staff_because("only platform staff read the route table")?;
    let routes = state.router.table().await?;
    let mut conn = state.pool.get().await?;
    let st = tenantry_store::routing::state(&mut conn).await?;
    Ok(web::Json(RoutingView {
        caddy: state.settings.routing.caddy.is_some(),
        pushed_at: st.pushed_at,
        failures: st.failures,
        last_error: st.last_error,
        routes: routes.into_iter().map(RouteView::from).collect(),
    }))
}

/// The maintenance page a proxy shows for a tenant that is paused,
/// suspended, being removed or not answering yet: HTTP 503 with
/// `Retry-After`, HTML. (Traefik routes such tenants here; Caddy serves
/// the same page itself.)
#[get("/maintenance/{reason}")]
pub async fn maintenance_notice(reason: web::Path<String>) -> HttpResponse {
    let reason: MaintenanceReason =
        serde_json::from_value(serde_json::Value::String(reason.into_inner()))
            .unwrap_or(MaintenanceReason::Unavailable);
    HttpResponse::ServiceUnavailable()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Retry-After", "300"))
        .insert_header(("Cache-Control", "no-store"))
        .body(maintenance_page(reason.message()))
}
