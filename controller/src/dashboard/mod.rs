//! The forecast dashboard: a store the reconcile loop writes after every sync ([`store`]), a read-only
//! JSON API with its generated OpenAPI document and an embedded web page ([`api`]), served by
//! `prescient run` and `prescient demo` on 127.0.0.1 unless told otherwise.

pub mod api;
pub mod store;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::sync::Semaphore;

pub use api::{MetricsRenderer, router, router_with_metrics};
pub use store::DashboardStore;

/// Default listen address: loopback only, since the API shows workload names and traffic.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Environment variable read for the bearer token when `--dashboard-token` is not given.
pub const TOKEN_ENV: &str = "PRESCIENT_DASHBOARD_TOKEN";

/// Dashboard flags shared by `prescient run` and `prescient demo` (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Address of the dashboard (API, page, /metrics); port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub dashboard_addr: SocketAddr,
    /// Bearer token required by the API and /metrics (the page reads it from its URL: `/#token=...`).
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    pub dashboard_token: Option<String>,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running dashboard server.
#[derive(Debug)]
pub struct Server {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// Longest a client may take to send a request's headers: a half-open connection (slowloris, a port
/// scanner) is closed after this instead of being held for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection is kept (idle keep-alive included); it is then closed gracefully, after the
/// answer in flight. The page polls every few seconds and simply reconnects.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// Most connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Binds `addr` and serves `app` on a background task.
pub async fn serve(addr: SocketAddr, app: axum::Router) -> Result<Server, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let task = tokio::spawn(accept_loop(listener, app));
    Ok(Server { addr, task })
}

/// axum::serve with bounds: at most [`MAX_CONNECTIONS`] at once, each with [`HEADER_READ_TIMEOUT`] and
/// [`MAX_CONNECTION_AGE`] (HTTP/1.1, which is all the page and API clients speak).
async fn accept_loop(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: transient, so wait rather than spin or stop.
            Err(error) => {
                tracing::warn!(%error, "dashboard cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = tokio::time::sleep(MAX_CONNECTION_AGE) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEADER_READ_TIMEOUT, connection).await;
                }
            }
        });
    }
}
