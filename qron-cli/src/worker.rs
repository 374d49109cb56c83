//! `qron worker`: a production worker for the built-in HTTP executor.

use clap::ValueEnum;

use crate::{Failure, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The executor to run; `http`, the HTTP executor, is the one this command carries
    /// (executors written in Rust run in your application's own worker).
    #[arg(long, value_enum)]
    executor: Executor,
    #[command(flatten)]
    http: HttpSettings,
}

#[derive(Clone, Copy, ValueEnum)]
enum Executor {
    /// The HTTP executor: each job is sent to the URL in its meta.
    Http,
}

/// The HTTP executor's settings on the command line.
#[derive(clap::Args)]
pub(crate) struct HttpSettings {
    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Sign each request with this secret (`x-qron-signature`), so receivers can check it.
    #[arg(long, env = "QRON_HTTP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Allow requests to this host name, address or range (`hooks.internal`, `10.1.2.3`,
    /// `10.0.0.0/8`) whatever its kind; repeatable. By default only public addresses are
    /// reached.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Allow requests to loopback, private, link-local, CGNAT and unique-local addresses.
    #[arg(long)]
    allow_private: bool,
}

impl HttpSettings {
    /// The executor these settings describe.
    pub(crate) fn executor(&self) -> qron::HttpExecutor {
        let settings = qron::HttpExecutor::new()
            .concurrency(usize::from(self.concurrency))
            .allow_hosts(&self.allow_hosts)
            .allow_private(self.allow_private);
        match self.secret.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => settings.secret(s),
            None => settings,
        }
    }

    /// Requests at once.
    pub(crate) fn concurrency(&self) -> u16 {
        self.concurrency
    }
}

pub(crate) async fn run(global: &Global, args: Args) -> Result<(), Failure> {
    crate::init_logging();
    let Executor::Http = args.executor;
    let pool = crate::connect(global.database_url.as_deref()).await?;
    qron::Worker::builder(qron::Client::new(pool))
        .http_executor(args.http.executor())
        .build()?
        .run_until_signal()
        .await?;
    Ok(())
}
