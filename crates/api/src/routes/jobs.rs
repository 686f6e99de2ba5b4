//! `/v1/jobs/{id}`: background work started by the API.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_domain::Scope;
use tenantry_store::jobs::{self, Job as JobRow};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{ApiError, AppState, auth::Principal, error::ApiResult};

/// A durable unit of background work.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
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
    /// Attempts before the job is `dead`.
    pub max_attempts: i32,
    /// Not before (the next attempt, while `queued`).
    pub run_at: DateTime<Utc>,
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

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            tenant_id: j.tenant_id,
            status: j.status.to_string(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
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
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job (or not yours)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/jobs/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<Job>> {
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

/// Filters of the job list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only this tenant's jobs (tenant users always see only their own).
    pub tenant: Option<Uuid>,
    /// Only jobs in this status: `queued`, `running`, `succeeded`, `failed`, `dead`.
    pub status: Option<String>,
    /// Only jobs of this kind, e.g. `provision`.
    pub kind: Option<String>,
    /// Most items, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const JOB_STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "dead"];

/// Jobs, oldest first (tenant users: their tenant's only).
#[utoipa::path(
    context_path = "/v1", tag = "jobs", security(("bearer" = [])),
    params(JobQuery),
    responses(
        (status = 200, description = "A page of jobs", body = crate::pagination::Page<Job>),
        (status = 400, description = "Unknown status, bad limit or cursor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs jobs:read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/jobs")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    crate::extract::Query(q): crate::extract::Query<JobQuery>,
) -> ApiResult<web::Json<crate::pagination::Page<Job>>> {
    principal.require(Scope::JobsRead)?;
    let page = crate::pagination::PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    if let Some(s) = q.status.as_deref().filter(|s| !JOB_STATUSES.contains(s)) {
        return Err(ApiError::BadRequest {
            detail: format!(
                "invalid query parameter status: {s:?} is not one of {}",
                JOB_STATUSES.join(", ")
            ),
            errors: vec![crate::error::FieldProblem {
                field: "status".into(),
                message: format!("must be one of {}", JOB_STATUSES.join(", ")),
            }],
        });
    }
    let filter = jobs::JobFilter {
        tenant_id: principal.tenant_id.or(q.tenant),
        status: q.status,
        kind: q.kind,
    };
    let mut conn = state.pool.get().await?;
    let rows = jobs::list(&mut conn, &filter, page).await?;
    Ok(web::Json(crate::pagination::Page::try_from_store(
        rows,
        |j| Ok(j.into()),
    )?))
}
