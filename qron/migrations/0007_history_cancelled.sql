-- The history keeps cancelled jobs too (the status is added by the previous migration).
ALTER TABLE qron.jobs_history DROP CONSTRAINT jobs_history_status;
ALTER TABLE qron.jobs_history ADD CONSTRAINT jobs_history_status
    CHECK (status IN ('succeeded', 'failed', 'cancelled'));
