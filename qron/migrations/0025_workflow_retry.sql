-- Retrying a workflow (issue 32): each step keeps what it does when a job it waits for does not
-- succeed, so that a step revived from the history (where jobs keep no policy) waits again as it
-- was created to (NULL: `cancel`, as in `qron.jobs`).
ALTER TABLE qron.workflow_jobs ADD COLUMN on_dependency_failure text
    CONSTRAINT workflow_jobs_on_dependency_failure CHECK (on_dependency_failure IN ('run', 'hold'));
