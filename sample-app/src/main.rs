//! `sample-app`: one replica of the shop backend Prescient scales (see the crate README).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use sample_app::{
    lifecycle::parent_gone,
    server::{AppState, Capacity, router},
};
use tokio::signal::unix::{SignalKind, signal};

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |i| (&text[..i], &text[i..]));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 5s or 1m"))?;
    let seconds = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use us, ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// One replica of the sample shop backend: GET /catalogue, POST /cart, POST /checkout, with a real
/// capacity (concurrency limit, bounded queue, CPU work per request), Prometheus metrics on /metrics,
/// /healthz and /readyz (ready after --startup-delay).
#[derive(Debug, Parser)]
#[command(name = "sample-app", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on stdout as
    /// `listening on HOST:PORT`.
    #[arg(long, env = "SAMPLE_APP_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Requests served at the same time.
    #[arg(long, env = "SAMPLE_APP_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// Requests allowed to wait for a free slot (beyond: 503 at once).
    #[arg(long, env = "SAMPLE_APP_MAX_QUEUE", default_value_t = 64)]
    max_queue: usize,
    /// Longest wait for a free slot before answering 503.
    #[arg(long, env = "SAMPLE_APP_QUEUE_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    queue_timeout: Duration,
    /// CPU time burnt per request, in microseconds (busy loop on a blocking thread).
    #[arg(long, env = "SAMPLE_APP_WORK_US", default_value_t = 2000)]
    work_us: u64,
    /// Time per request spent waiting on a (simulated) downstream call, in microseconds.
    #[arg(long, env = "SAMPLE_APP_IO_WAIT_US", default_value_t = 0)]
    io_wait_us: u64,
    /// Delay after start before /readyz answers 200 (a slow-starting service).
    #[arg(long, env = "SAMPLE_APP_STARTUP_DELAY", default_value = "0s", value_parser = parse_duration)]
    startup_delay: Duration,
    /// Time in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "SAMPLE_APP_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Shut down (as on SIGTERM) when the process with this pid is no longer our parent: a replica
    /// started by `prescient local` never outlives it, even when it is killed outright.
    #[arg(long, env = "SAMPLE_APP_PARENT_PID")]
    parent_pid: Option<u32>,
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
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let capacity = Capacity {
        concurrency: args.concurrency,
        max_queue: args.max_queue,
        queue_timeout: args.queue_timeout,
        work: Duration::from_micros(args.work_us),
        io_wait: Duration::from_micros(args.io_wait_us),
    };
    let nominal = capacity.nominal_rps();
    let state = AppState::new(capacity);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // A parent (the process pool, a test) reads this line to learn the port.
    println!("listening on {addr}");
    tracing::info!(%addr, nominal_rps = nominal, startup_delay = ?args.startup_delay, "sample-app started");

    let ready_state = state.clone();
    let delay = args.startup_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        ready_state.set_ready(true);
        tracing::info!("ready");
    });

    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let (shutting_down_tx, mut shutting_down_rx) = tokio::sync::watch::channel(false);
    let shutdown_state = state.clone();
    let parent_pid = args.parent_pid;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
            () = parent_gone(parent_pid) => tracing::warn!(?parent_pid, "parent process is gone"),
        }
        // Fail readiness first so load balancers stop sending, then drain.
        shutdown_state.set_ready(false);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = shutting_down_tx.send(true);
    };
    let server = axum::serve(listener, router(Arc::clone(&state))).with_graceful_shutdown(shutdown);
    let grace = args.shutdown_grace;
    let deadline = async move {
        let _ = shutting_down_rx.wait_for(|v| *v).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("server failed")?,
        _ = deadline => tracing::warn!("grace period over; exiting with requests in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}
