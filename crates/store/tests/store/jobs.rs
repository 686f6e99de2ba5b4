#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

//! The job queue: claiming, leases, retries, death, and the worker loop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use tenantry_domain::JobStatus;
use tenantry_store::{
    Pool,
    jobs::{self, BackgroundJob, Backoff, FailureOutcome, Job},
    schema::{activity_log, alerts},
    worker::{self, Handlers, JobContext, JobError, JobHandler, WorkerConfig},
};
use tenantry_test_db::TestDatabase;
use tokio_util::sync::CancellationToken;

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_owned()).collect()
}

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(10),
    max: Duration::from_secs(3600),
};

/// The test's job kind; `key` is its deduplication key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Demo {
    key: Option<String>,
}

impl BackgroundJob for Demo {
    const KIND: &'static str = "demo";

    fn dedup_key(&self) -> Option<String> {
        self.key.clone()
    }
}

/// A kind no test handles.
#[derive(Debug, Serialize, Deserialize)]
struct Other {}

impl BackgroundJob for Other {
    const KIND: &'static str = "other";
}

/// A `demo` job, due now, no tenant, no dedup key.
async fn enqueue_demo(conn: &mut diesel_async::AsyncPgConnection) -> Job {
    jobs::enqueue(conn, &Demo::default()).await.unwrap()
}

/// Claims the due `demo` job as `worker`; there must be one.
async fn claim_demo(conn: &mut diesel_async::AsyncPgConnection, worker: &str) -> Job {
    jobs::claim(conn, worker, &kinds(&["demo"]))
        .await
        .unwrap()
        .expect("a due demo job")
}

async fn job(pool: &Pool, id: uuid::Uuid) -> Job {
    let mut conn = pool.get().await.unwrap();
    jobs::find_job(&mut conn, id, None).await.unwrap()
}

#[tokio::test]
async fn a_job_is_claimed_by_exactly_one_of_many_concurrent_claimers() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    drop(conn);
    let mut claims = Vec::new();
    for n in 0..8 {
        let pool = pool.clone();
        claims.push(tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            jobs::claim(&mut conn, &format!("w{n}"), &kinds(&["demo"]))
                .await
                .unwrap()
        }));
    }
    let mut won = Vec::new();
    for c in claims {
        if let Some(j) = c.await.unwrap() {
            won.push(j);
        }
    }
    assert_eq!(won.len(), 1, "one claimer wins");
    let j = &won[0];
    assert_eq!(j.id, queued.id);
    assert_eq!(j.status, JobStatus::Running);
    assert_eq!(j.attempts, 1);
    assert!(j.heartbeat_at.is_some() && j.locked_by.is_some());
}

#[tokio::test]
async fn only_due_jobs_of_the_handled_kinds_are_claimed() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    jobs::enqueue(&mut conn, &Other {}).await.unwrap();
    let later = enqueue_demo(&mut conn).await;
    diesel::update(tenantry_store::schema::jobs::table.find(later.id))
        .set(
            tenantry_store::schema::jobs::run_at
                .eq(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        jobs::claim(&mut conn, "w", &kinds(&["demo"]))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_failed_attempt_is_retried_after_an_exponential_back_off_then_dies_with_an_alert() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    diesel::update(tenantry_store::schema::jobs::table.find(queued.id))
        .set(tenantry_store::schema::jobs::max_attempts.eq(3))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        diesel::update(tenantry_store::schema::jobs::table.find(queued.id))
            .set(tenantry_store::schema::jobs::run_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await
            .unwrap();
        let j = claim_demo(&mut conn, "w").await;
        assert_eq!(j.attempts, attempt);
        let before = chrono::Utc::now();
        let outcome = jobs::fail(&mut conn, &j, "w", "boom", true, &BACKOFF)
            .await
            .unwrap();
        match outcome {
            FailureOutcome::Retrying { run_at } => {
                delays.push((run_at - before).num_milliseconds())
            }
            FailureOutcome::Dead => assert_eq!(attempt, 3, "dead only after the last attempt"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // 10 s then 20 s, each with up to 20 % jitter.
    assert!((10_000..=12_100).contains(&delays[0]), "{delays:?}");
    assert!((20_000..=24_100).contains(&delays[1]), "{delays:?}");
    let dead = job(&pool, queued.id).await;
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("boom"));
    assert!(dead.finished_at.is_some());
    let alert_kinds: Vec<String> = alerts::table
        .filter(alerts::subject.eq(format!("job:{}", queued.id)))
        .select(alerts::kind)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(alert_kinds, ["job.dead"]);
    let actions: Vec<String> = activity_log::table
        .filter(activity_log::target_id.eq(queued.id.to_string()))
        .select(activity_log::action)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(actions, ["job.dead"]);
}

#[tokio::test]
async fn a_permanent_error_fails_the_job_at_once_without_an_alert() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    let j = claim_demo(&mut conn, "w").await;
    let outcome = jobs::fail(&mut conn, &j, "w", "bad input", false, &BACKOFF)
        .await
        .unwrap();
    assert_eq!(outcome, FailureOutcome::Failed);
    assert_eq!(job(&pool, queued.id).await.status, JobStatus::Failed);
    let n: i64 = alerts::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_stale_heartbeat_requeues_the_job_and_the_old_holder_can_no_longer_finish_it() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    let j = claim_demo(&mut conn, "dead-worker").await;
    // A live heartbeat keeps it.
    assert!(
        jobs::heartbeat(&mut conn, j.id, "dead-worker")
            .await
            .unwrap()
    );
    assert!(
        jobs::reap_stale(&mut conn, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    // The holder stops beating: its heartbeat ages past the lease.
    diesel::update(tenantry_store::schema::jobs::table.find(j.id))
        .set(
            tenantry_store::schema::jobs::heartbeat_at
                .eq(chrono::Utc::now() - chrono::Duration::seconds(61)),
        )
        .execute(&mut conn)
        .await
        .unwrap();
    let reaped = jobs::reap_stale(&mut conn, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(reaped.len(), 1);
    let requeued = job(&pool, queued.id).await;
    assert_eq!(requeued.status, JobStatus::Queued);
    assert!(requeued.last_error.unwrap().contains("heartbeat"));
    let again = claim_demo(&mut conn, "new-worker").await;
    assert_eq!(again.attempts, 2);
    assert!(
        !jobs::complete(&mut conn, j.id, "dead-worker")
            .await
            .unwrap(),
        "the old holder lost it"
    );
    assert!(
        !jobs::heartbeat(&mut conn, j.id, "dead-worker")
            .await
            .unwrap()
    );
    assert!(jobs::complete(&mut conn, j.id, "new-worker").await.unwrap());
    assert_eq!(job(&pool, queued.id).await.status, JobStatus::Succeeded);
}

#[tokio::test]
async fn a_dedup_key_keeps_one_live_job() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let a = jobs::enqueue(
        &mut conn,
        &Demo {
            key: Some("k".into()),
        },
    )
    .await
    .unwrap();
    let b = jobs::enqueue(
        &mut conn,
        &Demo {
            key: Some("k".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(a.id, b.id);
    let j = claim_demo(&mut conn, "w").await;
    jobs::complete(&mut conn, j.id, "w").await.unwrap();
    let c = jobs::enqueue(
        &mut conn,
        &Demo {
            key: Some("k".into()),
        },
    )
    .await
    .unwrap();
    assert_ne!(c.id, a.id, "a finished job frees its key");
}

/// Counts runs; fails the first `fail_first` attempts with a transient error.
struct Counting {
    runs: Arc<AtomicU32>,
    fail_first: u32,
    done: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl JobHandler<Demo> for Counting {
    async fn run(&self, ctx: &JobContext, _job: Demo) -> Result<(), JobError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        ctx.set_step(&format!("run {n}")).await?;
        if n <= self.fail_first {
            return Err(JobError::Retry(format!("transient {n}")));
        }
        self.done.notify_one();
        Ok(())
    }
}

fn fast(workers: usize) -> WorkerConfig {
    let mut c = WorkerConfig::new(workers);
    // Long poll: only NOTIFY (or a retry's own poll) can wake the workers fast.
    c.poll_interval = Duration::from_millis(200);
    c.heartbeat_interval = Duration::from_millis(100);
    c.lease = Duration::from_secs(5);
    c.backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    c
}

async fn wait_for_status(pool: &Pool, id: uuid::Uuid, status: JobStatus) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = job(pool, id).await;
        if j.status == status {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job stuck in {}",
            j.status
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn workers_run_an_enqueued_job_retrying_transient_failures_until_it_succeeds() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let runs = Arc::new(AtomicU32::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut handlers = Handlers::new();
    handlers.register::<Demo, _>(Arc::new(Counting {
        runs: runs.clone(),
        fail_first: 2,
        done: done.clone(),
    }));
    let stop = CancellationToken::new();
    let workers = tokio::spawn(worker::run(
        pool.clone(),
        Some(secrecy::SecretString::from(db.url().to_owned())),
        handlers,
        fast(3),
        stop.clone(),
    ));
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    let finished = wait_for_status(&pool, queued.id, JobStatus::Succeeded).await;
    assert_eq!(
        AtomicU32::load(&runs, Ordering::SeqCst),
        3,
        "two failures, one success"
    );
    assert_eq!(finished.attempts, 3);
    assert_eq!(finished.step.as_deref(), Some("run 3"));
    assert!(finished.last_error.is_none());
    stop.cancel();
    workers.await.unwrap();
}

/// Blocks until released; counts starts.
struct Blocking {
    started: Arc<AtomicU32>,
    release: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl JobHandler<Demo> for Blocking {
    async fn run(&self, _ctx: &JobContext, _job: Demo) -> Result<(), JobError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _permit = self
            .release
            .acquire()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(())
    }
}

#[tokio::test]
async fn a_stopping_worker_gives_its_unfinished_job_back_without_counting_the_attempt() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let started = Arc::new(AtomicU32::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let mut handlers = Handlers::new();
    handlers.register::<Demo, _>(Arc::new(Blocking {
        started: started.clone(),
        release: release.clone(),
    }));
    let mut config = fast(1);
    config.shutdown_grace = Duration::from_millis(100);
    let stop = CancellationToken::new();
    let workers = tokio::spawn(worker::run(
        pool.clone(),
        None,
        handlers,
        config,
        stop.clone(),
    ));
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    wait_for_status(&pool, queued.id, JobStatus::Running).await;
    stop.cancel();
    workers.await.unwrap();
    let back = job(&pool, queued.id).await;
    assert_eq!(back.status, JobStatus::Queued);
    assert_eq!(back.attempts, 0);
    assert!(back.locked_by.is_none());
}

#[tokio::test]
async fn notify_wakes_idle_workers_long_before_their_next_poll() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let runs = Arc::new(AtomicU32::new(0));
    let mut handlers = Handlers::new();
    handlers.register::<Demo, _>(Arc::new(Counting {
        runs: runs.clone(),
        fail_first: 0,
        done: Arc::new(tokio::sync::Notify::new()),
    }));
    let mut config = fast(1);
    // Far beyond the 20 s the test waits: only a NOTIFY can wake the worker.
    config.poll_interval = Duration::from_secs(600);
    let stop = CancellationToken::new();
    let workers = tokio::spawn(worker::run(
        pool.clone(),
        Some(secrecy::SecretString::from(db.url().to_owned())),
        handlers,
        config,
        stop.clone(),
    ));
    // Wait until the LISTEN connection is up (it is what we are testing).
    let mut conn = pool.get().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listening: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
              WHERE datname = current_database() AND query = 'LISTEN tenantry_jobs'",
        )
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n;
        if listening > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no LISTEN connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = enqueue_demo(&mut conn).await;
    wait_for_status(&pool, queued.id, JobStatus::Succeeded).await;
    stop.cancel();
    workers.await.unwrap();
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn concurrent_enqueues_with_one_dedup_key_insert_one_job() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            jobs::enqueue(
                &mut conn,
                &Demo {
                    key: Some("race".into()),
                },
            )
            .await
            .unwrap()
            .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller got the one live job");
    let mut conn = pool.get().await.unwrap();
    let rows: i64 = tenantry_store::schema::jobs::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// A handler that must never run: its payload cannot parse.
struct Never;

#[async_trait]
impl JobHandler<Demo> for Never {
    async fn run(&self, _ctx: &JobContext, _job: Demo) -> Result<(), JobError> {
        Err(JobError::Fail(
            "a payload that does not parse reached the handler".into(),
        ))
    }
}

#[tokio::test]
async fn a_payload_that_does_not_parse_fails_the_job_without_retries() {
    let db = TestDatabase::new().await;
    let pool = crate::pool(db.url());
    let mut conn = pool.get().await.unwrap();
    let queued = enqueue_demo(&mut conn).await;
    diesel::update(tenantry_store::schema::jobs::table.find(queued.id))
        .set(tenantry_store::schema::jobs::payload.eq(serde_json::json!({"key": 42})))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut handlers = Handlers::new();
    handlers.register::<Demo, _>(Arc::new(Never));
    let stop = CancellationToken::new();
    let workers = tokio::spawn(worker::run(
        pool.clone(),
        None,
        handlers,
        fast(1),
        stop.clone(),
    ));
    let failed = wait_for_status(&pool, queued.id, JobStatus::Failed).await;
    stop.cancel();
    workers.await.unwrap();
    assert_eq!(failed.attempts, 1);
    assert!(
        failed
            .last_error
            .unwrap()
            .contains("demo payload does not parse"),
        "the error names the kind"
    );
}
