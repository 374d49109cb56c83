use qron_tests::TestDb;

async fn insert_named(pool: &sqlx::PgPool, owner: &str, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO qron.jobs (executor, owner, name, expr, recurring, run_at, slot_at)
         VALUES ('email', $1, $2, '@after 1 hour', false, now(), now()) RETURNING id",
    )
    .bind(owner)
    .bind(name)
    .fetch_one(pool)
    .await
}

fn constraint_of(err: sqlx::Error) -> String {
    err.as_database_error()
        .and_then(|e| e.constraint())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn each_test_has_its_own_database_a() {
    same_name_in_own_database().await;
}

#[tokio::test]
async fn each_test_has_its_own_database_b() {
    same_name_in_own_database().await;
}

/// Run by two tests at once: each sees only its own job, so neither collides with the other.
async fn same_name_in_own_database() {
    let db = TestDb::new().await;
    insert_named(&db.pool, "default", "shared-name")
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_name_is_unique_per_owner_and_executor() {
    let db = TestDb::new().await;
    insert_named(&db.pool, "acme", "nightly").await.unwrap();
    insert_named(&db.pool, "bobby", "nightly").await.unwrap();
    let err = insert_named(&db.pool, "acme", "nightly").await.unwrap_err();
    assert_eq!(constraint_of(err), "jobs_owner_executor_name");
    // Unnamed jobs never collide.
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO qron.jobs (executor, expr, recurring, run_at, slot_at)
             VALUES ('email', '@after 1 hour', false, now(), now())",
        )
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn constraints_reject_nonsense() {
    let db = TestDb::new().await;
    let cases = [
        ("timeout", "'0 seconds'::interval", "jobs_timeout_positive"),
        ("timeout", "'-1 minute'::interval", "jobs_timeout_positive"),
        ("max_attempts", "0", "jobs_max_attempts_range"),
        ("max_attempts", "1001", "jobs_max_attempts_range"),
        ("attempt", "-1", "jobs_attempt_range"),
        ("executor", "''", "jobs_executor_len"),
        ("status", "'succeeded'", "jobs_live_status"),
    ];
    for (column, value, constraint) in cases {
        let mut row = vec![
            ("executor", "'email'"),
            ("expr", "'@daily'"),
            ("recurring", "true"),
            ("run_at", "now()"),
            ("slot_at", "now()"),
        ];
        row.retain(|(c, _)| *c != column);
        row.push((column, value));
        let (columns, values): (Vec<_>, Vec<_>) = row.into_iter().unzip();
        let sql = format!(
            "INSERT INTO qron.jobs ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        );
        let err = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .unwrap_err();
        assert_eq!(constraint_of(err), constraint, "{column} = {value}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM qron.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn history_is_partitioned_by_day_with_a_default() {
    let db = TestDb::new().await;
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'qron.jobs_history'::regclass ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let today = chrono::Utc::now().format("jobs_history_%Y%m%d").to_string();
    assert!(parts.contains(&today), "{parts:?}");
    assert!(
        parts.contains(&"jobs_history_default".to_owned()),
        "{parts:?}"
    );

    // Creating a partition is idempotent, and a finished job lands in its day.
    let again: String = sqlx::query_scalar("SELECT qron.history_partition_create(current_date)")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO qron.jobs_history (id, executor, owner, expr, recurring, status, run_at,
             payload, meta, attempt, executions, max_attempts, timeout, created_at, updated_at,
             start_at)
         VALUES (1, 'email', 'default', '@after 1s', false, 'succeeded', now(), 'null', '{}',
             1, 1, 5, '5 minutes', now(), now(), now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let part: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM qron.jobs_history")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(part, format!("qron.{again}"));
}

#[tokio::test]
async fn the_lease_query_uses_the_lease_index() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO qron.jobs (executor, owner, expr, recurring, run_at, slot_at)
         SELECT 'e' || (g % 10), 'o' || (g % 7), '@after 1s', false,
                now() - g * interval '1 second', now()
           FROM generate_series(1, 20000) g",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE qron.jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    // The worker's own statement, with the values a worker binds: from the start of the lease
    // order, and after an owner's cursor (which must bound the index scan, not filter its rows).
    let now = chrono::Utc::now();
    let interval = |secs: i64| sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: secs * 1_000_000,
    };
    for (cursor, paused) in [
        (None, false),
        (
            Some(("o3", now - chrono::Duration::seconds(10_000), 5_000_i64)),
            false,
        ),
        // with an owner's pause to skip
        (None, true),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            qron::__private::LEASE_SQL
        )))
        .bind("e1")
        .bind(now)
        .bind(10_i64)
        .bind("worker")
        .bind(interval(2))
        .bind(now)
        .bind(interval(30))
        .bind(cursor.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(cursor.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(cursor.iter().map(|c| c.2).collect::<Vec<_>>())
        .bind(None::<String>)
        // within a worker's memory budget
        .bind(Some(64_i64 << 20))
        .bind(false)
        .bind("o2")
        .bind(paused)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        lease_plan_reads_the_lease_index(&plan.join("\n"));
    }
}

/// The lease statement's plan reads each owner's jobs in the lease index's order, from their
/// cursor, and sorts only the jobs it picked.
fn lease_plan_reads_the_lease_index(plan: &str) {
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
    // The owners' walk (two ways to the next owner, backwards) and each owner's jobs: the
    // lease index.
    assert!(
        plan.matches("Scan Backward using jobs_lease on jobs")
            .count()
            >= 2,
        "{plan}"
    );
    assert!(
        plan.contains("Index Scan using jobs_lease on jobs"),
        "{plan}"
    );
    // Each owner's jobs in the index's order, past its cursor: a bound of the scan.
    assert!(
        plan.contains("Index Cond")
            && plan.contains("(ROW(lease_at, id) > ROW(")
            && plan.contains(".after_at, "),
        "the cursor must bound the index scan: {plan}"
    );
    // One sort, of the jobs picked (at most the batch), into rounds of owners.
    assert_eq!(plan.matches("Sort Key").count(), 1, "{plan}");
    assert!(
        plan.contains("Sort Key: picked.pace, picked.turn"),
        "{plan}"
    );
}
