-- What an operator does to jobs and executors: cancel a job, pause an owner's executor.

-- A job an operator cancelled: it ends, kept in the history like a failed one. (A value added
-- to an enum cannot be used in the transaction that adds it: the history accepts it in the
-- next migration.)
ALTER TYPE qron.job_status ADD VALUE IF NOT EXISTS 'cancelled';

-- The executors an owner paused: workers lease none of that owner's jobs of that executor
-- until it is resumed. Stored, so a pause holds across restarts and for every worker.
CREATE TABLE qron.executor_pauses (
    executor  text NOT NULL,
    owner     text NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (executor, owner)
);

-- A ready job of a paused executor is `held`: out of the lease index, so that one owner's
-- paused backlog costs other owners' leases nothing. Pausing holds the ready jobs, resuming
-- releases them; a job made ready while paused (created, retried, rescued) is held by the
-- rescuer's next pass, and no worker leases it meanwhile (see the lease statement).
ALTER TABLE qron.jobs ADD COLUMN held boolean NOT NULL DEFAULT false;

DROP INDEX qron.jobs_lease;
CREATE INDEX jobs_lease ON qron.jobs (executor, run_at, id) WHERE status = 'ready' AND NOT held;
CREATE INDEX jobs_held ON qron.jobs (owner, executor) WHERE held;
