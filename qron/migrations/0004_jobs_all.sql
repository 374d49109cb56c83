-- Every job, live or finished, in the columns a client reads (`JobRow`): what `get` and
-- `search` select from. A condition on the view reaches each table's own indexes.
CREATE VIEW qron.jobs_all AS
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at, errors
  FROM qron.jobs
UNION ALL
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, finished_at, errors
  FROM qron.jobs_history;
