use qron_tests::TestDb;

/// Every object of schema `qron`, with its definition where it has one, in a stable order.
async fn schema_snapshot(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text || coalesce(pg_get_indexdef(c.oid), '')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'qron'
         UNION ALL
         SELECT conname::text, pg_get_constraintdef(c.oid)
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE n.nspname = 'qron'
         UNION ALL
         SELECT p.proname::text, pg_get_functiondef(p.oid)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'qron'
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn applied(pool: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM qron._sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = TestDb::empty().await;
    qron::migrate(&db.pool).await.unwrap();
    let before = schema_snapshot(&db.pool).await;
    let versions = applied(&db.pool).await;
    assert!(before.iter().any(|(name, _)| name == "jobs"), "{before:?}");
    assert_eq!(versions.len(), qron::migrator().iter().count());

    qron::migrate(&db.pool).await.unwrap();
    assert_eq!(schema_snapshot(&db.pool).await, before);
    assert_eq!(applied(&db.pool).await, versions);
}

#[tokio::test]
async fn eight_concurrent_migrations_all_succeed() {
    let db = TestDb::empty().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        // A pool each, like eight processes starting at once.
        let opts = db.options();
        tasks.push(tokio::spawn(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .unwrap();
            let res = qron::migrate(&pool).await;
            pool.close().await;
            res
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        applied(&db.pool).await.len(),
        qron::migrator().iter().count()
    );
}

#[tokio::test]
async fn migrations_live_apart_from_the_applications_own() {
    let db = TestDb::empty().await;
    qron::migrate(&db.pool).await.unwrap();
    let public: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations')::text")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        public, None,
        "qron must not touch the application's migration table"
    );
}
