-- A large history (issue 31), read by the overview and by searches.
--
-- The overview counts the jobs that finished in the last hour: by an index on the finish time,
-- not by reading today's whole partition (3 million rows a day at 100 million over a month).
CREATE INDEX jobs_history_finished ON qron.jobs_history (finished_at);

-- A search by name matches a part of the name: where the server has the `pg_trgm` extension
-- (PostgreSQL's contrib, trusted since PostgreSQL 13: the database's owner may create it), a
-- trigram index of the finished jobs' names finds them without reading every named job of the
-- owner. Without it the search still works, by reading them. (The live jobs are not indexed
-- so: they change with every lease, and are far fewer.)
DO $$
DECLARE
    trgm_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'qron: pg_trgm is not available (%): a search by name reads the owner''s named finished jobs', SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX jobs_history_name_trgm ON qron.jobs_history USING gin (name %I.gin_trgm_ops) WHERE name IS NOT NULL',
            trgm_schema);
    END IF;
END
$$;

-- A search for a whole name, of any executor: the finished jobs' names by owner and name (the
-- look-up by owner, executor and name uses it as well).
DROP INDEX qron.jobs_history_owner_executor_name;
CREATE INDEX jobs_history_owner_name ON qron.jobs_history (owner, name, executor)
    WHERE name IS NOT NULL;
