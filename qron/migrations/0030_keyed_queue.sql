-- A waiting job's partition key, found without reading the queue (issue 30).
--
-- Under a limit per key, a worker leases for a running job a successor: the next due job of
-- the same owner and key (see `migrations/0028_places.sql`). With the keys spread at random
-- over the queue, the next job of a key that is ahead of the others lies hundreds of rows
-- deep, behind the jobs of keys that lag; a scan in lease order reads those first and misses.
--
-- A job written while its executor has a limit per key now carries that key in
-- `partition_key` (its owner, or its payload's field as `->>` reads it, '' when missing), and
-- this index finds the oldest due jobs of one owner and key directly. The key is a way in,
-- not the rule: a lease checks each job's key as its payload has it, so a key that is missing
-- (a job written before the limit, or through `COPY` with a value whose text only the server
-- knows) or stale (a payload changed) only leaves that job to the lease's scan of the queue.
-- Setting a limit with a new partition writes every job's key anew. `limit_key`, which a
-- lease writes and counts places by, is untouched: the planner's view of it, on the limit's
-- hot path, stays that of the leased rows alone.
-- A payload's key as the limits count it: itself up to 1024 bytes, a longer one its digest. A
-- key is indexed (`jobs_limited`, `jobs_partitioned`, the rate buckets' primary key), and an
-- index entry holds about 2.7 kB: one tenant's job with a longer value in the partition's
-- field made every lease of the executor fail, for every tenant. Inlined where it is used.
CREATE FUNCTION qron.limit_key(key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(key) <= 1024 THEN key
                ELSE 'sha256:' || encode(sha256(convert_to(key, 'UTF8')), 'hex') END
$$;

ALTER TABLE qron.jobs ADD COLUMN partition_key text;
CREATE INDEX jobs_partitioned ON qron.jobs (executor, owner COLLATE "C", partition_key, lease_at, id)
    WHERE status = 'ready' AND NOT scheduled AND partition_key IS NOT NULL;

-- The jobs written before, keyed by their executor's partition: this rewrites the rows of
-- the executors limited per key (none elsewhere), so on a large backlog of such an executor
-- apply it at a quiet time.
UPDATE qron.jobs j
   SET partition_key = CASE l.partition_by WHEN 'owner' THEN j.owner
                            ELSE qron.limit_key(COALESCE(j.payload ->> l.partition_field, '')) END
  FROM qron.executor_limits l
 WHERE l.executor = j.executor AND l.partition_by IS NOT NULL;
