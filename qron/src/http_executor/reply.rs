//! What a reply (or its absence) makes of a job: the body of a `2xx`, the delay a
//! `Retry-After` asks for, the text an error keeps, a refused destination found in an error.

use std::time::Duration;

use serde_json::Value;

use super::destination::Refused;
use crate::JobError;
use crate::context::Context;

/// The most a `Retry-After` may delay a retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The most of a reply's text an error keeps.
const MAX_ERROR_TEXT: usize = 200;

/// Whether an error, or one of its causes, is a refused destination.
pub(super) fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

/// The delay a `Retry-After` value asks for (seconds, or an HTTP date), at most a day.
pub(super) fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The start of a reply's text, at most [`MAX_ERROR_TEXT`] bytes, cut at a character.
pub(super) fn snippet(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a `2xx` reply's body asks for.
pub(super) fn apply(ctx: &Context, body: &[u8]) -> Result<(), JobError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(body) else {
        // A reply that is not a JSON object asks for nothing.
        return Ok(());
    };
    if let Some(p) = reply.get("payload") {
        ctx.set_payload(p)?;
    }
    if let Some(expr) = reply.get("expr").and_then(Value::as_str) {
        ctx.reschedule(expr)
            .map_err(|e| JobError::fail(format!("the reply's `expr`: {e}")))?;
    }
    let error = reply
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("the endpoint said so")
        .to_owned();
    match reply.get("outcome").and_then(Value::as_str) {
        None | Some("commit") => Ok(()),
        Some("retry") => Err(JobError::retry(error)),
        Some("fail") => Err(JobError::fail(error)),
        Some(other) => Err(JobError::fail(format!(
            "the reply's `outcome` is `{other}`: give commit, retry or fail"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_bounded() {
        use chrono::TimeZone as _;
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 0, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(28 * 60))
        );
        assert_eq!(retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn an_error_keeps_at_most_200_bytes_of_the_reply_cut_at_a_character() {
        let text = "é".repeat(150);
        let kept = snippet(text.as_bytes());
        assert!(kept.len() <= MAX_ERROR_TEXT && kept.len() >= MAX_ERROR_TEXT - 1);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
