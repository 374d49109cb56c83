-- The release of dependents (0023) without a transition table: a statement trigger that reads
-- the rows its statement inserted made PostgreSQL keep a copy of every history row of every
-- finish, waited for or not (about 8% of plain jobs' throughput, measured). Now a row trigger
-- that fires only for the rows of jobs others wait for (`WHEN (NEW.has_dependents)`) notes each
-- one's id and status in a table of the session's own (made by the first such end of the
-- session: only sessions that end jobs others wait for need PostgreSQL's `TEMPORARY`
-- privilege, which every role has by default), and the statement trigger, at the end of the
-- same statement, takes what was noted and releases the dependents as before: in the
-- statement that ends their jobs, once a statement, set-based. A statement that fails takes its
-- notes with it (they are rows of its transaction); the statement trigger empties the table
-- before it releases, so that the release's own history rows (cancels) are released by their
-- own statement's trigger.
CREATE FUNCTION qron.history_ending() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('qron.noting_ends', 'on', true);
    RETURN NULL;
END
$$;

-- Only rows an INSERT into the history brings are noted: a row an UPDATE moves to another day's
-- partition (an insert there, for PostgreSQL) was released when it first came.
CREATE FUNCTION qron.history_ended() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('qron.noting_ends', true) = 'on' THEN
        IF to_regclass('pg_temp.qron_ended') IS NULL THEN
            CREATE TEMP TABLE qron_ended (id bigint NOT NULL, status text NOT NULL);
        END IF;
        INSERT INTO pg_temp.qron_ended (id, status) VALUES (NEW.id, NEW.status::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION qron.history_released() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ids bigint[];
    statuses text[];
BEGIN
    PERFORM set_config('qron.noting_ends', '', true);
    IF to_regclass('pg_temp.qron_ended') IS NULL THEN
        RETURN NULL;
    END IF;
    WITH taken AS (DELETE FROM pg_temp.qron_ended RETURNING id, status)
    SELECT array_agg(t.id), array_agg(t.status) INTO ids, statuses FROM taken t;
    IF ids IS NOT NULL THEN
        PERFORM qron.dependents_release(ids, statuses);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_history_released ON qron.jobs_history;
CREATE TRIGGER jobs_history_ending BEFORE INSERT ON qron.jobs_history
    FOR EACH STATEMENT EXECUTE FUNCTION qron.history_ending();
CREATE TRIGGER jobs_history_ended AFTER INSERT ON qron.jobs_history
    FOR EACH ROW WHEN (NEW.has_dependents) EXECUTE FUNCTION qron.history_ended();
CREATE TRIGGER jobs_history_released AFTER INSERT ON qron.jobs_history
    FOR EACH STATEMENT EXECUTE FUNCTION qron.history_released();
