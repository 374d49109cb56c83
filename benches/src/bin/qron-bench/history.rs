//! A large history (issue 31): with `rows` finished jobs spread over `days` day partitions
//! (written by the server with `generate_series`, not through the API), what reading it costs:
//! a job by id, a search by name, the dashboard's overview (each load counting anew), and the
//! retention's drop of the oldest day.

use std::time::{Duration, Instant};

use qron::{Client, Search};

use crate::Figure;
use crate::dashboard::{drop_stats_database, stats_database};
use crate::queue::{Res, fig, percentile};

/// Owners the history is spread over.
const OWNERS: u64 = 100;
/// Executors the history is spread over.
const EXECUTORS: u64 = 10;
/// One job in `NAMED` has a name, of `NAMES` names: each name is in the history
/// `rows / NAMED / NAMES` times.
const NAMED: u64 = 10;
const NAMES: u64 = 100_000;

/// The history of `rows` jobs over `days` days, then `samples` reads of each kind.
pub async fn history(rows: u64, days: u64, samples: usize) -> Res<Vec<Figure>> {
    // Its own server (unless `DATABASE_URL`'s counts statements): the overview's count is
    // read from `pg_stat_statements`.
    let (_server, admin, name, pool) = stats_database("history", 8).await?;
    let days = days.max(1);
    let t = Instant::now();
    fill(&pool, rows, days).await?;
    let filled = t.elapsed();
    let size: String = sqlx::query_scalar(
        "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid)))
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass",
    )
    .fetch_one(&pool)
    .await?;
    eprintln!("history: {rows} rows over {days} days in {filled:?}, {size} with indexes");
    let mut out = Vec::new();
    let client = Client::new(pool.clone());
    // By id: ids spread over the whole history, each read by its owner.
    let mut times = Vec::new();
    for i in 0..samples as u64 {
        let id = (i * 7_919_993) % rows + 1;
        let owner = format!("owner-{}", id % OWNERS);
        let t = Instant::now();
        client.owner(owner).get(i64::try_from(id)?).await?;
        times.push(micros(t));
    }
    out.extend(spread(rows, "a job by id (`Client::get`)", times));
    // By name, whole or a part: a name held by rows / NAMED / NAMES jobs, of one owner.
    for (what, whole) in [
        ("a search by name (`Search::name`, 20 a page)", true),
        (
            "a search by a part of a name (`Search::name_contains`)",
            false,
        ),
    ] {
        let mut times = Vec::new();
        for i in 0..samples as u64 {
            let k = (i * 7919) % NAMES;
            let owner = format!("owner-{}", (k * NAMED) % OWNERS);
            let name = format!("report-{k:06}");
            let q = if whole {
                Search::new().name(name)
            } else {
                Search::new().name_contains(name)
            };
            let t = Instant::now();
            let page = client.owner(owner).search(&q.limit(20)).await?;
            times.push(micros(t));
            if page.jobs.is_empty() {
                return Err(format!("no job named {k:06} found").into());
            }
        }
        out.extend(spread(rows, what, times));
    }
    // The overview's count, refreshed while someone looks (every 1 ms, or ten times as long
    // as the last count took): timed by `pg_stat_statements` over 3 s of looking.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = qron::http::Api::new(client.owner("owner-1"))
        .allow_anonymous()
        .refresh(Duration::from_millis(1))
        .dashboard();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&pool)
        .await?;
    let looking = Instant::now();
    while looking.elapsed() < Duration::from_secs(3) {
        http.get(&base)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
    let (calls, mean, max): (i64, f64, f64) = sqlx::query_as(
        "SELECT COALESCE(sum(calls), 0)::bigint, COALESCE(avg(mean_exec_time), 0)::float8,
                COALESCE(max(max_exec_time), 0)::float8
           FROM pg_stat_statements
          WHERE query LIKE '%AS ran_hour%' AND query LIKE '%jobs_history%'",
    )
    .fetch_one(&pool)
    .await?;
    if calls == 0 {
        return Err("the overview did not count in 3 s".into());
    }
    out.push(fig(
        format!("{rows} in the history: the overview's count ({calls} refreshes), mean"),
        mean,
        "ms",
    ));
    out.push(fig(
        format!("{rows} in the history: the overview's count, max"),
        max,
        "ms",
    ));
    // The retention: the oldest day dropped.
    let oldest: String = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass
            AND c.relname ~ '^jobs_history_[0-9]{8}$'
          ORDER BY c.relname LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let t = Instant::now();
    sqlx::query("SELECT qron.history_partition_drop($1)")
        .bind(&oldest)
        .execute(&pool)
        .await?;
    out.push(fig(
        format!("{rows} in the history: the retention's drop of a day"),
        micros(t) as f64 / 1000.0,
        "ms",
    ));
    drop_stats_database(&admin, &name, pool).await?;
    Ok(out)
}

/// `rows` finished jobs over the `days` days up to today, a partition a day, written by the
/// server a day at a time; then `VACUUM ANALYZE`.
async fn fill(pool: &sqlx::PgPool, rows: u64, days: u64) -> Res<()> {
    let per_day = rows.div_ceil(days);
    for d in 0..days {
        let from = d * per_day + 1;
        let to = ((d + 1) * per_day).min(rows);
        if from > to {
            break;
        }
        sqlx::query(
            "SELECT qron.history_partition_create((now() AT TIME ZONE 'UTC')::date - $1::int)",
        )
        .bind(i32::try_from(days - 1 - d)?)
        .execute(pool)
        .await?;
        let t = Instant::now();
        sqlx::query(
            "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
                 run_at, payload, meta, attempt, executions, max_attempts, timeout, created_at,
                 updated_at, start_at, finished_at)
             SELECT g, 'executor-' || g % $4, 'owner-' || g % $5,
                    CASE WHEN g % $6 = 0 THEN 'report-' || lpad(((g / $6) % $7)::text, 6, '0') END,
                    '@after 0s', false,
                    CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END::qron.job_status,
                    f, 'null'::jsonb, '{}'::jsonb, 1, 1, 1, interval '0',
                    f, f, f, f
               FROM generate_series($1::bigint, $2::bigint) g,
                    LATERAL (SELECT date_trunc('day', now() AT TIME ZONE 'UTC')
                                    AT TIME ZONE 'UTC'
                                    - make_interval(days => $3::int)
                                    -- written in the order they finished, over the day
                                    + make_interval(secs => (g - $1)::float8 * 86000
                                                            / ($2 - $1 + 1)) AS f) t",
        )
        .bind(i64::try_from(from)?)
        .bind(i64::try_from(to)?)
        .bind(i32::try_from(days - 1 - d)?)
        .bind(i64::try_from(EXECUTORS)?)
        .bind(i64::try_from(OWNERS)?)
        .bind(i64::try_from(NAMED)?)
        .bind(i64::try_from(NAMES)?)
        .execute(pool)
        .await?;
        eprintln!(
            "history: day {} of {days}: {} rows in {:?}",
            d + 1,
            to + 1 - from,
            t.elapsed()
        );
    }
    // As autovacuum leaves an insert-only table: visibility map set, the finish time's block
    // ranges summarised, statistics taken.
    sqlx::query("VACUUM ANALYZE qron.jobs_history")
        .execute(pool)
        .await?;
    Ok(())
}

/// p50 and p99 of `times` (microseconds) in milliseconds, as figures named for `what`.
fn spread(rows: u64, what: &str, mut times: Vec<i64>) -> Vec<Figure> {
    times.sort_unstable();
    vec![
        fig(
            format!("{rows} in the history: {what}, p50"),
            percentile(&times, 0.5) / 1000.0,
            "ms",
        ),
        fig(
            format!("{rows} in the history: {what}, p99"),
            percentile(&times, 0.99) / 1000.0,
            "ms",
        ),
    ]
}

/// Microseconds since `t`.
fn micros(t: Instant) -> i64 {
    i64::try_from(t.elapsed().as_micros()).unwrap_or(i64::MAX)
}
