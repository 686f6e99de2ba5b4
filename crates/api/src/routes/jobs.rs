//! `/v1/jobs/{id}`: background work started by the API.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_domain::Scope;
use tenantry_store::jobs::{self, Job};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{ApiError, AppState, auth::Principal, error::ApiResult};

/// A durable unit of background work.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDto {
    /// Id.
    pub id: Uuid,
    /// `provision`, `deprovision`, `migrate`, …
    pub kind: String,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Current step.
    pub step: Option<String>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobDto {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            tenant_id: j.tenant_id,
            status: j.status,
            attempts: j.attempts,
            step: j.step,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

/// One job (tenant users: their tenant's only).
#[utoipa::path(
    context_path = "/v1", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobDto),
        (status = 404, description = "No such job (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/jobs/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<JobDto>> {
    principal.require(Scope::JobsRead)?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let job = jobs::find_job(&mut conn, id, principal.tenant_id)
        .await
        .map_err(|e| match e {
            tenantry_store::StoreError::NotFound => ApiError::not_found(format!("job {id}")),
            other => other.into(),
        })?;
    Ok(web::Json(job.into()))
}
