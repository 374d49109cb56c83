-- A job that waits for other jobs (issue 32): `waiting` until every job it depends on has
-- ended. (A value added to an enum cannot be used in the transaction that adds it: the next
-- migration uses it.)
ALTER TYPE qron.job_status ADD VALUE IF NOT EXISTS 'waiting';
