-- A search for a whole name with 100,000,000 finished jobs (issue 31).
--
-- The index of the finished jobs' names by owner also carries what such a search filters and
-- orders by, and what finds the row afterwards (its finish time, which picks the day
-- partition, and its id). The search then chooses its page from the index alone, in every
-- day partition (an index-only scan, once autovacuum has marked the pages all-visible), and
-- reads the rows of that page only: 20 rows of a page, not every job of that name. On a
-- history larger than memory each row read is a read from disk.
--
-- Rebuilding the index reads the whole history once and holds writes to it meanwhile (an
-- index on a partitioned table cannot be built concurrently), so the workers' outcomes wait:
-- on a large history, apply this migration at a quiet time (it took 1.4 s for 10,000,000
-- rows on a machine of 2 cores, and grows with the history).
DROP INDEX qron.jobs_history_owner_name;
CREATE INDEX jobs_history_owner_name ON qron.jobs_history (owner, name, executor)
    INCLUDE (status, recurring, created_at, run_at, finished_at, id)
    WHERE name IS NOT NULL;
