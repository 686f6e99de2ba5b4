DROP TABLE alerts;
DROP INDEX jobs_status_kind_idx;
DROP INDEX jobs_running_idx;
DROP INDEX jobs_due_idx;
ALTER TABLE jobs DROP COLUMN heartbeat_at, DROP COLUMN locked_by;
