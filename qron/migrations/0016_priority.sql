-- Priorities: 0 (highest) to 9, 5 by default. The lease takes an owner's jobs in `lease_at`
-- order: the run time, put back by the job's priority (`priority_delay`, in microseconds: the
-- priority times a step, a ninth of the aging bound the enqueue chose). A job of a lower
-- priority is passed over only by jobs due less than that much after it: once it has waited
-- that long, nothing due later goes before it, so no backlog of higher priorities starves it.
-- `lease_at` is a stored generated column: every statement that moves `run_at` (an outcome, a
-- retry, an update, a restart, run now) moves it too.
ALTER TABLE qron.jobs ADD COLUMN priority smallint NOT NULL DEFAULT 5
    CONSTRAINT jobs_priority CHECK (priority BETWEEN 0 AND 9);
ALTER TABLE qron.jobs ADD COLUMN priority_delay bigint NOT NULL DEFAULT 0
    CONSTRAINT jobs_priority_delay CHECK (priority_delay >= 0 AND priority_delay <= 86400000000000);
-- In UTC, without a zone: an expression of immutable operators (`timestamptz + interval` is
-- not one), evaluated in line at each write (a function would cost a call a row).
ALTER TABLE qron.jobs ADD COLUMN lease_at timestamp
    GENERATED ALWAYS AS ((run_at AT TIME ZONE 'UTC') + priority_delay * interval '1 microsecond')
    STORED;
DROP INDEX qron.jobs_lease;
CREATE INDEX jobs_lease ON qron.jobs (executor, owner COLLATE "C", lease_at, id)
    WHERE status = 'ready' AND NOT scheduled;
-- A finished job keeps its priority, for a retry from the history.
ALTER TABLE qron.jobs_history ADD COLUMN priority smallint NOT NULL DEFAULT 5;
-- ... and every job shows it.
CREATE OR REPLACE VIEW qron.jobs_all AS
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at, errors,
       runs, priority
  FROM qron.jobs
UNION ALL
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, finished_at, errors, runs, priority
  FROM qron.jobs_history;
