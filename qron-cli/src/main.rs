//! `qron`: a dev server, expressions, migrations, jobs and executors from the terminal.
//!
//! Exit codes: 0 ok, 1 failure (an invalid expression, bad input the database refused, a
//! database error), 2 usage, 3 not found. Reads `DATABASE_URL` (or `--database-url`); only
//! `qron dev` starts a database of its own, and only when neither is set.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{CommandFactory as _, Parser, Subcommand};

mod dev;
mod executors;
mod expr;
mod jobs;
mod migrate;
mod output;
mod owners;
mod worker;
mod workflows;

#[derive(Parser)]
#[command(
    name = "qron",
    version,
    about = "qron from the terminal: a dev server, expressions, migrations, jobs and executors",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 not found."
)]
struct Cli {
    /// The database (default: the `DATABASE_URL` environment variable).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// The owner (tenant) whose jobs and executors to act on.
    #[arg(long, env = "QRON_OWNER", global = true, default_value = "default")]
    owner: String,
    /// One JSON object per line instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Show times in UTC instead of the local zone.
    #[arg(long, global = true)]
    utc: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole system on this machine, for development.
    ///
    /// A throwaway database (unless `DATABASE_URL` is set), the migrations, the dashboard and
    /// the HTTP API on a loopback port and a worker running the HTTP executor. Ctrl-C stops it all and removes
    /// what it made.
    Dev(dev::Args),
    /// Checks an expression: the error at its position, or its meaning and next runs.
    ///
    /// For a valid expression: its canonical form, its description and its next runs.
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
    },
    /// Applies qron's migrations, or shows which are applied and pending.
    Migrate {
        /// Show the migrations' state; apply nothing.
        #[arg(long)]
        status: bool,
    },
    /// Lists, shows, creates and changes the owner's jobs.
    #[command(subcommand)]
    Jobs(jobs::Jobs),
    /// Lists the owner's executors, or pauses or resumes one.
    Executors {
        #[command(subcommand)]
        action: Option<executors::Action>,
    },
    /// Lists or sets the owners' weights in every lease's shares (the operator's).
    Owners {
        #[command(subcommand)]
        action: Option<owners::Action>,
    },
    /// Shows a batch of the owner's: its callback and how its jobs stand.
    Batch {
        /// The batch's id (its callback job's).
        id: i64,
    },
    /// Lists the owner's workflows; shows, cancels or retries one.
    Workflows {
        #[command(subcommand)]
        action: workflows::Action,
    },
    /// Runs a worker for the built-in HTTP executor, for production.
    ///
    /// Against `DATABASE_URL`, until Ctrl-C or SIGTERM (a second one cancels running jobs).
    Worker(worker::Args),
    /// Prints a completion script for a shell.
    ///
    /// For example: `qron completions bash > /etc/bash_completion.d/qron`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How a command failed: its exit code, and what to say on standard error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Exit 1.
    Failed(String),
    /// Exit 3.
    NotFound(String),
}

impl From<qron::Error> for Failure {
    fn from(e: qron::Error) -> Self {
        match e {
            qron::Error::NotFound { .. } => Failure::NotFound(e.to_string()),
            // The library's message names its Rust options; the command's, its flags.
            qron::Error::AlreadyExists { executor, name } => Failure::Failed(format!(
                "a live job named `{name}` already exists for executor `{executor}`; pick \
                 another --name, or pass --on-conflict keep (keep it) or --on-conflict replace \
                 (replace it)"
            )),
            e => Failure::Failed(e.to_string()),
        }
    }
}

/// What every command that reaches the database gets from the command line.
pub(crate) struct Global {
    pub(crate) database_url: Option<String>,
    pub(crate) owner: String,
    pub(crate) out: output::Style,
}

fn main() -> ExitCode {
    die_quietly_on_broken_pipe();
    let cli = Cli::parse();
    let global = Global {
        database_url: cli.database_url.filter(|u| !u.is_empty()),
        owner: cli.owner,
        out: output::Style::detect(cli.json, cli.utc),
    };
    let result = match cli.command {
        Command::Expr {
            expr,
            count,
            from,
            tz,
        } => expr::run(&expr, count, from.unwrap_or_else(Utc::now), tz, cli.json),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qron", &mut std::io::stdout());
            Ok(())
        }
        Command::Migrate { status } => block_on(migrate::run(&global, status)),
        Command::Jobs(cmd) => block_on(jobs::run(&global, cmd)),
        Command::Executors { action } => block_on(executors::run(&global, action)),
        Command::Owners { action } => block_on(owners::run(&global, action)),
        Command::Workflows { action } => block_on(workflows::run(&global, action)),
        Command::Batch { id } => block_on(workflows::batch(&global, id)),
        Command::Worker(args) => block_on(worker::run(&global, args)),
        Command::Dev(args) => block_on(dev::run(&global, args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(m)) => {
            eprintln!("qron: {m}");
            ExitCode::from(1)
        }
        Err(Failure::NotFound(m)) => {
            eprintln!("qron: {m}");
            ExitCode::from(3)
        }
    }
}

/// A reader that goes away (`qron jobs list | head`) ends the process quietly, as it ends other
/// command-line tools, instead of making the next `println!` panic.
fn die_quietly_on_broken_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default disposition of SIGPIPE before any other thread exists; the
    // default action installs no handler code.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn block_on(f: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Failed(format!("no async runtime: {e}")))?
        .block_on(f)
}

/// A pool on the database, or why not.
pub(crate) async fn connect(url: Option<&str>) -> Result<sqlx::PgPool, Failure> {
    let url = url.ok_or_else(|| {
        Failure::Failed("no database: set DATABASE_URL or pass --database-url".to_owned())
    })?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| Failure::Failed(format!("cannot connect to the database: {e}")))
}

/// A client on the database, acting as the `--owner`.
pub(crate) async fn client(global: &Global) -> Result<qron::Client, Failure> {
    let pool = connect(global.database_url.as_deref()).await?;
    Ok(qron::Client::builder(pool)
        .owner(global.owner.clone())
        .build())
}

/// Logs to standard error (`RUST_LOG` to change what; `info` by default), for the long-running
/// commands.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
