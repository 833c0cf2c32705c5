//! `prescient demo`: the embedded default. A bundled real trace (NASA-HTTP, July 1995, with the STS-70
//! launch flash crowd on 13 July) drives two simulated clusters in accelerated virtual time through the
//! real reconcile loop ([`reconcile::sync_once`]): `demo/predictive` (Prescient) and `demo/reactive` (the
//! same loop with no forecast, i.e. the HPA rule), with the dashboard live at a printed 127.0.0.1 URL.
//! No cluster, no Prometheus, no files needed. `--duration` or Ctrl-C ends it with a summary.

use std::{path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;

use crate::{
    commands::print_stdout,
    crd::{
        ForecastSpec, MetricSpec, Mode, PredictiveAutoscalerSpec, PredictiveAutoscalerStatus, ScaleTargetRef,
    },
    dashboard::{self, DashboardArgs, DashboardStore, api::TallyView},
    duration::{HumanDuration, format_duration, rfc3339},
    edges::{
        Clock, ManualClock, TargetRef,
        sim::{CompletedSteps, SimTarget},
        trace::{TraceSource, median_step, parse_trace, read_trace},
    },
    metrics::Metrics,
    reconcile::{Autoscaler, sync_once},
    sim::{ClusterConfig, SimCluster},
    spec::ScalingSpec,
    status::status_from_report,
};

/// The bundled trace: requests per minute to NASA's Kennedy Space Center web server, July 1995.
pub const BUNDLED_TRACE: &str = include_str!("../../../data/traces/nasa-http-jul1995-1min.csv");
/// Where the bundled replay starts: 12 days of history behind it, and the STS-70 launch crowd
/// (13 July 1995, about 13:40 UTC) a few virtual hours ahead.
pub const BUNDLED_START: &str = "1995-07-13T08:00:00Z";
/// Namespace of the demo's autoscalers.
pub const NAMESPACE: &str = "demo";

/// Arguments of `prescient demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// Trace to replay (CSV `timestamp,value`); default: the bundled NASA-HTTP July 1995 trace.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Virtual seconds per real second (default: a 30 s sync every 0.1 s, so a day plays in under 5 minutes).
    #[arg(long, default_value_t = 300.0)]
    pub speed: f64,
    /// Real time after which the demo stops and prints its summary (default: until the trace ends or Ctrl-C).
    #[arg(long)]
    pub duration: Option<HumanDuration>,
    /// Demand one ready replica serves, in the trace's unit per step (default: a quarter of the median).
    #[arg(long)]
    pub capacity_per_replica: Option<f64>,
    /// Pod start-up delay of the simulated clusters.
    #[arg(long, default_value = "2m")]
    pub startup_delay: HumanDuration,
}

/// One autoscaler with its own simulated cluster.
struct Lane {
    name: &'static str,
    resource: PredictiveAutoscalerSpec,
    autoscaler: Autoscaler,
    cluster: SimTarget,
    status: PredictiveAutoscalerStatus,
    /// What the page and the end summary show: the same type the dashboard API serves.
    tally: TallyView,
}

/// The resource of one lane; both lanes have the same, the reactive one only turns its forecast off
/// (see `Lane::new`).
fn lane_resource(name: &str, target_per_replica: f64, step: &str) -> PredictiveAutoscalerSpec {
    let step_seconds = crate::duration::parse_duration(step).map_or(60, |d| d.as_secs());
    PredictiveAutoscalerSpec {
        scale_target_ref: ScaleTargetRef {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            name: name.to_owned(),
        },
        min_replicas: 1,
        max_replicas: 500,
        metric: MetricSpec {
            query: "trace: requests per step".to_owned(),
            target_per_replica,
        },
        forecast: ForecastSpec {
            history: "7d".to_owned(),
            step: step.to_owned(),
            horizon: format_duration(Duration::from_secs((30 * 60u64).max(10 * step_seconds))),
            ..ForecastSpec::default()
        },
        behavior: None,
        mode: Mode::Scale,
        sync_period: "30s".to_owned(),
        slo: None,
    }
}

impl Lane {
    fn new(
        name: &'static str,
        resource: PredictiveAutoscalerSpec,
        predictive: bool,
        cluster: SimCluster,
    ) -> anyhow::Result<Self> {
        let mut spec =
            ScalingSpec::from_resource(&resource).with_context(|| format!("demo autoscaler {name}"))?;
        // The reactive lane runs the same loop with the forecast off: the HPA rule decides alone.
        spec.forecast_enabled = predictive;
        let target = TargetRef {
            namespace: NAMESPACE.to_owned(),
            api_version: resource.scale_target_ref.api_version.clone(),
            kind: resource.scale_target_ref.kind.clone(),
            name: name.to_owned(),
        };
        let autoscaler = Autoscaler::new(spec, resource.metric.query.clone(), target);
        Ok(Self {
            name,
            resource,
            autoscaler,
            cluster: SimTarget::new(cluster),
            status: PredictiveAutoscalerStatus::default(),
            tally: TallyView::default(),
        })
    }

    /// One sync at `now`, then the tally of the interval `[now, now + sync)` it governs.
    async fn step(
        &mut self,
        now: i64,
        sync_seconds: i64,
        source: &CompletedSteps,
        demand_now: f64,
        sinks: &Sinks,
    ) {
        self.cluster.with(|c| c.advance_to(now));
        let report = sync_once(&mut self.autoscaler, source, &self.cluster, now).await;
        let (billed, capacity, events) = self
            .cluster
            .with(|c| (c.billed_replicas(), c.capacity(), c.scale_events()));
        let minutes = sync_seconds as f64 / 60.0;
        if demand_now.is_finite() && demand_now > capacity {
            self.tally.underprovisioned_minutes += minutes;
        }
        self.tally.replica_minutes += f64::from(billed) * minutes;
        self.tally.scale_events = events;
        self.tally.syncs += 1;

        // The same status builder as the operator's, so the demo's conditions read as a cluster's would.
        self.status = status_from_report(&report, &self.status, Some(1), self.resource.mode);
        sinks.metrics.observe_sync(NAMESPACE, self.name, &report);
        sinks.store.record(
            NAMESPACE,
            self.name,
            &self.resource,
            &self.status,
            &self.autoscaler,
            &report,
        );
        sinks.store.record_tally(NAMESPACE, self.name, self.tally);
    }
}

/// Where each sync is reported: the dashboard store and the Prometheus gauges, as in the operator.
struct Sinks {
    store: DashboardStore,
    metrics: Arc<Metrics>,
}

/// The replay's trace, start time and step.
struct Replay {
    source: TraceSource,
    step_seconds: i64,
    start: i64,
    end: i64,
    median: f64,
}

fn load_replay(trace: Option<&PathBuf>) -> anyhow::Result<Replay> {
    let (points, bundled) = match trace {
        Some(path) => (
            read_trace(path).with_context(|| format!("reading {}", path.display()))?,
            false,
        ),
        None => (
            parse_trace(BUNDLED_TRACE).context("parsing the bundled trace")?,
            true,
        ),
    };
    let source = TraceSource::new(points);
    let points = source.points();
    let (Some(&(first, _)), Some(&(last, _))) = (points.first(), points.last()) else {
        anyhow::bail!("the trace has no points");
    };
    let step_seconds = median_step(points).unwrap_or(60).max(1);
    let mut values: Vec<f64> = points.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    values.sort_by(f64::total_cmp);
    let median = values.get(values.len() / 2).copied().unwrap_or(1.0);
    let start = if bundled {
        BUNDLED_START
            .parse::<jiff::Timestamp>()
            .context("bundled start time")?
            .as_second()
    } else {
        // A week of history behind the start (what Prometheus would hold), or half of a shorter trace.
        first + (7 * 86_400).min((last - first) / 2)
    };
    let start = start.div_euclid(step_seconds) * step_seconds;
    Ok(Replay {
        source,
        step_seconds,
        start,
        end: last + step_seconds,
        median,
    })
}

fn round_significant(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(digits - 1 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

/// Prints the summary table.
fn print_summary(lanes: &[Lane], start: i64, now: i64) -> anyhow::Result<()> {
    print_stdout("\n")?;
    print_stdout(&format!(
        "Summary: {} of virtual time ({} → {}), {} syncs per autoscaler\n",
        format_duration(Duration::from_secs((now - start).max(0) as u64)),
        rfc3339(start),
        rfc3339(now),
        lanes.first().map_or(0, |l| l.tally.syncs)
    ))?;
    print_stdout(&format!(
        "  {:<18} {:>26} {:>16} {:>13}\n",
        "autoscaler", "underprovisioned_minutes", "replica_minutes", "scale_events"
    ))?;
    for lane in lanes {
        print_stdout(&format!(
            "  {:<18} {:>26.1} {:>16.1} {:>13}\n",
            format!("{NAMESPACE}/{}", lane.name),
            lane.tally.underprovisioned_minutes,
            lane.tally.replica_minutes,
            lane.tally.scale_events
        ))?;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number, got {}", args.speed);
    }
    let replay = load_replay(args.trace.as_ref())?;
    let capacity_per_replica = args
        .capacity_per_replica
        .unwrap_or((replay.median / 4.0).max(1e-9));
    if !(capacity_per_replica.is_finite() && capacity_per_replica > 0.0) {
        anyhow::bail!("--capacity-per-replica must be a positive number, got {capacity_per_replica}");
    }
    // Each lane as it is meant to be configured: the HPA at 80 % of a replica's capacity, its usual
    // utilization target (its idle headroom is its safety margin); the predictive lane at what one
    // replica serves (README: "demand one replica serves within its SLO"), its safety margin being the
    // forecast quantile — planned at 80 % too, it would hold both margins at once.
    // Rounded to 4 significant digits so the spec reads like one a person wrote (8.2, not 8.200000000000001).
    let target_per_replica = round_significant(capacity_per_replica * 0.8, 4);
    let predictive_target_per_replica = round_significant(capacity_per_replica, 4);
    let step = format_duration(Duration::from_secs(replay.step_seconds as u64));
    let source = CompletedSteps {
        source: replay.source.clone(),
        step_seconds: replay.step_seconds,
    };
    let demand_at = |t: i64| {
        source
            .source
            .window(t - replay.step_seconds + 1, t)
            .last()
            .map_or(f64::NAN, |p| p.1)
    };
    let initial = demand_at(replay.start);
    let initial_replicas = if initial.is_finite() {
        ((initial / target_per_replica).ceil() as u32).clamp(1, 500)
    } else {
        1
    };
    let cluster = || {
        SimCluster::new(
            ClusterConfig::new(args.startup_delay.0, capacity_per_replica),
            initial_replicas,
            replay.start,
        )
    };
    let mut lanes = vec![
        Lane::new(
            "predictive",
            lane_resource("predictive", predictive_target_per_replica, &step),
            true,
            cluster(),
        )?,
        Lane::new(
            "reactive",
            lane_resource("reactive", target_per_replica, &step),
            false,
            cluster(),
        )?,
    ];
    let sync_seconds = i64::try_from(lanes[0].autoscaler.spec.sync_period.as_secs())
        .unwrap_or(30)
        .max(1);

    let sinks = Sinks {
        store: DashboardStore::default(),
        metrics: Arc::new(Metrics::new()),
    };
    for lane in &lanes {
        let spec = &lane.autoscaler.spec;
        sinks
            .metrics
            .set_settings(NAMESPACE, lane.name, spec.lead_time, spec.quantile);
    }
    let renderer: dashboard::MetricsRenderer = {
        let metrics = Arc::clone(&sinks.metrics);
        Arc::new(move || metrics.encode())
    };
    let app = dashboard::router_with_metrics(
        sinks.store.clone(),
        args.dashboard.dashboard_token.clone(),
        Some(renderer),
    );
    let server = dashboard::serve(args.dashboard.dashboard_addr, app).await?;
    // Ctrl-C and SIGTERM stop the replay with its summary, from the moment the dashboard is announced.
    let interrupted = super::shutdown_signal();
    print_stdout(&format!("Dashboard: {}\n", server.url()))?;
    print_stdout(&format!(
        "Replaying {} from {} at {}x ({} virtual per sync); capacity {:.2} per replica, start-up {}\n",
        args.trace.as_ref().map_or_else(
            || "the bundled NASA-HTTP July 1995 trace".to_owned(),
            |p| p.display().to_string()
        ),
        rfc3339(replay.start),
        args.speed,
        format_duration(Duration::from_secs(sync_seconds as u64)),
        capacity_per_replica,
        args.startup_delay
    ))?;
    use std::io::Write as _;
    std::io::stdout().flush().ok();

    let clock = ManualClock::new(replay.start);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(sync_seconds as f64 / args.speed));
    // A slow refit delays virtual time instead of skipping syncs: every sync runs, in order.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop: Pin<Box<dyn std::future::Future<Output = &'static str> + Send>> = match args.duration {
        Some(d) => Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep(d.0) => "duration reached",
                () = interrupted => "interrupted",
            }
        }),
        None => Box::pin(async {
            interrupted.await;
            "interrupted"
        }),
    };
    let why = loop {
        let now = clock.now();
        if now >= replay.end {
            break "end of trace";
        }
        let demand_now = demand_at(now);
        let work = async {
            ticker.tick().await;
            for lane in &mut lanes {
                lane.step(now, sync_seconds, &source, demand_now, &sinks).await;
            }
        };
        tokio::select! {
            why = &mut stop => break why,
            () = work => clock.advance(sync_seconds),
        }
    };
    print_stdout(&format!("Demo stopped: {why}.\n"))?;
    let printed = print_summary(&lanes, replay.start, clock.now());
    server.task.abort();
    printed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bundled_trace_parses_and_starts_before_the_launch_crowd() {
        let replay = load_replay(None).unwrap();
        assert_eq!(replay.step_seconds, 60);
        let first = replay.source.points()[0].0;
        assert!(
            replay.start - first >= 7 * 86_400,
            "a week of history behind the start"
        );
        // The flash crowd is ahead: the trace's peak comes after the start, within a virtual day.
        let peak = replay
            .source
            .points()
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert!(
            peak > replay.start && peak < replay.start + 86_400,
            "peak at {peak}"
        );
    }

    #[test]
    fn reactive_lane_runs_without_a_forecast() {
        let cluster = SimCluster::new(ClusterConfig::new(Duration::from_secs(120), 8.0), 1, 0);
        let reactive = Lane::new(
            "reactive",
            lane_resource("reactive", 8.0, "1m"),
            false,
            cluster.clone(),
        )
        .unwrap();
        assert!(!reactive.autoscaler.spec.forecast_enabled);
        let predictive = Lane::new(
            "predictive",
            lane_resource("predictive", 8.0, "1m"),
            true,
            cluster,
        )
        .unwrap();
        assert!(predictive.autoscaler.spec.forecast_enabled);
        assert_eq!(
            predictive.autoscaler.spec.history,
            Duration::from_secs(7 * 86_400)
        );
    }

    #[test]
    fn rounds_to_significant_digits() {
        assert_eq!(round_significant(10.25 * 0.8, 4), 8.2);
        assert_eq!(round_significant(0.012345, 2), 0.012);
        assert_eq!(round_significant(123456.0, 3), 123000.0);
    }
}
