//! `prescient run`: the operator. Connects to the cluster (kubeconfig or in-cluster), serves `/metrics`,
//! `/healthz` and `/readyz` on `--metrics-addr` and the dashboard on `--dashboard-addr`, and runs the
//! controller while it holds the leader Lease (so two replicas of the operator never both scale).
//! SIGTERM or Ctrl-C stops it gracefully: running reconciles finish and the Lease is released.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::{Router, extract::State, http::StatusCode, routing::get};
use kube::{Client, runtime::events::Reporter};
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use crate::{
    dashboard::{self, DashboardArgs, DashboardStore},
    edges::SystemClock,
    metrics::Metrics,
    operator::{self, Context},
    prometheus::{PrometheusOptions, PrometheusSource},
    telemetry::{self, LogFormat},
};

/// Arguments of `prescient run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the Prometheus that holds the demand metrics.
    #[arg(
        long,
        env = "PRESCIENT_PROMETHEUS_URL",
        default_value = "http://prometheus:9090"
    )]
    pub prometheus_url: String,
    /// Timeout of one Prometheus query.
    #[arg(long, default_value = "10s")]
    pub prometheus_timeout: crate::duration::HumanDuration,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// Address of `/metrics`, `/healthz` and `/readyz` (unauthenticated, for Prometheus and the kubelet).
    #[arg(long, default_value = "127.0.0.1:9184")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Run the controller only while holding the leader Lease (`--leader-election=false` to disable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "prescient-leader")]
    pub lease_name: String,
}

/// Liveness and readiness for the probes.
#[derive(Clone, Default)]
struct Health {
    ready: Arc<AtomicBool>,
    leader: Arc<AtomicBool>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    let role = if health.leader.load(Ordering::SeqCst) {
        "leader"
    } else {
        "standby"
    };
    if health.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, format!("ready ({role})"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// This replica's identity in the Lease: the pod name when the Downward API provides it.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "prescient".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The namespace the operator runs in (for its Lease).
fn own_namespace(client: &Client, flag: Option<String>) -> String {
    flag.or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_owned())
    })
    .unwrap_or_else(|| client.default_namespace().to_owned())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(args.log_format)?;
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes (kubeconfig or in-cluster)")?;
    let options = PrometheusOptions {
        request_timeout: args.prometheus_timeout.0,
        ..PrometheusOptions::default()
    };
    let source = PrometheusSource::new(&args.prometheus_url, options)?;
    let metrics = Arc::new(Metrics::new());
    let store = DashboardStore::default();
    let reporter = Reporter {
        controller: "prescient".to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        source,
        metrics.clone(),
        store.clone(),
        Arc::new(SystemClock),
        reporter,
    ));

    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            shutdown.cancel();
        });
    }

    // Probes and /metrics: no token, since Prometheus and the kubelet call them.
    let health = Health::default();
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health.clone())
        .merge(crate::metrics::router(metrics.clone()));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    let probes_addr = listener.local_addr()?;
    let probes_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, probes)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        })
    };

    let renderer: dashboard::MetricsRenderer = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.encode())
    };
    let app = dashboard::router_with_metrics(store, args.dashboard.dashboard_token.clone(), Some(renderer));
    let server = dashboard::serve(args.dashboard.dashboard_addr, app).await?;
    // Ready before the start-up line, so whoever waits for that line finds /readyz answering 200.
    health.ready.store(true, Ordering::SeqCst);
    tracing::info!(dashboard = %server.url(), metrics = %probes_addr, prometheus = %args.prometheus_url, "prescient operator started");

    if args.leader_election {
        let namespace = own_namespace(&client, args.lease_namespace.clone());
        run_with_leader_election(&client, &namespace, &args.lease_name, ctx, &health, &shutdown).await?;
    } else {
        health.leader.store(true, Ordering::SeqCst);
        operator::run_controller(ctx, shutdown.clone()).await;
    }

    shutdown.cancel();
    server.task.abort();
    let _ = probes_task.await;
    tracing::info!("prescient operator stopped");
    Ok(())
}

/// Runs the controller only while this replica holds the Lease; stops it as soon as the Lease is lost.
async fn run_with_leader_election(
    client: &Client,
    namespace: &str,
    lease_name: &str,
    ctx: Arc<Context<PrometheusSource>>,
    health: &Health,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let identity = identity();
    let manager = LeaseManagerBuilder::new(client.clone(), lease_name)
        .with_namespace(namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .with_field_manager(format!("prescient-{identity}"))
        .build()
        .await
        .with_context(|| format!("setting up the leader Lease {namespace}/{lease_name}"))?;
    let (mut leader, lease_task) = manager.watch().await;
    tracing::info!(lease = %format!("{namespace}/{lease_name}"), %identity, "waiting for leadership");
    loop {
        // Wait to become the leader (or for shutdown).
        while !*leader.borrow_and_update() {
            tokio::select! {
                changed = leader.changed() => {
                    if changed.is_err() {
                        anyhow::bail!("the leader election task stopped");
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        tracing::info!(%identity, "became the leader; starting the controller");
        health.leader.store(true, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let mut controller = tokio::spawn(operator::run_controller(ctx.clone(), stop.clone()));
        // Lead until the Lease is lost or shutdown is asked for.
        loop {
            tokio::select! {
                changed = leader.changed() => {
                    if changed.is_err() || !*leader.borrow_and_update() {
                        tracing::warn!(%identity, "lost the leader Lease; stopping the controller");
                        break;
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
        stop.cancel();
        // Give running reconciles a bounded time to finish, so a lost Lease really stops scaling.
        if tokio::time::timeout(Duration::from_secs(10), &mut controller)
            .await
            .is_err()
        {
            tracing::warn!("controller did not stop within 10s; aborting it");
            controller.abort();
        }
        health.leader.store(false, Ordering::SeqCst);
        if shutdown.is_cancelled() {
            break;
        }
    }
    // Closing the channel makes the lease task release the Lease, so a standby takes over at once.
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Err(error))) => tracing::warn!(%error, "releasing the Lease failed"),
        Ok(Err(error)) => tracing::warn!(%error, "lease task failed"),
        Err(_) => tracing::warn!("releasing the Lease timed out"),
        Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
    }
    Ok(())
}
