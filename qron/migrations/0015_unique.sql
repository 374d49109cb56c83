-- Unique jobs: a job enqueued with a unique key (its executor, all or part of its payload, and
-- the period it falls in) claims the key in `qron.job_uniques`, in the statement that inserts
-- it. The table's primary key makes the claim exact: of two concurrent enqueues of the same key,
-- one inserts the claim and the other waits for it, then finds the key held and returns the
-- holder. A claim holds while its job is in one of the claim's statuses (`states`, one bit per
-- status: ready 1, running 2, stopped 4, succeeded 8, failed 16, cancelled 32); a claim whose
-- job left them (or is gone) is taken over by the next enqueue of the key. No job statement
-- writes a claim: the holder's status is read when the key is wanted again.
CREATE TABLE qron.job_uniques (
    owner    text     NOT NULL,
    executor text     NOT NULL,
    -- sha256 of the key's text (see `job::unique`)
    key      bytea    NOT NULL,
    job_id   bigint   NOT NULL,
    states   smallint NOT NULL CHECK (states > 0 AND states < 64),
    -- the end of the key's period (a later enqueue has another key), for the upkeep to drop it
    until    timestamptz,
    PRIMARY KEY (owner, executor, key)
);
CREATE INDEX job_uniques_until ON qron.job_uniques (until) WHERE until IS NOT NULL;

-- Whether job `job` is in one of `states` (see above), as committed now: PL/pgSQL, so that each
-- look takes a fresh snapshot under READ COMMITTED (a claim is checked after waiting for a
-- concurrent enqueue of the same key, whose job the statement's own snapshot does not see).
CREATE FUNCTION qron.unique_holds(job bigint, states smallint) RETURNS boolean
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
    RETURN (states & CASE s WHEN 'ready' THEN 1 WHEN 'running' THEN 2 WHEN 'stopped' THEN 4
                            WHEN 'succeeded' THEN 8 WHEN 'failed' THEN 16
                            WHEN 'cancelled' THEN 32 ELSE 0 END) <> 0;
END
$$;
