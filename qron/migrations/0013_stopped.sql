-- One word for each thing: an operator *stops* a job (status `stopped`, made ready again by a
-- restart), an owner *pauses* an executor, and a worker *stops* (softly or hard). The job
-- status was called `paused`, which said the job was paused like an executor.
ALTER TYPE qron.job_status RENAME VALUE 'paused' TO 'stopped';
