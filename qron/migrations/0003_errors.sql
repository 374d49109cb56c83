-- Each job keeps the errors of its last attempts (at most 20, oldest first), moved with it into
-- the history: [{"attempt": 3, "at": "…", "worker": "…", "error": "…"}, …].
-- Adding a column with a constant default rewrites nothing.
ALTER TABLE qron.jobs ADD COLUMN errors jsonb NOT NULL DEFAULT '[]';
ALTER TABLE qron.jobs_history ADD COLUMN errors jsonb NOT NULL DEFAULT '[]';

-- `errors` with one more entry at its end, the oldest dropped beyond 20. A value edited by
-- hand into something other than an array starts afresh: it must never make an outcome fail.
CREATE FUNCTION qron.errors_push(errors jsonb, attempt integer, at timestamptz, worker text,
                                 error text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(errors) IS DISTINCT FROM 'array' THEN '[]'::jsonb
                WHEN jsonb_array_length(errors) >= 20 THEN errors - 0
                ELSE errors END
           || jsonb_build_array(jsonb_build_object(
                  'attempt', attempt, 'at', at, 'worker', worker, 'error', error))
$$;
