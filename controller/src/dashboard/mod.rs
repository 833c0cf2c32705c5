//! The forecast dashboard: a store the reconcile loop writes after every sync ([`store`]), a read-only
//! JSON API with its generated OpenAPI document and an embedded web page ([`api`]), served by
//! `prescient run` and `prescient demo` on 127.0.0.1 unless told otherwise.

pub mod api;
pub mod store;

use std::net::SocketAddr;

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

/// Binds `addr` and serves `app` on a background task.
pub async fn serve(addr: SocketAddr, app: axum::Router) -> Result<Server, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server { addr, task })
}
