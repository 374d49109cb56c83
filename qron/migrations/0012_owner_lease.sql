-- A pause is one row: the lease walks the owners of an executor's ready jobs (one index descent
-- each, in turn from where the last lease stopped) and skips a paused owner there, so no job
-- row is written when an owner pauses or resumes, and a paused backlog costs other owners'
-- leases one descent. The same walk shares each lease between the owners with due jobs.
-- Owners are in byte order ("C"), which the worker keeps its turn in.
ALTER TABLE qron.jobs DROP COLUMN held;
CREATE INDEX jobs_lease ON qron.jobs (executor, owner COLLATE "C", run_at, id)
    WHERE status = 'ready';
