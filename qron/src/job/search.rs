//! Finding jobs: filters, order and pages.

use super::{JobRow, JobStatus};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Sort order of a search; ties are broken by id.
///
/// ```
/// let q = qron::Search::new().order(qron::Order::CreatedDesc);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// Soonest due first.
    RunAtAsc,
    /// Latest due first.
    RunAtDesc,
}

impl Order {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Order::CreatedAsc => "created_asc",
            Order::CreatedDesc => "created_desc",
            Order::RunAtAsc => "run_at_asc",
            Order::RunAtDesc => "run_at_desc",
        }
    }
}

/// How a search matches names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameMatch {
    /// The whole name.
    Exactly(String),
    /// A part of it.
    Contains(String),
}

impl NameMatch {
    /// The text given, whichever the match.
    pub(crate) fn text(&self) -> &str {
        match self {
            NameMatch::Exactly(t) | NameMatch::Contains(t) => t,
        }
    }

    /// The `LIKE` pattern that matches as asked: the text taken literally (a backslash before
    /// each backslash, `%` and `_`), with `%` around it for a part.
    pub(crate) fn like_pattern(&self) -> String {
        let mut literal = String::with_capacity(self.text().len() + 2);
        for c in self.text().chars() {
            if matches!(c, '\\' | '%' | '_') {
                literal.push('\\');
            }
            literal.push(c);
        }
        match self {
            NameMatch::Exactly(_) => literal,
            NameMatch::Contains(_) => format!("%{literal}%"),
        }
    }
}

/// The largest page a search returns.
pub const MAX_PAGE: i64 = 1000;

/// The furthest offset a search may start at: deeper pages cost the database a scan of every
/// row before them; a filter on creation or run time reaches them instead.
///
/// ```
/// assert_eq!(qron::MAX_OFFSET, 100_000);
/// ```
pub const MAX_OFFSET: i64 = 100_000;

/// What to look for among the owner's jobs, live and finished. Every filter is optional.
///
/// ```
/// let q = qron::Search::new()
///     .executor("email")
///     .status(qron::JobStatus::Failed)
///     .name_contains("welcome")
///     .limit(10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub(crate) executor: Option<String>,
    pub(crate) statuses: Vec<JobStatus>,
    pub(crate) retrying: bool,
    pub(crate) name: Option<NameMatch>,
    pub(crate) recurring: Option<bool>,
    pub(crate) created: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(crate) run: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(crate) meta_contains: Option<Value>,
    pub(crate) order: Order,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

impl Default for Search {
    fn default() -> Self {
        Self {
            executor: None,
            statuses: Vec::new(),
            retrying: false,
            name: None,
            recurring: None,
            created: (None, None),
            run: (None, None),
            meta_contains: None,
            order: Order::default(),
            limit: 50,
            offset: 0,
        }
    }
}

impl Search {
    /// Everything, oldest first, 50 per page.
    ///
    /// ```
    /// let q = qron::Search::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this executor's jobs.
    ///
    /// ```
    /// let q = qron::Search::new().executor("email");
    /// ```
    pub fn executor(mut self, executor: impl Into<String>) -> Self {
        self.executor = Some(executor.into());
        self
    }

    /// Only jobs in this status (call again to accept several).
    ///
    /// ```
    /// let q = qron::Search::new().status(qron::JobStatus::Ready).status(qron::JobStatus::Stopped);
    /// ```
    pub fn status(mut self, status: JobStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Also the jobs waiting to be retried: ready, after a failed attempt of their occurrence
    /// (alone, only those: [`JobRow::is_retrying`](crate::JobRow::is_retrying)).
    ///
    /// ```
    /// let q = qron::Search::new().retrying();
    /// ```
    pub fn retrying(mut self) -> Self {
        self.retrying = true;
        self
    }

    /// Only jobs whose name contains `text` (taken literally: `%` and `_` are plain characters).
    ///
    /// ```
    /// let q = qron::Search::new().name_contains("100%");
    /// ```
    ///
    /// Replaces [`Search::name`]. Where the server has `pg_trgm`, finished jobs are found
    /// through a trigram index of their names; a text whose three-letter pieces are in many
    /// names still reads many of them: a whole name ([`Search::name`]) is the quick look-up.
    pub fn name_contains(mut self, text: impl Into<String>) -> Self {
        self.name = Some(NameMatch::Contains(text.into()));
        self
    }

    /// Only jobs named exactly `name` (of any executor: a name is unique among one executor's
    /// live jobs, and finished ones keep theirs), found by an index however large the history.
    /// Without a meta filter or [`Search::retrying`], the page is chosen from that index alone
    /// and only its own rows are read. Replaces [`Search::name_contains`].
    ///
    /// ```
    /// let q = qron::Search::new().name("nightly-report-2026-12-07");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(NameMatch::Exactly(name.into()));
        self
    }

    /// Only recurring (`true`) or only one-off (`false`) jobs.
    ///
    /// ```
    /// let q = qron::Search::new().recurring(true);
    /// ```
    pub fn recurring(mut self, recurring: bool) -> Self {
        self.recurring = Some(recurring);
        self
    }

    /// Only jobs created in `[from, to)`; either end may be open.
    ///
    /// ```
    /// let q = qron::Search::new().created_between(Some(chrono::Utc::now() - chrono::Duration::days(1)), None);
    /// ```
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Self {
        self.created = (from, to);
        self
    }

    /// Only jobs due (or last due) in `[from, to)`; either end may be open.
    ///
    /// ```
    /// let q = qron::Search::new().run_between(None, Some(chrono::Utc::now()));
    /// ```
    pub fn run_between(mut self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Self {
        self.run = (from, to);
        self
    }

    /// Only jobs whose meta contains this JSON (PostgreSQL's `@>`).
    ///
    /// ```
    /// let q = qron::Search::new().meta_contains(serde_json::json!({ "team": "growth" }));
    /// ```
    pub fn meta_contains(mut self, meta: Value) -> Self {
        self.meta_contains = Some(meta);
        self
    }

    /// The order (default: oldest first).
    ///
    /// ```
    /// let q = qron::Search::new().order(qron::Order::RunAtAsc);
    /// ```
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Page size, 1 to 1000 (default 50).
    ///
    /// ```
    /// let q = qron::Search::new().limit(10);
    /// ```
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Rows to skip.
    ///
    /// ```
    /// let second_page = qron::Search::new().limit(10).offset(10);
    /// ```
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

/// One page of search results and the number of matching jobs.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let page: qron::Page = client.search(&qron::Search::new().limit(10)).await?;
/// println!("showing {} of {}", page.jobs.len(), page.total);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The jobs of this page, in the search's order.
    pub jobs: Vec<JobRow>,
    /// How many jobs match the search in all.
    pub total: i64,
}
