-- Global concurrency limits: at most `concurrency` jobs of an executor leased at once across
-- every worker, and with a partition, at most `partition_concurrency` per partition key (the
-- job's owner, or a field of its payload). One row per limited executor, set by the operator;
-- an executor without a row is not limited, and its leases cost nothing more.
CREATE TABLE qron.executor_limits (
    executor              text PRIMARY KEY
        CONSTRAINT executor_limits_executor_len CHECK (length(executor) BETWEEN 1 AND 255),
    concurrency           integer
        CONSTRAINT executor_limits_concurrency CHECK (concurrency BETWEEN 1 AND 1000000),
    partition_by          text
        CONSTRAINT executor_limits_partition_by CHECK (partition_by IN ('owner', 'field')),
    partition_field       text
        CONSTRAINT executor_limits_partition_field CHECK (length(partition_field) BETWEEN 1 AND 255),
    partition_concurrency integer
        CONSTRAINT executor_limits_partition_concurrency
        CHECK (partition_concurrency BETWEEN 1 AND 1000000),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT executor_limits_partition CHECK (
        (partition_by IS NULL) = (partition_concurrency IS NULL)
        AND (partition_by IS NOT DISTINCT FROM 'field') = (partition_field IS NOT NULL)),
    CONSTRAINT executor_limits_some CHECK (concurrency IS NOT NULL OR partition_by IS NOT NULL)
);

-- The count comes from the leased rows themselves, not from a counter: a limited lease writes
-- the job's partition key ('' without a partition) in `limit_key`, and a job counts while its
-- lease is held and unexpired. A worker that dies frees its jobs' places when their leases run
-- out, never earlier; every end of a lease clears `lease_expires_at`, which takes the row out
-- of this index (an unlimited lease clears `limit_key`, so unlimited leases cost it nothing).
ALTER TABLE qron.jobs ADD COLUMN limit_key text;
CREATE INDEX jobs_limited ON qron.jobs (executor, limit_key, lease_expires_at)
    WHERE limit_key IS NOT NULL AND lease_expires_at IS NOT NULL;

-- The places taken under executor `executor`'s limits at `at`, by partition key: the jobs whose
-- lease carries a key and has not run out. PL/pgSQL and VOLATILE, so that it reads with a
-- fresh snapshot: a limited lease calls it once it holds the executor's limit lock (`locked`,
-- an argument so that the lock is taken first), and must see every lease committed before.
CREATE FUNCTION qron.limit_taken(executor text, at timestamptz, locked boolean)
RETURNS TABLE (key text, n bigint) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT j.limit_key, count(*) FROM qron.jobs j
     WHERE j.executor = limit_taken.executor AND j.limit_key IS NOT NULL
       AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > limit_taken.at
     GROUP BY j.limit_key;
END
$$;
