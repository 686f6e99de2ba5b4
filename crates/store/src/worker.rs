//! The job workers: N tasks that claim jobs from the queue ([`crate::jobs`]),
//! run them through the [`JobHandler`] registered for their kind, keep their
//! lease alive with a heartbeat, and record the outcome (success, retry with
//! back-off, failure, death).
//!
//! Workers wake on `NOTIFY tenantry_jobs` (sent by [`crate::jobs::enqueue`])
//! through one `LISTEN` connection, and poll every `poll_interval` as the
//! fallback (a lost notification, a job whose back-off ended, a stale lease
//! to reap). They run inside `tenantry serve` and as `tenantry worker`; any
//! number of processes may run them against one database.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{FutureExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    Pool, StoreError,
    jobs::{self, BackgroundJob, Backoff, FailureOutcome, Job},
};

/// Why a job attempt failed: the one error type of job handlers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Transient (network, a locked resource, a 5xx): retried with back-off
    /// until the job's attempts run out, then `dead`.
    #[error("{0}")]
    Retry(String),
    /// Permanent (bad input, a refusal a retry will not change): the job ends
    /// `failed` now.
    #[error("{0}")]
    Fail(String),
}

impl JobError {
    /// Whether the queue retries the job after this error.
    #[must_use]
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry(_))
    }
}

/// An error that knows whether a retry may succeed: the one retry
/// classifier of the job queue. Every error a handler meets (database,
/// driver, tenant database, payment provider) implements it, and `?` turns
/// it into [`JobError::Retry`] or [`JobError::Fail`] with its whole cause
/// chain as the message.
pub trait Retryable: std::error::Error {
    /// Whether the same call may succeed later (network, timeouts, locks,
    /// 5xx, an unavailable database).
    fn is_transient(&self) -> bool;
}

impl<E: Retryable> From<E> for JobError {
    fn from(e: E) -> Self {
        let message = crate::error_chain(&e);
        if e.is_transient() {
            Self::Retry(message)
        } else {
            Self::Fail(message)
        }
    }
}

/// A status change `domain`'s lifecycle refuses is permanent (the tenant
/// is not where the job expects it); a database failure is retried.
impl Retryable for crate::tenants::TransitionError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// Database errors are retried: the job's steps are idempotent, and a
/// missing row a step needs is reported by the step itself.
impl Retryable for StoreError {
    fn is_transient(&self) -> bool {
        true
    }
}

/// What a handler gets: the job (as claimed: `attempts` counts this one) and
/// the pool.
#[derive(Clone)]
pub struct JobContext {
    /// The job being run.
    pub job: Job,
    /// The database.
    pub pool: Pool,
    worker: String,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job.id)
            .field("kind", &self.job.kind)
            .field("worker", &self.worker)
            .finish()
    }
}

impl JobContext {
    /// A context for running `job` outside a worker (a CLI command doing a
    /// job's work inline, a test).
    #[must_use]
    pub fn new(job: Job, pool: Pool, worker: impl Into<String>) -> Self {
        Self {
            job,
            pool,
            worker: worker.into(),
        }
    }

    /// Records the step the job has reached (progress for `GET /v1/jobs/{id}`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_step(&self, step: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        jobs::set_step(&mut conn, self.job.id, &self.worker, step).await?;
        Ok(())
    }
}

/// Runs jobs of kind `J`, receiving the payload deserialized. Must be
/// idempotent: a job may run again after a crash at any point (kill -9
/// included) and must end in the same state.
#[async_trait]
pub trait JobHandler<J: BackgroundJob>: Send + Sync + 'static {
    /// Does the job's work.
    ///
    /// # Errors
    /// [`JobError::Retry`] for transient failures, [`JobError::Fail`] for
    /// permanent ones.
    async fn run(&self, ctx: &JobContext, job: J) -> Result<(), JobError>;
}

/// A handler behind its payload type: what the worker calls.
#[async_trait]
trait ErasedHandler: Send + Sync {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError>;
}

struct Typed<J, H: ?Sized> {
    handler: Arc<H>,
    kind: std::marker::PhantomData<fn() -> J>,
}

#[async_trait]
impl<J: BackgroundJob, H: JobHandler<J> + ?Sized> ErasedHandler for Typed<J, H> {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let payload: J = serde_json::from_value(ctx.job.payload.clone())
            .map_err(|e| JobError::Fail(format!("the {} payload does not parse: {e}", J::KIND)))?;
        self.handler.run(ctx, payload).await
    }
}

/// The handler of each job kind this process runs. Workers claim only these
/// kinds, so a process without a handler never takes a job it cannot run.
#[derive(Default, Clone)]
pub struct Handlers(HashMap<&'static str, Arc<dyn ErasedHandler>>);

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Handlers {
    /// No handlers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs jobs of kind `J` with `handler` (replacing any earlier one).
    pub fn register<J: BackgroundJob, H: JobHandler<J> + ?Sized>(&mut self, handler: Arc<H>) {
        self.0.insert(
            J::KIND,
            Arc::new(Typed::<J, H> {
                handler,
                kind: std::marker::PhantomData,
            }),
        );
    }

    /// The kinds handled, sorted.
    #[must_use]
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.0.keys().map(|k| (*k).to_owned()).collect();
        k.sort();
        k
    }

    fn get(&self, kind: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.0.get(kind).cloned()
    }

    /// Runs a job of `kind` with `payload` now, in this task, outside the
    /// queue (no row is claimed or recorded): what a CLI command doing a
    /// job's work inline, or a test, needs. The payload is checked as a
    /// worker checks it.
    ///
    /// # Errors
    /// [`JobError::Fail`] for a kind without a handler or a payload that
    /// does not parse; the handler's own errors.
    pub async fn run_inline(
        &self,
        pool: &Pool,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<(), JobError> {
        let handler = self
            .get(kind)
            .ok_or_else(|| JobError::Fail(format!("no handler for {kind}")))?;
        let now = chrono::Utc::now();
        let job = Job {
            id: uuid::Uuid::now_v7(),
            kind: kind.to_owned(),
            tenant_id: None,
            status: tenantry_domain::JobStatus::Running,
            payload,
            dedup_key: None,
            attempts: 1,
            max_attempts: 1,
            run_at: now,
            step: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            locked_by: None,
            heartbeat_at: None,
        };
        handler
            .run(&JobContext::new(job, pool.clone(), "inline"))
            .await
    }
}

/// How workers behave.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker tasks in this process.
    pub workers: usize,
    /// This process's name in `locked_by` (`host:pid`); each task appends `/n`.
    pub name: String,
    /// Polling period when no notification arrives.
    pub poll_interval: Duration,
    /// How often a running job's heartbeat is renewed.
    pub heartbeat_interval: Duration,
    /// A running job whose heartbeat is older than this is re-queued.
    pub lease: Duration,
    /// Back-off between attempts.
    pub backoff: Backoff,
    /// How long a stopping worker waits for its running job before giving it
    /// back to the queue.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    /// Defaults for `workers` tasks: poll 5 s, heartbeat 5 s, lease 30 s,
    /// back-off 5 s doubling up to 1 h, 10 s shutdown grace.
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            name: default_name(),
            poll_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            backoff: Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(3600),
            },
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Runs the workers until `shutdown` is cancelled, then lets each finish its
/// running job for `shutdown_grace` and gives back the ones that did not.
/// `listen_url` is the database to `LISTEN` on (the pool's); without it the
/// workers only poll.
pub async fn run(
    pool: Pool,
    listen_url: Option<SecretString>,
    handlers: Handlers,
    config: WorkerConfig,
    shutdown: CancellationToken,
) {
    let handlers = Arc::new(handlers);
    let config = Arc::new(config);
    let wake = Arc::new(Notify::new());
    let listener = listen_url.map(|url| tokio::spawn(listen(url, wake.clone(), shutdown.clone())));
    let mut tasks = Vec::with_capacity(config.workers);
    for n in 0..config.workers {
        let worker = Worker {
            name: format!("{}/{n}", config.name),
            pool: pool.clone(),
            handlers: handlers.clone(),
            config: config.clone(),
            wake: wake.clone(),
        };
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    tracing::info!(workers = config.workers, kinds = ?handlers.kinds(), "job workers started");
    for t in tasks {
        let _ = t.await;
    }
    if let Some(l) = listener {
        l.abort();
    }
    tracing::info!("job workers stopped");
}

/// Wakes the workers on every `NOTIFY tenantry_jobs`; reconnects after a
/// failure (the workers poll meanwhile).
async fn listen(url: SecretString, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let result: Result<(), String> = async {
            let mut conn = AsyncPgConnection::establish(url.expose_secret())
                .await
                .map_err(|e| e.to_string())?;
            diesel::sql_query("LISTEN tenantry_jobs")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let mut stream = std::pin::pin!(conn.notifications_stream());
            while let Some(n) = stream.next().await {
                n.map_err(|e| e.to_string())?;
                wake.notify_waiters();
            }
            Err("notification stream ended".into())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "job LISTEN connection lost; polling until it is back");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

struct Worker {
    name: String,
    pool: Pool,
    handlers: Arc<Handlers>,
    config: Arc<WorkerConfig>,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self, shutdown: CancellationToken) {
        let kinds = self.handlers.kinds();
        let mut last_reap = tokio::time::Instant::now()
            .checked_sub(self.config.poll_interval)
            .unwrap_or_else(tokio::time::Instant::now);
        while !shutdown.is_cancelled() {
            // Register for a wake-up before looking, so a NOTIFY between an
            // empty claim and the wait is not lost.
            let notified = self.wake.notified();
            if last_reap.elapsed() >= self.config.poll_interval {
                last_reap = tokio::time::Instant::now();
                self.reap().await;
            }
            match self.claim(&kinds).await {
                Ok(Some(job)) => {
                    self.run_job(job, &shutdown).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = %self.name, error = %e, "cannot claim a job"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = notified => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    async fn claim(&self, kinds: &[String]) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.get().await?;
        jobs::claim(&mut conn, &self.name, kinds).await
    }

    async fn reap(&self) {
        let reaped = match self.pool.get().await {
            Ok(mut conn) => jobs::reap_stale(&mut conn, self.config.lease).await,
            Err(e) => Err(e),
        };
        match reaped {
            Ok(jobs) => {
                for j in jobs {
                    tracing::warn!(job = %j.id, kind = %j.kind, holder = ?j.locked_by, "re-queued a job whose heartbeat stopped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reap stale jobs"),
        }
    }

    /// Runs one claimed job to its outcome.
    async fn run_job(&self, job: Job, shutdown: &CancellationToken) {
        let Some(handler) = self.handlers.get(&job.kind) else {
            // Unreachable: we claim only kinds we handle.
            return;
        };
        let ctx = JobContext::new(job.clone(), self.pool.clone(), self.name.clone());
        let heartbeat = tokio::spawn(heartbeat(
            self.pool.clone(),
            job.id,
            self.name.clone(),
            self.config.heartbeat_interval,
        ));
        let work = std::panic::AssertUnwindSafe(handler.run(&ctx)).catch_unwind();
        tokio::pin!(work);
        let result = tokio::select! {
            r = &mut work => Some(r),
            () = shutdown.cancelled() => {
                tokio::time::timeout(self.config.shutdown_grace, &mut work).await.ok()
            }
        };
        heartbeat.abort();
        let outcome = match result {
            None => {
                tracing::info!(job = %job.id, "shutting down: giving the job back to the queue");
                match self.pool.get().await {
                    Ok(mut conn) => jobs::release(&mut conn, job.id, &self.name)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            Some(Ok(Ok(()))) => {
                tracing::info!(job = %job.id, kind = %job.kind, "job succeeded");
                match self.pool.get().await {
                    Ok(mut conn) => jobs::complete(&mut conn, job.id, &self.name)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            Some(Ok(Err(e))) => self.record_failure(&job, &e).await,
            Some(Err(panic)) => {
                let msg = panic_message(panic.as_ref());
                self.record_failure(&job, &JobError::Retry(format!("handler panicked: {msg}")))
                    .await
            }
        };
        if let Err(e) = outcome {
            // The lease will expire and the job run again; idempotent handlers
            // make that safe.
            tracing::error!(job = %job.id, error = %e, "cannot record the job's outcome");
        }
    }

    async fn record_failure(&self, job: &Job, error: &JobError) -> Result<(), StoreError> {
        let (msg, retryable) = match error {
            JobError::Retry(m) => (m.as_str(), true),
            JobError::Fail(m) => (m.as_str(), false),
        };
        let backoff = self.config.backoff;
        let mut conn = self.pool.get().await?;
        let outcome = jobs::fail(&mut conn, job, &self.name, msg, retryable, &backoff).await?;
        match outcome {
            FailureOutcome::Retrying { run_at } => {
                tracing::warn!(job = %job.id, kind = %job.kind, error = msg, %run_at, "job attempt failed; will retry");
            }
            FailureOutcome::Failed => {
                tracing::error!(job = %job.id, kind = %job.kind, error = msg, "job failed");
            }
            FailureOutcome::Dead => {
                tracing::error!(job = %job.id, kind = %job.kind, error = msg, "job is dead: out of attempts");
            }
            FailureOutcome::Lost => {
                tracing::warn!(job = %job.id, "job was taken over by another worker");
            }
        }
        Ok(())
    }
}

async fn heartbeat(pool: Pool, id: uuid::Uuid, worker: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let beat = match pool.get().await {
            Ok(mut conn) => jobs::heartbeat(&mut conn, id, &worker).await,
            Err(e) => Err(e),
        };
        match beat {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %id, "lost the job's lease (re-queued elsewhere)");
                return;
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "heartbeat failed"),
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
