-- The workers running now: each registers at its start, is seen again at every heartbeat and
-- removes itself at its stop; one that died is removed by another once `seen_at + ttl` has
-- passed. It says who serves which executor: jobs of an executor no worker serves are
-- reported (a typo in an executor's name would otherwise leave them waiting unnoticed).
CREATE TABLE qron.workers (
    id         text PRIMARY KEY,
    executors  text[] NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    -- how long after `seen_at` the worker counts as gone
    ttl        interval NOT NULL
);
