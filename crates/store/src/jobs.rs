//! The job table: enqueueing and reading jobs. (Claiming, leases and retries
//! come with the job workers.)

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{StoreError, schema::jobs};

/// A job row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// What to do: `provision`, `deprovision`, `migrate`, …
    pub kind: String,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// `queued`, `running`, `succeeded`, `failed`, `dead`.
    pub status: String,
    /// Parameters.
    pub payload: serde_json::Value,
    /// At most one live job per key.
    pub dedup_key: Option<String>,
    /// Attempts so far.
    pub attempts: i32,
    /// Attempts before `dead`.
    pub max_attempts: i32,
    /// Not before.
    pub run_at: DateTime<Utc>,
    /// Current step, for progress.
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

/// Enqueues a job, or returns the live one with the same `dedup_key`.
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    kind: &str,
    tenant_id: Option<Uuid>,
    payload: serde_json::Value,
    dedup_key: Option<&str>,
) -> Result<Job, StoreError> {
    if let Some(key) = dedup_key {
        let live: Option<Job> = jobs::table
            .filter(jobs::dedup_key.eq(key))
            .filter(jobs::status.eq_any(["queued", "running"]))
            .select(Job::as_select())
            .first(conn)
            .await
            .optional()?;
        if let Some(job) = live {
            return Ok(job);
        }
    }
    let job = diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(Uuid::now_v7()),
            jobs::kind.eq(kind),
            jobs::tenant_id.eq(tenant_id),
            jobs::payload.eq(payload),
            jobs::dedup_key.eq(dedup_key),
        ))
        .returning(Job::as_returning())
        .get_result(conn)
        .await?;
    // Wake idle workers (a no-op until some LISTEN).
    diesel::sql_query("NOTIFY tenantry_jobs")
        .execute(conn)
        .await?;
    Ok(job)
}

/// A job, optionally only if it belongs to `tenant`.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_job(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    tenant: Option<Uuid>,
) -> Result<Job, StoreError> {
    let mut q = jobs::table
        .filter(jobs::id.eq(id))
        .select(Job::as_select())
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(jobs::tenant_id.eq(t));
    }
    Ok(q.first(conn).await?)
}
