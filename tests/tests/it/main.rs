//! Integration tests of qron against a real PostgreSQL (one binary, many modules: one link).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod batches;
mod client;
mod clock;
mod dependencies;
mod embedded;
mod errors;
mod expr;
mod expr_pg;
mod fairness;
mod hostile;
mod isolation;
mod limits;
mod long_jobs;
mod migrate;
mod operate;
mod priority;
mod producer;
mod rescue;
mod schema;
mod state;
mod testing;
mod typed;
mod unique;
mod worker;
mod workflows;

/// The field a refused call names; panics when the call was not refused.
pub fn refused(e: qron::Error) -> &'static str {
    match e {
        qron::Error::InvalidArgument { field, .. } => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
