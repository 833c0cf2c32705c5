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
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    dashboard::{self, DashboardArgs, DashboardStore},
    edges::{SystemClock, leader, prometheus},
    metrics::Metrics,
    operator::{self, Context},
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

/// Liveness and readiness for the probes. The role is the `prescient_leader` gauge's, so `/readyz` and
/// `/metrics` cannot disagree.
#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    let role = if health.metrics.leads() {
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
    let options = prometheus::PrometheusOptions {
        request_timeout: args.prometheus_timeout.0,
        ..prometheus::PrometheusOptions::default()
    };
    let source = prometheus::PrometheusSource::new(&args.prometheus_url, options)?;
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
        let stop = super::shutdown_signal();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutdown requested");
            shutdown.cancel();
        });
    }

    // Probes and /metrics: no token, since Prometheus and the kubelet call them.
    let health = Health {
        ready: Arc::default(),
        metrics: metrics.clone(),
    };
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
        run_with_leader_election(&client, &namespace, &args.lease_name, ctx, &shutdown).await?;
    } else {
        ctx.metrics.set_leader(true);
        operator::run_controller(ctx, shutdown.clone()).await;
    }

    shutdown.cancel();
    server.task.abort();
    let _ = probes_task.await;
    tracing::info!("prescient operator stopped");
    Ok(())
}

/// Runs the controller only while this replica leads ([`leader::elect`]); stops it as soon as it does
/// not.
async fn run_with_leader_election(
    client: &Client,
    namespace: &str,
    lease_name: &str,
    ctx: Arc<Context<prometheus::PrometheusSource>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let identity = identity();
    let election_stop = CancellationToken::new();
    let settings = leader::LeaseSettings {
        client: client.clone(),
        namespace: namespace.to_owned(),
        name: lease_name.to_owned(),
        identity: identity.clone(),
    };
    let (mut leads, election) = leader::elect(settings, election_stop.clone())
        .await
        .with_context(|| format!("setting up the leader Lease {namespace}/{lease_name}"))?;
    tracing::info!(lease = %format!("{namespace}/{lease_name}"), %identity, "waiting for leadership");
    let report = |leads: bool| ctx.metrics.set_leader(leads);
    let result = follow_leadership(&mut leads, shutdown, &report, leader::STOP_GRACE, |stop| {
        operator::run_controller(ctx.clone(), stop)
    })
    .instrument(tracing::info_span!("leadership", %identity))
    .await;
    // The election task releases the Lease, so a standby takes over within about a second.
    election_stop.cancel();
    if let Err(error) = election.await {
        tracing::warn!(%error, "the leader election task failed");
    }
    result
}

/// The leadership loop: runs `lead(stop)` (the controller) while `leader` says this replica holds the
/// Lease, cancels `stop` as soon as it does not (waiting at most `grace` for running reconciles, so a
/// lost Lease really stops scaling), and starts it again when leadership comes back. `report` is told
/// when the controller starts (`true`) and has stopped (`false`): the `prescient_leader` gauge, which
/// `/readyz` reads. Returns on shutdown, or with an error if the election task stops.
async fn follow_leadership<F, Fut>(
    leader: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
    report: &(dyn Fn(bool) + Sync),
    grace: Duration,
    mut lead: F,
) -> anyhow::Result<()>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        // Wait to become the leader (or for shutdown).
        while !*leader.borrow_and_update() {
            tokio::select! {
                changed = leader.changed() => {
                    if changed.is_err() {
                        anyhow::bail!("the leader election task stopped");
                    }
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        tracing::info!("became the leader; starting the controller");
        report(true);
        let stop = CancellationToken::new();
        let mut controller = tokio::spawn(lead(stop.clone()));
        // Lead until the Lease is lost or shutdown is asked for.
        let election_stopped = loop {
            tokio::select! {
                changed = leader.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    if !*leader.borrow_and_update() {
                        tracing::warn!("lost the leader Lease; stopping the controller");
                        break false;
                    }
                }
                () = shutdown.cancelled() => break false,
            }
        };
        stop.cancel();
        if tokio::time::timeout(grace, &mut controller).await.is_err() {
            tracing::warn!(?grace, "controller did not stop in time; aborting it");
            controller.abort();
        }
        report(false);
        if election_stopped {
            anyhow::bail!("the leader election task stopped");
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::watch;

    use super::*;

    /// Counts controller starts, and how many are running now.
    #[derive(Default)]
    struct Runs {
        started: AtomicUsize,
        running: AtomicUsize,
    }

    fn controller(
        runs: Arc<Runs>,
    ) -> impl FnMut(CancellationToken) -> futures::future::BoxFuture<'static, ()> {
        move |stop: CancellationToken| {
            let runs = Arc::clone(&runs);
            Box::pin(async move {
                runs.started.fetch_add(1, Ordering::SeqCst);
                runs.running.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
                runs.running.fetch_sub(1, Ordering::SeqCst);
            })
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn runs_the_controller_only_while_holding_the_lease() {
        let (tx, mut rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let is_leader = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(Runs::default());
        let task = tokio::spawn({
            let (shutdown, is_leader, mut lead) = (
                shutdown.clone(),
                Arc::clone(&is_leader),
                controller(Arc::clone(&runs)),
            );
            async move {
                let report = |leads| is_leader.store(leads, Ordering::SeqCst);
                follow_leadership(&mut rx, &shutdown, &report, Duration::from_secs(1), &mut lead).await
            }
        });
        settle().await;
        assert_eq!(
            runs.started.load(Ordering::SeqCst),
            0,
            "a standby never runs the controller"
        );
        assert!(!is_leader.load(Ordering::SeqCst));

        tx.send(true).unwrap();
        settle().await;
        assert_eq!(runs.running.load(Ordering::SeqCst), 1);
        assert!(is_leader.load(Ordering::SeqCst));

        tx.send(false).unwrap();
        settle().await;
        assert_eq!(
            runs.running.load(Ordering::SeqCst),
            0,
            "a lost Lease stops the controller"
        );
        assert!(!is_leader.load(Ordering::SeqCst));

        tx.send(true).unwrap();
        settle().await;
        assert_eq!(
            runs.started.load(Ordering::SeqCst),
            2,
            "leadership regained: started again"
        );
        assert_eq!(runs.running.load(Ordering::SeqCst), 1);

        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            runs.running.load(Ordering::SeqCst),
            0,
            "shutdown stops the controller"
        );
        assert!(!is_leader.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_stopped_election_task_stops_the_controller_and_is_an_error() {
        let (tx, mut rx) = watch::channel(true);
        let shutdown = CancellationToken::new();
        let is_leader = AtomicBool::new(false);
        let runs = Arc::new(Runs::default());
        let mut lead = controller(Arc::clone(&runs));
        let report = |leads| is_leader.store(leads, Ordering::SeqCst);
        let follow = follow_leadership(&mut rx, &shutdown, &report, Duration::from_secs(1), &mut lead);
        let drop_sender = async {
            settle().await;
            assert_eq!(runs.running.load(Ordering::SeqCst), 1);
            drop(tx);
        };
        let (result, ()) = tokio::join!(follow, drop_sender);
        assert!(result.is_err());
        assert_eq!(runs.running.load(Ordering::SeqCst), 0);
        assert!(!is_leader.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_controller_that_ignores_stop_is_aborted_after_the_grace() {
        let (tx, mut rx) = watch::channel(true);
        let shutdown = CancellationToken::new();
        let is_leader = AtomicBool::new(false);
        let stuck = |_stop: CancellationToken| std::future::pending::<()>();
        let report = |leads| is_leader.store(leads, Ordering::SeqCst);
        let follow = follow_leadership(&mut rx, &shutdown, &report, Duration::from_millis(100), stuck);
        let lose = async {
            settle().await;
            tx.send(false).unwrap();
            settle().await;
            shutdown.cancel();
        };
        let started = std::time::Instant::now();
        let (result, ()) = tokio::join!(follow, lose);
        result.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "returned after the grace, not never"
        );
        assert!(!is_leader.load(Ordering::SeqCst));
    }
}
