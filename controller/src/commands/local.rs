//! `prescient local`: a live local run with nothing faked but the clock's speed. It starts a real
//! Prometheus (temp dir, free 127.0.0.1 port) that discovers `sample-app` replicas through a
//! `file_sd_configs` targets file, a [`ProcessPool`] of those replicas, `loadgen` replaying a trace, and
//! the controller loop ([`reconcile::sync_once`] with [`PrometheusSource`] and the pool), printing every
//! decision. Everything it started is stopped on exit, on `--duration`, at the end of the trace and on
//! Ctrl-C.
//!
//! **Compressed time.** At `--speed S`, S trace seconds pass per wall second while rates per second are
//! kept (see `loadgen`). The controller runs on wall time, so its spec is in wall units: a trace with
//! 1-minute rows at `--speed 30` yields one row per 2 s, so `--step 2s` sees each row once; a trace day
//! lasts `86400 / S` wall seconds, which is the season the forecaster must find in steps of `--step`;
//! `--lead-time` is the replicas' real (wall) start-up delay plus margin.
//!
//! **History on day one.** With `--backfill`, the part of the trace before `--start-at` is written into
//! Prometheus' TSDB (with `promtool`) as the `http_requests_total` counter it would have scraped, laid out
//! on the same compressed clock and ending when the run starts, so the forecaster sees past "days" from
//! its first sync, as it would with a service's real Prometheus history.
//!
//! This module only wires: the processes it starts are managed by [`crate::edges::local`] (Prometheus,
//! backfill, `loadgen`) and [`crate::edges::process_pool`] (the replicas).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use prescient_model::ModelChoice;

use crate::{
    commands::print_stdout,
    crd::{Mode, PredictiveAutoscalerStatus},
    duration::{HumanDuration, format_duration, format_millis},
    edges::{
        TargetRef,
        local::{BackfillLayout, Loadgen, LoadgenConfig, LocalPrometheus, backfill},
        process_pool::{PoolConfig, ProcessPool},
        prometheus::{PrometheusOptions, PrometheusSource},
        trace::read_trace,
    },
    reconcile::{Autoscaler, SyncReport, sync_once},
    spec::{ScalingBehavior, ScalingSpec, parse_model_choice},
    status::status_from_report,
};

/// Arguments of `prescient local`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace CSV (`timestamp,value`, value = requests in the interval) for `loadgen` to replay; without
    /// it no load is generated.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Trace seconds per wall second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Multiplies the trace's rates.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Trace time (from its first row) at which the live replay starts, e.g. `6h`.
    #[arg(long, default_value = "0s")]
    pub start_at: HumanDuration,
    /// Write the trace before `--start-at` into Prometheus as history (compressed like the replay).
    #[arg(long)]
    pub backfill: bool,
    /// Stop after this much wall time (default: when the trace ends, or Ctrl-C).
    #[arg(long)]
    pub duration: Option<HumanDuration>,
    /// Folder for Prometheus' data, the pool's files and logs (kept); default: a temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object per line (events `started`, `sync`, `summary`) instead of text.
    #[arg(long)]
    pub json: bool,

    /// The `sample-app` binary (default: beside this executable).
    #[arg(long)]
    pub sample_app: Option<PathBuf>,
    /// The `loadgen` binary (default: beside this executable).
    #[arg(long)]
    pub loadgen: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/prometheus")]
    pub prometheus: PathBuf,
    #[arg(long, default_value = "/usr/bin/promtool")]
    pub promtool: PathBuf,
    /// Prometheus' scrape interval (wall).
    #[arg(long, default_value = "1s")]
    pub scrape_interval: HumanDuration,

    /// Replicas at start.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    #[arg(long, default_value_t = 1)]
    pub min_replicas: u32,
    #[arg(long, default_value_t = 8)]
    pub max_replicas: u32,
    /// Demand (requests per second) one replica serves within its SLO.
    #[arg(long, default_value_t = 100.0)]
    pub target_per_replica: f64,
    /// The demand query.
    #[arg(
        long,
        default_value = "sum(rate(http_requests_total{job=\"sample-app\"}[10s]))"
    )]
    pub query: String,
    /// Forecast step (wall time).
    #[arg(long, default_value = "2s")]
    pub step: HumanDuration,
    #[arg(long, default_value = "30m")]
    pub history: HumanDuration,
    #[arg(long, default_value = "1m")]
    pub horizon: HumanDuration,
    /// Replica start-up plus margin (wall time).
    #[arg(long, default_value = "10s")]
    pub lead_time: HumanDuration,
    #[arg(long, default_value = "2s")]
    pub sync_period: HumanDuration,
    #[arg(long, default_value = "1m")]
    pub refit_interval: HumanDuration,
    /// `auto` or a model name.
    #[arg(long, default_value = "auto")]
    pub model: String,
    #[arg(long, default_value_t = 0.9)]
    pub quantile: f64,
    /// Decide and print, never scale.
    #[arg(long)]
    pub forecast_only: bool,

    /// Replicas' start-up delay before /readyz turns ready.
    #[arg(long, default_value = "5s")]
    pub startup_delay: HumanDuration,
    /// Replicas' concurrency limit.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Replicas' CPU work per request, microseconds.
    #[arg(long, default_value_t = 200)]
    pub work_us: u64,
    /// Replicas' wait per request (downstream call), microseconds.
    #[arg(long, default_value_t = 20_000)]
    pub io_wait_us: u64,
    /// Replicas' longest queueing before 503.
    #[arg(long, default_value = "250ms")]
    pub queue_timeout: HumanDuration,
}

fn sibling_binary(explicit: Option<&PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .parent()
            .map(|dir| dir.join(name))
            .context("executable has no parent folder")?,
    };
    if !path.is_file() {
        bail!(
            "{name} binary not found at {} (build it with `cargo build -p sample-app`)",
            path.display()
        );
    }
    Ok(path)
}

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_duration().as_secs_f64()
}

/// Everything the run started beside the pool; stopped at the end of [`run_in`], killed on drop
/// otherwise.
struct Running {
    prometheus: LocalPrometheus,
    loadgen: Option<Loadgen>,
}

fn spec_from_args(args: &Args) -> anyhow::Result<ScalingSpec> {
    let model: ModelChoice = parse_model_choice(&args.model).map_err(anyhow::Error::msg)?;
    if args.min_replicas > args.max_replicas || args.max_replicas == 0 {
        bail!("need 0 <= --min-replicas <= --max-replicas and --max-replicas >= 1");
    }
    if !(args.target_per_replica.is_finite() && args.target_per_replica > 0.0) {
        bail!(
            "--target-per-replica must be positive, got {}",
            args.target_per_replica
        );
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be positive, got {}", args.speed);
    }
    if !(args.quantile > 0.0 && args.quantile < 1.0) {
        bail!("--quantile must be in (0, 1), got {}", args.quantile);
    }
    Ok(ScalingSpec {
        min_replicas: args.min_replicas,
        max_replicas: args.max_replicas,
        target_per_replica: args.target_per_replica,
        history: args.history.0,
        step: args.step.0,
        horizon: args.horizon.0,
        lead_time: args.lead_time.0,
        model,
        quantile: args.quantile,
        refit_interval: args.refit_interval.0,
        sync_period: args.sync_period.0,
        behavior: ScalingBehavior::default(),
        scale_enabled: !args.forecast_only,
        forecast_enabled: true,
        max_underprovisioned_fraction: None,
    })
}

/// One sync as a JSON event; `conditions` are those of [`status_from_report`], as the operator would write
/// them.
fn sync_event(
    report: &SyncReport,
    status: &PredictiveAutoscalerStatus,
    trace_offset: f64,
    pool: &ProcessPool,
) -> serde_json::Value {
    let outcome = &report.outcome;
    let decision = &outcome.decision;
    let state = pool.state();
    serde_json::json!({
        "event": "sync",
        "now": report.now,
        "trace_offset_seconds": trace_offset,
        "replicas_before": report.replicas_before.map(|r| serde_json::json!({"desired": r.desired, "ready": r.ready})),
        "desired": decision.desired_replicas,
        "running": state.desired,
        "ready": state.ready,
        "scaled_to": report.scaled_to,
        "reason": decision.reason.as_str(),
        "message": decision.message,
        "predictive_replicas": decision.predictive_replicas,
        "reactive_replicas": decision.reactive_replicas,
        "demand_at_lead_time": decision.demand_at_lead_time,
        "observed_demand": outcome.observed_demand,
        "health": outcome.health.reason(),
        "health_message": outcome.health.message(),
        "model": outcome.model.as_ref().map(|m| m.name.clone()),
        "refitted": outcome.refitted,
        "fetched_points": report.fetched_points,
        "metrics_error": report.metrics_error.as_ref().map(|e| e.to_string()),
        "scale_error": report.scale_error.as_ref().map(|e| e.to_string()),
        "pids": pool.pids(),
        "conditions": status.conditions,
    })
}

fn print_sync(json: bool, event: &serde_json::Value) -> anyhow::Result<()> {
    if json {
        return print_stdout(&format!("{event}\n"));
    }
    let num = |k: &str| event[k].as_f64().map_or("-".to_owned(), |v| format!("{v:.1}"));
    print_stdout(&format!(
        "trace +{} | demand {} req/s, at lead time {} | replicas {} running, {} ready -> {} ({}) {}{}\n",
        format_duration(Duration::from_secs(
            event["trace_offset_seconds"].as_f64().unwrap_or(0.0).max(0.0) as u64
        )),
        num("observed_demand"),
        num("demand_at_lead_time"),
        event["running"],
        event["ready"],
        event["desired"],
        event["reason"].as_str().unwrap_or(""),
        event["message"].as_str().unwrap_or(""),
        if event["health"] == "Healthy" {
            String::new()
        } else {
            format!(" [{}]", event["health_message"].as_str().unwrap_or(""))
        },
    ))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let spec = spec_from_args(&args)?;
    let sample_app = sibling_binary(args.sample_app.as_ref(), "sample-app")?;
    let loadgen_bin = match &args.trace {
        Some(_) => Some(sibling_binary(args.loadgen.as_ref(), "loadgen")?),
        None => None,
    };
    let trace_points = match &args.trace {
        Some(path) => Some(read_trace(path).with_context(|| format!("trace {}", path.display()))?),
        None => None,
    };
    // A temporary folder unless the user wants to keep one.
    let temp = match &args.dir {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let dir = match (&args.dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.clone(),
        (None, None) => bail!("no working folder"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(&args, spec, &dir, sample_app, loadgen_bin, trace_points).await;
    if let Some(temp) = temp {
        let _ = std::fs::remove_dir_all(temp);
    }
    result
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "prescient-local-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn run_in(
    args: &Args,
    spec: ScalingSpec,
    dir: &Path,
    sample_app: PathBuf,
    loadgen_bin: Option<PathBuf>,
    trace_points: Option<Vec<(i64, f64)>>,
) -> anyhow::Result<()> {
    // 1. The pool, with its initial replicas ready before anything else starts (a slow start-up
    //    must not leave a hole in the history between the backfill and the live replay).
    let mut pool_config = PoolConfig::new(sample_app, dir.join("pool"));
    pool_config.max_replicas = args.max_replicas.max(args.replicas);
    pool_config.args = vec![
        "--startup-delay".into(),
        format_millis(args.startup_delay.0),
        "--concurrency".into(),
        args.concurrency.to_string(),
        "--work-us".into(),
        args.work_us.to_string(),
        "--io-wait-us".into(),
        args.io_wait_us.to_string(),
        "--queue-timeout".into(),
        format_millis(args.queue_timeout.0),
    ];
    let pool = ProcessPool::new(pool_config.clone())?;
    pool.scale_to(args.replicas).await?;
    let ready_deadline = tokio::time::Instant::now() + args.startup_delay.0 + Duration::from_secs(15);
    while pool.state().ready < args.replicas {
        if tokio::time::Instant::now() > ready_deadline {
            pool.shutdown().await;
            bail!(
                "initial replicas not ready in time; see the logs in {}",
                dir.join("pool").display()
            );
        }
        pool.refresh().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 2. History: the trace before --start-at, as Prometheus would have scraped it, written before
    //    Prometheus starts so the blocks are loaded at start-up.
    let origin_end = unix_now();
    if args.backfill {
        let (Some(points), true) = (&trace_points, args.promtool.is_file()) else {
            pool.shutdown().await;
            bail!(
                "--backfill needs --trace and promtool at {}",
                args.promtool.display()
            );
        };
        let layout = BackfillLayout {
            start_at: args.start_at.0,
            speed: args.speed,
            scale: args.scale,
            scrape_interval: args.scrape_interval.0,
            history: spec.history,
        };
        if let Err(error) = backfill(&args.promtool, &layout, points, origin_end, dir).await {
            pool.shutdown().await;
            return Err(error);
        }
    }
    // Trace offset (seconds from the trace's first row) at a wall time: one mapping for backfill,
    // replay and reports.
    let start_offset = args.start_at.0.as_secs_f64();
    let speed = args.speed;
    let offset_at = move |wall: f64| start_offset + (wall - origin_end) * speed;

    // 3. Prometheus.
    let prometheus = match LocalPrometheus::start(
        &args.prometheus,
        dir,
        args.scrape_interval.0,
        &pool_config.targets_file(),
    )
    .await
    {
        Ok(started) => started,
        Err(error) => {
            pool.shutdown().await;
            return Err(error);
        }
    };
    let mut running = Running {
        prometheus,
        loadgen: None,
    };
    let outcome = drive(args, spec, dir, &pool, &mut running, loadgen_bin, offset_at).await;

    // 5. Clean-up, whatever happened.
    if let Some(loadgen) = &mut running.loadgen {
        loadgen.stop(Duration::from_secs(5)).await;
    }
    // The reader task may still be collecting loadgen's last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    pool.shutdown().await;
    running.prometheus.stop(Duration::from_secs(5)).await;
    let loadgen_summary = running.loadgen.as_ref().and_then(Loadgen::summary);
    let summary = serde_json::json!({
        "event": "summary",
        "loadgen": loadgen_summary,
        "started_pids": pool.started_pids(),
        "error": outcome.as_ref().err().map(|e| format!("{e:#}")),
    });
    // Printed after the clean-up; a failure to print does not hide the run's own error.
    let printed = if args.json {
        print_stdout(&format!("{summary}\n"))
    } else if let Some(l) = &summary["loadgen"].as_object() {
        print_stdout(&format!(
            "loadgen: {} ok, {} errors ({:.2} %), achieved {:.1} req/s, p50 {} ms, p99 {} ms\n",
            l["ok"],
            l["errors"],
            l["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            l["achieved_rate"].as_f64().unwrap_or(0.0),
            l["latency"]["p50_ms"],
            l["latency"]["p99_ms"]
        ))
    } else {
        Ok(())
    };
    outcome.and(printed)
}

async fn drive(
    args: &Args,
    spec: ScalingSpec,
    dir: &Path,
    pool: &ProcessPool,
    running: &mut Running,
    loadgen_bin: Option<PathBuf>,
    offset_at: impl Fn(f64) -> f64,
) -> anyhow::Result<()> {
    // 4. Load and the controller loop.
    let prometheus_url = running.prometheus.url().to_owned();
    let prometheus_pid = running.prometheus.pid();
    let started_at = unix_now();
    if let (Some(binary), Some(trace)) = (loadgen_bin, &args.trace) {
        let loadgen_start = offset_at(started_at);
        let child = Loadgen::start(&LoadgenConfig {
            binary,
            trace: trace.clone(),
            endpoints_file: pool.config().endpoints_file(),
            speed: args.speed,
            scale: args.scale,
            start_offset_seconds: loadgen_start,
            duration: args.duration.map(|d| d.0),
            dir: dir.to_path_buf(),
        })?;
        let started = serde_json::json!({
            "event": "started",
            "prometheus_url": prometheus_url,
            "prometheus_pid": prometheus_pid,
            "loadgen_pid": child.pid(),
            "loadgen_start_offset_seconds": loadgen_start,
            "loadgen_started_unix": started_at,
            "speed": args.speed,
            "dir": dir.display().to_string(),
        });
        running.loadgen = Some(child);
        if args.json {
            print_stdout(&format!("{started}\n"))?;
        } else {
            print_stdout(&format!(
                "Prometheus at {prometheus_url}; files and logs in {}; replaying from trace +{}\n",
                dir.display(),
                format_duration(Duration::from_secs(loadgen_start.max(0.0) as u64))
            ))?;
        }
    } else {
        let started = serde_json::json!({
            "event": "started", "prometheus_url": prometheus_url, "prometheus_pid": prometheus_pid,
            "loadgen_pid": null, "speed": args.speed, "dir": dir.display().to_string(),
        });
        if args.json {
            print_stdout(&format!("{started}\n"))?
        } else {
            print_stdout(&format!("Prometheus at {prometheus_url}; no trace, no load\n"))?
        }
    }

    let metrics = PrometheusSource::new(&prometheus_url, PrometheusOptions::default())?;
    let target = TargetRef {
        namespace: "local".into(),
        api_version: "v1".into(),
        kind: "ProcessPool".into(),
        name: "sample-app".into(),
    };
    let mut autoscaler = Autoscaler::new(spec.clone(), args.query.clone(), target);
    let mode = if spec.scale_enabled {
        Mode::Scale
    } else {
        Mode::ForecastOnly
    };
    let mut status = PredictiveAutoscalerStatus::default();
    let end = args.duration.map(|d| tokio::time::Instant::now() + d.0);
    let mut ticker = tokio::time::interval(spec.sync_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ctrl-C or SIGTERM end the run through the clean-up below, never by leaving processes behind.
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => break,
        }
        if end.is_some_and(|end| tokio::time::Instant::now() >= end) {
            break;
        }
        if let Some(loadgen) = &mut running.loadgen
            && loadgen.has_exited()
        {
            // The trace is over.
            break;
        }
        let now = unix_now();
        let report = sync_once(&mut autoscaler, &metrics, pool, now.floor() as i64).await;
        status = status_from_report(&report, &status, None, mode);
        print_sync(args.json, &sync_event(&report, &status, offset_at(now), pool))?;
    }
    Ok(())
}
