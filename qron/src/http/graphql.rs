//! The GraphQL endpoints: `POST /graphql` with its limits (root fields, answer bytes), the
//! schema's SDL, and GraphiQL's page, each behind the access policy.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{MAX_ROOT_FIELDS, Shared, graphiql, schema};

/// GraphiQL's page, for a request the policy lets read.
pub(super) async fn graphiql_page(
    State(shared): State<Arc<Shared>>,
    uri: axum::extract::OriginalUri,
    parts: Parts,
) -> Response {
    match shared.api.access(&parts) {
        Ok(access) => match access.reader() {
            Ok(_) => graphiql::page(uri).await,
            Err(e) => (StatusCode::FORBIDDEN, e.to_string()).into_response(),
        },
        Err(denied) => denied.into_response(),
    }
}

pub(super) async fn post(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    // Read whole, within the body limit (a larger body is refused with 413).
    body: axum::body::Bytes,
) -> Response {
    // JSON only: a browser cannot send it across sites without the server's consent (CORS),
    // so a page elsewhere cannot make a signed-in operator's browser change jobs.
    let json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the GraphQL request as application/json",
        )
            .into_response();
    }
    let access = match shared.api.access(&parts) {
        Ok(access) => access,
        Err(denied) => return denied.into_response(),
    };
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a GraphQL request: {e}"),
            )
                .into_response();
        }
    };
    if let Err(message) = root_fields(&request.query) {
        return graphql_error(&message, "TOO_COMPLEX");
    }
    if !shared.api.introspection {
        request = request.disable_introspection();
    }
    let budget = schema::Budget::new(shared.api.max_answer);
    let response = shared
        .schema
        .execute(request.data(access).data(budget))
        .await;
    match serde_json::to_vec(&response) {
        Ok(body) if body.len() <= shared.api.max_answer => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Ok(_) => graphql_error(
            &format!(
                "the answer would be over {} bytes: ask for fewer jobs, fields or queries",
                shared.api.max_answer
            ),
            "TOO_LARGE",
        ),
        Err(e) => graphql_error(&format!("the answer cannot be written: {e}"), "INTERNAL"),
    }
}

/// A GraphQL answer of one error with `code`.
fn graphql_error(message: &str, code: &str) -> Response {
    axum::Json(serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code } }],
    }))
    .into_response()
}

/// Refuses a document with more than [`MAX_ROOT_FIELDS`] fields at the root of an operation
/// (aliases and fragments counted); a document that does not parse is left to the schema,
/// which says why.
fn root_fields(query: &str) -> Result<(), String> {
    use async_graphql::parser::types::{DocumentOperations, Selection, SelectionSet};
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return Ok(());
    };
    // Fields at the root of `set`, through fragments; each fragment counted once (a cycle
    // counts nothing here: the schema refuses it).
    fn count<'d>(
        set: &'d SelectionSet,
        doc: &'d async_graphql::parser::types::ExecutableDocument,
        memo: &mut std::collections::HashMap<&'d str, Option<usize>>,
    ) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(f) => count(&f.node.selection_set.node, doc, memo),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match memo.get(name) {
                        Some(known) => known.unwrap_or(0),
                        None => {
                            memo.insert(name, None);
                            let n = doc
                                .fragments
                                .get(&s.node.fragment_name.node)
                                .map_or(0, |f| count(&f.node.selection_set.node, doc, memo));
                            memo.insert(name, Some(n));
                            n
                        }
                    }
                }
            })
            .fold(0, usize::saturating_add)
    }
    let mut memo = std::collections::HashMap::new();
    let most = match &doc.operations {
        DocumentOperations::Single(op) => count(&op.node.selection_set.node, &doc, &mut memo),
        DocumentOperations::Multiple(ops) => ops
            .values()
            .map(|op| count(&op.node.selection_set.node, &doc, &mut memo))
            .max()
            .unwrap_or(0),
    };
    if most > MAX_ROOT_FIELDS {
        return Err(format!(
            "{most} fields at the root of one request, over the limit of {MAX_ROOT_FIELDS}: \
             send them in several requests"
        ));
    }
    Ok(())
}

/// The schema in SDL, for a request the policy lets read, while introspection is on.
pub(super) async fn sdl(State(shared): State<Arc<Shared>>, parts: Parts) -> Response {
    let access = match shared.api.access(&parts) {
        Ok(access) => access,
        Err(denied) => return denied.into_response(),
    };
    if let Err(e) = access.reader() {
        return (StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
    if !shared.api.introspection {
        return (
            StatusCode::NOT_FOUND,
            "introspection is turned off for this API",
        )
            .into_response();
    }
    shared.schema.sdl().into_response()
}
