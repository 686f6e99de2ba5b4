//! What a tenant has and did: its subscription, its deployments, its
//! activity.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_domain::Scope;
use tenantry_store::activity::{self, ActivityFilter};
use tenantry_tenancy as service;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Subscription, subscription_dto};
use crate::{
    AppState,
    auth::Principal,
    error::ApiResult,
    extract::Query,
    pagination::{Page, PageParams},
    routes::activity::Activity,
};

/// Where a tenant runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deployment {
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
    /// Host port: a dedicated instance's, or the shared instance's
    /// published port (Docker).
    pub host_port: Option<i32>,
    /// Where the reverse proxy reaches the app: the Docker engine's host,
    /// or the LXC container's IPv4 read from Proxmox. Null until read.
    pub upstream_host: Option<String>,
    /// The port there (published port on Docker, the product's internal
    /// port on Proxmox).
    pub upstream_port: Option<i32>,
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
        (status = 200, description = "Its deployments", body = Vec<Deployment>),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/deployments")]
pub async fn deployments(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<Deployment>>> {
    principal.require(Scope::TenantsRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &crate::audit::viewer(&principal), &id).await?;
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
        let instance = match d.instance_id {
            Some(i) => tenantry_store::nodes::get_instance(&mut conn, i).await.ok(),
            None => None,
        };
        let live = d.status != "retired";
        let (container_id, instance_port, upstream_host, upstream_port) = match instance {
            Some(i) if live => (i.external_id, i.host_port, i.upstream_host, i.upstream_port),
            Some(i) => (i.external_id, None, None, None),
            None => (None, None, None, None),
        };
        out.push(Deployment {
            id: d.id,
            kind: d.kind,
            status: d.status,
            url: d.url,
            node,
            instance_id: d.instance_id,
            container_id,
            host_port: d.host_port.or(instance_port),
            upstream_host,
            upstream_port,
            database: d.database_name,
            created_at: d.created_at,
        });
    }
    Ok(web::Json(out))
}

/// A tenant's activity, oldest first.
#[utoipa::path(
    context_path = "/v1", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), PageParams),
    responses(
        (status = 200, description = "A page of entries", body = Page<Activity>),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/activity")]
pub async fn tenant_activity(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<Activity>>> {
    principal.require(Scope::TenantsRead)?;
    let page = params.to_request()?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &crate::audit::viewer(&principal), &id).await?;
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
        (status = 200, description = "The subscription", body = Subscription),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/subscription")]
pub async fn get_subscription(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<Subscription>> {
    principal.require(Scope::BillingRead)?;
    let mut conn = state.pool.get().await?;
    let view = service::find(&mut conn, &crate::audit::viewer(&principal), &id).await?;
    let subscription = tenantry_billing::engine::subscription_view(
        &mut conn,
        &state.settings.billing_clock(),
        view.tenant.id,
    )
    .await?;
    let open = subscription.open_change.clone();
    let mut dto = subscription_dto(subscription);
    if let Some(change) = open {
        let change = crate::routes::billing::change_dto(&mut conn, change).await?;
        dto.scheduled_plan_change = serde_json::to_value(change).ok();
    }
    Ok(web::Json(dto))
}
