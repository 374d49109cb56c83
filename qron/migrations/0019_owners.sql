-- Fairness between owners. A lease shares itself between the owners with due jobs (see
-- `owner_walk`); by default in equal shares (round robin), or weighted: an owner of weight 3
-- gets three times the share of an owner of weight 1. Set by the operator, for every executor.
CREATE TABLE qron.owner_weights (
    owner      text PRIMARY KEY
        CONSTRAINT owner_weights_owner_len CHECK (length(owner) <= 255),
    weight     integer NOT NULL
        CONSTRAINT owner_weights_weight CHECK (weight BETWEEN 1 AND 1000),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An owner's cap on its own jobs of an executor: at most `concurrency` leased at once across
-- every worker. The count comes from the leased rows, as the executors' limits do: a capped
-- owner's lease writes the owner in `cap_key`, and a job counts while its lease is unexpired.
-- Other owners' leases pay nothing for it (no lock of theirs, no count).
CREATE TABLE qron.owner_limits (
    owner       text NOT NULL
        CONSTRAINT owner_limits_owner_len CHECK (length(owner) <= 255),
    executor    text NOT NULL
        CONSTRAINT owner_limits_executor_len CHECK (length(executor) BETWEEN 1 AND 255),
    concurrency integer NOT NULL
        CONSTRAINT owner_limits_concurrency CHECK (concurrency BETWEEN 1 AND 1000000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (executor, owner)
);

ALTER TABLE qron.jobs ADD COLUMN cap_key text;
CREATE INDEX jobs_capped ON qron.jobs (executor, cap_key, lease_expires_at)
    WHERE cap_key IS NOT NULL AND lease_expires_at IS NOT NULL;

-- The jobs of owner `owner` leased under its cap on executor `executor` and unexpired at `at`,
-- as committed now (a fresh snapshot, as `qron.limit_taken` reads); NULL unless the lease holds
-- the owner's cap lock (`locked`): a lease that could not take it leases none of the owner's
-- jobs (another lease is taking them).
CREATE FUNCTION qron.cap_taken(executor text, owner text, at timestamptz, locked boolean)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT locked THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT count(*) FROM qron.jobs j
             WHERE j.executor = cap_taken.executor AND j.cap_key = cap_taken.owner
               AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > cap_taken.at);
END
$$;
