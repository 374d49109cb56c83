//! The GraphQL schema: [`Client`]'s operations as queries and mutations, each acting for the
//! request's owner.

use async_graphql::{Context, EmptySubscription, ErrorExtensions as _, Schema};

use super::access::{Access, Forbidden};

mod inputs;
mod mutation;
mod query;
mod remote;
mod types;

use crate::{Client, Error};
pub use inputs::*;
pub use mutation::*;
pub use query::*;
pub use remote::*;
pub use types::*;

/// The GraphQL schema of the management API (for tests and tools: its SDL, or running a
/// request without HTTP).
///
/// ```no_run
/// let sdl = qron::http::schema().sdl();
/// assert!(sdl.contains("type Job"));
/// ```
pub type QronSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema, with its limits.
pub(super) fn build() -> QronSchema {
    Schema::build(Query, Mutation::default(), EmptySubscription)
        .limit_depth(super::MAX_DEPTH)
        .limit_complexity(super::MAX_COMPLEXITY)
        .finish()
}

type Result<T> = async_graphql::Result<T>;

fn access<'a>(ctx: &'a Context<'_>) -> Result<&'a Access> {
    ctx.data::<Access>()
}

/// A refusal by scope, as a GraphQL error with the code `FORBIDDEN`.
fn forbidden(e: Forbidden) -> async_graphql::Error {
    async_graphql::Error::new(e.0).extend_with(|_, ext| ext.set("code", "FORBIDDEN"))
}

/// The client, for a request that may read.
fn reader<'a>(ctx: &'a Context<'_>) -> Result<&'a Client> {
    access(ctx)?.reader().map_err(forbidden)
}

/// The client, for a request that may change jobs.
fn writer<'a>(ctx: &'a Context<'_>) -> Result<&'a Client> {
    access(ctx)?.operator().map_err(forbidden)
}

/// The client, for a request that may change what every owner shares.
fn admin<'a>(ctx: &'a Context<'_>) -> Result<&'a Client> {
    access(ctx)?.administrator().map_err(forbidden)
}

/// A client error as a GraphQL error: its message, and a `code` (with the field, the job or
/// its status where there is one) that a program can act on. A database error's details stay
/// in the server's log.
fn gql(e: Error) -> async_graphql::Error {
    let code = match &e {
        Error::NotFound { .. } => "NOT_FOUND",
        Error::InvalidArgument { .. } | Error::InvalidExpression(_) | Error::Json(_) => {
            "INVALID_ARGUMENT"
        }
        Error::TooLarge { .. } => "TOO_LARGE",
        Error::AlreadyExists { .. } => "ALREADY_EXISTS",
        Error::UnknownDependency { .. } => "UNKNOWN_DEPENDENCY",
        Error::DependencyFailed { .. } => "DEPENDENCY_FAILED",
        Error::WrongStatus { .. } => "WRONG_STATUS",
        Error::RevisionMismatch { .. } => "REVISION_MISMATCH",
        _ if super::busy(&e) => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let message = if code == "UNAVAILABLE" {
        super::BUSY.to_owned()
    } else if code == "INTERNAL" {
        tracing::error!(error = %e, "management API: request failed");
        "internal error: see the server's log".to_owned()
    } else {
        e.to_string()
    };
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        match &e {
            Error::InvalidArgument { field, .. } | Error::TooLarge { field, .. } => {
                ext.set("field", *field);
            }
            Error::InvalidExpression(x) => {
                ext.set("field", "expr");
                ext.set("position", x.position() as u64);
            }
            Error::WrongStatus { id, status, .. } => {
                ext.set("id", *id);
                ext.set("status", status.as_str());
            }
            Error::UnknownDependency { id, .. } => {
                ext.set("field", "after");
                ext.set("id", *id);
            }
            Error::DependencyFailed { id, status } => {
                ext.set("field", "after");
                ext.set("id", *id);
                ext.set("status", status.as_str());
            }
            _ => {}
        }
    })
}

/// The management API's GraphQL schema (to print its SDL, or to run a request without HTTP).
///
/// ```
/// assert!(qron::http::schema().sdl().contains("createJob"));
/// ```
pub fn schema() -> QronSchema {
    build()
}
