#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::TestDb;

/// Analyzes the database; the name of today's history partition.
async fn analyzed(conn: &mut PgConnection) -> String {
    sqlx::query(sql("ANALYZE"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar(sql("SELECT 'jobs_history_' || to_char(now(), 'YYYYMMDD')"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// The plan of `statement` as prepared statement `p`, run with `args`, in `mode`.
async fn plan(conn: &mut PgConnection, statement: &str, args: &str, mode: &str) -> String {
    for s in [
        format!("SET plan_cache_mode = {mode}"),
        format!("PREPARE p AS {statement}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let lines: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE p({args})")))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    sqlx::query("DEALLOCATE p")
        .execute(&mut *conn)
        .await
        .unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn statements_on_one_job_find_it_by_an_index_in_custom_and_generic_plans() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    sqlx::query(sql(
        "INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at)
         SELECT 'e', 'default', 'n' || g, '@after 1s', false, now(), now()
           FROM generate_series(1, 20000) g",
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(sql(
        "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, created_at,
             updated_at, start_at, finished_at)
         SELECT 100000 + g, 'e', 'default', 'n' || g, '@after 1s', false, 'succeeded',
                now(), 'null', '{}', 1, 1, 5, '5 minutes', now(), now(), now(), now()
           FROM generate_series(1, 20000) g",
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    // The partition the finished jobs are in (the others are empty: scanning them is free).
    let full = analyzed(&mut conn).await;
    let by_id = "'default', 5, NULL, NULL";
    let by_name = "'default', NULL, 'e', 'n5'";
    let changes = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL";
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for (sql, args) in [
            (JOB_GET, by_id.to_owned()),
            (JOB_GET, by_name.to_owned()),
            (JOB_UPDATE, format!("{by_id}, {changes}")),
            (JOB_UPDATE, format!("{by_name}, {changes}")),
            (JOB_DELETE, by_name.to_owned()),
            (JOB_STOP, by_id.to_owned()),
            (JOB_LOCK, by_name.to_owned()),
        ] {
            let plan = plan(&mut conn, sql, &args, mode).await;
            assert!(
                !plan.contains("Seq Scan on jobs ")
                    && !plan.contains(&format!("Seq Scan on {full}")),
                "{mode}, ({args}): {sql}\n{plan}"
            );
        }
    }
}

/// A search by a whole name goes the two-step way (`JOB_SEARCH_NAMED`): it finds what the
/// one-step search finds (the same search with an empty meta filter goes that way), live
/// and finished jobs, in every order, page and filter.
#[tokio::test]
async fn a_search_by_a_whole_name_finds_what_the_one_step_search_finds() {
    use crate::job::{JobStatus, Order};
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    // 40 finished jobs named `nightly` over today and yesterday (created in another order
    // than they finished, some with equal times), 10 named otherwise, and 6 live ones
    // named `nightly` of other executors, one of another owner.
    sqlx::query(sql(
        "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
             run_at, payload, meta, attempt, executions, max_attempts, timeout, created_at,
             updated_at, start_at, last_run_at, finished_at)
         SELECT g, 'e' || g % 3, 'default', CASE WHEN g <= 40 THEN 'nightly' ELSE 'other' END,
                '@after 1s', g % 4 = 0,
                CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'succeeded' END::qron.job_status,
                now() - make_interval(mins => g % 7), 'null', '{}', 1, 1, 5, '5 minutes',
                now() - make_interval(hours => (g * 7) % 30), now(), now(), now(),
                now() - make_interval(hours => g % 30)
           FROM generate_series(1, 50) g",
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(sql(
        "INSERT INTO qron.jobs (id, executor, owner, name, expr, recurring, run_at, slot_at,
                                created_at)
         SELECT 100 + g, 'live' || g, CASE WHEN g = 6 THEN 'other' ELSE 'default' END,
                'nightly', '@after 1s', g = 3, now() + make_interval(mins => g),
                now() + make_interval(mins => g), now() - make_interval(hours => g * 5)
           FROM generate_series(1, 6) g",
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let mut searches = Vec::new();
    for order in [
        Order::CreatedAsc,
        Order::CreatedDesc,
        Order::RunAtAsc,
        Order::RunAtDesc,
    ] {
        for offset in [0, 7, 44, 60] {
            searches.push(Search::new().order(order).limit(9).offset(offset));
        }
    }
    searches.push(Search::new().executor("e1").limit(50));
    searches.push(Search::new().executor("live2").limit(50));
    searches.push(Search::new().status(JobStatus::Failed).limit(50));
    searches.push(Search::new().recurring(true).limit(50));
    searches.push(
        Search::new()
            .created_between(Some(Utc::now() - chrono::Duration::hours(12)), None)
            .run_between(None, Some(Utc::now()))
            .limit(50),
    );
    let ids = |page: Option<(Vec<JobRow>, i64)>| {
        let (rows, total) = page.unwrap();
        (rows.iter().map(|j| j.id).collect::<Vec<_>>(), total)
    };
    for q in searches {
        for with_total in [true, false] {
            let named = q.clone().name("nightly");
            assert!(searches_a_whole_name(&named));
            let one_step = named.clone().meta_contains(serde_json::json!({}));
            assert!(!searches_a_whole_name(&one_step));
            let two = ids(
                job_search(&mut conn, "default", &named, with_total, usize::MAX)
                    .await
                    .unwrap(),
            );
            let one = ids(
                job_search(&mut conn, "default", &one_step, with_total, usize::MAX)
                    .await
                    .unwrap(),
            );
            assert_eq!(two, one, "{named:?}, with total: {with_total}");
        }
    }
    // Not found at all, and a page past the end (counted apart).
    let none = Search::new().name("never");
    assert_eq!(
        ids(job_search(&mut conn, "default", &none, true, usize::MAX)
            .await
            .unwrap()),
        (vec![], 0)
    );
    let past = Search::new().name("nightly").offset(500);
    assert_eq!(
        ids(job_search(&mut conn, "default", &past, true, usize::MAX)
            .await
            .unwrap()),
        (vec![], 45)
    );
}

#[tokio::test]
async fn a_search_by_name_and_the_overviews_last_hour_read_the_history_by_index() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    // A day of finished jobs, a tenth of them named, all in one day's partition whatever the
    // time of day: tomorrow's, up to 22:00 UTC, the overview's "now" below. (Spread over the
    // 22 hours before the real now, they fell in the default partition as much as in today's
    // just after midnight, and the plans read today's small one by a scan.)
    let full: String = sqlx::query_scalar(sql(
        "SELECT qron.history_partition_create((now() AT TIME ZONE 'UTC')::date + 1)",
    ))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    const AT: &str = "(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day 22 hours')
                      AT TIME ZONE 'UTC'";
    sqlx::query(sqlx::AssertSqlSafe(crate::schema::rewrite(
        &format!(
            "INSERT INTO qron.jobs_history (id, executor, owner, name, expr, recurring, status,
                 run_at, payload, meta, attempt, executions, max_attempts, timeout, created_at,
                 updated_at, start_at, last_run_at, finished_at)
             SELECT g, 'e', 'default', CASE WHEN g % 10 = 0 THEN 'report-' || g END,
                    '@after 1s', false, 'succeeded', f, 'null', '{{}}', 1, 1, 5, '5 minutes',
                    f, f, f, f, f
               FROM generate_series(1, 50000) g,
                    LATERAL (SELECT {AT} - make_interval(secs => g % 79000) AS f) t"
        ),
        crate::schema::schema(),
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    analyzed(&mut conn).await;
    // A part of a name, and a whole one, planned for their patterns (as `search_query`
    // has them).
    let search = |pattern: &str| {
        format!(
            "'default', NULL, '{{}}', '{pattern}', NULL, NULL, NULL, NULL, NULL, NULL, \
             'created_asc', 20, 0"
        )
    };
    let part = plan(
        &mut conn,
        JOB_SEARCH,
        &search("%report-4242%"),
        "force_custom_plan",
    )
    .await;
    assert!(
        part.contains(&format!("{full}_name_idx")) && part.contains("Index Cond: (name ~~"),
        "{part}"
    );
    // A whole name, in a plan for its value and in one for any: the page from the index of
    // names alone, then its rows by their day's partition.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let whole = plan(&mut conn, JOB_SEARCH_NAMED, &search("report-4240"), mode).await;
        assert!(
            whole.contains(&format!("Index Only Scan using {full}_owner_name_executor"))
                && whole.contains("Index Cond: (finished_at = h.hit_finished)")
                && !whole.contains(&format!("Seq Scan on {full} ")),
            "{mode}: {whole}"
        );
    }
    // The overview's count of the last hour.
    #[cfg(feature = "dashboard")]
    {
        let counted = plan(&mut conn, crate::db::OVERVIEW, AT, "force_custom_plan").await;
        assert!(
            counted.contains(&format!("{full}_finished_at_idx")),
            "{counted}"
        );
    }
}
