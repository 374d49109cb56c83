//! `qron dev`: the whole system on this machine, for development: the dashboard at the root,
//! the API under `/api`.

use std::path::PathBuf;

use crate::worker::HttpSettings;
use crate::{Failure, Global};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The loopback port the API listens on (0: any free port; the one taken is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Keep the throwaway database's data in this directory, to find it again next run
    /// (created when missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    http: HttpSettings,
}

pub(crate) async fn run(global: &Global, args: Args) -> Result<(), Failure> {
    crate::init_logging();
    if global.database_url.is_some() && args.data_dir.is_some() {
        return Err(Failure::Failed(
            "--data-dir is for the database `qron dev` starts; with DATABASE_URL set it starts none"
                .to_owned(),
        ));
    }
    // The database: DATABASE_URL's, or a server of our own.
    let (server, url, kind) = match &global.database_url {
        Some(url) => (None, url.clone(), "from DATABASE_URL".to_owned()),
        None => {
            let mut builder = qron::embedded::EmbeddedPostgres::builder();
            if let Some(dir) = &args.data_dir {
                builder = builder.data_dir(dir);
            }
            let pg = tokio::task::spawn_blocking(move || builder.start())
                .await
                .map_err(|e| Failure::Failed(format!("the database start failed: {e}")))??;
            let kind = match &args.data_dir {
                Some(dir) => format!("pid {}, data kept in {}", pg.pid(), dir.display()),
                None => format!(
                    "pid {}, throwaway: removed at exit, with {}",
                    pg.pid(),
                    pg_dir(&pg).display()
                ),
            };
            let url = pg.url();
            (Some(pg), url, kind)
        }
    };
    let pool = crate::connect(Some(&url)).await?;
    qron::migrate(&pool).await?;
    let client = qron::Client::builder(pool.clone())
        .owner(global.owner.clone())
        .build();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| {
            Failure::Failed(format!(
                "cannot listen on 127.0.0.1:{}: {e}; pass --port with another port (0 for any free one)",
                args.port
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Failed(format!("no local address: {e}")))?;
    let worker = qron::Worker::builder(client.clone())
        .http_executor(args.http.executor())
        .build()?;
    // The worker stops on Ctrl-C or SIGTERM (a second one cancels running jobs); the API
    // follows it. Listening starts here, before the banner promises it.
    let worked = worker.run_until_signal();

    println!("qron dev");
    println!("  database  {url}");
    println!("            ({kind})");
    println!("  dashboard http://{addr}/");
    println!("  api       http://{addr}/api/graphql  (GraphiQL at http://{addr}/api)");
    println!(
        "  worker    executor `http`, {} requests at once",
        args.http.concurrency()
    );
    println!("  owner     {}", global.owner);
    println!("In another terminal: export DATABASE_URL='{url}'; qron jobs list");
    println!("Ctrl-C stops it all.");

    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new()
        .nest("/api", qron::http::router(client.clone()))
        .merge(qron::http::dashboard(client));
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let worked = worked.await;
    let _ = stop_server.send(());
    let served = serve.await;
    pool.close().await;
    if let Some(pg) = server {
        let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
    }
    println!("qron dev stopped");
    worked?;
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Failed(format!("the API server failed: {e}"))),
        Err(e) => Err(Failure::Failed(format!("the API server failed: {e}"))),
    }
}

/// The temporary directory the throwaway server lives in (its socket's directory).
fn pg_dir(pg: &qron::embedded::EmbeddedPostgres) -> PathBuf {
    pg.data_dir()
        .parent()
        .map_or_else(|| pg.data_dir().to_path_buf(), PathBuf::from)
}
