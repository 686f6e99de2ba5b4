//! Background jobs: where a job is in its life. The queue itself (claiming,
//! leases, back-off) is `tenantry_store::jobs`; the rule of which status
//! follows which is stated here.

string_enum! {
    /// A job's status: `queued → running → succeeded`, or back to `queued`
    /// for a retry after a transient failure, `failed` after a permanent one,
    /// `dead` when its attempts ran out.
    JobStatus {
        /// Waiting for a worker (or for its back-off to end).
        Queued => "queued",
        /// Held by a worker, whose heartbeat keeps its lease.
        Running => "running",
        /// Done.
        Succeeded => "succeeded",
        /// Ended by a permanent error; not retried.
        Failed => "failed",
        /// Out of attempts after transient errors; an alert is raised.
        Dead => "dead",
    }
}

impl JobStatus {
    /// The statuses of a live job: one that may still run. A deduplication
    /// key is unique among these (the `jobs_dedup_key_live` index).
    pub const LIVE: &'static [Self] = &[Self::Queued, Self::Running];

    /// Whether the job has ended and will not run again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_final_statuses_partition_every_status() {
        for s in JobStatus::ALL {
            assert_ne!(JobStatus::LIVE.contains(s), s.is_final(), "{s}");
        }
        assert_eq!("dead".parse::<JobStatus>(), Ok(JobStatus::Dead));
        assert!("done".parse::<JobStatus>().is_err());
    }
}
