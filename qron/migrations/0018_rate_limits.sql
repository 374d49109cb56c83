-- Rate limits: at most `rate_limit` starts of an executor's jobs per `rate_period_ms`, across
-- every worker, in all or per partition key (the owner, or a field of the payload; a partition
-- of its own, apart from the concurrency limit's). A start is counted when its job is leased.
ALTER TABLE qron.executor_limits
    ADD COLUMN rate_limit integer
        CONSTRAINT executor_limits_rate_limit CHECK (rate_limit BETWEEN 1 AND 1000000),
    -- from a second to a year
    ADD COLUMN rate_period_ms bigint
        CONSTRAINT executor_limits_rate_period CHECK (rate_period_ms BETWEEN 1000 AND 31622400000),
    ADD COLUMN rate_burst integer,
    ADD COLUMN rate_partition_by text
        CONSTRAINT executor_limits_rate_partition_by CHECK (rate_partition_by IN ('owner', 'field')),
    ADD COLUMN rate_partition_field text
        CONSTRAINT executor_limits_rate_partition_field
        CHECK (length(rate_partition_field) BETWEEN 1 AND 255),
    ADD CONSTRAINT executor_limits_rate CHECK (
        (rate_limit IS NULL) = (rate_period_ms IS NULL)
        AND (rate_limit IS NULL) = (rate_burst IS NULL)
        AND (rate_burst IS NULL OR rate_burst BETWEEN 1 AND rate_limit)
        AND (rate_limit IS NOT NULL OR rate_partition_by IS NULL)
        AND (rate_partition_by IS NOT DISTINCT FROM 'field') = (rate_partition_field IS NOT NULL));
ALTER TABLE qron.executor_limits DROP CONSTRAINT executor_limits_some;
ALTER TABLE qron.executor_limits ADD CONSTRAINT executor_limits_some
    CHECK (concurrency IS NOT NULL OR partition_by IS NOT NULL OR rate_limit IS NOT NULL);

-- The rate limits' buckets (GCRA): one row per executor and partition key ('' without a
-- partition), written once per lease, not per job. `tat` is the theoretical arrival time: at
-- `now`, a lease may take up to `burst - (tat - now) / (period / limit)` jobs of the key, and
-- moves `tat` on by `period / limit` for each (from `now` when `tat` is past). A key without a
-- row, or whose `tat` is past, has its whole burst.
CREATE TABLE qron.rate_buckets (
    executor text NOT NULL,
    key      text NOT NULL,
    tat      timestamptz NOT NULL,
    PRIMARY KEY (executor, key)
);

-- The buckets of executor `executor` with starts spent at `at` (a `tat` past `at`: the others
-- are full), as committed once the lease holds the executor's limit lock (`locked`): a fresh
-- snapshot, as `qron.limit_taken` reads.
CREATE FUNCTION qron.rate_spent(executor text, at timestamptz, locked boolean)
RETURNS TABLE (key text, tat timestamptz) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT b.key, b.tat FROM qron.rate_buckets b
     WHERE b.executor = rate_spent.executor AND b.tat > rate_spent.at;
END
$$;
