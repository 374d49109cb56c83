-- The overview's charts over time: per owner, executor and minute, the runs that ended, those
-- that failed, how late they started, and the due jobs seen waiting while the executor was
-- under limits (or the owner's cap). Each worker tallies its own runs in memory and adds them
-- here every few seconds (off the jobs' path: no write per job); the waiting jobs are a sample
-- each worker takes then, of the executors with limits. Kept two days.
CREATE TABLE qron.executor_stats (
    owner       text NOT NULL,
    executor    text NOT NULL,
    minute      timestamptz NOT NULL,
    runs        bigint NOT NULL DEFAULT 0,
    failures    bigint NOT NULL DEFAULT 0,
    late_ms_sum bigint NOT NULL DEFAULT 0,
    late_ms_max bigint NOT NULL DEFAULT 0,
    waiting     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, executor, minute)
);
CREATE INDEX executor_stats_minute ON qron.executor_stats (minute);
