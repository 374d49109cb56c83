//! The jobs `#[qron::job]` registered, collected with `inventory` when a worker starts.

use std::collections::HashMap;

use crate::JobError;
use crate::context::Context;
use crate::handler::{HandlerFuture, Job, JobOptions};

/// One registered job type: its executor, its options, and a function that decodes a payload
/// and runs the handler. `#[qron::job]` submits one per job.
///
/// ```no_run
/// let jobs = qron::registered_jobs()?;
/// let email: qron::Registration = jobs["email"];
/// assert_eq!(email.executor, "email");
/// # Ok::<(), qron::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// The executor.
    pub executor: &'static str,
    /// The generated type's path, for messages.
    pub type_name: &'static str,
    /// Its options.
    pub options: JobOptions,
    /// Decodes the payload (JSON text, `None` for `null`) and runs the handler.
    pub run: fn(Context, Option<String>) -> HandlerFuture,
    /// The state types its handler takes.
    #[doc(hidden)]
    pub states: &'static [crate::state::StateType],
}

impl Registration {
    /// The registration of job type `J`, named `type_name` in messages.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct P;
    /// # #[qron::job(executor = "email")] async fn email(p: P) -> Result<(), qron::JobError> { Ok(()) }
    /// let r = qron::Registration::of::<Email>("my_app::Email");
    /// assert_eq!(r.executor, "email");
    /// ```
    pub const fn of<J: Job>(type_name: &'static str) -> Self {
        Self {
            executor: J::EXECUTOR,
            type_name,
            options: J::OPTIONS,
            run: J::__run,
            states: J::STATES,
        }
    }
}

inventory::collect!(Registration);

/// Decodes a payload for a handler, straight from the JSON text the lease returns (`None` for
/// `null`) into the type, without an intermediate `serde_json::Value`; a payload that no longer
/// fits the type fails the job (it would never decode on a retry either).
///
/// ```
/// let n: i64 = qron::__private::decode(Some("7")).unwrap();
/// assert!(qron::__private::decode::<i64>(Some(r#""x""#)).is_err());
/// qron::__private::decode::<()>(None).unwrap();
/// assert_eq!(qron::__private::decode::<Option<i64>>(None).unwrap(), None);
/// assert!(qron::__private::decode::<i64>(None).is_err());
/// ```
///
/// # Errors
/// [`JobError::Fail`] naming the type and serde's message.
pub fn decode<T: serde::de::DeserializeOwned>(payload: Option<&str>) -> Result<T, JobError> {
    serde_json::from_str(payload.unwrap_or("null")).map_err(|e| {
        JobError::fail(format!(
            "the payload does not decode into `{}`: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// The error for two job types that claim one executor.
pub(crate) fn duplicate(a: &Registration, b: &Registration) -> crate::Error {
    crate::Error::InvalidArgument {
        field: "executor",
        reason: format!(
            "`{}` and `{}` both declare executor `{}`; give one of them another executor",
            a.type_name, b.type_name, b.executor
        ),
    }
}

/// Every registered job, by executor.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming both types when two jobs claim one executor.
pub(crate) fn registered() -> crate::Result<HashMap<&'static str, Registration>> {
    let mut table: HashMap<&'static str, Registration> = HashMap::new();
    for r in inventory::iter::<Registration> {
        if let Some(other) = table.insert(r.executor, *r)
            && other.type_name != r.type_name
        {
            return Err(duplicate(&other, r));
        }
    }
    Ok(table)
}

/// The registered jobs, by executor: what `Worker::run_all()` serves.
///
/// # Errors
/// When two job types declare the same executor (the message names both).
///
/// ```no_run
/// let jobs = qron::registered_jobs()?;
/// for (executor, reg) in &jobs {
///     println!("{executor}: {} at most {} at once", reg.type_name, reg.options.concurrency);
/// }
/// # Ok::<(), qron::Error>(())
/// ```
pub fn registered_jobs() -> crate::Result<HashMap<&'static str, Registration>> {
    registered()
}

/// The options `#[qron::job]` declares for `executor`, when a job type of this process
/// registers it (the defaults otherwise, and when two types claim it).
pub(crate) fn declared_options(executor: &str) -> crate::JobOptions {
    static DECLARED: std::sync::OnceLock<HashMap<&'static str, crate::JobOptions>> =
        std::sync::OnceLock::new();
    DECLARED
        .get_or_init(|| {
            registered()
                .map(|table| table.into_iter().map(|(e, r)| (e, r.options)).collect())
                .unwrap_or_default()
        })
        .get(executor)
        .copied()
        .unwrap_or_default()
}
