//! qron's schema migrations.

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, Migrator};

use crate::error::Result;
use crate::schema::{SCHEMA, rewrite, schema};

/// The migrator of qron's schema, for applications that drive migrations themselves.
///
/// It records applied migrations in `qron._sqlx_migrations` (in the schema of
/// [`set_schema`](crate::set_schema), when chosen), apart from the application's own `sqlx`
/// migrations, and takes PostgreSQL's migration advisory lock while it runs.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
/// qron::migrator().run(&pool).await?;
/// # Ok(()) }
/// ```
pub fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    let schema = schema();
    if schema != SCHEMA {
        // The same migrations, naming the chosen schema.
        m.migrations = m
            .migrations
            .iter()
            .map(|g| {
                Migration::new(
                    g.version,
                    g.description.clone(),
                    g.migration_type,
                    sqlx::AssertSqlSafe(rewrite(g.sql.as_str(), schema)).into_sql_str(),
                    g.no_tx,
                )
            })
            .collect::<Vec<_>>()
            .into();
    }
    m.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    m.create_schema(schema);
    m
}

/// Creates or upgrades qron's schema. Idempotent, and safe when many processes call it at once
/// (they take turns on an advisory lock; the later ones find nothing to do).
///
/// # Errors
/// [`Error::Migrate`](crate::Error::Migrate) when a migration fails or the database holds a
/// newer or altered qron schema; [`Error::Database`](crate::Error::Database) when it cannot
/// connect.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
/// qron::migrate(&pool).await?;
/// # Ok(()) }
/// ```
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    migrator().run(pool).await?;
    Ok(())
}
