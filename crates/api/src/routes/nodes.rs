//! `/v1/nodes`: the registry of Proxmox VE nodes and Docker hosts (staff
//! only). Credentials go in, sealed; they never come out.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenantry_domain::{
    DriverKind, NodeCapacity, NodeName, NodeStatus, Scope, ValidationErrors,
    node::{check_api_url, parse_fingerprint, parse_pve_token_id},
};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    nodes::{self, NewNode, Node, NodeChanges, NodeFilter},
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    audit::AuditEvent,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::{Json, Query},
    nodes::{CheckResult, Credentials, seal},
    pagination::{Page, PageParams},
};

/// Credentials of a node. Proxmox: `token_id` and `token_secret` (an API
/// token, `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`). Docker:
/// nothing for the local socket, or a TLS client certificate and key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    /// Proxmox API token id, `USER@REALM!TOKENID`, e.g. `root@pam!tenantry`.
    pub token_id: Option<String>,
    /// Proxmox API token secret.
    #[schema(format = Password)]
    pub token_secret: Option<String>,
    /// Docker: TLS client certificate (PEM).
    pub client_cert_pem: Option<String>,
    /// Docker: TLS client key (PEM).
    #[schema(format = Password)]
    pub client_key_pem: Option<String>,
}

/// How the node's TLS certificate is verified: the system's roots by default,
/// or a custom CA, or a pinned certificate fingerprint (not both).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// A CA certificate (PEM) that signed the node's certificate.
    pub ca_pem: Option<String>,
    /// The SHA-256 fingerprint of the node's certificate, `AA:BB:…` (as
    /// Proxmox shows it under Certificates), colons optional.
    pub fingerprint: Option<String>,
}

/// What a node offers Tenantry.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityInput {
    /// CPU cores.
    pub cpu_cores: i64,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// Most instances it may run.
    pub max_instances: i64,
}

/// A node to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// `proxmox` or `docker`.
    pub kind: String,
    /// Name, a DNS label; for Proxmox also the PVE node name unless
    /// `pve_node` says otherwise.
    pub name: String,
    /// API URL: `https://host:8006/api2/json` (Proxmox);
    /// `unix:///var/run/docker.sock` or `https://host:2376` (Docker).
    pub api_url: String,
    /// The PVE node name when it differs from `name`.
    pub pve_node: Option<String>,
    /// Credentials (required for Proxmox).
    pub credentials: Option<CredentialsInput>,
    /// TLS verification.
    pub tls: Option<TlsInput>,
    /// Capacity offered.
    pub capacity: CapacityInput,
    /// `online` (default), `maintenance` or `draining`.
    pub status: Option<String>,
}

/// Changes to a node; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// New name.
    pub name: Option<String>,
    /// New API URL.
    pub api_url: Option<String>,
    /// New PVE node name.
    pub pve_node: Option<String>,
    /// New credentials (replace the old ones whole).
    pub credentials: Option<CredentialsInput>,
    /// New TLS verification (replaces the old one whole; `{}` = system roots).
    pub tls: Option<TlsInput>,
    /// New capacity.
    pub capacity: Option<CapacityInput>,
    /// `online`, `maintenance` or `draining` (`offline` is the health
    /// check's to set).
    pub status: Option<String>,
}

/// Capacity as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityDto {
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// Most instances.
    pub max_instances: i32,
}

/// A node as shown: never its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeDto {
    /// Id.
    pub id: Uuid,
    /// `proxmox` or `docker`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API URL.
    pub api_url: String,
    /// PVE node name (Proxmox).
    pub pve_node: Option<String>,
    /// `online`, `offline`, `maintenance` or `draining`.
    pub status: String,
    /// Capacity offered.
    pub capacity: CapacityDto,
    /// Instances running on it.
    pub instances: i64,
    /// Whether credentials are stored.
    pub has_credentials: bool,
    /// Proxmox API token id (not a secret), when stored.
    pub token_id: Option<String>,
    /// TLS verification: `system`, `ca` or `fingerprint`.
    pub tls_verification: String,
    /// The pinned fingerprint, when pinned.
    pub tls_fingerprint: Option<String>,
    /// Version at the last successful check.
    pub version: Option<String>,
    /// Last check.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Error of the last check.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

fn dto(state: &AppState, n: Node, instances: i64) -> NodeDto {
    let token_id = crate::nodes::open(&state.auth.keyring, &n)
        .ok()
        .and_then(|c| c.token_id);
    NodeDto {
        id: n.id,
        kind: n.kind,
        name: n.name,
        api_url: n.api_url,
        pve_node: n.pve_node,
        status: n.status,
        capacity: CapacityDto {
            cpu_cores: n.cpu_cores,
            memory_mib: n.memory_mib,
            storage_gib: n.storage_gib,
            max_instances: n.max_instances,
        },
        instances,
        has_credentials: n.credentials.is_some(),
        token_id,
        tls_verification: if n.tls_fingerprint.is_some() {
            "fingerprint"
        } else if n.tls_ca_pem.is_some() {
            "ca"
        } else {
            "system"
        }
        .into(),
        tls_fingerprint: n.tls_fingerprint,
        version: n.version,
        last_checked_at: n.last_checked_at,
        last_error: n.last_error,
        created_at: n.created_at,
        updated_at: n.updated_at,
    }
}

fn audit_view(n: &NodeDto) -> serde_json::Value {
    json!({
        "name": n.name, "kind": n.kind, "api_url": n.api_url, "pve_node": n.pve_node,
        "status": n.status, "capacity": n.capacity, "token_id": n.token_id,
        "tls_verification": n.tls_verification,
    })
}

/// Validated credentials for `kind` (`None` when none were given).
fn credentials(
    kind: DriverKind,
    input: Option<&CredentialsInput>,
    required: bool,
    errors: &mut ValidationErrors,
) -> Option<Credentials> {
    let Some(c) = input else {
        if required && kind == DriverKind::Proxmox {
            errors.push(
                "credentials",
                "a Proxmox node needs an API token (token_id, token_secret)",
            );
        }
        return None;
    };
    match kind {
        DriverKind::Proxmox => {
            match c.token_id.as_deref() {
                None => errors.push("credentials.token_id", "is required"),
                Some(t) => {
                    errors.check("credentials.token_id", parse_pve_token_id(t));
                }
            }
            match c.token_secret.as_deref() {
                Some(s) if !s.trim().is_empty() && s.len() <= 256 => {}
                _ => errors.push("credentials.token_secret", "is required (1–256 characters)"),
            }
            if c.client_cert_pem.is_some() || c.client_key_pem.is_some() {
                errors.push("credentials", "client certificates are for Docker nodes");
            }
        }
        DriverKind::Docker => {
            if c.token_id.is_some() || c.token_secret.is_some() {
                errors.push("credentials", "API tokens are for Proxmox nodes");
            }
            if c.client_cert_pem.is_some() != c.client_key_pem.is_some() {
                errors.push(
                    "credentials",
                    "give both client_cert_pem and client_key_pem, or neither",
                );
            }
        }
    }
    Some(Credentials {
        token_id: c.token_id.clone(),
        token_secret: c.token_secret.clone(),
        client_cert_pem: c.client_cert_pem.clone(),
        client_key_pem: c.client_key_pem.clone(),
    })
}

/// Validated TLS settings: (custom CA, fingerprint).
fn tls(
    input: Option<&TlsInput>,
    errors: &mut ValidationErrors,
) -> (Option<String>, Option<String>) {
    let Some(t) = input else {
        return (None, None);
    };
    if t.ca_pem.is_some() && t.fingerprint.is_some() {
        errors.push("tls", "give a CA or a fingerprint, not both");
    }
    if let Some(ca) = &t.ca_pem
        && !ca.contains("-----BEGIN CERTIFICATE-----")
    {
        errors.push("tls.ca_pem", "must be a PEM certificate");
    }
    let fp = t
        .fingerprint
        .as_deref()
        .and_then(|f| errors.check("tls.fingerprint", parse_fingerprint(f)));
    (t.ca_pem.clone(), fp)
}

fn operator_status(s: &str, errors: &mut ValidationErrors) -> Option<NodeStatus> {
    let status = errors.check("status", s.parse::<NodeStatus>())?;
    if !status.settable_by_operator() {
        errors.push(
            "status",
            "offline is set by the health check; use maintenance to take a node out",
        );
        return None;
    }
    Some(status)
}

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
        (status = 201, description = "Registered", body = NodeDto),
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
            AuditEvent::by(&principal, "node.created")
                .target("node", dto.id)
                .change(None, Some(audit_view(&dto)))
                .record(conn, &client)
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
        (status = 200, description = "A page of nodes", body = Page<NodeDto>),
        (status = 400, description = "Unknown kind or status, bad limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs nodes:read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/nodes")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<NodeQuery>,
) -> ApiResult<web::Json<Page<NodeDto>>> {
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
        (status = 200, description = "The node", body = NodeDto),
        (status = 403, description = "Needs nodes:read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/nodes/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<NodeDto>> {
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
        (status = 200, description = "Updated", body = NodeDto),
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
) -> ApiResult<web::Json<NodeDto>> {
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
            AuditEvent::by(&principal, "node.updated")
                .target("node", id)
                .change(Some(audit_view(&before)), Some(audit_view(&after)))
                .record(conn, &client)
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
        AuditEvent::by(&principal, "node.deleted")
            .target("node", id)
            .change(Some(audit_view(&before)), None)
            .record(conn, &client)
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
    let result = crate::nodes::check(&state, id, &principal.label())
        .await
        .map_err(not_found(id))?;
    Ok(web::Json(result))
}
