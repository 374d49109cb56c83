//! The expression playground: an expression checked as it is typed, by the parser itself.

use axum::extract::Query;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::{View, layout};

/// How many next runs are shown.
const RUNS: usize = 10;
/// The longest expression checked (longer ones are refused unparsed).
const MAX_LEN: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Ask {
    #[serde(default)]
    expr: String,
    #[serde(default)]
    tz: String,
}

impl Ask {
    /// The zone asked for; UTC when none.
    fn zone(&self) -> &str {
        if self.tz.is_empty() { "UTC" } else { &self.tz }
    }
}

pub(crate) async fn page(
    view: View,
    ask: Result<Query<Ask>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ask = ask.map(|q| q.0).unwrap_or_default();
    let tz = ask.zone();
    let body = html! {
        p.muted { "Type an expression: crontab (with ranges, lists, steps and names), an alias such as "
            code { "@daily" } ", " code { "@every 90 minutes" } ", " code { "@after 1 hour" } " or "
            code { "@at 2027-01-01T09:00:00Z" } "." }
        form #playground method="get" action=(view.link("/playground")) {
            div.filters {
                div.field { label for="expr" { "Expression" }
                    input #expr name="expr" value=(ask.expr) size="32" autocomplete="off" spellcheck="false" autofocus; }
                div.field { label for="tz" { "Show times in (IANA zone)" }
                    input #tz name="tz" value=(tz) list="zones" size="20"; }
                datalist #zones { @for z in ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"] { option value=(z) {} } }
                div { button type="submit" { "Check" } }
            }
        }
        div #result aria-live="polite" { @if !ask.expr.is_empty() { (result(&ask.expr, tz)) } }
    };
    view.page(layout::page(
        &view,
        "/playground",
        "Expression playground",
        body,
    ))
}

/// `GET /playground/check`: the result alone, for the script.
pub(crate) async fn check(
    // Refused as the pages are: the owner function decides who may ask.
    _: View,
    ask: Result<Query<Ask>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ask = ask.map(|q| q.0).unwrap_or_default();
    let tz = ask.zone();
    Html(result(&ask.expr, tz).into_string()).into_response()
}

fn result(expr: &str, tz: &str) -> Markup {
    if expr.trim().is_empty() {
        return html! { p.muted { "Type an expression." } };
    }
    if expr.len() > MAX_LEN {
        return html! { p.error role="alert" { "Longer than " (MAX_LEN) " bytes." } };
    }
    let zone: Option<chrono_tz::Tz> = tz.parse().ok();
    match crate::validate(expr, Utc::now(), RUNS) {
        Ok(v) => html! {
            p.ok #verdict { "Valid: " code { (v.canonical) } }
            p #description { (v.description) }
            @if zone.is_none() { p.error { "Unknown zone `" (tz) "`: times are in UTC." } }
            h2 { "Next runs" @if let Some(z) = zone { " (" (z.name()) ")" } }
            ol #runs { @for t in &v.next_runs {
                li { @match zone {
                    Some(z) => time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (t.with_timezone(&z).format("%a %Y-%m-%d %H:%M:%S %Z")) },
                    None => (layout::time(*t)),
                } }
            } }
        },
        Err(e) => {
            // The caret under the byte where it goes wrong (as characters, for the display).
            let column = expr.get(..e.position()).map_or(0, |s| s.chars().count());
            html! {
                p.error #verdict role="alert" { "Invalid: " (e.to_string()) }
                pre { code.caret { (expr) "\n" (" ".repeat(column)) "^" } }
            }
        }
    }
}
