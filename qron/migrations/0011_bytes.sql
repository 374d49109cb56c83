-- The size of a job's payload and meta as JSON text, in bytes, written with them: a worker's
-- lease stops at its memory budget by summing this column over the jobs it is about to take,
-- without reading a payload. A constant default rewrites nothing; the jobs already stored with
-- a payload or meta are measured once here.
ALTER TABLE qron.jobs ADD COLUMN bytes integer NOT NULL DEFAULT 0;
UPDATE qron.jobs SET bytes = octet_length(payload::text) + octet_length(meta::text)
 WHERE payload <> 'null'::jsonb OR meta <> '{}'::jsonb;
