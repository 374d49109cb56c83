//! qron's benchmark binary. The scenarios come with the benchmarks issue; for now it checks that
//! a database can be reached and migrated.
#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = tokio::task::spawn_blocking(qron::embedded::connect_options_from_env).await??;
    let pool = sqlx::PgPool::connect_with(opts).await?;
    qron::migrate(&pool).await?;
    println!("qron-bench: no scenario yet");
    pool.close().await;
    Ok(())
}
