//! The frame every page shares, and the small pieces pages are made of.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::View;

/// The pages of the navigation: (path, title).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/workflows", "Workflows"),
    ("/upcoming", "Upcoming"),
    ("/playground", "Playground"),
];

/// A whole page: the navigation (with `current` marked), then `body`.
pub(crate) fn page(view: &View, current: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · qron" }
                link rel="stylesheet" href=(view.link("/assets/style.css"));
                script src=(view.link("/assets/app.js")) defer {}
            }
            body data-base=(view.base) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(view.link("/")) { "qron" }
                    nav aria-label="Dashboard" {
                        ul {
                            @for (path, name) in NAV {
                                li {
                                    @if *path == current {
                                        a href=(view.link(path)) aria-current="page" { (name) }
                                    } @else {
                                        a href=(view.link(path)) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    span.owner { "owner " strong { (view.client.owner_name()) }
                        @if view.read_only { " · " span.badge { "read-only" } } }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub(crate) fn error_page(message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "qron" } }
            body { main { h1 { "Refused" } p role="alert" { (message) } } }
        }
    }
}

/// An instant: UTC in the page, shown in the viewer's zone by the script, UTC on hover.
pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    let utc = t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(utc) { (utc) }
    }
}

/// An optional instant, or a dash.
pub(crate) fn maybe_time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "–" } },
    }
}

/// A duration in its two largest units: `1h 5m`, `42s`.
pub(crate) fn duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// A job status as a badge.
pub(crate) fn status(s: crate::JobStatus) -> Markup {
    html! { span class={ "status status-" (s.as_str()) } { (s.as_str()) } }
}

/// A job's status: `retrying` for a ready job after a failed attempt, with the attempt.
pub(crate) fn job_status(job: &crate::JobRow) -> Markup {
    if job.is_retrying() {
        html! {
            span.status.status-retrying title=(format!("attempt {} of {} failed; it runs again when due", job.attempt, job.max_attempts)) { "retrying" }
        }
    } else {
        status(job.status)
    }
}

/// A form posting `action` (under the dashboard) with the view's token, as one button.
pub(crate) fn action_button(
    view: &View,
    path: &str,
    label: &str,
    fields: &[(&str, &str)],
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(view.link(path)) data-confirm=[confirm] {
            input type="hidden" name="token" value=(view.token);
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { (label) }
        }
    }
}
