-- Dependencies (issue 32): a job can wait for other jobs of its owner.
--
-- A waiting job has status `waiting`, out of the lease index, and counts in `waits` the jobs it
-- waits for that have not ended (an operator may stop it meanwhile: it stays stopped when they
-- have; restarted before, it goes back to waiting). The edges are rows of `qron.job_dependencies`; a job that
-- others wait for carries `has_dependents`, so that the end of any other job pays nothing.
-- When a job with dependents leaves `qron.jobs` (whichever statement ends it: an outcome, a
-- hand-over, a cancel, a delete), a trigger releases its dependents in that same statement: a
-- release can be neither lost nor doubled, and a crash loses none (the statement commits or
-- not as a whole).
--
-- What a dependent does when a job it waits for did not succeed (failed, was cancelled or
-- deleted) is its own `on_dependency_failure`: `cancel` it (and, in turn, the jobs that wait
-- for it and would be cancelled too), `run` it anyway, or `hold` it (stopped, for an operator,
-- once nothing is left to wait for).
ALTER TABLE qron.jobs DROP CONSTRAINT jobs_live_status;
ALTER TABLE qron.jobs ADD CONSTRAINT jobs_live_status
    CHECK (status IN ('ready', 'running', 'stopped', 'waiting'));
ALTER TABLE qron.jobs ADD COLUMN waits integer NOT NULL DEFAULT 0
    CONSTRAINT jobs_waits_nonneg CHECK (waits >= 0);
ALTER TABLE qron.jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
-- (NULL: `cancel`, the default, which then costs a plain job's row no byte)
ALTER TABLE qron.jobs ADD COLUMN on_dependency_failure text
    CONSTRAINT jobs_on_dependency_failure CHECK (on_dependency_failure IN ('run', 'hold'));
ALTER TABLE qron.jobs ADD COLUMN dependency_failed boolean NOT NULL DEFAULT false;

-- What a handler recorded (`Context::record`): kept with the finished job, read by the jobs
-- that waited for it.
ALTER TABLE qron.jobs_history ADD COLUMN output jsonb;

CREATE TABLE qron.job_dependencies (
    job        bigint NOT NULL,
    dependency bigint NOT NULL,
    PRIMARY KEY (job, dependency)
);
CREATE INDEX job_dependencies_dependency ON qron.job_dependencies (dependency);

-- The dependents of job `ended`, which ended as `outcome` (`succeeded`, `failed`,
-- `cancelled`, or `deleted` when it left without a history row), released: one job less to wait
-- for, and ready (or held) when none is left; or, when it did not succeed, those that cancel on
-- that, cancelled with every waiting job that would be cancelled in turn. Each statement takes
-- a fresh snapshot (PL/pgSQL under READ COMMITTED): a dependent created while the statement
-- that ended the job waited for its row is seen.
CREATE FUNCTION qron.dependents_release(ended bigint, outcome text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    woken bigint;
BEGIN
    IF outcome <> 'succeeded' THEN
        WITH RECURSIVE doomed AS (
            SELECT d.job FROM qron.job_dependencies d JOIN qron.jobs j ON j.id = d.job
             WHERE d.dependency = ended AND j.waits > 0 AND j.on_dependency_failure IS NULL
            UNION
            SELECT d.job FROM doomed x
              JOIN qron.job_dependencies d ON d.dependency = x.job
              JOIN qron.jobs j ON j.id = d.job
             WHERE j.waits > 0 AND j.on_dependency_failure IS NULL),
        gone AS (
            DELETE FROM qron.jobs j WHERE j.id IN (SELECT job FROM doomed) RETURNING j.*)
        INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, revision,
             last_error, last_error_at, created_at, updated_at, start_at, last_run_at,
             finished_at, errors, runs, priority)
        SELECT id, executor, owner, name, expr, recurring, 'cancelled', run_at, payload, meta,
               attempt, executions, max_attempts, timeout, revision + 1,
               format('a job it waited for did not succeed (job %s: %s)', ended, outcome),
               now(), created_at, now(), start_at, last_run_at, now(), errors, runs, priority
          FROM gone;
    END IF;
    WITH released AS (
        UPDATE qron.jobs j SET
            waits = j.waits - 1,
            dependency_failed = j.dependency_failed OR outcome <> 'succeeded',
            status = CASE WHEN j.status = 'stopped' THEN 'stopped'
                          WHEN j.waits > 1 THEN 'waiting'
                          WHEN (j.dependency_failed OR outcome <> 'succeeded')
                               AND j.on_dependency_failure = 'hold' THEN 'stopped'
                          ELSE 'ready' END::qron.job_status,
            -- due later: out of the lease index until staged (see `jobs_stage`)
            scheduled = j.waits = 1 AND j.run_at > now() + interval '2 seconds',
            revision = j.revision + 1,
            updated_at = now()
          FROM qron.job_dependencies d
         WHERE d.dependency = ended AND j.id = d.job AND j.waits > 0
           AND (outcome = 'succeeded' OR j.on_dependency_failure IS NOT NULL)
        RETURNING j.executor, j.status, j.scheduled)
    -- wake idle workers of the executors of the jobs made ready (on commit)
    SELECT count(pg_notify('qron_jobs', e.executor)) INTO woken
      FROM (SELECT DISTINCT executor FROM released WHERE status = 'ready' AND NOT scheduled) e;
END
$$;

-- The trigger's side: how the job ended, from the history row the same statement wrote (an
-- AFTER trigger sees the whole statement's changes), or `deleted` without one.
CREATE FUNCTION qron.dependency_ended() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    outcome text;
BEGIN
    -- (an aggregate over the job's rows by the id index: an `ORDER BY finished_at LIMIT 1`
    -- may be planned as a walk back along the finish-time index)
    SELECT (array_agg(h.status::text ORDER BY h.finished_at DESC))[1] INTO outcome
      FROM qron.jobs_history h WHERE h.id = OLD.id;
    PERFORM qron.dependents_release(OLD.id, COALESCE(outcome, 'deleted'));
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_dependency_ended AFTER DELETE ON qron.jobs
    FOR EACH ROW WHEN (OLD.has_dependents) EXECUTE FUNCTION qron.dependency_ended();

-- A waiting job holds a unique key as a ready one does.
CREATE OR REPLACE FUNCTION qron.unique_holds(job bigint, states smallint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s qron.job_status;
BEGIN
    SELECT status INTO s FROM qron.jobs WHERE id = job;
    IF NOT FOUND THEN
        SELECT status INTO s FROM qron.jobs_history WHERE id = job LIMIT 1;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    RETURN (states & CASE s WHEN 'ready' THEN 1 WHEN 'waiting' THEN 1 WHEN 'running' THEN 2
                            WHEN 'stopped' THEN 4 WHEN 'succeeded' THEN 8 WHEN 'failed' THEN 16
                            WHEN 'cancelled' THEN 32 ELSE 0 END) <> 0;
END
$$;

-- Every job shows its output (the finished ones).
CREATE OR REPLACE VIEW qron.jobs_all AS
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, NULL::timestamptz AS finished_at, errors,
       runs, priority, NULL::jsonb AS output
  FROM qron.jobs
UNION ALL
SELECT id, executor, owner, name, expr, recurring, status::text AS status, run_at, payload,
       meta, attempt, executions, max_attempts, timeout, revision, last_error, last_error_at,
       created_at, updated_at, start_at, last_run_at, finished_at, errors, runs, priority,
       output
  FROM qron.jobs_history;
