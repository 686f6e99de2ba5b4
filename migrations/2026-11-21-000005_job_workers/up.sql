-- The job queue's workers: a claimed job holds a lease kept alive by a
-- heartbeat; a job whose heartbeat is older than the lease is re-queued.
-- Alerts: what an operator must look at (a dead job, a node gone offline).

ALTER TABLE jobs
    ADD COLUMN locked_by    text,
    ADD COLUMN heartbeat_at timestamptz;

-- The claim query: oldest due queued job first.
CREATE INDEX jobs_due_idx ON jobs (run_at, id) WHERE status = 'queued';
-- The reaper: running jobs by heartbeat.
CREATE INDEX jobs_running_idx ON jobs (heartbeat_at) WHERE status = 'running';
CREATE INDEX jobs_status_kind_idx ON jobs (status, kind, id);

CREATE TABLE alerts (
    id          uuid        PRIMARY KEY,
    -- e.g. job.dead, node.offline
    kind        text        NOT NULL,
    severity    text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     text        NOT NULL,
    tenant_id   uuid        REFERENCES tenants (id),
    -- what it is about: job:<id>, node:<id>
    subject     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX alerts_open_idx ON alerts (id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_subject_idx ON alerts (subject, id);
