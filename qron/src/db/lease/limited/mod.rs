//! The lease of an executor with limits (see `migrations/0017_limits.sql`): the places it takes
//! counted under the executor's lock. It shares the lease's parts (`owner_walk!`,
//! `lease_update!`, `lease_returning!`) and parameters with [`super::JOB_LEASE`].

use super::{Lease, LeasedJob, job_lease, lease_query};
use sqlx::PgExecutor;

/// Leases as [`JOB_LEASE`](super::JOB_LEASE) does (same parameters), for an executor with limits (see
/// `migrations/0017_limits.sql`). It takes the executor's limit lock (the one
/// [`EXECUTOR_LIMIT_LOCK`] takes) and then counts the places taken from the leased rows, per
/// partition key the jobs whose unexpired lease carries it, with a fresh snapshot
/// (`qron.limit_taken`): every lease made under the limit before it is counted. Its candidates,
/// read with the statement's older snapshot, are locked and checked again as they are now, so
/// a job just leased by another worker is passed. Of each walked owner's oldest due jobs (when partitioned by
/// owner, only owners under their limit, and up to their room; partitioned by a payload field,
/// twice the share, of keys under their limit), the lease keeps those
/// whose key has room, in rounds, and no more than the executor's room. Each job taken carries
/// its key. With cursors (`$8`–`$10`), as [`JOB_LEASE`](super::JOB_LEASE); the worker keeps none under a
/// partition by a payload field, which passes jobs over (one comes first when its key has
/// room).
///
/// Under a limit per key, before it waits for the lock, it locks each wanted key's next due
/// jobs, found by their stored partition keys (`migrations/0030_keyed_queue.sql`): as many as
/// the worker's running jobs of that owner and key (`$17`) and the places the jobs it ends
/// freed (`freed`). Once the lock is held, the holders still holding places get them as
/// successors, and the rest are kept first, within their keys' room.
///
/// Under a limit per key alone (no limit in all, no rate limit), the lease does not take the
/// executor's lock alone: `qron.lease_limits` takes it shared and reads the limits as committed
/// then (see `migrations/0031_leases_by_key.sql`), the lease finds its jobs (the scan too runs
/// before any key is locked, passing over the keys full as committed then), and then locks each
/// key it may take a job of, in order, and counts those keys' places once it holds them. Leases
/// of different keys go side by side; a change of the limits, or a lease under other limits,
/// waits for them all. The jobs a hand-over ends are ended once the limits are read (see
/// `hand_over`), so a change of the limits it waits for finds none of their rows locked.
///
/// Partitioned by a payload field, the jobs of keys at their limit are passed over in the scan
/// before they are locked: a lease finds a job of a key with room wherever it is in the queue,
/// and reads past the due jobs of full keys ahead of it to get there.
///
/// Under a rate limit (see `migrations/0018_rate_limits.sql`), the buckets ahead of now are
/// read as the places are, once the lock is held (`qron.rate_spent`); each key (the rate's own
/// partition) gives no more jobs than its starts left, keys or owners with none are passed
/// over as full ones are, and the buckets of the keys taken move on by one start's gap a job,
/// in the same statement.
const JOB_LEASE_LIMITED: &str = lease_limited!(
    finished: "",
    gate: "true",
    freed: "SELECT NULL::text AS owner, NULL::text AS key WHERE false",
    select: "SELECT * FROM leased"
);

/// A due job of key `w.key` stored with it, of an owner before (`<`) or after (`>`) `w.owner`:
/// one index look-up (`jobs_partitioned`).
macro_rules! other_owner_waits {
    ($side:literal) => {
        concat!(
            "SELECT 1 FROM qron.jobs o
                            WHERE o.status = 'ready' AND NOT o.scheduled
                              AND o.partition_key IS NOT NULL AND o.executor = $1
                              AND o.partition_key = w.key AND o.owner COLLATE \"C\" ",
            $side,
            " w.owner
                              AND o.run_at <= $6"
        )
    };
}
pub(super) use other_owner_waits;

/// [`JOB_LEASE_LIMITED`]'s text, with `finished` (the parts that end jobs, before the lease's
/// own, each followed by a comma) done before the limit lock is taken once `gate` is read,
/// `freed` the owners and partition keys (`owner`, `key`) of the places those ends freed, a
/// row a place, and `select` the statement's answer (from `leased`).
macro_rules! lease_limited {
    (finished: $finished:expr, gate: $gate:expr, freed: $freed:expr, select: $select:expr) => {
        concat!(
    "
    WITH RECURSIVE",
    $finished,
    owner_walk!("$1", "COALESCE($11, $14)", "$11::text IS NULL"),
    ",
    -- the executor's limits (one row; all NULL when they were just removed: then no limit)
    lim AS MATERIALIZED (
        SELECT l.concurrency, l.partition_by, l.partition_field, l.partition_concurrency,
               l.rate_limit, l.rate_burst, l.rate_partition_by, l.rate_partition_field,
               -- seconds between two starts at the steady rate
               l.rate_period_ms::float8 / 1000 / l.rate_limit AS rate_gap,
               -- a limit in all at most: no key's count or bucket to keep
               l.partition_by IS NULL AND l.rate_limit IS NULL AS in_all,
               -- a limit per key alone (no limit in all, no rate): counted under a lock of
               -- each key the lease takes (see `key_locked`), not the executor's, whose lock
               -- `qron.lease_limits` took shared (see `migrations/0031_leases_by_key.sql`)
               -- before the lease locks any row
               COALESCE(l.partition_by IS NOT NULL AND l.concurrency IS NULL
                        AND l.rate_limit IS NULL, false) AS by_key
          FROM (SELECT 1) one
          LEFT JOIN qron.lease_limits($1) l ON true),
    -- a lane beside other leases ($16: the worker's lease far from its limit), under a limit
    -- in all only (no partition, no rate): the first of the 8 lanes free, or none
    lane AS MATERIALIZED (
        SELECT (SELECT i FROM generate_series(0, 7) i
                 WHERE pg_try_advisory_xact_lock(
                           hashtextextended('qron.executor_limits:' || $1 || ':' || i, 0))
                 LIMIT 1) AS i
          FROM lim l
         WHERE $16 AND l.concurrency IS NOT NULL AND l.partition_by IS NULL
           AND l.rate_limit IS NULL),
    -- before the lock, under a limit per key with neither a rate limit nor a cap of the
    -- owner's: the keys wanted, each with as many jobs as the worker's running jobs of that
    -- owner and key named in `$17` (their lease tokens in `$18`) and the places the ends here
    -- freed (as the statement sees them: checked once the lock is held)
    wanted AS MATERIALIZED (
        SELECT w.owner, w.key, count(*) AS n
          FROM (SELECT j.owner, j.limit_key AS key
                  FROM qron.jobs j
                  JOIN unnest($17::bigint[], $18::bigint[]) AS h(id, token)
                    ON h.id = j.id AND h.token = j.lease_token
                 WHERE j.executor = $1 AND j.place IS NOT NULL AND j.limit_key IS NOT NULL
                UNION ALL
                SELECT f.owner, f.key FROM (",
    $freed,
    ") f) w
         GROUP BY w.owner, w.key),
    -- each key's next due jobs, found by its stored key (`migrations/0030_keyed_queue.sql`)
    -- and checked as the payload has it now (a job without that key stored is left to the
    -- scan below), and locked while the lease waits for the limit lock: with keys at random,
    -- a key's next job lies past the jobs of keys that lag, where a scan in lease order
    -- rarely reaches
    early AS MATERIALIZED (
        SELECT c.id, c.bytes, w.owner, w.key, c.nth
          FROM wanted w
          CROSS JOIN lim l
          CROSS JOIN LATERAL (
               SELECT y.id, y.bytes, row_number() OVER () AS nth FROM (
                   SELECT q.id, q.bytes
                     FROM qron.jobs q
                    WHERE q.status = 'ready' AND NOT q.scheduled AND q.executor = $1
                      AND q.owner COLLATE \"C\" = w.owner AND q.partition_key = w.key
                      AND q.run_at <= $6
                      AND CASE l.partition_by WHEN 'owner' THEN q.owner
                               ELSE qron.limit_key(COALESCE(q.payload ->> l.partition_field, '')) END = w.key
                    ORDER BY q.lease_at, q.id
                    LIMIT w.n
                      FOR UPDATE SKIP LOCKED) y) c
         WHERE l.partition_by IS NOT NULL AND l.rate_limit IS NULL
           AND NOT EXISTS (SELECT 1 FROM qron.owner_limits oc
                            WHERE oc.executor = $1 AND oc.owner = w.owner)
           -- by a payload field, a key no other owner has a due job of: owners sharing a key
           -- take its places in turn, through the scan (`migrations/0032_partitioned_by_key.sql`)
           AND (l.partition_by IS DISTINCT FROM 'field'
                OR (NOT EXISTS (",
    $crate::db::lease::limited::other_owner_waits!("<"),
    ") AND NOT EXISTS (",
    $crate::db::lease::limited::other_owner_waits!(">"),
    ")))
           AND (NOT $15 OR NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                                        WHERE p.executor = $1 AND p.owner = w.owner))),
    -- the executor's limit lock, held until the transaction ends: limited leases of one
    -- executor one after another; in a lane, shared with the other lanes' leases (each then
    -- leaves room for theirs); under a limit per key alone, none yet (see `key_locked`)
    locked AS MATERIALIZED (
        SELECT true AS locked
          FROM (SELECT CASE WHEN NOT (",
    $gate,
    ") OR (SELECT count(*) FROM early) < 0 THEN NULL
                       WHEN (SELECT by_key FROM lim) THEN NULL
                       WHEN EXISTS (SELECT 1 FROM lane WHERE i IS NOT NULL)
                       THEN pg_advisory_xact_lock_shared(
                                hashtextextended('qron.executor_limits:' || $1, 0))
                       ELSE pg_advisory_xact_lock(
                                hashtextextended('qron.executor_limits:' || $1, 0))
                       END) l),
    -- the places taken, by partition key, as committed once the lock is held (a fresh
    -- snapshot: the statement's own predates the lease it waited for); under a limit per key
    -- alone, as committed before the keys are locked: only to pass over full keys in the scan
    taken AS MATERIALIZED (
        SELECT t.key, t.n FROM qron.limit_taken($1, $2, (SELECT locked FROM locked)) t),
    -- under a rate limit, the starts each key may make now: its burst, less the starts its
    -- bucket is ahead of now (the keys without a row, or whose row is past, have their whole
    -- burst); read as committed once the lock is held, as the places are
    spent AS MATERIALIZED (
        SELECT b.key,
               GREATEST(0, floor(l.rate_burst
                                 - extract(epoch FROM b.tat - $2)::float8 / l.rate_gap
                                 + 1e-9))::bigint AS allowed
          FROM lim l, qron.rate_spent($1, $2, (SELECT locked FROM locked)) b
         WHERE l.rate_limit IS NOT NULL),
    -- successors (see `migrations/0028_places.sql`): of the worker's running jobs named in
    -- `$17` (their lease tokens in `$18`), those whose lease still holds a place, read as
    -- committed once the lock is held; under a limit per key with neither a rate limit nor a
    -- cap of their owner's, of a key not over its limit (a limit just lowered ends places
    -- rather than passing them on), and of an owner who did not pause the executor
    holders AS MATERIALIZED (
        SELECT h.id, h.place, h.owner, h.key,
               row_number() OVER (PARTITION BY h.owner, h.key ORDER BY h.id) AS nth
          FROM lim l
          CROSS JOIN qron.places_held($1, $2, $17, $18, (SELECT locked FROM key_locked)) h
          LEFT JOIN taken_now t ON t.key = h.key
         WHERE l.partition_by IS NOT NULL AND l.rate_limit IS NULL
           AND COALESCE(t.n, 0) <= l.partition_concurrency
           AND (l.concurrency IS NULL
                OR (SELECT COALESCE(sum(n), 0) FROM taken_now) <= l.concurrency)
           AND NOT EXISTS (SELECT 1 FROM qron.owner_limits oc
                            WHERE oc.executor = $1 AND oc.owner = h.owner)
           AND (NOT $15 OR NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                                        WHERE p.executor = $1 AND p.owner = h.owner))),
    -- each holder's successor: of its key's jobs found before the lock, one a holder
    successors AS MATERIALIZED (
        SELECT e.id, h.id AS holder, h.place
          FROM holders h
          JOIN early e ON e.owner = h.owner AND e.key = h.key AND e.nth = h.nth),
    room AS (
        SELECT GREATEST(0, LEAST($3, l.concurrency - (SELECT COALESCE(sum(n), 0) FROM taken)
                                     -- in a lane: the most the 7 other lanes' leases may take
                                     - CASE WHEN (SELECT i FROM lane) IS NOT NULL
                                            THEN 7 * 1000 ELSE 0 END,
                                 CASE WHEN (SELECT i FROM lane) IS NOT NULL THEN 1000 END,
                                 -- a rate limit in all: its one bucket's starts
                                 CASE WHEN l.rate_limit IS NOT NULL AND l.rate_partition_by IS NULL
                                      THEN COALESCE((SELECT allowed FROM spent WHERE key = ''),
                                                    l.rate_burst) END,
                                 $3))::bigint AS jobs
          FROM lim l),
    owners AS MATERIALIZED (
        SELECT w.owner, w.turn,",
    owner_columns!(),
    "
               CASE WHEN l.partition_by = 'owner'
                    THEN l.partition_concurrency
                         - COALESCE((SELECT t.n FROM taken t WHERE t.key = w.owner), 0)
               END AS owner_room,
               CASE WHEN l.rate_partition_by = 'owner'
                    THEN COALESCE((SELECT s.allowed FROM spent s WHERE s.key = w.owner),
                                  l.rate_burst)
               END AS rate_room,
               COALESCE(k.lease_at, '-infinity') AS after_at, COALESCE(k.id, 0) AS after_id
          FROM walk w CROSS JOIN lim l
          -- cursors (only where no job is passed over: not by a payload field)
          LEFT JOIN unnest($8::text[], $9::timestamp[], $10::bigint[])
                 AS k(owner, lease_at, id)
                 ON k.owner = w.owner
         WHERE (w.turn > 0 OR $11::text IS NOT NULL)
           AND (NOT $15 OR NOT EXISTS (SELECT 1 FROM qron.executor_pauses p
                                        WHERE p.executor = $1 AND p.owner = w.owner))
           -- no room left: no owner
           AND (SELECT jobs FROM room) > 0
           -- partitioned by owner: an owner at its limit is passed
           AND (l.partition_by IS DISTINCT FROM 'owner'
                OR COALESCE((SELECT t.n FROM taken t WHERE t.key = w.owner), 0)
                   < l.partition_concurrency)
           -- rate-limited by owner: an owner with no start left is passed
           AND (l.rate_partition_by IS DISTINCT FROM 'owner'
                OR COALESCE((SELECT s.allowed FROM spent s WHERE s.key = w.owner), 1) > 0)
         LIMIT LEAST($3, 32)),
",
    owner_quotas!("(SELECT jobs FROM room)"),
    ",
    scan AS MATERIALIZED (
        SELECT c.id, c.bytes, c.key, c.rate_key, c.round::float8 / o.weight AS pace, o.turn
          FROM quotas o
          CROSS JOIN lim l
          CROSS JOIN LATERAL (
               SELECT x.*, row_number() OVER () AS round FROM (
                   SELECT q.id, q.bytes,
                          CASE l.partition_by WHEN 'owner' THEN q.owner
                               WHEN 'field' THEN qron.limit_key(COALESCE(q.payload ->> l.partition_field, ''))
                               ELSE '' END AS key,
                          CASE l.rate_partition_by WHEN 'owner' THEN q.owner
                               WHEN 'field' THEN qron.limit_key(COALESCE(q.payload ->> l.rate_partition_field, ''))
                               ELSE '' END AS rate_key
                     FROM qron.jobs q
                    WHERE q.status = 'ready' AND NOT q.scheduled AND q.executor = $1
                      AND q.owner COLLATE \"C\" = o.owner AND q.run_at <= $6
                      AND (q.lease_at, q.id) > (o.after_at, o.after_id)
                      -- not a successor taken above (the statement's own locks skip none)
                      AND q.id NOT IN (SELECT e.id FROM early e)
                      -- partitioned by a payload field: not the jobs of a key at its limit
                      -- (filtered before they are locked; a hashed look-up a row)
                      AND (l.partition_by IS DISTINCT FROM 'field'
                           OR qron.limit_key(COALESCE(q.payload ->> l.partition_field, '')) NOT IN (
                                  SELECT t.key FROM taken t, lim l2
                                   WHERE t.n >= l2.partition_concurrency))
                      -- rate-limited by a payload field: not the jobs of a key with no start
                      -- left
                      AND (l.rate_partition_by IS DISTINCT FROM 'field'
                           OR qron.limit_key(COALESCE(q.payload ->> l.rate_partition_field, '')) NOT IN (
                                  SELECT sp.key FROM spent sp WHERE sp.allowed < 1))
                    ORDER BY q.lease_at, q.id
                    -- by a field, twice the share: keys repeat among the first jobs; by
                    -- owner, no more than the owner's room and starts
                    LIMIT LEAST(CASE WHEN 'field' IN (l.partition_by, l.rate_partition_by)
                                     THEN o.quota * 2 ELSE o.quota END,
                                COALESCE(o.owner_room, o.quota * 2),
                                COALESCE(o.rate_room, o.quota * 2),
                                COALESCE(o.cap_room, o.quota * 2))
                      FOR UPDATE SKIP LOCKED) x) c),
    -- under a limit per key alone, once the scan is done, a lock of each key the lease may
    -- take a job of, in order (no two leases wait for each other's keys), held until the
    -- transaction ends: the leases of different keys go side by side; otherwise `locked`
    key_locked AS MATERIALIZED (
        SELECT CASE WHEN NOT (SELECT by_key FROM lim) THEN (SELECT locked FROM locked)
                    -- after the ends here (`locked` reads the gate) and the scan
                    WHEN (SELECT count(*) FROM locked) >= 0 AND (SELECT count(*) FROM scan) >= 0
                    THEN (SELECT count(pg_advisory_xact_lock(k.h)) >= 0
                            FROM (SELECT DISTINCT hashtextextended(
                                             'qron.limit_key:' || $1 || ':' || c.key, 0) AS h
                                    FROM (SELECT key FROM early UNION ALL SELECT key FROM scan) c
                                   ORDER BY 1) k)
               END AS locked),
    -- the places taken, by partition key, as committed once the keys are locked
    taken_now AS MATERIALIZED (
        SELECT t.key, t.n FROM taken t WHERE NOT (SELECT by_key FROM lim)
        UNION ALL
        SELECT t.key, t.n FROM qron.limit_taken($1, $2, (SELECT locked FROM key_locked)) t
         WHERE (SELECT by_key FROM lim)),
    -- the other jobs found before the lock: the next jobs of the keys whose places the ends
    -- here freed (a hand-over's), kept first (their key's room is counted as any job's)
    refills AS (
        SELECT e.id, e.bytes, e.key FROM early e
         WHERE e.id NOT IN (SELECT s.id FROM successors s)),
    picked AS (
        SELECT r.id, r.bytes, r.key, '' AS rate_key, 0::float8 AS pace, 0 AS turn
          FROM refills r
        UNION ALL
        SELECT * FROM scan),
    -- each job's place among the jobs of its key picked, in rounds
    keyed AS (
        SELECT p.*, row_number() OVER (PARTITION BY p.key ORDER BY p.pace, p.turn) AS nth_key,
               row_number() OVER (PARTITION BY p.rate_key ORDER BY p.pace, p.turn) AS nth_rate
          FROM picked p),
    kept AS (
        SELECT k.id, row_number() OVER w AS nth, sum(k.bytes) OVER w AS upto
          FROM keyed k
          CROSS JOIN lim l
          LEFT JOIN taken_now t ON t.key = k.key
          LEFT JOIN spent sp ON sp.key = k.rate_key
         WHERE NOT (SELECT in_all FROM lim)
           AND (l.partition_concurrency IS NULL
                OR k.nth_key + COALESCE(t.n, 0) <= l.partition_concurrency)
           -- under a rate limit, no more than the key's starts
           AND (l.rate_limit IS NULL OR k.nth_rate <= COALESCE(sp.allowed, l.rate_burst))
        WINDOW w AS (ORDER BY k.pace, k.turn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        -- with neither a partition nor a rate limit, every job picked, without the keys' rounds
        UNION ALL
        SELECT p.id, row_number() OVER w AS nth, sum(p.bytes) OVER w AS upto
          FROM picked p
         WHERE (SELECT in_all FROM lim)
        WINDOW w AS (ORDER BY p.pace, p.turn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
    leased AS (",
    lease_update!(),
    cap_key_set!(),
    "
           -- the job's partition key, which its place is counted by
           limit_key = CASE (SELECT partition_by FROM lim) WHEN 'owner' THEN j.owner
                            WHEN 'field'
                            THEN qron.limit_key(COALESCE(j.payload ->> (SELECT partition_field FROM lim), ''))
                            ELSE '' END,
           -- under a limit per key, a successor's place is its holder's, any other job's a
           -- new one; without a partition, none (each job counts as one)
           place = CASE WHEN (SELECT partition_by FROM lim) IS NOT NULL
                        THEN COALESCE((SELECT s.place FROM successors s WHERE s.id = j.id),
                                      nextval('qron.places')) END
     WHERE j.id = ANY(ARRAY(
           SELECT id FROM kept
            -- within the executor's room, and the worker's memory budget (as `JOB_LEASE`)
            WHERE nth <= (SELECT jobs FROM room)
              AND ($12::bigint IS NULL OR upto <= $12 OR (nth = 1 AND $13))
           UNION ALL
           SELECT id FROM successors))
",
    lease_returning!("(SELECT s.holder FROM successors s WHERE s.id = j.id)"),
    ",
           -- the job's rate bucket
           CASE (SELECT rate_partition_by FROM lim) WHEN 'owner' THEN j.owner
                WHEN 'field'
                THEN qron.limit_key(COALESCE(j.payload ->> (SELECT rate_partition_field FROM lim), ''))
                ELSE '' END AS rate_key),
    -- under a rate limit, each bucket a job was taken from moves on by a start's gap a job
    -- (from now when it was past)
    counted AS (
        INSERT INTO qron.rate_buckets AS b (executor, key, tat)
        SELECT $1, r.rate_key, $2 + r.n * make_interval(secs => l.rate_gap)
          FROM (SELECT rate_key, count(*) AS n FROM leased GROUP BY rate_key) r, lim l
         WHERE l.rate_limit IS NOT NULL
        ON CONFLICT (executor, key) DO UPDATE SET tat = GREATEST(b.tat, $2) + (EXCLUDED.tat - $2)
        RETURNING 1)
    ",
    $select
        )
    };
}
pub(super) use lease_limited;

/// Takes executor `$1`'s limit lock until the transaction ends: the limited leases of one
/// executor, and the changes to its limits, one after another.
pub(crate) const EXECUTOR_LIMIT_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('qron.executor_limits:' || $1, 0))";

/// The most jobs a lease in a lane takes (see [`job_lease_limited`]), and what each lane's lease
/// leaves for the others (`JOB_LEASE_LIMITED` holds it as a number: 1000, with its 8 lanes).
pub(crate) const LANE_MOST: usize = 1000;

/// Leases as [`job_lease`] does, for an executor with limits (see [`JOB_LEASE_LIMITED`]).
///
/// `in_lane`: the lease may go beside other leases of the executor, in one of 8 lanes, when
/// its only limit is one in all (no partition, no rate) and the limit is far: it then takes
/// the executor's limit lock shared, and leaves room for the 7 other lanes' leases (up to
/// [`LANE_MOST`] jobs each, as its own), so that the leases made at once never take more than
/// the limit. Whatever committed before a lease's count it counts; what commits after it came
/// from leases that held the other lanes then. Near the limit a lane's lease takes little or
/// nothing, and the worker's next lease goes alone (a lease short of what it asked: see
/// `Producer::landed`). Without a lane free, or under other limits, the lease goes alone.
///
/// `holders`: the worker's running jobs (id, lease token) that may pass their places on (see
/// `migrations/0028_places.sql`); each that still holds its place under a limit per key gets
/// a successor if its owner and key have a due job, returned with
/// [`LeasedJob::successor_of`] naming it.
pub(crate) async fn job_lease_limited<'e>(
    ex: impl PgExecutor<'e>,
    p: &Lease<'_>,
    in_lane: bool,
    holders: &[(i64, i64)],
) -> sqlx::Result<Vec<LeasedJob>> {
    bind_holders(lease_query(JOB_LEASE_LIMITED, p).bind(in_lane), holders)
        .fetch_all(ex)
        .await
}

/// Binds `holders` (see [`job_lease_limited`]) as `$17` and `$18`.
pub(super) fn bind_holders<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    holders: &[(i64, i64)],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(holders.iter().map(|h| h.0).collect::<Vec<_>>())
        .bind(holders.iter().map(|h| h.1).collect::<Vec<_>>())
}

/// Leases with whichever statement the executor needs: [`job_lease_limited`] when `limited`.
pub(crate) async fn job_lease_as(
    pool: &sqlx::PgPool,
    p: &Lease<'_>,
    limited: bool,
) -> sqlx::Result<Vec<LeasedJob>> {
    if limited {
        job_lease_limited(pool, p, false, &[]).await
    } else {
        job_lease(pool, p).await
    }
}
#[cfg(test)]
mod tests;
