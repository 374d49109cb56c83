//! qron's schema migrations.

use sqlx::migrate::Migrator;

use crate::error::Result;

/// The schema that holds every qron table, type and function.
pub const SCHEMA: &str = "qron";

/// The migrator of qron's schema, for applications that drive migrations themselves.
///
/// It records applied migrations in `qron._sqlx_migrations`, apart from the application's own
/// `sqlx` migrations, and takes PostgreSQL's migration advisory lock while it runs.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
/// qron::migrator().run(&pool).await?;
/// # Ok(()) }
/// ```
pub fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name("qron._sqlx_migrations");
    m.create_schema(SCHEMA);
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
