//! The job workers: how many `serve` and `worker` run, how they poll, the
//! lease that re-queues a dead worker's job, the back-off between attempts;
//! and how often `serve` enqueues node health checks.

use std::time::Duration;

use clap::Args;

/// Flags of the job workers.
#[derive(Clone, Args)]
pub struct JobArgs {
    /// Job worker tasks run by `serve` (0: none; run `tenantry worker` instead) and by `worker`.
    #[arg(long, env = "TENANTRY_WORKERS", default_value_t = 2, global = true)]
    #[arg(display_order = 34)]
    pub workers: usize,

    /// Seconds between job-queue polls when no NOTIFY wakes the workers.
    #[arg(
        long,
        env = "TENANTRY_JOB_POLL_SECS",
        default_value_t = 5,
        global = true
    )]
    #[arg(display_order = 35)]
    pub job_poll_secs: u64,

    /// Seconds without a heartbeat after which a running job is re-queued (its worker died); heartbeats go every third of it.
    #[arg(
        long,
        env = "TENANTRY_JOB_LEASE_SECS",
        default_value_t = 30,
        global = true
    )]
    #[arg(display_order = 36)]
    pub job_lease_secs: u64,

    /// Seconds between node health checks enqueued by `serve` (0: none).
    #[arg(
        long,
        env = "TENANTRY_NODE_CHECK_SECS",
        default_value_t = 60,
        global = true
    )]
    #[arg(display_order = 44)]
    pub node_check_secs: u64,

    /// Seconds of back-off after a job's first failed attempt, doubling after each next one (at most one hour).
    #[arg(
        long,
        env = "TENANTRY_JOB_BACKOFF_SECS",
        default_value_t = 5,
        global = true
    )]
    #[arg(display_order = 45)]
    pub job_backoff_secs: u64,
}

/// How the job workers run.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Worker tasks (0: none in `serve`).
    pub workers: usize,
    /// Polling period.
    pub poll_interval: Duration,
    /// Lease: a job without a heartbeat for this long is re-queued.
    pub lease: Duration,
    /// Back-off after the first failed attempt.
    pub backoff_base: Duration,
    /// Period of the node health checks (zero: none).
    pub node_check_interval: Duration,
}

impl JobSettings {
    /// The worker configuration these settings describe, for `workers` tasks.
    pub fn worker_config(&self, workers: usize) -> tenantry_store::worker::WorkerConfig {
        let mut c = tenantry_store::worker::WorkerConfig::new(workers);
        c.poll_interval = self.poll_interval;
        c.lease = self.lease;
        c.heartbeat_interval = (self.lease / 3).max(Duration::from_millis(100));
        c.backoff.base = self.backoff_base;
        c
    }
}

impl JobArgs {
    /// The validated settings these flags give.
    pub(super) fn into_settings(self) -> JobSettings {
        JobSettings {
            workers: self.workers,
            poll_interval: Duration::from_secs(self.job_poll_secs.max(1)),
            lease: Duration::from_secs(self.job_lease_secs.max(1)),
            backoff_base: Duration::from_secs(self.job_backoff_secs),
            node_check_interval: Duration::from_secs(self.node_check_secs),
        }
    }
}
