//! qron's benchmarks: `cargo run --release -p benches --bin qron-bench -- <scenario> [flags]`.
//!
//! Each scenario prints one line per result; `--json` prints one JSON object per result instead.
//! Scenarios that need a database use `DATABASE_URL`, or start a throwaway PostgreSQL.
#![allow(clippy::print_stdout)]

use clap::{Parser, Subcommand};

mod expr;

#[derive(Parser)]
#[command(about = "qron's benchmarks", version)]
struct Cli {
    /// Print one JSON object per result.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Cost of parsing each expression form and of computing its next run (no database).
    Expr {
        /// Operations per timed batch.
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
        /// Timed batches; the median is reported.
        #[arg(long, default_value_t = 5)]
        batches: u32,
    },
}

/// One measured figure.
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

fn report(json: bool, figures: &[Figure]) {
    for f in figures {
        if json {
            println!(
                "{}",
                serde_json::json!({ "name": f.name, "value": f.value, "unit": f.unit })
            );
        } else {
            println!("{:<48} {:>12.1} {}", f.name, f.value, f.unit);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let figures = match cli.scenario {
        Scenario::Expr {
            iterations,
            batches,
        } => expr::run(iterations, batches),
    };
    report(cli.json, &figures);
}
