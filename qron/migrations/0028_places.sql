-- Places under a concurrency limit, and successors that take them over without a round trip.
--
-- A job leased under a limit per partition key holds a place, numbered from `qron.places` into
-- `place`. A worker may also lease, for a job of its own that is running, a
-- successor: the next due job of the same owner and key, which shares the running job's place
-- and starts in its slot the moment it ends, while the end and the next successor go to the
-- database together later. The places taken are the distinct places of the rows whose lease
-- is held and unexpired, so a running job and its successor hold one; a worker that dies frees
-- a place when the leases of both have run out, never earlier. A job leased under a limit in
-- all only (no partition), or before this migration, has no place: it counts as one of its
-- own.
CREATE SEQUENCE qron.places CACHE 64;
ALTER TABLE qron.jobs ADD COLUMN place bigint;

CREATE OR REPLACE FUNCTION qron.limit_taken(executor text, at timestamptz, locked boolean)
RETURNS TABLE (key text, n bigint) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT j.limit_key, count(*) FILTER (WHERE j.place IS NULL)
           + count(DISTINCT j.place) FILTER (WHERE j.place IS NOT NULL)
      FROM qron.jobs j
     WHERE j.executor = limit_taken.executor AND j.limit_key IS NOT NULL
       AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > limit_taken.at
     GROUP BY j.limit_key;
END
$$;

-- Of the running jobs `ids` (under the lease tokens `tokens`) of executor `executor`, those
-- whose lease still holds a place at `at`, as committed now (a fresh snapshot, read once the
-- lease holds the executor's limit lock, `locked`, as `qron.limit_taken` reads): their place,
-- owner and partition key. A successor is leased only for a place counted as taken.
CREATE FUNCTION qron.places_held(executor text, at timestamptz, ids bigint[], tokens bigint[],
                                 locked boolean)
RETURNS TABLE (id bigint, place bigint, owner text, key text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT locked OR ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT j.id, j.place, j.owner, j.limit_key
      FROM qron.jobs j
      JOIN unnest(ids, tokens) AS h(id, token) ON h.id = j.id AND h.token = j.lease_token
     WHERE j.executor = places_held.executor AND j.limit_key IS NOT NULL
       AND j.place IS NOT NULL AND j.status = 'running'
       AND j.lease_expires_at IS NOT NULL AND j.lease_expires_at > places_held.at;
END
$$;
