//! GraphiQL, served by the router itself: its page, and its scripts and styles (GraphiQL 3.8.3
//! and React 18.3.1, MIT-licensed, stored gzip-compressed in `assets/graphiql`). A page that
//! loads them from a CDN fails offline, behind firewalls and in tests.

use axum::extract::{OriginalUri, Path};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The page. Its links are relative to `{base}` (the page's own path, as a directory): it works
/// under any prefix the router is mounted at, with or without a trailing slash.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qron · GraphiQL</title>
<base href="{base}">
<link rel="stylesheet" href="assets/graphiql.min.css">
<style>body { margin: 0; } #graphiql { height: 100dvh; }</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="assets/react.production.min.js"></script>
<script src="assets/react-dom.production.min.js"></script>
<script src="assets/graphiql.min.js"></script>
<script src="assets/start.js"></script>
</body>
</html>
"#;

/// Starts GraphiQL on the API next to the page.
const START: &str = r##"const fetcher = GraphiQL.createFetcher({ url: new URL("graphql", document.baseURI).href });
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: "# qron: the jobs of this owner\n{\n  jobs(limit: 10) {\n    total\n    jobs { id executor name expr status runAt }\n  }\n}\n",
  })
);
"##;

/// `(name, content type, gzip-compressed bytes)`.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
    ),
];

/// The page.
pub(super) async fn page(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    let base = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    // A path holds no quote or angle bracket (they travel percent-encoded), but the page does
    // not rely on it.
    let base = base
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(PAGE.replace("{base}", &base)).into_response()
}

/// A script or a style sheet.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let cache = (header::CACHE_CONTROL, "public, max-age=86400");
    if file == "start.js" {
        return (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                cache,
            ],
            START,
        )
            .into_response();
    }
    match ASSETS.iter().find(|(name, ..)| *name == file) {
        // Every browser accepts gzip; the bytes are sent as stored.
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_ENCODING, "gzip"),
                cache,
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
