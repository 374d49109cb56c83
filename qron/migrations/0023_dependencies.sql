-- Dependencies (issue 32): a job can wait for other jobs of its owner.
--
-- A waiting job has status `waiting`, out of the lease index, and counts in `waits` the jobs it
-- waits for that have not ended (an operator may stop it meanwhile: it stays stopped when they
-- have; restarted before, it goes back to waiting). The edges are rows of `qron.job_dependencies`; a job that
-- others wait for carries `has_dependents`, so that the end of any other job pays nothing.
-- When a job with dependents leaves `qron.jobs` (whichever statement ends it: an outcome, a
-- hand-over, a cancel, a delete), its dependents are released in that same statement: a
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

-- A finished job that others waited for says so in the history too: the statement that moves
-- it there is what releases them.
ALTER TABLE qron.jobs_history ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

-- The dependents of jobs `ended`, which ended as `outcomes` (`succeeded`, `failed`,
-- `cancelled`, or `deleted`), released: each by as many jobs as ended of those it waits for
-- (one update a dependent: a callback that waits for 10,000 jobs is written once a statement,
-- not once a job), ready (or held) when none is left. A dependent one of whose jobs did not
-- succeed, and that cancels on that, is cancelled, with every waiting job that would be
-- cancelled in turn (that cancel's own history rows then release their dependents that run or
-- hold on a failure). Each statement takes a fresh snapshot (PL/pgSQL under READ COMMITTED): a
-- dependent created while the statement that ended its job waited for that job's row is seen.
CREATE FUNCTION qron.dependents_release(ended bigint[], outcomes text[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    woken bigint;
BEGIN
    WITH RECURSIVE e AS MATERIALIZED (
        SELECT * FROM unnest(ended, outcomes) AS e(dependency, outcome)),
    -- The edges from the jobs that ended, in one scan of the index on `dependency` for all of
    -- them, apart from the join with `e`: the planner, without statistics on edges just
    -- written, would otherwise read every edge, or look them up job by job under an estimate
    -- of thousands of rows each (a hash table sized for it cost 60 ms a statement).
    edges AS MATERIALIZED (
        SELECT x.job, x.dependency FROM qron.job_dependencies x
         WHERE x.dependency = ANY(ARRAY(SELECT dependency FROM e))),
    per AS MATERIALIZED (
        SELECT d.job, count(*)::integer AS n, bool_or(e.outcome <> 'succeeded') AS failed
          FROM edges d JOIN e ON e.dependency = d.dependency
         GROUP BY d.job),
    doomed AS (
        SELECT p.job FROM per p JOIN qron.jobs j ON j.id = p.job
         WHERE p.failed AND j.waits > 0 AND j.on_dependency_failure IS NULL
        UNION
        SELECT d.job FROM doomed x
          JOIN qron.job_dependencies d ON d.dependency = x.job
          JOIN qron.jobs j ON j.id = d.job
         WHERE j.waits > 0 AND j.on_dependency_failure IS NULL),
    gone AS (
        DELETE FROM qron.jobs j WHERE j.id IN (SELECT job FROM doomed) RETURNING j.*),
    cancelled AS (
        INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, revision,
             last_error, last_error_at, created_at, updated_at, start_at, last_run_at,
             finished_at, errors, runs, priority, has_dependents)
        SELECT id, executor, owner, name, expr, recurring, 'cancelled', run_at, payload, meta,
               attempt, executions, max_attempts, timeout, revision + 1,
               'a job it waited for did not succeed', now(), created_at, now(), start_at,
               last_run_at, now(), errors, runs, priority, has_dependents
          FROM gone
        RETURNING id),
    released AS (
        UPDATE qron.jobs j SET
            waits = GREATEST(j.waits - p.n, 0),
            dependency_failed = j.dependency_failed OR p.failed,
            status = CASE WHEN j.status = 'stopped' THEN 'stopped'
                          WHEN j.waits > p.n THEN 'waiting'
                          WHEN (j.dependency_failed OR p.failed)
                               AND j.on_dependency_failure = 'hold' THEN 'stopped'
                          ELSE 'ready' END::qron.job_status,
            -- due later: out of the lease index until staged (see `jobs_stage`)
            scheduled = j.waits <= p.n AND j.run_at > now() + interval '2 seconds',
            revision = j.revision + 1,
            updated_at = now()
          FROM per p
         -- (the dependents by the primary key, not a read of the whole table)
         WHERE j.id = ANY(ARRAY(SELECT job FROM per)) AND j.id = p.job AND j.waits > 0
           AND NOT (p.failed AND j.on_dependency_failure IS NULL)
           AND j.id NOT IN (SELECT job FROM doomed)
        RETURNING j.executor, j.status, j.scheduled)
    -- wake idle workers of the executors of the jobs made ready (on commit)
    SELECT count(pg_notify('qron_jobs', r.executor)) INTO woken
      FROM (SELECT DISTINCT executor FROM released WHERE status = 'ready' AND NOT scheduled) r;
END
$$;

-- Whichever statement moves jobs into the history (an outcome, a hand-over, a cancel), the
-- dependents of those that others waited for are released at its end: a statement trigger over
-- the rows it inserted (a transition table: one call a statement, set-based, with each job's
-- status at hand). A job deleted while others wait for it releases them as `deleted` in the
-- delete's own statement (see `JOB_DELETE`).
CREATE FUNCTION qron.history_released() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM finished_jobs WHERE has_dependents) THEN
        PERFORM qron.dependents_release(array_agg(f.id), array_agg(f.status::text))
           FROM finished_jobs f WHERE f.has_dependents;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_history_released AFTER INSERT ON qron.jobs_history
    REFERENCING NEW TABLE AS finished_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION qron.history_released();

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
