-- A recurring job keeps its last runs (at most 20, oldest first), moved with it into the
-- history when it is cancelled: [{"slot": "…", "at": "…", "worker": "…",
-- "outcome": "succeeded" | "failed" | "snoozed", "error": "…"}, …]. One-off jobs keep none
-- (their attempts' errors tell their story). Adding a column with a constant default rewrites
-- nothing.
ALTER TABLE qron.jobs ADD COLUMN runs jsonb NOT NULL DEFAULT '[]';
ALTER TABLE qron.jobs_history ADD COLUMN runs jsonb NOT NULL DEFAULT '[]';

-- `runs` with one more entry at its end, the oldest dropped beyond 20. A value edited by hand
-- into something other than an array starts afresh: it must never make an outcome fail.
CREATE FUNCTION qron.runs_push(runs jsonb, slot timestamptz, at timestamptz, worker text,
                               outcome text, error text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(runs) IS DISTINCT FROM 'array' THEN '[]'::jsonb
                WHEN jsonb_array_length(runs) >= 20 THEN runs - 0
                ELSE runs END
           || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                  'slot', slot, 'at', at, 'worker', worker, 'outcome', outcome, 'error', error)))
$$;

-- Every job, live or finished, as before, with its runs.
CREATE OR REPLACE VIEW qron.jobs_all AS
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at, errors,
       runs
  FROM qron.jobs
UNION ALL
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, finished_at, errors, runs
  FROM qron.jobs_history;
