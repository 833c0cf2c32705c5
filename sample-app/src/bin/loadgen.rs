//! `loadgen`: open-loop replay of a trace against sample-app replicas (see the crate README).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use clap::Parser;
use sample_app::{
    lifecycle::parent_gone,
    loadgen::{Arrivals, Endpoints, ReplayOptions, Stats, replay},
    trace::{RateCurve, read_trace},
};
use tokio::signal::unix::{SignalKind, signal};

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |i| (&text[..i], &text[i..]));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 90s, 15m or 2h"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s, m, h or d")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Replays a trace (`timestamp,value` CSV; value = requests in the interval) against sample-app
/// endpoints, open loop with Poisson arrivals, and reports achieved rate, latency percentiles and errors.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Trace CSV with header `timestamp,value` (unix seconds or RFC 3339).
    #[arg(long)]
    trace: PathBuf,
    /// File with one `host:port` per line, re-read when it changes (the process pool writes it).
    #[arg(long, conflicts_with = "target")]
    endpoints: Option<PathBuf>,
    /// A fixed `host:port` target (repeatable) instead of an endpoints file.
    #[arg(long)]
    target: Vec<String>,
    /// Trace seconds per wall second (time compression); rates per second are kept.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Multiplies every rate.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Trace time to start at, from the trace's first row (e.g. `3d`): earlier rows are skipped.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    start_at: Duration,
    /// Stop after this much wall time.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Per-request timeout.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// Requests outstanding at most; more are counted as dropped, never queued.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Serve the load generator's own Prometheus metrics here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write one CSV row per wall second (target rate, sent, ok, errors, latency percentiles).
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Seed of the arrival process and the request mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop (as on SIGTERM, with the report) when the process with this pid is no longer our parent:
    /// the load generator started by `prescient local` never outlives it.
    #[arg(long)]
    parent_pid: Option<u32>,
}

async fn metrics(State(stats): State<Arc<Stats>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        stats.encode_metrics(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number, got {}", args.speed);
    }
    if !(args.scale.is_finite() && args.scale >= 0.0) {
        anyhow::bail!("--scale must be >= 0, got {}", args.scale);
    }
    let rows = read_trace(&args.trace)?;
    let curve = RateCurve::from_rows(&rows).with_context(|| format!("trace {}", args.trace.display()))?;
    let arrivals = Arrivals::new(
        curve,
        args.speed,
        args.scale,
        args.start_at.as_secs_f64(),
        args.seed,
    );
    tracing::info!(
        wall_seconds = arrivals.wall_duration(),
        "replaying {}",
        args.trace.display()
    );

    let endpoints = Arc::new(Endpoints::new(args.target.clone()));
    if let Some(path) = &args.endpoints {
        tokio::spawn(endpoints.clone().watch(path.clone(), Duration::from_millis(200)));
    } else if args.target.is_empty() {
        anyhow::bail!("give --endpoints FILE or at least one --target HOST:PORT");
    }

    let stats = Arc::new(Stats::new());
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(stats.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let parent_pid = args.parent_pid;
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
            () = parent_gone(parent_pid) => tracing::warn!(?parent_pid, "parent process is gone"),
        }
    };
    let options = ReplayOptions {
        timeout: args.timeout,
        max_in_flight: args.max_in_flight,
        duration: args.duration,
        seed: args.seed,
    };
    let elapsed = replay(arrivals, endpoints, stats.clone(), &options, stop).await?;
    let summary = stats.summary(0, usize::MAX, elapsed);
    if let Some(path) = &args.timeline {
        std::fs::write(path, stats.timeline_csv())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.human());
    }
    Ok(())
}
