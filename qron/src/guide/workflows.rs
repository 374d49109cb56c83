//! # Workflows
//!
//! A job can wait for other jobs: [`NewJob::after`](crate::NewJob::after) (or
//! [`Enqueue::after`](crate::Enqueue::after) on a typed enqueue) names them, by id or by what
//! their enqueues returned. The job is [`Waiting`](crate::JobStatus::Waiting), out of every
//! worker's reach, until each of them has ended. The statement that writes the last one's
//! outcome also releases it (a statement trigger on the history, which that statement fills):
//! a release is never lost, never doubled, and a crash in between leaves both or neither.
//!
//! - **Outputs.** A handler records a value with [`Context::record`](crate::Context::record);
//!   it is kept with the job's history row, and the jobs that waited for it read it, typed, with
//!   [`Context::output`](crate::Context::output) and
//!   [`Context::output_of`](crate::Context::output_of). A job others wait for is kept in the
//!   history whatever its executor's [`History`](crate::History) says.
//! - **When one fails.** A job whose dependency fails, is cancelled or is deleted does what its
//!   [`OnDependencyFailure`](crate::OnDependencyFailure) says: it is cancelled (the default,
//!   and so in turn are the jobs waiting for it that cancel too), it runs anyway, or it is held
//!   (stopped) for an operator to restart or cancel.
//! - **Refused at creation.** Waiting for a job that does not exist or is another owner's
//!   ([`Error::UnknownDependency`](crate::Error::UnknownDependency)), for a recurring job, or,
//!   when it cancels on failure, for a job that already failed
//!   ([`Error::DependencyFailed`](crate::Error::DependencyFailed)); nothing is written.
//!
//! A [`Workflow`](crate::Workflow) creates jobs together, by step name, each waiting for the
//! steps it names, in one transaction (or inside the application's); steps that wait for each
//! other in a circle are refused ([`Error::WorkflowCycle`](crate::Error::WorkflowCycle)).
//! [`Client::workflow`](crate::Client::workflow) tells where it is (running, succeeded,
//! failed, cancelled) and how far, step by step;
//! [`Client::cancel_workflow`](crate::Client::cancel_workflow) ends what is left of it.
//!
//! An ETL: fetch pages in parallel, merge them, then notify, whatever happened:
//!
//! ```no_run
//! use qron::{Context, JobError, OnDependencyFailure, Workflow};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Page { url: String }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Merge;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Channel { name: String }
//!
//! #[qron::job(executor = "fetch_page")]
//! async fn fetch_page(ctx: Context, page: Page) -> Result<(), JobError> {
//!     let words = page.url.len() as u64; // … fetch and count …
//!     ctx.record(&words)?;
//!     Ok(())
//! }
//!
//! #[qron::job(executor = "merge_pages")]
//! async fn merge_pages(ctx: Context, _: Merge) -> Result<(), JobError> {
//!     let pages: Vec<(i64, Option<u64>)> = ctx.output().await?;
//!     ctx.record(&pages.iter().filter_map(|(_, words)| *words).sum::<u64>())?;
//!     Ok(())
//! }
//!
//! #[qron::job(executor = "notify")]
//! async fn notify(ctx: Context, to: Channel) -> Result<(), JobError> {
//!     let merged: Vec<(i64, Option<u64>)> = ctx.output().await?;
//!     match merged.first().and_then(|(_, total)| *total) {
//!         Some(total) => tracing::info!(channel = %to.name, total, "nightly ETL done"),
//!         None => tracing::warn!(channel = %to.name, "nightly ETL failed"),
//!     }
//!     Ok(())
//! }
//!
//! # async fn demo(client: qron::Client) -> qron::Result<()> {
//! let mut etl = Workflow::new("nightly-etl");
//! let mut fetches = Vec::new();
//! for n in 1..=20 {
//!     let step = format!("fetch-{n}");
//!     etl.add::<FetchPage>(&step, Page { url: format!("https://example.com/{n}") });
//!     fetches.push(step);
//! }
//! etl.add::<MergePages>("merge", Merge).after(fetches);
//! etl.add::<Notify>("notify", Channel { name: "#data".into() })
//!     .after(["merge"])
//!     .on_dependency_failure(OnDependencyFailure::Run);
//! let created = etl.create(&client).await?;
//!
//! let info = client.workflow(created.id).await?;
//! let (done, total) = info.progress();
//! tracing::info!(status = info.status.as_str(), done, total, "nightly ETL");
//! # Ok(()) }
//! ```
//!
//! # When a step failed
//!
//! A failed fetch cancels the merge (its default policy), and the notification runs anyway.
//! Once the page is back, [`Client::retry_workflow`](crate::Client::retry_workflow) runs the
//! failed and cancelled steps again: the fetch is due at once, the merge waits for it again, and
//! the fetches that succeeded are not run again (the merge reads their outputs as before).
//!
//! ```no_run
//! # async fn demo(client: qron::Client, id: i64) -> qron::Result<()> {
//! if client.workflow(id).await?.status == qron::WorkflowStatus::Failed {
//!     let revived = client.retry_workflow(id).await?;
//!     tracing::info!(steps = revived.len(), "nightly ETL retried");
//! }
//! # Ok(()) }
//! ```
//!
//! # Batches
//!
//! Many jobs and a callback that runs once, when every one of them has ended, with how each
//! ended: [`Batch`](crate::Batch). The jobs and their edges to the callback are written with
//! `COPY`; a job of the batch can add more while it runs
//! ([`Context::add_to_batch`](crate::Context::add_to_batch)), and the callback waits for those
//! too.
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! #[derive(Serialize, Deserialize)]
//! struct Row { n: u64 }
//! #[derive(Serialize, Deserialize)]
//! struct Import { file: String }
//!
//! #[qron::job(executor = "import_row")]
//! async fn import_row(ctx: qron::Context, row: Row) -> Result<(), qron::JobError> {
//!     if row.n % 1000 == 999 {
//!         // a row that needs another, which the callback then waits for too
//!         ctx.add_to_batch(qron::NewJob::new("import_row", "@after 0s")).await?;
//!     }
//!     Ok(())
//! }
//!
//! #[qron::job(executor = "import_done")]
//! async fn import_done(ctx: qron::Context, import: Import) -> Result<(), qron::JobError> {
//!     let results = ctx.batch_results().await?; // ids by status: succeeded, failed, cancelled…
//!     tracing::info!(succeeded = results.succeeded.len(), failed = results.failed.len(), "imported");
//!     Ok(())
//! }
//!
//! # async fn demo(client: qron::Client) -> qron::Result<()> {
//! let mut batch = qron::Batch::new();
//! for n in 0..100_000 {
//!     batch.add::<ImportRow>(Row { n });
//! }
//! batch.on_finish::<ImportDone>(Import { file: "rows.csv".into() });
//! let created = batch.create(&client).await?;
//! let info = client.batch(created.callback).await?;
//! # Ok(()) }
//! ```
//!
//! The dashboard lists the workflows and draws each one as a graph, a node a step coloured by
//! its status, with Cancel and Retry failed steps beside it; `qron workflows list|show|cancel|retry`
//! does the same from a shell.
