//! `qron migrate`: apply qron's migrations, or show their state.

use crate::{Failure, Global};

pub(crate) async fn run(global: &Global, status: bool) -> Result<(), Failure> {
    let pool = crate::connect(global.database_url.as_deref()).await?;
    if !status {
        qron::migrate(&pool)
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        println!("qron's schema is up to date");
        return Ok(());
    }
    // The versions recorded as applied (none when the table does not exist yet).
    let table = format!("{}._sqlx_migrations", qron::schema());
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&table)
        .fetch_one(&pool)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let applied: Vec<i64> = match exists {
        Some(_) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {table} WHERE success ORDER BY version"
        )))
        .fetch_all(&pool)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?,
        None => Vec::new(),
    };
    println!("{:<8} {:<10} description", "version", "state");
    for m in qron::migrator().iter() {
        let state = if applied.contains(&m.version) {
            "applied"
        } else {
            "pending"
        };
        println!("{:<8} {:<10} {}", m.version, state, m.description);
    }
    Ok(())
}
