//! qron's quick start: connects to `DATABASE_URL`, or starts a throwaway PostgreSQL when it is
//! unset, applies qron's migrations and says what it did.
//!
//! ```text
//! cargo run -p qron-examples --bin quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();

    // Ctrl-C ends the demo cleanly: returning from main stops and deletes the throwaway server.
    tokio::select! {
        res = run() => res,
        _ = tokio::signal::ctrl_c() => {
            println!("interrupted: stopping");
            Ok(())
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let external = std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty());
    let opts = tokio::task::spawn_blocking(qron::embedded::connect_options_from_env).await??;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?;
    println!(
        "connected to {} PostgreSQL in {:.1?}",
        if external {
            "the DATABASE_URL"
        } else {
            "a throwaway"
        },
        started.elapsed()
    );

    qron::migrate(&pool).await?;
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&pool)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'qron' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    println!(
        "migrated schema `{}` on PostgreSQL {version}: tables {}",
        qron::SCHEMA,
        tables.join(", ")
    );
    pool.close().await;
    println!("done in {:.1?}", started.elapsed());
    Ok(())
}
