-- Leases under a limit per key alone go side by side (issue 30).
--
-- A limited lease took the executor's limit lock alone, so the leases of four workers went one
-- at a time however many keys they had between them. Under a limit per key with neither a
-- limit in all nor a rate limit, a lease now takes that lock shared (changes of the limits,
-- and leases under other limits, still take it alone), finds its jobs, then takes a lock of
-- each key it may take a job of, in order, and counts those keys' places once they are held.
--
-- The executor's limits as a lease goes by them: read, and under a limit per key alone, read
-- again once the limit lock is held shared, as committed then (PL/pgSQL and VOLATILE: a
-- fresh snapshot), so a change of the limits the lease waited for is the one it goes by.
CREATE FUNCTION qron.lease_limits(executor text)
RETURNS SETOF qron.executor_limits LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    l qron.executor_limits;
BEGIN
    SELECT * INTO l FROM qron.executor_limits e WHERE e.executor = lease_limits.executor;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF l.partition_by IS NOT NULL AND l.concurrency IS NULL AND l.rate_limit IS NULL THEN
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('qron.executor_limits:' || lease_limits.executor, 0));
        RETURN QUERY SELECT * FROM qron.executor_limits e WHERE e.executor = lease_limits.executor;
        RETURN;
    END IF;
    RETURN NEXT l;
END
$$;
