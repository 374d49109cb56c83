//! `qron expr`: an expression checked, described and projected.

use chrono::{DateTime, Utc};

use crate::Failure;

/// A time in `tz` (UTC when none), RFC 3339.
fn show(t: DateTime<Utc>, tz: Option<chrono_tz::Tz>) -> String {
    match tz {
        Some(tz) => t.with_timezone(&tz).to_rfc3339(),
        None => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}

pub(crate) fn run(
    expr: &str,
    count: usize,
    from: DateTime<Utc>,
    tz: Option<chrono_tz::Tz>,
    json: bool,
) -> Result<(), Failure> {
    match qron::validate(expr, from, count.min(1000)) {
        Ok(v) => {
            let runs: Vec<String> = v.next_runs.iter().map(|t| show(*t, tz)).collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": true,
                        "canonical": v.canonical,
                        "description": v.description,
                        "recurring": v.recurring,
                        "next_runs": runs,
                    })
                );
            } else {
                println!("valid:       {}", v.canonical);
                println!("description: {}", v.description);
                println!("next runs:");
                for r in runs {
                    println!("  {r}");
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": false,
                        "error": e.message(),
                        "position": e.position(),
                    })
                );
            } else {
                // The expression, and a caret under where it goes wrong.
                println!("{expr}");
                println!("{}^", " ".repeat(e.position()));
            }
            Err(Failure::Failed(e.to_string()))
        }
    }
}
