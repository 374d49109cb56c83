//! Who may do what through the API and the dashboard: the request's [`Owner`] and its
//! [`Scope`], found by the policy the application chose; with no policy, every request is
//! refused.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::Client;

/// What a request may do.
///
/// | scope | may |
/// |---|---|
/// | [`Scope::Worker`] | lease, complete and heartbeat (a remote worker), for the executors its [`Owner`] names or all |
/// | [`Scope::Read`] | the queries, GraphiQL, the schema and the dashboard without its actions |
/// | [`Scope::Operate`] | everything for its owner |
/// | [`Scope::Admin`] | everything, and what every owner shares: executors' limits |
///
/// ```
/// let scope = qron::http::Scope::Read;
/// assert!(scope.may_read() && !scope.may_operate());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// A remote worker: lease, complete, heartbeat; nothing else.
    Worker,
    /// Read only: queries, GraphiQL, the schema, the dashboard's pages.
    Read,
    /// Everything a [`Client`] can do for its owner.
    Operate,
    /// Everything [`Scope::Operate`] may, and the settings every owner shares: executors'
    /// limits ([`Client::set_executor_limits`]). The operator's, not a tenant's.
    Admin,
}

impl Scope {
    /// Whether queries and pages are allowed.
    ///
    /// ```
    /// assert!(!qron::http::Scope::Worker.may_read());
    /// ```
    pub fn may_read(self) -> bool {
        matches!(self, Scope::Read | Scope::Operate | Scope::Admin)
    }

    /// Whether leasing, completing and renewing leases are allowed.
    ///
    /// ```
    /// assert!(qron::http::Scope::Worker.may_work());
    /// ```
    pub fn may_work(self) -> bool {
        matches!(self, Scope::Worker | Scope::Operate | Scope::Admin)
    }

    /// Whether jobs and executors may be changed.
    ///
    /// ```
    /// assert!(qron::http::Scope::Operate.may_operate());
    /// ```
    pub fn may_operate(self) -> bool {
        matches!(self, Scope::Operate | Scope::Admin)
    }

    /// Whether the settings every owner shares (executors' limits) may be changed.
    ///
    /// ```
    /// use qron::http::Scope;
    /// assert!(Scope::Admin.may_administer() && !Scope::Operate.may_administer());
    /// ```
    pub fn may_administer(self) -> bool {
        matches!(self, Scope::Admin)
    }

    /// Its name, as messages give it.
    ///
    /// ```
    /// assert_eq!(qron::http::Scope::Read.as_str(), "read");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Worker => "worker",
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }
}

/// Whom a request acts for (a tenant's name) and what it may do: what the application's
/// policy returns ([`Api::owner`](crate::http::Api::owner)), or what its own tower layer
/// inserts into the request's extensions.
///
/// ```
/// use qron::http::{Owner, Scope};
/// let operator = Owner::operate("acme");
/// let viewer = Owner::read("acme");
/// let worker = Owner::worker("acme").executors(["email", "sms"]);
/// assert_eq!(worker.scope(), Scope::Worker);
/// assert_eq!(viewer.name(), "acme");
/// # let _ = operator;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    name: String,
    scope: Scope,
    executors: Option<Arc<[String]>>,
}

impl Owner {
    /// `name` with `scope`.
    ///
    /// ```
    /// let owner = qron::http::Owner::new("acme", qron::http::Scope::Read);
    /// ```
    pub fn new(name: impl Into<String>, scope: Scope) -> Self {
        Self {
            name: name.into(),
            scope,
            executors: None,
        }
    }

    /// `name`, allowed everything.
    ///
    /// ```
    /// let owner = qron::http::Owner::operate("acme");
    /// ```
    pub fn operate(name: impl Into<String>) -> Self {
        Self::new(name, Scope::Operate)
    }

    /// `name`, allowed everything, and the settings every owner shares (executors' limits):
    /// the operator's credential.
    ///
    /// ```
    /// let owner = qron::http::Owner::admin("ops");
    /// ```
    pub fn admin(name: impl Into<String>) -> Self {
        Self::new(name, Scope::Admin)
    }

    /// `name`, allowed to read only.
    ///
    /// ```
    /// let owner = qron::http::Owner::read("acme");
    /// ```
    pub fn read(name: impl Into<String>) -> Self {
        Self::new(name, Scope::Read)
    }

    /// `name`, as a remote worker: lease, complete, heartbeat.
    ///
    /// ```
    /// let owner = qron::http::Owner::worker("acme");
    /// ```
    pub fn worker(name: impl Into<String>) -> Self {
        Self::new(name, Scope::Worker)
    }

    /// Limits leases, outcomes and heartbeats to these executors' jobs (by default, all).
    ///
    /// ```
    /// let owner = qron::http::Owner::worker("acme").executors(["email"]);
    /// ```
    pub fn executors<I>(mut self, executors: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.executors = Some(executors.into_iter().map(Into::into).collect());
        self
    }

    /// The owner's name.
    ///
    /// ```
    /// assert_eq!(qron::http::Owner::read("acme").name(), "acme");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it may do.
    ///
    /// ```
    /// assert_eq!(qron::http::Owner::read("acme").scope(), qron::http::Scope::Read);
    /// ```
    pub fn scope(&self) -> Scope {
        self.scope
    }
}

pub(crate) type OwnerFn = dyn Fn(&Parts) -> Result<Owner, Rejected> + Send + Sync;

/// A response that refuses a request (boxed: a response is large beside what it refuses).
pub(crate) struct Rejected(Box<Response>);

impl Rejected {
    pub(crate) fn new(response: impl IntoResponse) -> Self {
        Self(Box::new(response.into_response()))
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// How the owner of a request is found.
#[derive(Clone, Default)]
pub(crate) enum Policy {
    /// Not chosen: only an [`Owner`] extension from the application's layer lets a request in.
    #[default]
    Unset,
    /// Every request acts as the client's owner, with every scope.
    Anonymous,
    /// The application's function.
    Function(Arc<OwnerFn>),
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Unset => "unset",
            Policy::Anonymous => "anonymous",
            Policy::Function(_) => "a function",
        })
    }
}

/// What a request may do, once its owner is known.
pub(crate) struct Access {
    /// Scoped to the request's owner.
    pub(crate) client: Client,
    /// The owner's scope, capped to [`Scope::Read`] by a read-only API.
    scope: Scope,
    /// The executors a worker is limited to.
    executors: Option<Arc<[String]>>,
}

/// The message of a request refused for want of a policy.
pub(crate) const NO_POLICY: &str = "this qron API has no access policy yet, so it refuses every \
     request: choose who may do what with Api::owner(..), with an Owner extension inserted by \
     your own layer, or, on a trusted machine only, with Api::allow_anonymous() (see \
     qron::http, \"Owners and access\")";

/// Why a request was not let in.
pub(crate) enum Denied {
    /// No policy was chosen (401, [`NO_POLICY`]).
    NoPolicy,
    /// The application's function refused it with this response.
    Refused(Rejected),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NoPolicy => (StatusCode::UNAUTHORIZED, NO_POLICY).into_response(),
            Denied::Refused(r) => r.into_response(),
        }
    }
}

/// Why a request's scope does not allow an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forbidden(pub(crate) String);

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Policy {
    /// The request's access: the application's [`Owner`] extension first, then the policy.
    pub(crate) fn access(
        &self,
        client: &Client,
        read_only: bool,
        parts: &Parts,
    ) -> Result<Access, Denied> {
        let owner = match (parts.extensions.get::<Owner>(), self) {
            (Some(o), _) => o.clone(),
            (None, Policy::Function(f)) => f(parts).map_err(Denied::Refused)?,
            (None, Policy::Anonymous) => Owner::admin(client.owner_name()),
            (None, Policy::Unset) => return Err(Denied::NoPolicy),
        };
        let scope = match owner.scope {
            Scope::Operate | Scope::Admin if read_only => Scope::Read,
            s => s,
        };
        Ok(Access {
            client: client.owner(owner.name),
            scope,
            executors: owner.executors,
        })
    }
}

impl Access {
    /// The scope the request has.
    pub(crate) fn scope(&self) -> Scope {
        self.scope
    }

    /// The client, when the request may read.
    pub(crate) fn reader(&self) -> Result<&Client, Forbidden> {
        if self.scope.may_read() {
            Ok(&self.client)
        } else {
            Err(self.refuse("read jobs"))
        }
    }

    /// The client, when the request may change jobs.
    pub(crate) fn operator(&self) -> Result<&Client, Forbidden> {
        if self.scope.may_operate() {
            Ok(&self.client)
        } else {
            Err(self.refuse("change jobs or executors"))
        }
    }

    /// The client, when the request may change what every owner shares.
    pub(crate) fn administrator(&self) -> Result<&Client, Forbidden> {
        if self.scope.may_administer() {
            Ok(&self.client)
        } else {
            Err(self.refuse("change executors' limits, which every owner shares"))
        }
    }

    /// The client, when the request may lease, complete and renew leases.
    pub(crate) fn worker(&self) -> Result<&Client, Forbidden> {
        if self.scope.may_work() {
            Ok(&self.client)
        } else {
            Err(self.refuse("lease, complete or renew jobs"))
        }
    }

    /// The executors a worker is limited to, if any.
    pub(crate) fn executors(&self) -> Option<&[String]> {
        self.executors.as_deref()
    }

    /// Whether the request may work on `executor`'s jobs.
    pub(crate) fn may_work_on(&self, executor: &str) -> Result<(), Forbidden> {
        match &self.executors {
            Some(list) if !list.iter().any(|e| e == executor) => Err(Forbidden(format!(
                "this credential may work on the executors {list:?} only, not `{executor}`"
            ))),
            _ => Ok(()),
        }
    }

    fn refuse(&self, what: &str) -> Forbidden {
        Forbidden(format!(
            "this credential's scope is `{}`: it may not {what}",
            self.scope.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> [Scope; 4] {
        [Scope::Worker, Scope::Read, Scope::Operate, Scope::Admin]
    }

    #[test]
    fn each_scope_allows_its_own_operations_only() {
        let allowed: Vec<(bool, bool, bool, bool)> = scopes()
            .iter()
            .map(|s| {
                (
                    s.may_read(),
                    s.may_work(),
                    s.may_operate(),
                    s.may_administer(),
                )
            })
            .collect();
        assert_eq!(
            allowed,
            vec![
                (false, true, false, false),
                (true, false, false, false),
                (true, true, true, false),
                (true, true, true, true)
            ]
        );
    }
}
