//! The durable job queue: a table of jobs claimed with
//! `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`,
//! committed at once and kept alive by a heartbeat; a job whose heartbeat is
//! older than the lease is re-queued by [`reap_stale`]. Failures retry with
//! exponential back-off until `max_attempts`, then the job is `dead` (with an
//! alert and an activity row). The worker loop that drives this is
//! [`crate::worker`].
//!
//! Job kinds are types ([`BackgroundJob`], after crates.io's
//! `crates_io_worker::BackgroundJob`): the kind is a constant, the payload a
//! serde struct, the deduplication rule beside it. [`enqueue`] is the only
//! way Rust code enqueues; set-based SQL that enqueues many jobs binds its
//! kinds from the same constants ([`kinds`]). Statuses are
//! [`JobStatus`]: `queued` → `running` → `succeeded` | `queued` (retry) |
//! `failed` (permanent error) | `dead` (out of attempts).

pub mod kinds;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Serialize, de::DeserializeOwned};
use tenantry_domain::JobStatus;
use uuid::Uuid;

use crate::{StoreError, parsed::Parsed, schema::jobs};

/// A kind of background job: the type is its payload, [`Self::KIND`] its
/// name in `jobs.kind`. Handlers receive the payload deserialized
/// ([`crate::worker::JobHandler`]); a payload that does not parse fails the
/// job permanently.
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job's kind, e.g. `provision`.
    const KIND: &'static str;

    /// The tenant the job concerns: shown in job lists and what a tenant
    /// user may see of them. `None` for platform work (a node check).
    fn tenant_id(&self) -> Option<Uuid> {
        None
    }

    /// At most one live (`queued` or `running`) job per key: enqueueing
    /// again while one is live returns that one. `None`: no deduplication.
    fn dedup_key(&self) -> Option<String> {
        None
    }
}

/// The deduplication key of a job that is one per `kind` and `subject` (a
/// tenant, a node, a subscription): `{kind}:{subject}`. Set-based SQL
/// builds the same key as `kind || ':' || subject`.
#[must_use]
pub fn subject_key(kind: &str, subject: impl std::fmt::Display) -> String {
    format!("{kind}:{subject}")
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// What to do: `provision`, `deprovision`, `migrate`, …
    pub kind: String,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// Where the job is in its life.
    #[diesel(deserialize_as = Parsed<JobStatus>)]
    pub status: JobStatus,
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
    /// The worker holding it while `running`.
    pub locked_by: Option<String>,
    /// The holder's last sign of life while `running`.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// Enqueues `job`, or returns the live job with the same
/// [`BackgroundJob::dedup_key`]. The insert is one
/// `INSERT … ON CONFLICT DO NOTHING … RETURNING` statement against the
/// partial unique index on live keys, so concurrent callers cannot both
/// insert; idle workers are woken with `NOTIFY tenantry_jobs`.
///
/// # Errors
/// [`StoreError`]; [`StoreError::Query`] when the payload does not
/// serialize.
pub async fn enqueue<J: BackgroundJob>(
    conn: &mut AsyncPgConnection,
    job: &J,
) -> Result<Job, StoreError> {
    use diesel::sql_types::{Jsonb, Nullable, Text};
    let payload = serde_json::to_value(job)
        .map_err(|e| StoreError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    let key = job.dedup_key();
    // A live job with the key may end between the conflict and the read
    // that follows: then the insert is tried again.
    for _ in 0..3 {
        let inserted: Option<Job> = diesel::sql_query(
            "INSERT INTO jobs (id, kind, tenant_id, payload, dedup_key) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running') \
             DO NOTHING RETURNING *",
        )
        .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
        .bind::<Text, _>(J::KIND)
        .bind::<Nullable<diesel::sql_types::Uuid>, _>(job.tenant_id())
        .bind::<Jsonb, _>(&payload)
        .bind::<Nullable<Text>, _>(key.as_deref())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(job) = inserted {
            // Wake idle workers (a no-op until some LISTEN).
            diesel::sql_query("NOTIFY tenantry_jobs")
                .execute(conn)
                .await?;
            return Ok(job);
        }
        let live = match key.as_deref() {
            Some(k) => live_with_key(conn, k).await?,
            None => None,
        };
        if let Some(job) = live {
            return Ok(job);
        }
    }
    Err(StoreError::Unavailable(
        format!(
            "cannot enqueue {}: its deduplication key keeps changing hands",
            J::KIND
        )
        .into(),
    ))
}

/// The live job holding deduplication key `key`, if any.
///
/// # Errors
/// [`StoreError`].
pub async fn live_with_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<Job>, StoreError> {
    Ok(jobs::table
        .filter(jobs::dedup_key.eq(key))
        .filter(jobs::status.eq_any(live_statuses()))
        .select(Job::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// [`JobStatus::LIVE`] as bindable strings.
fn live_statuses() -> Vec<&'static str> {
    JobStatus::LIVE.iter().map(JobStatus::as_str).collect()
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

/// Claims the oldest due `queued` job among `kinds` for `worker`: marks it
/// `running`, counts the attempt and starts its lease. Concurrent claimers
/// skip each other's locked rows, so a job goes to exactly one of them. The
/// statement commits on its own (no surrounding transaction).
///
/// # Errors
/// [`StoreError`].
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    kinds: &[String],
) -> Result<Option<Job>, StoreError> {
    use diesel::sql_types::{Array, Text};
    Ok(diesel::sql_query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
                heartbeat_at = now(), updated_at = now() \
          WHERE id = (SELECT id FROM jobs \
                       WHERE status = 'queued' AND run_at <= now() AND kind = ANY($2) \
                       ORDER BY run_at, id \
                       FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING *",
    )
    .bind::<Text, _>(worker)
    .bind::<Array<Text>, _>(kinds)
    .get_result::<Job>(conn)
    .await
    .optional()?)
}

/// Renews `worker`'s lease on job `id`. `false` when the job is no longer
/// this worker's (it was reaped and claimed again, or finished).
///
/// # Errors
/// [`StoreError`].
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(held(id, worker))
        .set(jobs::heartbeat_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Records the step a running job has reached (shown by `GET /v1/jobs/{id}`).
///
/// # Errors
/// [`StoreError`].
pub async fn set_step(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    step: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(held(id, worker))
        .set((
            jobs::step.eq(step),
            jobs::heartbeat_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The job `id` while `worker` holds it.
type Held = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<jobs::table, diesel::dsl::Eq<jobs::id, Uuid>>,
        diesel::dsl::Eq<jobs::status, &'static str>,
    >,
    diesel::dsl::Eq<jobs::locked_by, String>,
>;

fn held(id: Uuid, worker: &str) -> Held {
    jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::status.eq(JobStatus::Running.as_str()))
        .filter(jobs::locked_by.eq(worker.to_owned()))
}

/// Marks job `id` succeeded. `false` when `worker` no longer held it (its
/// lease expired and someone else has it): the caller's work was done
/// anyway, and being idempotent, the other run changes nothing.
///
/// # Errors
/// [`StoreError`].
pub async fn complete(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(held(id, worker))
        .set((
            jobs::status.eq(JobStatus::Succeeded.as_str()),
            jobs::locked_by.eq(None::<String>),
            jobs::heartbeat_at.eq(None::<DateTime<Utc>>),
            jobs::last_error.eq(None::<String>),
            jobs::finished_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Gives job `id` back to the queue without counting the attempt (a worker
/// shutting down before it finished).
///
/// # Errors
/// [`StoreError`].
pub async fn release(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(held(id, worker))
        .set((
            jobs::status.eq(JobStatus::Queued.as_str()),
            jobs::attempts.eq(jobs::attempts - 1),
            jobs::locked_by.eq(None::<String>),
            jobs::heartbeat_at.eq(None::<DateTime<Utc>>),
            jobs::run_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Exponential back-off between attempts: `base · 2^(attempt − 1)`, capped at
/// `max`, with up to 20 % random jitter so retries of many jobs spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: std::time::Duration,
    /// Longest delay.
    pub max: std::time::Duration,
}

impl Backoff {
    /// The delay before the attempt after `attempts` failed ones (≥ 1).
    #[must_use]
    pub fn delay(&self, attempts: i32) -> std::time::Duration {
        use rand::Rng;
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let raw = self.base.saturating_mul(2u32.saturating_pow(exp));
        let capped = raw.min(self.max);
        let jitter = rand::thread_rng().gen_range(0.0..0.2);
        capped.mul_f64(1.0 + jitter).min(self.max)
    }
}

/// Where a failed attempt left its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Queued again for a later attempt.
    Retrying {
        /// When the next attempt may start.
        run_at: DateTime<Utc>,
    },
    /// A permanent error: `failed`, no more attempts.
    Failed,
    /// Out of attempts: `dead`, with an alert raised.
    Dead,
    /// The worker no longer held the job; nothing changed.
    Lost,
}

/// Records a failed attempt of `job` held by `worker`: retried after a
/// back-off when `retryable` and attempts remain, else `failed` (permanent)
/// or `dead` (out of attempts). `failed` and `dead` write an activity row;
/// `dead` also raises an alert. One transaction.
///
/// # Errors
/// [`StoreError`].
pub async fn fail(
    conn: &mut AsyncPgConnection,
    job: &Job,
    worker: &str,
    error: &str,
    retryable: bool,
    backoff: &Backoff,
) -> Result<FailureOutcome, StoreError> {
    use diesel_async::AsyncConnection;
    let error = truncate(error, 4000);
    conn.transaction::<_, StoreError, _>(async |conn| {
        let current: Option<Job> = held(job.id, worker)
            .select(Job::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(current) = current else {
            return Ok(FailureOutcome::Lost);
        };
        if retryable && current.attempts < current.max_attempts {
            let delay = backoff.delay(current.attempts);
            let run_at = Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            diesel::update(jobs::table.find(job.id))
                .set((
                    jobs::status.eq(JobStatus::Queued.as_str()),
                    jobs::run_at.eq(run_at),
                    jobs::last_error.eq(&error),
                    jobs::locked_by.eq(None::<String>),
                    jobs::heartbeat_at.eq(None::<DateTime<Utc>>),
                    jobs::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            return Ok(FailureOutcome::Retrying { run_at });
        }
        let outcome = if retryable {
            FailureOutcome::Dead
        } else {
            FailureOutcome::Failed
        };
        end(conn, &current, outcome, &error).await?;
        Ok(outcome)
    })
    .await
}

/// Puts `job` in its final failed state and writes what that entails.
async fn end(
    conn: &mut AsyncPgConnection,
    job: &Job,
    outcome: FailureOutcome,
    error: &str,
) -> Result<(), StoreError> {
    let status = if outcome == FailureOutcome::Dead {
        JobStatus::Dead
    } else {
        JobStatus::Failed
    };
    diesel::update(jobs::table.find(job.id))
        .set((
            jobs::status.eq(status.as_str()),
            jobs::last_error.eq(error),
            jobs::locked_by.eq(None::<String>),
            jobs::heartbeat_at.eq(None::<DateTime<Utc>>),
            jobs::finished_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    crate::activity::Entry::anonymous("worker", &format!("job.{status}"))
        .tenant(job.tenant_id)
        .target("job", job.id)
        .change(
            None,
            Some(serde_json::json!({
                "kind": job.kind, "status": status.as_str(), "attempts": job.attempts, "last_error": error,
            })),
        )
        .record(conn)
        .await?;
    if status == JobStatus::Dead {
        crate::alerts::raise(
            conn,
            &crate::alerts::NewAlert {
                kind: "job.dead",
                severity: crate::alerts::Severity::Critical,
                message: &format!(
                    "job {} ({}) is dead after {} attempts: {error}",
                    job.id, job.kind, job.attempts
                ),
                tenant_id: job.tenant_id,
                subject: &format!("job:{}", job.id),
            },
        )
        .await?;
    }
    Ok(())
}

/// Re-queues `running` jobs whose heartbeat is older than `lease` (their
/// worker died or lost the database); those out of attempts become `dead`.
/// Returns the jobs it touched. Safe to run from every worker at once.
///
/// # Errors
/// [`StoreError`].
pub async fn reap_stale(
    conn: &mut AsyncPgConnection,
    lease: std::time::Duration,
) -> Result<Vec<Job>, StoreError> {
    use diesel_async::AsyncConnection;
    let cutoff =
        Utc::now() - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    conn.transaction::<_, StoreError, _>(async |conn| {
        let stale: Vec<Job> = jobs::table
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::heartbeat_at.lt(cutoff))
            .select(Job::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        for job in &stale {
            let error = format!(
                "worker {} stopped sending heartbeats",
                job.locked_by.as_deref().unwrap_or("?")
            );
            if job.attempts >= job.max_attempts {
                end(conn, job, FailureOutcome::Dead, &error).await?;
            } else {
                diesel::update(jobs::table.find(job.id))
                    .set((
                        jobs::status.eq(JobStatus::Queued.as_str()),
                        jobs::run_at.eq(diesel::dsl::now),
                        jobs::last_error.eq(&error),
                        jobs::locked_by.eq(None::<String>),
                        jobs::heartbeat_at.eq(None::<DateTime<Utc>>),
                        jobs::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        Ok(stale)
    })
    .await
}

/// Filters of the job list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this tenant's jobs.
    pub tenant_id: Option<Uuid>,
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
}

/// Jobs matching `filter`, oldest first, one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &JobFilter,
    page: crate::PageRequest,
) -> Result<crate::Page<Job>, StoreError> {
    let mut q = jobs::table.select(Job::as_select()).into_boxed();
    if let Some(t) = filter.tenant_id {
        q = q.filter(jobs::tenant_id.eq(t));
    }
    if let Some(s) = &filter.status {
        q = q.filter(jobs::status.eq(s.clone()));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(jobs::kind.eq(k.clone()));
    }
    if let Some(after) = page.after {
        q = q.filter(jobs::id.gt(after));
    }
    let rows = q.order(jobs::id).limit(page.fetch()).load(conn).await?;
    Ok(crate::Page::from_overfetch(rows, page, |j| j.id))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
