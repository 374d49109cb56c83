//! `qron`: expressions, migrations and jobs from the terminal.
//!
//! Exit codes: 0 ok, 1 failure (an invalid expression, a database error), 2 usage. Reads
//! `DATABASE_URL` (or `--database-url`); never starts a database of its own.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

mod expr;
mod migrate;

#[derive(Parser)]
#[command(
    name = "qron",
    version,
    about = "qron from the terminal: expressions, migrations and jobs"
)]
struct Cli {
    /// The database (default: the `DATABASE_URL` environment variable).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks an expression: valid or the error at its position, its canonical form, its
    /// description and its next runs.
    Expr {
        /// The expression, such as '0 9 * * MON-FRI' or '@every 90 minutes'.
        expr: String,
        /// How many next runs to show.
        #[arg(short = 'n', long, default_value_t = 5)]
        count: usize,
        /// Count the runs from this instant (RFC 3339; default: now).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Show times in this IANA zone (default: UTC).
        #[arg(long)]
        tz: Option<chrono_tz::Tz>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Applies qron's migrations, or with `--status` shows which are applied and pending.
    Migrate {
        /// Show the migrations' state; apply nothing.
        #[arg(long)]
        status: bool,
    },
}

/// How a command ended: its exit code, and what to say on standard error.
pub(crate) enum Failure {
    /// Exit 1.
    Failed(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Expr {
            expr,
            count,
            from,
            tz,
            json,
        } => expr::run(&expr, count, from.unwrap_or_else(Utc::now), tz, json),
        Command::Migrate { status } => {
            runtime().and_then(|rt| rt.block_on(migrate::run(cli.database_url.as_deref(), status)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(m)) => {
            eprintln!("qron: {m}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Runtime::new().map_err(|e| Failure::Failed(format!("no async runtime: {e}")))
}

/// A pool on the database, or why not.
pub(crate) async fn connect(url: Option<&str>) -> Result<sqlx::PgPool, Failure> {
    let url = url.filter(|u| !u.is_empty()).ok_or_else(|| {
        Failure::Failed("no database: set DATABASE_URL or pass --database-url".to_owned())
    })?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| Failure::Failed(format!("cannot connect to the database: {e}")))
}
