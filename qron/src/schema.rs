//! The PostgreSQL schema that holds qron's tables, types and functions: `qron` unless the
//! application chooses another, so that two applications can keep their jobs apart in one
//! database.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// The default schema: `qron`.
pub const SCHEMA: &str = "qron";

static CHOSEN: OnceLock<Box<str>> = OnceLock::new();

/// Makes every qron statement of this process use schema `name` instead of `qron` (its tables,
/// its migrations' record, its notification channels and advisory locks): two applications
/// sharing a database each choose their own. Call it once, before anything else of qron (the
/// first statement fixes the schema for the life of the process); the same name again is fine.
///
/// # Errors
/// [`Error::InvalidArgument`] (field `schema`) for a name that is not a plain lowercase
/// identifier (`[a-z_][a-z0-9_]*`, at most 50 characters), or when the process already uses
/// another schema.
///
/// ```no_run
/// # async fn demo() -> qron::Result<()> {
/// qron::set_schema("billing_jobs")?;
/// let pool = sqlx::PgPool::connect("postgres://localhost/shared").await?;
/// qron::migrate(&pool).await?; // creates billing_jobs.jobs, …
/// # Ok(()) }
/// ```
pub fn set_schema(name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidArgument {
        field: "schema",
        reason,
    };
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || name.len() > 50 {
        return Err(invalid(format!(
            "`{}` is not a plain lowercase identifier of at most 50 characters ([a-z_][a-z0-9_]*)",
            name.escape_debug()
        )));
    }
    let chosen = CHOSEN.get_or_init(|| name.into());
    if &**chosen != name {
        return Err(invalid(format!(
            "this process already uses schema `{chosen}`: choose the schema once, before anything else of qron"
        )));
    }
    Ok(())
}

/// The schema this process uses: [`SCHEMA`] unless [`set_schema`] chose another.
///
/// ```
/// assert_eq!(qron::schema(), "qron");
/// ```
pub fn schema() -> &'static str {
    CHOSEN.get_or_init(|| SCHEMA.into())
}

/// `text` for the process's schema: a statement written for `qron` (`qron.jobs`,
/// `'qron_jobs'`, …), rewritten once per statement when another schema was chosen.
pub(crate) fn sql(text: &'static str) -> &'static str {
    let schema = schema();
    if schema == SCHEMA {
        return text;
    }
    static REWRITTEN: OnceLock<Mutex<HashMap<usize, &'static str>>> = OnceLock::new();
    let mut cache = REWRITTEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(text.as_ptr() as usize ^ text.len().rotate_left(48))
        .or_insert_with(|| Box::leak(rewrite(text, schema).into_boxed_str()))
}

/// `text` with every `qron.` (a qualified name, or the key of an advisory lock) and `'qron_`
/// (a notification channel) naming `schema` instead.
pub(crate) fn rewrite(text: &str, schema: &str) -> String {
    text.replace("qron.", &format!("{schema}."))
        .replace("'qron_", &format!("'{schema}_"))
}

/// A notification channel (`qron_jobs`, …) for the process's schema.
pub(crate) fn channel(name: &'static str) -> &'static str {
    let schema = schema();
    match name.strip_prefix("qron_") {
        Some(rest) if schema != SCHEMA => {
            static CHANNELS: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
            let mut channels = CHANNELS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            channels
                .entry(name)
                .or_insert_with(|| Box::leak(format!("{schema}_{rest}").into_boxed_str()))
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn statements_channels_and_locks_name_the_schema() {
        assert_eq!(
            rewrite(
                "SELECT pg_notify('qron_jobs', e), hashtext('qron.x') FROM qron.jobs j JOIN qron.workers w",
                "app_two"
            ),
            "SELECT pg_notify('app_two_jobs', e), hashtext('app_two.x') FROM app_two.jobs j JOIN app_two.workers w"
        );
    }

    #[test]
    fn a_schema_name_must_be_a_plain_identifier() {
        for bad in [
            "",
            "Qron",
            "1abc",
            "a-b",
            "a.b",
            "a\0b",
            "a b",
            &"x".repeat(51),
        ] {
            let e = set_schema(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        field: "schema",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        // This process uses the default: another name is refused, the default is fine.
        assert_eq!(schema(), SCHEMA);
        assert!(set_schema("other").is_err());
        assert!(set_schema(SCHEMA).is_ok());
    }
}
