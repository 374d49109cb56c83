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
    /// Run the HTTP executor's worker against DATABASE_URL's database too (on `qron dev`'s own
    /// database it always runs): every `http` job there, whoever made it, is then sent from
    /// this machine.
    #[arg(long)]
    http_worker: bool,
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
    // The HTTP executor's worker: always on a database of its own, where only this machine's
    // user makes jobs (their endpoints are on this machine: private addresses allowed); on
    // DATABASE_URL's only when asked.
    let own = server.is_some();
    let executor = if own {
        Some(args.http.executor().allow_private(true))
    } else if args.http_worker {
        Some(args.http.executor())
    } else {
        None
    };
    let mut builder = qron::Worker::builder(client.clone());
    builder = match executor {
        Some(e) => builder.http_executor(e),
        // A worker with no executor still waits for the signal, and runs nothing.
        None => builder.executors(std::iter::empty::<String>()),
    };
    let worker = builder.build()?;
    // The worker stops on Ctrl-C or SIGTERM (a second one cancels running jobs); the API
    // follows it. Listening starts here, before the banner promises it.
    let worked = worker.run_until_signal();

    let shown = redact(&url);
    println!("qron dev");
    println!("  database  {shown}");
    println!("            ({kind})");
    println!("  dashboard http://{addr}/");
    println!("  api       http://{addr}/api/graphql  (GraphiQL at http://{addr}/api)");
    if own || args.http_worker {
        println!(
            "  worker    executor `http`, {} requests at once{}",
            args.http.concurrency(),
            if own { ", to any address" } else { "" }
        );
    } else {
        println!(
            "  worker    none: the database is not qron dev's own (pass --http-worker to run \
             the HTTP executor against it)"
        );
    }
    println!("  owner     {}", global.owner);
    if own {
        println!("In another terminal: export DATABASE_URL='{url}'; qron jobs list");
    } else {
        println!("In another terminal, with the same DATABASE_URL: qron jobs list");
    }
    println!("Ctrl-C stops it all.");

    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let streams = tokio_util::sync::CancellationToken::new();
    // Anonymous: the port is on loopback, and only loopback Hosts are answered, so a page
    // elsewhere cannot reach it by rebinding its name to 127.0.0.1.
    let api = qron::http::Api::new(client)
        .allow_anonymous()
        .shutdown_on(streams.clone());
    let app = axum::Router::new()
        .nest("/api", api.clone().router())
        .merge(api.dashboard())
        .layer(axum::middleware::from_fn(loopback_host));
    let serve = tokio::spawn(serve(listener, app, stopped));
    let worked = worked.await;
    streams.cancel();
    let _ = stop_server.send(());
    // Open tabs' streams end with the token; a connection still open after a second is cut.
    let served = match tokio::time::timeout(std::time::Duration::from_secs(1), serve).await {
        Ok(served) => served,
        Err(_) => Ok(Ok(())),
    };
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

/// How long a connection may take to send a request's head: a client that opens connections
/// and sends half a head (slowloris) holds none for longer.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` resolves, then lets open connections finish (the
/// caller bounds how long). Each connection gets [`HEADER_READ_TIMEOUT`] to send a request's
/// head, where `axum::serve` allows hyper's default 30 s.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A refused or reset connection ends only itself.
                let Ok((stream, _)) = accepted else { continue };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers requests whose `Host` is this machine's loopback name or address only (any port):
/// a page on another site whose name resolves to 127.0.0.1 still sends its own name.
async fn loopback_host(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().map(|h| format!("[{h}]")),
        None => host.split(':').next().map(str::to_owned),
    };
    match name.as_deref() {
        Some("localhost" | "127.0.0.1" | "[::1]") => next.run(request).await,
        _ => (
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "qron dev answers requests for localhost, 127.0.0.1 and [::1] only",
        )
            .into_response(),
    }
}

/// `url` without its password (in the authority or as a `password` parameter).
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// The temporary directory the throwaway server lives in (its socket's directory).
fn pg_dir(pg: &qron::embedded::EmbeddedPostgres) -> PathBuf {
    pg.data_dir()
        .parent()
        .map_or_else(|| pg.data_dir().to_path_buf(), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_printed_url_has_no_password() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app@db/app?password=hunter2&x=1"),
            "postgres://app@db/app?password=***&x=1"
        );
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
    }
}
