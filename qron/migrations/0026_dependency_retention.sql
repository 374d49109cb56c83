-- What waited goes with the history (issue 32): a history day partition dropped at the end of
-- its retention takes with it the edges of the jobs whose history rows it held (the jobs that
-- waited; not one retried and live again), so that `qron.job_dependencies` does not grow
-- forever. Workflows past the retention with no job left, live or in the history, are dropped
-- by maintenance (`WORKFLOWS_EXPIRE`), their steps with them.
CREATE OR REPLACE FUNCTION qron.history_partition_drop(part text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF part !~ '^jobs_history_[0-9]{8}$' THEN
        RAISE EXCEPTION 'not a history day partition: %', part;
    END IF;
    IF to_regclass(format('qron.%I', part)) IS NOT NULL THEN
        EXECUTE format(
            'DELETE FROM qron.job_dependencies d USING qron.%I h
              WHERE d.job = h.id AND NOT EXISTS (SELECT 1 FROM qron.jobs j WHERE j.id = d.job)',
            part);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS qron.%I', part);
END
$$;
