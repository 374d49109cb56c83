//! Workflows: jobs created together by step name, each waiting for the steps it names, in one
//! transaction; then followed, and cancelled, as one.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::{Job, JobStatus, NewJob, OnDependencyFailure};

/// The expression of a step added without one: due at once (when the steps it waits for
/// have succeeded).
const AT_ONCE: &str = "@after 0s";

/// Jobs created together, by step name, each waiting for the steps it names ([`StepBuilder::after`]),
/// in one transaction (or inside the caller's): a step runs once every step it waits for has
/// succeeded, reads what they recorded ([`Context::output`](crate::Context::output)), and does
/// what its [`OnDependencyFailure`] says when one does not succeed. A step that names a step
/// the workflow does not have, or steps that wait for each other in a circle, are refused when
/// it is created, and nothing is written.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Page { n: u32 }
/// # #[derive(Serialize, Deserialize)] struct Pages;
/// # #[qron::job(executor = "fetch")] async fn fetch(p: Page) -> Result<(), qron::JobError> { Ok(()) }
/// # #[qron::job(executor = "merge")] async fn merge(p: Pages) -> Result<(), qron::JobError> { Ok(()) }
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let mut etl = qron::Workflow::new("nightly-etl");
/// for n in 1..=3 {
///     etl.add::<Fetch>(format!("fetch-{n}"), Page { n });
/// }
/// etl.add::<Merge>("merge", Pages).after(["fetch-1", "fetch-2", "fetch-3"]);
/// let created = etl.create(&client).await?;
/// let info = client.workflow(created.id).await?;
/// assert_eq!(info.steps.len(), 4);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Workflow {
    name: String,
    steps: Vec<StepSpec>,
}

#[derive(Debug)]
struct StepSpec {
    name: String,
    job: Result<NewJob>,
    after: Vec<String>,
}

/// A step being added to a [`Workflow`]: what it waits for, and how.
#[derive(Debug)]
pub struct StepBuilder<'a>(&'a mut StepSpec);

impl StepBuilder<'_> {
    /// The steps of the workflow this one waits for, by name.
    ///
    /// ```
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("a", qron::NewJob::new("fetch", "@after 0s"));
    /// wf.add_job("b", qron::NewJob::new("merge", "@after 0s")).after(["a"]);
    /// ```
    pub fn after<I>(self, steps: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.0.after.extend(steps.into_iter().map(Into::into));
        self
    }

    /// What the step does when a step it waits for does not succeed (default:
    /// [`OnDependencyFailure::Cancel`]).
    ///
    /// ```
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("a", qron::NewJob::new("fetch", "@after 0s"));
    /// wf.add_job("notify", qron::NewJob::new("notify", "@after 0s"))
    ///     .after(["a"])
    ///     .on_dependency_failure(qron::OnDependencyFailure::Run);
    /// ```
    pub fn on_dependency_failure(self, policy: OnDependencyFailure) -> Self {
        if let Ok(job) = &mut self.0.job {
            job.on_dependency_failure = policy;
        }
        self
    }
}

/// What [`Workflow::create`] made: the workflow's id, and each step's job.
///
/// ```no_run
/// # async fn demo(client: qron::Client, wf: qron::Workflow) -> qron::Result<()> {
/// let created = wf.create(&client).await?;
/// let merge = created.job("merge");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkflowCreated {
    /// The workflow's id.
    pub id: i64,
    /// Each step's job id, by step name.
    pub jobs: BTreeMap<String, i64>,
}

impl WorkflowCreated {
    /// The job of step `step`, if the workflow has it.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("a", qron::NewJob::new("fetch", "@after 0s"));
    /// let created = wf.create(&client).await?;
    /// let a = created.job("a").expect("the step");
    /// # Ok(()) }
    /// ```
    pub fn job(&self, step: &str) -> Option<i64> {
        self.jobs.get(step).copied()
    }
}

/// Where a workflow is, from its jobs.
///
/// ```
/// assert_eq!(qron::WorkflowStatus::Running.as_str(), "running");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "http", derive(async_graphql::Enum))]
pub enum WorkflowStatus {
    /// A job of it is still live (waiting, ready, running or stopped).
    Running,
    /// Every job succeeded.
    Succeeded,
    /// Every job ended, and one failed.
    Failed,
    /// Every job ended, none failed, and one was cancelled (or deleted).
    Cancelled,
}

impl WorkflowStatus {
    /// The status as the API shows it.
    ///
    /// ```
    /// assert_eq!(qron::WorkflowStatus::Failed.as_str(), "failed");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }

    /// The status `as_str` gives, read back.
    pub(crate) fn from_db(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }

    /// The status of a workflow whose jobs are in `statuses` (`None`: a job gone without a
    /// trace, deleted).
    pub(crate) fn of(statuses: impl IntoIterator<Item = Option<JobStatus>>) -> Self {
        let (mut live, mut failed, mut cancelled) = (false, false, false);
        for s in statuses {
            match s {
                Some(JobStatus::Succeeded) => {}
                Some(JobStatus::Failed) => failed = true,
                Some(JobStatus::Cancelled) | None => cancelled = true,
                Some(_) => live = true,
            }
        }
        if live {
            WorkflowStatus::Running
        } else if failed {
            WorkflowStatus::Failed
        } else if cancelled {
            WorkflowStatus::Cancelled
        } else {
            WorkflowStatus::Succeeded
        }
    }
}

/// A workflow as it is now ([`Client::workflow`](crate::Client::workflow)).
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// let wf = client.workflow(7).await?;
/// let (done, total) = wf.progress();
/// println!("{} {}: {done} of {total}", wf.name, wf.status.as_str());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "http", graphql(name = "Workflow"))]
pub struct WorkflowInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The tenant it belongs to.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it is.
    pub status: WorkflowStatus,
    /// Its steps, in the order they were created (each after the steps it waits for).
    pub steps: Vec<WorkflowStep>,
}

impl WorkflowInfo {
    /// How many of its jobs have ended, of how many.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let (done, total) = client.workflow(7).await?.progress();
    /// # Ok(()) }
    /// ```
    pub fn progress(&self) -> (usize, usize) {
        let ended = self
            .steps
            .iter()
            .filter(|s| {
                !matches!(
                    s.status,
                    Some(
                        JobStatus::Ready
                            | JobStatus::Waiting
                            | JobStatus::Running
                            | JobStatus::Stopped
                    )
                )
            })
            .count();
        (ended, self.steps.len())
    }
}

/// A workflow in a list of them ([`Client::workflows`](crate::Client::workflows)): without its
/// steps.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// for w in client.workflows(None, 20).await? {
///     println!("{} {} {}", w.id, w.name, w.status.as_str());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
pub struct WorkflowSummary {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it is.
    pub status: WorkflowStatus,
}

/// A step of a workflow as it is now.
///
/// ```no_run
/// # async fn demo(client: qron::Client) -> qron::Result<()> {
/// for step in client.workflow(7).await?.steps {
///     println!("{} (job {}) after {:?}: {:?}", step.step, step.job, step.after, step.status);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "http", derive(async_graphql::SimpleObject))]
pub struct WorkflowStep {
    /// The step's name.
    pub step: String,
    /// Its job.
    pub job: i64,
    /// Its executor.
    pub executor: Option<String>,
    /// Its job's status (`None`: deleted).
    pub status: Option<JobStatus>,
    /// The steps it waits for.
    pub after: Vec<String>,
}

impl Workflow {
    /// An empty workflow named `name` (1 to 255 characters; names need not be unique).
    ///
    /// ```
    /// let wf = qron::Workflow::new("nightly");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Adds step `step`, a job of type `J` with `payload`, due at once (once the steps it
    /// waits for have succeeded) with `J`'s options.
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Page { n: u32 }
    /// # #[qron::job(executor = "fetch")] async fn fetch(p: Page) -> Result<(), qron::JobError> { Ok(()) }
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add::<Fetch>("fetch-1", Page { n: 1 });
    /// ```
    pub fn add<J: Job>(&mut self, step: impl Into<String>, payload: J::Payload) -> StepBuilder<'_> {
        let job = crate::enqueue::new_job::<J>(AT_ONCE, &payload);
        self.push(step.into(), job)
    }

    /// Adds step `step` as `job` (its expression a one-off; its own
    /// [`after`](NewJob::after) may name jobs outside the workflow).
    ///
    /// ```
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("report", qron::NewJob::new("report", "@after 10 minutes"));
    /// ```
    pub fn add_job(&mut self, step: impl Into<String>, job: NewJob) -> StepBuilder<'_> {
        self.push(step.into(), Ok(job))
    }

    fn push(&mut self, name: String, job: Result<NewJob>) -> StepBuilder<'_> {
        self.steps.push(StepSpec {
            name,
            job,
            after: Vec::new(),
        });
        let last = self.steps.len() - 1;
        StepBuilder(&mut self.steps[last])
    }

    /// Creates the workflow's jobs in one transaction, each after the steps it waits for.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty workflow, a step named twice (`step`), or one
    /// that waits for a step the workflow does not have (`after`); [`Error::WorkflowCycle`]
    /// when steps wait for each other in a circle; and what creating each job returns
    /// ([`Client::create`](crate::Client::create)). Nothing is written then.
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("a", qron::NewJob::new("fetch", "@after 0s"));
    /// wf.create(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(self, client: &crate::Client) -> Result<WorkflowCreated> {
        let mut tx = client.pool().begin().await?;
        let created = self.create_with(client, &mut tx).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// [`Workflow::create`] through `conn`, which may be the application's transaction: the
    /// workflow exists, and its jobs run, only once it commits.
    ///
    /// # Errors
    /// As [`Workflow::create`].
    ///
    /// ```no_run
    /// # async fn demo(client: qron::Client) -> qron::Result<()> {
    /// let mut tx = client.pool().begin().await?;
    /// let mut wf = qron::Workflow::new("w");
    /// wf.add_job("a", qron::NewJob::new("fetch", "@after 0s"));
    /// wf.create_with(&client, &mut tx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_with(
        self,
        client: &crate::Client,
        conn: &mut sqlx::PgConnection,
    ) -> Result<WorkflowCreated> {
        crate::client::checks::check_name("workflow", &self.name)?;
        let order = self.order()?;
        let now = client.now().await;
        let scope = client.scope();
        scope.check_owner()?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let id = crate::db::workflow_insert(&mut *tx, scope.owner, &self.name).await?;
        let mut jobs = BTreeMap::new();
        let mut steps: Vec<Option<StepSpec>> = self.steps.into_iter().map(Some).collect();
        for i in order {
            let Some(spec) = steps[i].take() else {
                continue;
            };
            let mut job = spec.job?;
            for dep in &spec.after {
                if let Some(&dep_id) = jobs.get(dep) {
                    job.after.push(dep_id);
                }
            }
            job.workflow = Some((id, spec.name.clone()));
            let row = scope.create_on(&mut tx, job, now).await?;
            jobs.insert(spec.name, row.id);
        }
        tx.commit().await?;
        Ok(WorkflowCreated { id, jobs })
    }

    /// The steps' indexes in an order where each comes after the steps it waits for; or why
    /// there is none.
    fn order(&self) -> Result<Vec<usize>> {
        if self.steps.is_empty() {
            return Err(Error::InvalidArgument {
                field: "workflow",
                reason: "a workflow has at least one step".to_owned(),
            });
        }
        let mut index = HashMap::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            crate::client::checks::check_name("step", &s.name)?;
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(Error::InvalidArgument {
                    field: "step",
                    reason: format!("the workflow has two steps named `{}`", s.name),
                });
            }
        }
        // Kahn's algorithm: a step is placed once every step it waits for is.
        let mut waiting: Vec<usize> = vec![0; self.steps.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for dep in &s.after {
                let Some(&d) = index.get(dep.as_str()) else {
                    return Err(Error::InvalidArgument {
                        field: "after",
                        reason: format!(
                            "step `{}` waits for `{dep}`, which the workflow does not have",
                            s.name
                        ),
                    });
                };
                if seen.insert(d) {
                    waiting[i] += 1;
                    dependents[d].push(i);
                }
            }
        }
        let mut order: Vec<usize> = (0..self.steps.len()).filter(|&i| waiting[i] == 0).collect();
        let mut next = 0;
        while next < order.len() {
            let i = order[next];
            next += 1;
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    order.push(j);
                }
            }
        }
        if order.len() < self.steps.len() {
            let steps = (0..self.steps.len())
                .filter(|&i| waiting[i] > 0)
                .map(|i| self.steps[i].name.clone())
                .collect();
            return Err(Error::WorkflowCycle { steps });
        }
        Ok(order)
    }
}
