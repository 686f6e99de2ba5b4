//! `/v1/nodes`: the registry of Proxmox VE nodes and Docker hosts (staff
//! only). Credentials go in, sealed; they never come out.
//!
//! The handlers are here; `input` holds the request bodies and their
//! validation, `view` a node as shown.

mod input;
mod view;

pub use input::*;
pub use view::*;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use tenantry_domain::{
    DriverKind, NodeCapacity, NodeName, NodeStatus, Scope, ValidationErrors, node::check_api_url,
};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    nodes::{self, NewNode, NodeChanges, NodeFilter},
};
use utoipa::IntoParams;
use uuid::Uuid;

use self::{
    input::{credentials, operator_status, tls},
    view::{audit_view, dto},
};
use tenantry_provisioning::nodes::seal;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::{Json, Query},
    pagination::{Page, PageParams},
};

fn name_taken(name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            code: "conflict",
            detail: format!("a node named {name:?} already exists"),
        },
        other => other.into(),
    }
}

fn not_found(id: Uuid) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("node {id}")),
        other => other.into(),
    }
}

/// Register a node. Credentials are sealed with AES-256-GCM under the
/// current `TENANTRY_SECRET_KEYS` key and never returned. Does not contact
/// the node: `POST /v1/nodes/{id}/check` does.
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    request_body = CreateNode,
    responses(
        (status = 201, description = "Registered", body = Node),
        (status = 403, description = "Needs nodes:write", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/nodes")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(input): Json<CreateNode>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::NodesWrite)?;
    let mut errors = ValidationErrors::new();
    let kind = errors.check("kind", input.kind.parse::<DriverKind>());
    let name = errors.check("name", NodeName::parse(&input.name));
    if let Some(k) = kind {
        errors.check("api_url", check_api_url(k, &input.api_url));
    }
    let pve_node = input
        .pve_node
        .as_deref()
        .and_then(|p| errors.check("pve_node", NodeName::parse(p)));
    let creds = kind.and_then(|k| credentials(k, input.credentials.as_ref(), true, &mut errors));
    let (ca, fp) = tls(input.tls.as_ref(), &mut errors);
    let c = &input.capacity;
    let capacity = NodeCapacity::validate(
        c.cpu_cores,
        c.memory_mib,
        c.storage_gib,
        c.max_instances,
        "capacity.",
        &mut errors,
    );
    let status = input
        .status
        .as_deref()
        .map_or(Some(NodeStatus::Online), |s| {
            operator_status(s, &mut errors)
        });
    let (kind, name, capacity, status) =
        errors.into_result(|| Some((kind?, name?, capacity?, status?)))?;
    let id = Uuid::now_v7();
    let sealed = creds.map(|c| seal(&state.auth.keyring, id, &c));
    let new = NewNode {
        id,
        kind: kind.as_str().into(),
        name: name.as_str().into(),
        api_url: input.api_url.clone(),
        pve_node: pve_node.map(|p| p.as_str().to_owned()),
        credentials: sealed.as_ref().map(|s| s.blob.clone()),
        credentials_key_id: sealed.map(|s| s.key_id),
        tls_ca_pem: ca,
        tls_fingerprint: fp,
        status: status.as_str().into(),
        cpu_cores: i32::try_from(capacity.cpu_cores).unwrap_or(i32::MAX),
        memory_mib: i64::try_from(capacity.memory_mib).unwrap_or(i64::MAX),
        storage_gib: i64::try_from(capacity.storage_gib).unwrap_or(i64::MAX),
        max_instances: i32::try_from(capacity.max_instances).unwrap_or(i32::MAX),
    };
    let mut conn = state.pool.get().await?;
    let dto = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let node = nodes::insert(conn, &new)
                .await
                .map_err(name_taken(&new.name))?;
            let dto = dto(&state, node, 0);
            crate::audit::by(&principal, "node.created", &client)
                .target("node", dto.id)
                .change(None, Some(audit_view(&dto)))
                .record(conn)
                .await?;
            Ok(dto)
        })
        .await?;
    Ok(HttpResponse::Created().json(dto))
}

/// Filters of the node list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeQuery {
    /// Only this kind: `proxmox` or `docker`.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Most items, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The nodes, oldest first.
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    params(NodeQuery),
    responses(
        (status = 200, description = "A page of nodes", body = Page<Node>),
        (status = 400, description = "Unknown kind or status, bad limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs nodes:read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/nodes")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<NodeQuery>,
) -> ApiResult<web::Json<Page<Node>>> {
    principal.require(Scope::NodesRead)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    let bad = |field: &str, message: String| ApiError::BadRequest {
        detail: format!("invalid query parameter {field}: {message}"),
        errors: vec![crate::error::FieldProblem {
            field: field.into(),
            message,
        }],
    };
    if let Some(k) = &q.kind {
        k.parse::<DriverKind>().map_err(|m| bad("kind", m))?;
    }
    if let Some(s) = &q.status {
        s.parse::<NodeStatus>().map_err(|m| bad("status", m))?;
    }
    let mut conn = state.pool.get().await?;
    let rows = nodes::list(
        &mut conn,
        &NodeFilter {
            kind: q.kind,
            status: q.status,
        },
        page,
    )
    .await?;
    let mut items = Vec::with_capacity(rows.items.len());
    for n in rows.items {
        let count = nodes::instance_count(&mut conn, n.id).await?;
        items.push(dto(&state, n, count));
    }
    Ok(web::Json(Page {
        items,
        next_cursor: rows.next_after.map(crate::pagination::encode_cursor),
    }))
}

/// One node.
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Node id")),
    responses(
        (status = 200, description = "The node", body = Node),
        (status = 403, description = "Needs nodes:read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/nodes/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Node>> {
    principal.require(Scope::NodesRead)?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let node = nodes::get(&mut conn, id).await.map_err(not_found(id))?;
    let count = nodes::instance_count(&mut conn, id).await?;
    Ok(web::Json(dto(&state, node, count)))
}

/// Change a node: name, URL, credentials (replaced whole, re-sealed under
/// the current key), TLS, capacity, or status (`draining` stops new
/// placements; `maintenance` also pauses health checks).
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Node id")),
    request_body = UpdateNode,
    responses(
        (status = 200, description = "Updated", body = Node),
        (status = 403, description = "Needs nodes:write", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/nodes/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<Uuid>,
    Json(input): Json<UpdateNode>,
) -> ApiResult<web::Json<Node>> {
    principal.require(Scope::NodesWrite)?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let dto = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let current = nodes::lock(conn, id).await.map_err(not_found(id))?;
            let kind: DriverKind = current
                .kind
                .parse()
                .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
            let mut errors = ValidationErrors::new();
            let mut changes = NodeChanges::default();
            if let Some(n) = &input.name {
                changes.name = errors
                    .check("name", NodeName::parse(n))
                    .map(|n| n.as_str().to_owned());
            }
            if let Some(u) = &input.api_url {
                errors.check("api_url", check_api_url(kind, u));
                changes.api_url = Some(u.clone());
            }
            if let Some(p) = &input.pve_node {
                changes.pve_node = errors
                    .check("pve_node", NodeName::parse(p))
                    .map(|p| Some(p.as_str().to_owned()));
            }
            if input.credentials.is_some()
                && let Some(c) = credentials(kind, input.credentials.as_ref(), true, &mut errors)
            {
                let sealed = seal(&state.auth.keyring, id, &c);
                changes.credentials = Some(Some(sealed.blob));
                changes.credentials_key_id = Some(Some(sealed.key_id));
            }
            if input.tls.is_some() {
                let (ca, fp) = tls(input.tls.as_ref(), &mut errors);
                changes.tls_ca_pem = Some(ca);
                changes.tls_fingerprint = Some(fp);
            }
            if let Some(c) = &input.capacity
                && let Some(cap) = NodeCapacity::validate(
                    c.cpu_cores,
                    c.memory_mib,
                    c.storage_gib,
                    c.max_instances,
                    "capacity.",
                    &mut errors,
                )
            {
                changes.cpu_cores = i32::try_from(cap.cpu_cores).ok();
                changes.memory_mib = i64::try_from(cap.memory_mib).ok();
                changes.storage_gib = i64::try_from(cap.storage_gib).ok();
                changes.max_instances = i32::try_from(cap.max_instances).ok();
            }
            if let Some(s) = &input.status {
                changes.status = operator_status(s, &mut errors).map(|s| s.as_str().to_owned());
            }
            errors.into_result(|| Some(()))?;
            let count = nodes::instance_count(conn, id).await?;
            let before = dto(&state, current, count);
            let node = nodes::update(conn, id, &changes)
                .await
                .map_err(name_taken(input.name.as_deref().unwrap_or_default()))?;
            let after = dto(&state, node, count);
            crate::audit::by(&principal, "node.updated", &client)
                .target("node", id)
                .change(Some(audit_view(&before)), Some(audit_view(&after)))
                .record(conn)
                .await?;
            Ok(after)
        })
        .await?;
    Ok(web::Json(dto))
}

/// Remove a node from the registry. Refused (409) while instances run on
/// it: migrate or delete them first.
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Node id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Needs nodes:write", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Instances still run on it (`node-not-empty`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/nodes/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::NodesWrite)?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let node = nodes::lock(conn, id).await.map_err(not_found(id))?;
        let count = nodes::instance_count(conn, id).await?;
        if !nodes::delete_if_empty(conn, id).await? {
            return Err(ApiError::Conflict {
                code: "node-not-empty",
                detail: format!(
                    "{count} instance(s) still run on node {}: migrate or delete them first",
                    node.name
                ),
            });
        }
        let before = dto(&state, node, 0);
        crate::audit::by(&principal, "node.deleted", &client)
            .target("node", id)
            .change(Some(audit_view(&before)), None)
            .record(conn)
            .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Test the connection now: asks the node's API for its version, records
/// it, and moves the node between `online` and `offline` if that changed.
/// Always 200 with what was found; `reachable: false` carries the reason.
#[utoipa::path(
    context_path = "/v1", tag = "nodes", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Node id")),
    responses(
        (status = 200, description = "What the check found", body = CheckResult),
        (status = 403, description = "Needs nodes:write", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/nodes/{id}/check")]
pub async fn check(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<CheckResult>> {
    principal.require(Scope::NodesWrite)?;
    let id = id.into_inner();
    let result = state
        .nodes
        .check(id, &principal.label())
        .await
        .map_err(not_found(id))?;
    Ok(web::Json(result.into()))
}
