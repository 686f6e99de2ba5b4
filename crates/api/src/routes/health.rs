//! Operational endpoints: liveness, readiness, metrics.

use actix_web::{HttpRequest, HttpResponse, get, web};
use prometheus::{Encoder, TextEncoder};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::{ApiError, AppState, error::ApiResult};

/// Health or readiness status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (process up) or `ready` (database reachable, migrations current).
    pub status: &'static str,
}

/// Liveness: the process is up and serving. Touches no dependency.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process is up", body = Status))
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status { status: "ok" })
}

/// Readiness: the database is reachable and every embedded migration is applied.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "Database unreachable or migrations pending; see Retry-After",
         body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Status>> {
    let mut conn = state.pool.get().await?;
    let pending = tenantry_store::migrations::pending_count(&mut conn)
        .await
        .map_err(|e| {
            ApiError::Unavailable(anyhow::Error::new(e).context("reading applied migrations"))
        })?;
    if pending > 0 {
        return Err(ApiError::Unavailable(anyhow::anyhow!(
            "{pending} migration(s) pending: run `tenantry migrate up`"
        )));
    }
    Ok(web::Json(Status { status: "ready" }))
}

/// Prometheus text exposition: `tenantry_http_requests_total` and
/// `tenantry_http_requests_duration_seconds` by endpoint (route template),
/// method (a standard one or `other`) and status; `tenantry_db_pool_*`
/// gauges. With `TENANTRY_METRICS_TOKEN` set it needs
/// `Authorization: Bearer <that token>` (else `401`).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "`TENANTRY_METRICS_TOKEN` is set and the request does not carry it", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    if let Some(token) = &state.settings.metrics_token {
        let given = crate::auth::principal::bearer_token(&req).unwrap_or_default();
        // Digests compared: equal-length values, no early exit on a prefix.
        let digest = |s: &str| Sha256::digest(s.as_bytes());
        if digest(&given) != digest(token.expose_secret()) {
            return Err(ApiError::Unauthorized {
                code: "unauthorized",
                detail: "/metrics needs the metrics token: Authorization: Bearer <TENANTRY_METRICS_TOKEN>".into(),
            });
        }
    }
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    encoder
        .encode(&state.registry.gather(), &mut buf)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buf))
}
