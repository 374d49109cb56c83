-- Jobs due later stay out of the lease index: a ready job whose run time is more than two
-- seconds ahead when it is written is `scheduled`, and the rescuers' passes stage it (clear the
-- flag) shortly before it is due. The lease's walk of the owners then meets only owners with
-- jobs due now or in a moment, however many others have jobs due later (a tenant's daily job
-- each), and the next due job of an executor is one descent of its own index.
ALTER TABLE qron.jobs ADD COLUMN scheduled boolean NOT NULL DEFAULT false;
UPDATE qron.jobs SET scheduled = true
 WHERE status = 'ready' AND run_at > now() + interval '2 seconds';
DROP INDEX qron.jobs_lease;
CREATE INDEX jobs_lease ON qron.jobs (executor, owner COLLATE "C", run_at, id)
    WHERE status = 'ready' AND NOT scheduled;
CREATE INDEX jobs_scheduled ON qron.jobs (executor, run_at) WHERE status = 'ready' AND scheduled;
