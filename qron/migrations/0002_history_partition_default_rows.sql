-- A day partition of the history is created even when the default partition already holds rows
-- of that day (jobs that finished while no partition covered it): they move into the new
-- partition, in the same transaction, instead of making its creation fail for good.
CREATE OR REPLACE FUNCTION qron.history_partition_create(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('jobs_history_%s', to_char(day, 'YYYYMMDD'));
    lo timestamptz := (day::timestamp AT TIME ZONE 'UTC');
    hi timestamptz := ((day + 1)::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF to_regclass(format('qron.%I', part)) IS NULL THEN
        -- Serialise concurrent creators of the same partition.
        PERFORM pg_advisory_xact_lock(hashtext('qron.history_partition_create'));
        IF to_regclass(format('qron.%I', part)) IS NULL THEN
            -- A table of the history's shape, filled with the day's rows from the default
            -- partition, then attached: attaching checks that the default holds none left.
            EXECUTE format('CREATE TABLE qron.%I (LIKE qron.jobs_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM qron.jobs_history_default
                                 WHERE finished_at >= %L AND finished_at < %L RETURNING *)
                 INSERT INTO qron.%I SELECT * FROM moved',
                lo, hi, part);
            EXECUTE format(
                'ALTER TABLE qron.jobs_history ATTACH PARTITION qron.%I FOR VALUES FROM (%L) TO (%L)',
                part, lo, hi);
        END IF;
    END IF;
    RETURN part;
END
$$;
