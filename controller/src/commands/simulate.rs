//! `prescient simulate`: replays a demand trace through a simulated cluster under the predictive
//! (Prescient), reactive (Kubernetes HPA) and oracle policies, and reports under-provisioned minutes,
//! unserved demand, replica-minutes and scale events per policy (`--json` is a stable contract),
//! optionally with the per-step series (`--series`) and a self-contained HTML report (`--report`).

use std::{fmt::Write as _, io::Write as _, path::PathBuf, time::Instant};

use anyhow::{Context, bail};
use serde::Serialize;

mod peers;

use crate::{
    commands::{forecast::warn, print_stdout},
    core::SharedFits,
    duration::HumanDuration,
    edges::{
        progress::Reporter,
        trace::{Cleaning, read_trace, trace_series},
    },
    sim::{
        self, ClusterConfig, DemandTrace, PolicyKind, SimRun, SimSettings,
        frontier::{Frontier, FrontierPoint, frontier},
        progress::Progress,
        report,
    },
    spec::parse_model_choice,
};

/// Which policies to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyChoice {
    Predictive,
    Reactive,
    Oracle,
    /// The predictive rule fed the true future (what a perfect forecaster would buy).
    Perfect,
    /// gocrane/crane's EffectiveHPA with its DSP predictor, replayed (see `sim::crane`).
    CraneEhpa,
    /// jthomperoo's Predictive Horizontal Pod Autoscaler, replayed (see `sim::phpa`).
    Phpa,
    /// predictive, reactive and oracle; with --frontier also perfect, crane-ehpa and phpa.
    All,
}

/// Arguments of `prescient simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace CSV (`timestamp,value`).
    #[arg(long)]
    pub input: PathBuf,
    /// Demand one ready replica serves, in the trace's unit (e.g. requests per step).
    #[arg(long)]
    pub capacity_per_replica: f64,
    /// Time from asking for a pod to it serving.
    #[arg(long, allow_hyphen_values = true)]
    pub startup_delay: HumanDuration,
    /// Policies to replay (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub policy: Vec<PolicyChoice>,
    /// The reactive (HPA) target utilization: its target per replica is capacity × U (comma-separated
    /// values replay one reactive policy each). Default 0.7, or 0.5,0.6,0.7,0.8,0.9 with --frontier.
    #[arg(long, value_delimiter = ',')]
    pub target_utilization: Vec<f64>,
    /// The predictive policy's risk knob: the probability that the peak demand of each decision window
    /// is served (comma-separated values replay one each). Default 0.9, or with --frontier 25 values
    /// from 0.3 to 0.999, about evenly spaced in log(1 − q) (both ends matter: on smooth traffic even
    /// q0.99 is cheaper than the HPA at 0.7, and q0.5 can cost as much as the HPA at 0.8); then 4 beyond
    /// the highest (0.9995, 0.9998, 0.9999, 0.99999) while it is still cheaper than an HPA setting (up
    /// to 4 times, to 1 − 10⁻¹¹), and 0.2, 0.1, 0.03 when even 0.3 costs more than one; then 3 more
    /// between any two neighbours whose cost or shortfall brackets an HPA setting's.
    #[arg(long, value_delimiter = ',')]
    pub quantile: Vec<f64>,
    /// Predictive policies holding an SLO instead of a fixed quantile: the share of time short each
    /// accepts (comma-separated values replay one each, labelled `predictive@sloF`).
    #[arg(long, value_delimiter = ',')]
    pub max_underprovisioned_fraction: Vec<f64>,
    /// Utilization the predictive policy plans each replica for. Default 1: its safety margin is the
    /// forecast quantile, not idle headroom.
    #[arg(long, default_value = "1.0")]
    pub predictive_utilization: f64,
    #[arg(long, allow_hyphen_values = true, default_value = "30s")]
    pub sync_period: HumanDuration,
    /// Predictive lead time (default: start-up delay plus jitter).
    #[arg(long, allow_hyphen_values = true)]
    pub lead_time: Option<HumanDuration>,
    /// Prescient's scale-down stabilization window, as its `behavior.scaleDown.stabilizationWindowSeconds`
    /// sets it (default: what a PredictiveAutoscaler without one gets, the HPA's 300 s, or one sync
    /// period on steps of 300 s and longer; the HPA replayed beside it keeps 300 s).
    #[arg(long, allow_hyphen_values = true)]
    pub predictive_scale_down_stabilization: Option<HumanDuration>,
    /// Replay an operator restart this often (e.g. `6h`): each predictive replay starts afresh on the
    /// history then seen, warmed on its last day as the operator warms a new autoscaler, to measure
    /// what restarts, rollouts and leader failovers cost.
    #[arg(long, allow_hyphen_values = true)]
    pub restart_every: Option<HumanDuration>,
    #[arg(long, allow_hyphen_values = true, default_value = "1h")]
    pub refit_interval: HumanDuration,
    /// `auto` or a model name (naive, seasonal_naive, holt_winters, mstl, linear, svr).
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// History window the model is fitted on.
    #[arg(long, allow_hyphen_values = true, default_value = "7d")]
    pub history: HumanDuration,
    /// Horizon the model is fitted for (default: lead time + sync period + observation lag).
    #[arg(long, allow_hyphen_values = true)]
    pub horizon: Option<HumanDuration>,
    /// Metrics count from this far into the trace (default: the history window, at most a quarter of
    /// the trace). A real deployment has that history in Prometheus on day one; a replay must grow it.
    #[arg(long, allow_hyphen_values = true)]
    pub warmup: Option<HumanDuration>,
    /// Replay only from this time (unix seconds or RFC 3339); the history before it is not used.
    #[arg(long)]
    pub from: Option<String>,
    /// Replay only until this time (unix seconds or RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Prometheus scrape interval (the observation's age).
    #[arg(long, allow_hyphen_values = true, default_value = "15s")]
    pub scrape_interval: HumanDuration,
    /// Window of the demand query's `rate()`.
    #[arg(long, allow_hyphen_values = true, default_value = "1m")]
    pub rate_window: HumanDuration,
    /// Extra start-up time per pod, uniform in [0, jitter].
    #[arg(long, allow_hyphen_values = true, default_value = "0s")]
    pub startup_jitter: HumanDuration,
    /// How long removed pods keep running (paid, not serving); 0 = immediate.
    #[arg(long, allow_hyphen_values = true, default_value = "0s")]
    pub graceful_scale_down: HumanDuration,
    #[arg(long, default_value = "0")]
    pub seed: u64,
    #[arg(long, default_value = "1")]
    pub min_replicas: u32,
    #[arg(long, default_value = "10000")]
    pub max_replicas: u32,
    /// Policies replayed in parallel (threads).
    #[arg(long, default_value = "1")]
    pub jobs: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write one row per policy and step: policy,timestamp,demand,forecast,desired_replicas,
    /// provisioned_replicas,ready_replicas.
    #[arg(long)]
    pub series: Option<PathBuf>,
    /// Write a self-contained HTML report (chart and summary table).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Replay each family over its knob (the HPA over its target utilizations, predictive over its
    /// quantile, plus the perfect forecast and the oracle) and report each family's cost/shortfall
    /// Pareto frontier and predictive against the HPA at each HPA setting's cost and shortfall.
    #[arg(long)]
    pub frontier: bool,
    #[command(flatten)]
    pub peers: peers::PeerArgs,
}

/// HPA target utilizations swept by `--frontier` unless given.
const FRONTIER_UTILIZATIONS: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];
/// Predictive quantiles swept by `--frontier` unless given: the miss rate `1 − q` falls by about a
/// sixth from one to the next, so the sweep is as fine in the tail as in the middle. The replays share
/// their fits, so a point costs a replay of the rule, not a fit.
const FRONTIER_QUANTILES: [f64; 25] = [
    0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.83, 0.86, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.975,
    0.98, 0.985, 0.99, 0.993, 0.995, 0.997, 0.999,
];

impl Args {
    fn utilizations(&self) -> Vec<f64> {
        match (self.target_utilization.is_empty(), self.frontier) {
            (false, _) => self.target_utilization.clone(),
            (true, true) => FRONTIER_UTILIZATIONS.to_vec(),
            (true, false) => vec![0.7],
        }
    }

    fn quantiles(&self) -> Vec<f64> {
        match (self.quantile.is_empty(), self.frontier) {
            (false, _) => self.quantile.clone(),
            (true, true) => FRONTIER_QUANTILES.to_vec(),
            (true, false) => vec![0.9],
        }
    }
}

/// One policy's line of the summary (the `--json` contract).
#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub policy: &'static str,
    /// Unique name of this run: the policy, or `policy@setting` when a policy is replayed with several.
    pub label: String,
    pub target_utilization: Option<f64>,
    pub quantile: Option<f64>,
    /// The SLO target of a `predictive@sloF` run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_underprovisioned_fraction: Option<f64>,
    /// The `marginFraction` of a `crane-ehpa@uUmM` run (absent: Crane's default estimators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_fraction: Option<f64>,
    pub underprovisioned_minutes: f64,
    pub unserved_fraction: f64,
    pub replica_minutes: f64,
    pub scale_events: u64,
    pub peak_replicas: u32,
    pub refits: usize,
    pub fit_seconds_total: f64,
    pub model: Option<String>,
    /// Syncs per forecast health reason (predictive only).
    pub health: std::collections::BTreeMap<String, usize>,
    pub wall_seconds: f64,
}

/// The whole summary (the `--json` contract).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub input: String,
    pub step_seconds: i64,
    pub points: usize,
    pub capacity_per_replica: f64,
    pub startup_delay_seconds: u64,
    pub sync_period_seconds: u64,
    pub lead_time_seconds: u64,
    pub evaluated_from: i64,
    pub evaluated_until: i64,
    pub evaluated_minutes: f64,
    /// How many trace rows each cleaning rule touched.
    pub cleaning: Cleaning,
    pub policies: Vec<PolicySummary>,
    /// With `--frontier`: each family's points and Pareto frontier, and predictive against the HPA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontier: Option<Frontier>,
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return Ok(seconds);
    }
    let t: jiff::Timestamp = text
        .trim()
        .parse()
        .with_context(|| format!("{text:?} is neither unix seconds nor RFC 3339"))?;
    Ok(t.as_second())
}

/// The policy runs the arguments ask for, in a stable order.
fn policy_kinds(args: &Args) -> anyhow::Result<Vec<PolicyKind>> {
    // `all` is predictive, reactive and oracle; with --frontier the perfect forecast too.
    let frontier_only = [PolicyChoice::Perfect, PolicyChoice::CraneEhpa, PolicyChoice::Phpa];
    let wants = |p: PolicyChoice| {
        args.policy.contains(&p)
            || ((!frontier_only.contains(&p) || args.frontier) && args.policy.contains(&PolicyChoice::All))
    };
    let (utilizations, quantiles) = (args.utilizations(), args.quantiles());
    if let Some(restart) = &args.restart_every
        && restart.0 < args.sync_period.0
    {
        bail!(
            "--restart-every must be at least the sync period ({}), got {}",
            args.sync_period,
            restart
        );
    }
    for u in utilizations.iter().chain([&args.predictive_utilization]) {
        if !(*u > 0.0 && *u <= 1.0) {
            bail!("target utilization must be in (0, 1], got {u}");
        }
    }
    for q in &quantiles {
        if !(*q > 0.0 && *q < 1.0) {
            bail!("--quantile must be in (0, 1), got {q}");
        }
    }
    for f in &args.max_underprovisioned_fraction {
        if !(*f > 0.0 && *f < 1.0) {
            bail!("--max-underprovisioned-fraction must be in (0, 1), got {f}");
        }
    }
    let mut kinds = Vec::new();
    if wants(PolicyChoice::Reactive) {
        kinds.extend(
            utilizations
                .iter()
                .map(|u| PolicyKind::Reactive { utilization: *u }),
        );
    }
    if wants(PolicyChoice::Predictive) {
        kinds.extend(quantiles.iter().map(|q| PolicyKind::Predictive {
            quantile: *q,
            utilization: args.predictive_utilization,
        }));
        kinds.extend(
            args.max_underprovisioned_fraction
                .iter()
                .map(|f| PolicyKind::PredictiveSlo {
                    max_underprovisioned_fraction: *f,
                    utilization: args.predictive_utilization,
                }),
        );
    }
    if wants(PolicyChoice::CraneEhpa) {
        let margins = args.peers.crane_margins(args.frontier)?;
        for u in &utilizations {
            kinds.extend(margins.iter().map(|m| PolicyKind::CraneEhpa {
                utilization: *u,
                margin_fraction: *m,
            }));
        }
    }
    if wants(PolicyChoice::Phpa) {
        kinds.extend(utilizations.iter().map(|u| PolicyKind::Phpa { utilization: *u }));
    }
    if wants(PolicyChoice::Perfect) {
        kinds.push(PolicyKind::PerfectForecast {
            utilization: args.predictive_utilization,
        });
    }
    if wants(PolicyChoice::Oracle) {
        kinds.push(PolicyKind::Oracle);
    }
    Ok(kinds)
}

/// Labels: the plain policy name unless the same policy runs with several settings.
fn labels(kinds: &[PolicyKind]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            let same = kinds.iter().filter(|o| o.name() == k.name()).count();
            if same > 1 { k.label() } else { k.name().to_owned() }
        })
        .collect()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The replay is CPU-bound and synchronous: keep it off the async executor.
    tokio::task::spawn_blocking(move || run_blocking(&args))
        .await
        .context("simulation task failed")?
}

fn run_blocking(args: &Args) -> anyhow::Result<()> {
    let model = parse_model_choice(&args.model).map_err(anyhow::Error::msg)?;
    if !(args.capacity_per_replica.is_finite() && args.capacity_per_replica > 0.0) {
        bail!(
            "--capacity-per-replica must be a positive number, got {}",
            args.capacity_per_replica
        );
    }
    let mut points = read_trace(&args.input)?;
    if let Some(from) = &args.from {
        let from = parse_time(from)?;
        points.retain(|(t, _)| *t >= from);
    }
    if let Some(until) = &args.until {
        let until = parse_time(until)?;
        points.retain(|(t, _)| *t <= until);
    }
    if points.is_empty() {
        bail!(
            "no trace points in the selected window of {}",
            args.input.display()
        );
    }
    let series =
        trace_series(&points).with_context(|| format!("putting {} on a grid", args.input.display()))?;
    let cleaning = Cleaning::of(&points, &series);
    warn(cleaning.note());
    // The replay needs only the trace on its grid: the rows as read go before it is built.
    drop(points);
    let trace = DemandTrace::new(&series)?;
    drop(series);
    let mut kinds = policy_kinds(args)?;
    if kinds.is_empty() {
        bail!("no policy selected");
    }

    let cluster = ClusterConfig {
        startup_delay: args.startup_delay.0,
        capacity_per_replica: args.capacity_per_replica,
        startup_jitter: args.startup_jitter.0,
        graceful_scale_down: args.graceful_scale_down.0,
        seed: args.seed,
    };
    let mut settings = SimSettings::new(cluster);
    settings.sync_period = args.sync_period.0;
    settings.scrape_interval = args.scrape_interval.0;
    settings.rate_window = args.rate_window.0;
    settings.min_replicas = args.min_replicas;
    settings.max_replicas = args.max_replicas;
    settings.history = args.history.0;
    settings.refit_interval = args.refit_interval.0;
    settings.model = model;
    settings.horizon = args.horizon.map(|h| h.0);
    settings.lead_time = args.lead_time.map(|l| l.0);
    settings.predictive_scale_down_stabilization = args.predictive_scale_down_stabilization.map(|w| w.0);
    settings.restart_every = args.restart_every.map(|r| r.0);
    args.peers.apply(&mut settings)?;
    let span = std::time::Duration::from_secs(u64::try_from(trace.end() - trace.start()).unwrap_or(0));
    settings.warmup = match args.warmup {
        Some(w) => w.0,
        None => settings.history.min(span / 4),
    };

    // Per-tick rows only when written out: on a long trace they were most of the memory.
    settings.keep_rows = args.series.is_some() || args.report.is_some();
    let progress = Progress::default();
    settings.progress = Some(progress.clone());

    let span_seconds = u64::try_from(trace.end() - trace.start()).unwrap_or(0);
    let extended_sweep = args.frontier && args.quantile.is_empty();
    // Predictive replays differ only in quantile or utilization: they share their fits. A sweep's later
    // rounds replay the same fits as its first, so there every fit is kept for the whole sweep; else it is
    // dropped once every replay took it. A restarted core refits on its own schedule: shared, its fits
    // would wait for takers forever.
    let predictive = kinds.iter().filter(|k| k.name() == "predictive").count();
    let shared_fits = if settings.restart_every.is_some() {
        None
    } else if extended_sweep {
        Some(SharedFits::retained())
    } else {
        (predictive > 1).then(|| SharedFits::new(predictive))
    };
    let replay = |kinds: &[PolicyKind]| {
        let reporter = Reporter::start(
            format!("{} policy replay(s)", kinds.len()),
            span_seconds.saturating_mul(kinds.len() as u64),
            progress.clone(),
        );
        let runs = run_all(&trace, &settings, kinds, args.jobs.max(1), shared_fits.as_ref());
        reporter.finish();
        runs
    };
    let mut runs = replay(&kinds)?;
    if extended_sweep {
        // The default sweep is fixed before anything is known of the trace: it is carried beyond its
        // ends while an HPA setting lies beyond them, then, where an HPA setting's cost or shortfall
        // falls between two of its points, the setting a user would pick lies between them.
        let rounds = std::iter::repeat_n(Refinement::Extend, MAX_EXTENSIONS).chain([Refinement::Between]);
        for refinement in rounds {
            let refined = refined_kinds(&kinds, &runs, args.predictive_utilization, refinement);
            if !refined.is_empty() {
                runs.extend(replay(&refined)?);
                kinds.extend(refined);
            }
        }
    }
    let labels = labels(&kinds);

    let evaluated_from = trace.start() + i64::try_from(settings.warmup.as_secs()).unwrap_or(i64::MAX);
    let summary = Summary {
        input: args.input.display().to_string(),
        step_seconds: trace.step_seconds(),
        points: trace.len(),
        capacity_per_replica: args.capacity_per_replica,
        startup_delay_seconds: args.startup_delay.0.as_secs(),
        sync_period_seconds: settings.sync_period.as_secs(),
        lead_time_seconds: settings.lead_time().as_secs(),
        evaluated_from: evaluated_from.min(trace.end()),
        evaluated_until: trace.end(),
        evaluated_minutes: runs.first().map_or(0.0, |(r, _)| r.metrics.evaluated_minutes),
        cleaning,
        policies: runs
            .iter()
            .zip(&labels)
            .map(|((run, wall), label)| summarize(run, label, *wall))
            .collect(),
        frontier: None,
    };
    let summary = Summary {
        frontier: args.frontier.then(|| frontier_of(&summary)),
        ..summary
    };

    if let Some(path) = &args.series {
        // Streamed: the whole text of a long trace's series would be another copy of it in memory.
        let write = || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
            out.write_all(
                b"policy,timestamp,demand,forecast,desired_replicas,provisioned_replicas,ready_replicas\n",
            )?;
            for ((run, _), label) in runs.iter().zip(&labels) {
                for row in &run.rows {
                    writeln!(
                        out,
                        "{label},{},{},{},{},{},{}",
                        row.timestamp,
                        number(row.demand),
                        number(row.forecast),
                        row.desired_replicas,
                        row.provisioned_replicas,
                        row.ready_replicas
                    )?;
                }
            }
            out.flush()
        };
        write().with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let named: Vec<(&str, &SimRun)> = labels
            .iter()
            .map(String::as_str)
            .zip(runs.iter().map(|(r, _)| r))
            .collect();
        let html = report::render(
            &summary_title(args),
            &trace,
            args.capacity_per_replica,
            &named,
            &summary_rows(&summary),
            summary.frontier.as_ref(),
        );
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }

    if args.json {
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&summary)?))
    } else {
        print_stdout(&text_table(&summary))
    }
}

/// Quantiles added between two neighbours of the sweep that bracket an HPA setting's cost or
/// shortfall, evenly in `log(1 − q)` as the sweep itself.
const REFINE_BETWEEN: usize = 3;
/// When even the highest quantile swept is cheaper than an HPA setting, quantiles with `1 − q` divided
/// by these are added beyond it (0.999 → 0.9995, 0.9998, 0.9999, 0.99999): on a calm trace the HPA at
/// 0.5 can cost three times what predictive spends at 0.9999.
const EXTEND_BEYOND_DIVISORS: [f64; 4] = [2.0, 5.0, 10.0, 100.0];
/// ...and again from the new highest, up to this many times in all (to `1 − q` = 10⁻¹¹ from 0.999): on
/// 30-minute steps the HPA at 0.5 cost 1.8× what predictive spent at 0.99999, and was short less.
const MAX_EXTENSIONS: usize = 4;
/// The tail `1 − q` the sweep is not carried beyond: `f64` still tells `q` from 1 there, and a miss
/// rate below it is no risk anyone sets.
const FINEST_TAIL: f64 = 1e-12;
/// When even the lowest quantile swept costs more than an HPA setting, these multiples of it are added
/// below it (0.3 → 0.2, 0.1, 0.03), once: towards 0 the plan meets the reactive floor, and every
/// quantile provisions the same.
const EXTEND_BELOW_FACTORS: [f64; 3] = [2.0 / 3.0, 1.0 / 3.0, 0.1];

/// How `--frontier` refines its default sweep, in rounds: carried beyond its ends while an HPA setting
/// lies beyond them (up to [`MAX_EXTENSIONS`] rounds), then refined between neighbours (one round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refinement {
    /// Quantiles beyond the highest or below the lowest swept ([`extension_quantiles`]).
    Extend,
    /// Quantiles between two neighbours that bracket an HPA setting ([`bracket_quantiles`]).
    Between,
}

/// The predictive replays that refine a `--frontier` sweep, as [`Refinement`] says, from the points
/// replayed so far.
fn refined_kinds(
    kinds: &[PolicyKind],
    runs: &[(SimRun, f64)],
    utilization: f64,
    refinement: Refinement,
) -> Vec<PolicyKind> {
    let mut hpa = Vec::new();
    let mut predictive = Vec::new();
    for (kind, (run, _)) in kinds.iter().zip(runs) {
        let point = (run.metrics.replica_minutes, run.metrics.underprovisioned_minutes);
        match kind {
            PolicyKind::Reactive { .. } => hpa.push(point),
            PolicyKind::Predictive { quantile, .. } => predictive.push((*quantile, point)),
            _ => {}
        }
    }
    predictive.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantiles = match refinement {
        Refinement::Extend => extension_quantiles(&hpa, &predictive),
        Refinement::Between => bracket_quantiles(&hpa, &predictive),
    };
    quantiles
        .into_iter()
        .map(|quantile| PolicyKind::Predictive {
            quantile,
            utilization,
        })
        .collect()
}

/// `q` rounded to four decimals, or to two significant digits of its tail `1 − q` where that needs more:
/// readable labels at any depth of the tail (0.6278, 0.9878, 0.99968, 0.9999968), and a tail never
/// rounded away.
fn round_tail(q: f64) -> f64 {
    let tail = 1.0 - q;
    if !(tail > 0.0 && tail.is_finite()) {
        return q;
    }
    // Rounded as q itself at that many decimals, so that 0.6278 is the float a user types.
    let decimals = (1 - tail.log10().floor() as i32).max(4);
    let scale = 10f64.powi(decimals);
    (q * scale).round() / scale
}

/// Adds `q` to `added` unless it is there already or among the quantiles `swept` (after [`round_tail`],
/// equal up to float noise).
fn add_new_quantile(added: &mut Vec<f64>, swept: &[(f64, (f64, f64))], q: f64) {
    let same = |x: f64| ((1.0 - x) / (1.0 - q) - 1.0).abs() < 1e-6;
    if !added.iter().any(|&x| same(x)) && !swept.iter().any(|p| same(p.0)) {
        added.push(q);
    }
}

/// For each HPA setting, the two neighbouring quantiles whose replica-minutes (and, apart, whose
/// minutes short) bracket the setting's get [`REFINE_BETWEEN`] quantiles between them, so that the
/// headline comparisons read off real settings near the HPA's instead of the nearest of a coarse grid.
/// `hpa` and `predictive` are (replica-minutes, minutes short) points, the latter by quantile, sorted.
/// Returns the new quantiles without those swept.
fn bracket_quantiles(hpa: &[(f64, f64)], predictive: &[(f64, (f64, f64))]) -> Vec<f64> {
    let brackets = |value: f64, a: f64, b: f64| a.min(b) <= value && value <= a.max(b) && a != b;
    let mut added: Vec<f64> = Vec::new();
    for pair in predictive.windows(2) {
        let ((low_q, (low_cost, low_short)), (high_q, (high_cost, high_short))) = (pair[0], pair[1]);
        let wanted = hpa.iter().any(|&(cost, short)| {
            brackets(cost, low_cost, high_cost) || brackets(short, low_short, high_short)
        });
        if !wanted {
            continue;
        }
        let (from, to) = ((1.0 - low_q).ln(), (1.0 - high_q).ln());
        for k in 1..=REFINE_BETWEEN {
            let t = k as f64 / (REFINE_BETWEEN + 1) as f64;
            let q = round_tail(1.0 - (from + t * (to - from)).exp());
            if q > low_q && q < high_q {
                add_new_quantile(&mut added, predictive, q);
            }
        }
    }
    added.sort_by(f64::total_cmp);
    added
}

/// Quantiles beyond the ends of the sweep (`predictive` sorted by quantile) where an HPA setting lies
/// beyond them.
///
/// - The costliest setting is still cheaper than an HPA setting: the fewest minutes short at that
///   setting's cost are not yet known, so the curve is carried on towards 1, in the same `log(1 − q)`
///   steps ([`EXTEND_BEYOND_DIVISORS`]). (Also where the top is already short less: the comparison
///   reads the best point tried, and stopping there overstated predictive's shortfall at the HPA's
///   cost.)
/// - The cheapest setting still costs more than an HPA setting: no predictive setting was known as
///   cheap as it, so the curve is carried on towards 0 ([`EXTEND_BELOW_FACTORS`]), once: only from the
///   default sweep's lowest.
fn extension_quantiles(hpa: &[(f64, f64)], predictive: &[(f64, (f64, f64))]) -> Vec<f64> {
    let mut added: Vec<f64> = Vec::new();
    if let Some(&(top_q, (top_cost, _))) = predictive.last()
        && hpa.iter().any(|&(cost, _)| cost > top_cost)
    {
        for divisor in EXTEND_BEYOND_DIVISORS {
            let tail = (1.0 - top_q) / divisor;
            let q = round_tail(1.0 - tail);
            if tail >= FINEST_TAIL && q < 1.0 {
                add_new_quantile(&mut added, predictive, q);
            }
        }
    }
    if let Some(&(bottom_q, (bottom_cost, _))) = predictive.first()
        && bottom_q >= FRONTIER_QUANTILES[0]
        && hpa.iter().any(|&(cost, _)| cost < bottom_cost)
    {
        for factor in EXTEND_BELOW_FACTORS {
            let q = round_tail(bottom_q * factor);
            if q > 0.0 {
                add_new_quantile(&mut added, predictive, q);
            }
        }
    }
    added.sort_by(f64::total_cmp);
    added
}

/// Replays every policy, `jobs` at a time (each replay is independent and single-threaded), the
/// predictive ones taking their fits from `shared_fits` when given.
fn run_all(
    trace: &DemandTrace,
    settings: &SimSettings,
    kinds: &[PolicyKind],
    jobs: usize,
    shared_fits: Option<&SharedFits>,
) -> anyhow::Result<Vec<(SimRun, f64)>> {
    let timed = |kind: PolicyKind| {
        let started = Instant::now();
        sim::simulate_sharing_fits(trace, settings, kind, shared_fits)
            .map(|run| (run, started.elapsed().as_secs_f64()))
    };
    let mut runs = Vec::with_capacity(kinds.len());
    for chunk in kinds.chunks(jobs) {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|kind| scope.spawn(move || timed(*kind)))
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for result in results {
            match result {
                Ok(run) => runs.push(run?),
                Err(_) => bail!("a simulation thread panicked"),
            }
        }
    }
    Ok(runs)
}

fn summary_title(args: &Args) -> String {
    format!(
        "{}: capacity {} per replica, start-up {}",
        args.input.file_name().map_or_else(
            || args.input.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        args.capacity_per_replica,
        args.startup_delay
    )
}

/// Empty for a missing value, so CSV readers see a gap.
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        String::new()
    }
}

fn summarize(run: &SimRun, label: &str, wall_seconds: f64) -> PolicySummary {
    let (target_utilization, quantile, max_underprovisioned_fraction) = match run.policy {
        PolicyKind::Predictive {
            quantile,
            utilization,
        } => (Some(utilization), Some(quantile), None),
        PolicyKind::PredictiveSlo {
            max_underprovisioned_fraction,
            utilization,
        } => (Some(utilization), None, Some(max_underprovisioned_fraction)),
        PolicyKind::Reactive { utilization }
        | PolicyKind::PerfectForecast { utilization }
        | PolicyKind::CraneEhpa { utilization, .. }
        | PolicyKind::Phpa { utilization } => (Some(utilization), None, None),
        PolicyKind::Oracle => (None, None, None),
    };
    PolicySummary {
        policy: run.policy.name(),
        label: label.to_owned(),
        target_utilization,
        quantile,
        max_underprovisioned_fraction,
        margin_fraction: match run.policy {
            PolicyKind::CraneEhpa { margin_fraction, .. } => margin_fraction,
            _ => None,
        },
        underprovisioned_minutes: run.metrics.underprovisioned_minutes,
        unserved_fraction: run.metrics.unserved_fraction,
        replica_minutes: run.metrics.replica_minutes,
        scale_events: run.metrics.scale_events,
        peak_replicas: run.metrics.peak_replicas,
        refits: run.refits,
        fit_seconds_total: run.fit_seconds_total,
        model: run.last_model.clone(),
        health: run.health_counts.iter().cloned().collect(),
        wall_seconds,
    }
}

/// Every replayed setting as a point of its family's curve.
fn frontier_of(summary: &Summary) -> Frontier {
    let points = summary
        .policies
        .iter()
        .map(|p| {
            (
                p.policy.to_owned(),
                FrontierPoint {
                    label: p.label.clone(),
                    replica_minutes: p.replica_minutes,
                    underprovisioned_minutes: p.underprovisioned_minutes,
                    unserved_fraction: p.unserved_fraction,
                },
            )
        })
        .collect();
    frontier(points, "predictive")
}

/// Rows of the summary table: label, under-provisioned minutes, unserved %, replica-minutes, events.
fn summary_rows(summary: &Summary) -> Vec<[String; 5]> {
    summary
        .policies
        .iter()
        .map(|p| {
            [
                p.label.clone(),
                format!("{:.1}", p.underprovisioned_minutes),
                format!("{:.3}%", p.unserved_fraction * 100.0),
                format!("{:.0}", p.replica_minutes),
                p.scale_events.to_string(),
            ]
        })
        .collect()
}

fn text_table(summary: &Summary) -> String {
    let mut out = format!(
        "{}: {} points at {} s, evaluated {:.0} minutes\n",
        summary.input, summary.points, summary.step_seconds, summary.evaluated_minutes
    );
    let _ = writeln!(
        out,
        "{:<24} {:>16} {:>10} {:>16} {:>12} {:>8}",
        "policy", "underprov. min", "unserved", "replica-min", "scale events", "wall s"
    );
    for (p, row) in summary.policies.iter().zip(summary_rows(summary)) {
        let _ = writeln!(
            out,
            "{:<24} {:>16} {:>10} {:>16} {:>12} {:>8.1}",
            row[0], row[1], row[2], row[3], row[4], p.wall_seconds
        );
    }
    if let Some(frontier) = &summary.frontier {
        out.push_str(&frontier_text(frontier));
    }
    out
}

fn frontier_text(frontier: &Frontier) -> String {
    let mut out = versus_text(
        &format!(
            "{} against the HPA at each HPA setting (only replayed settings count)",
            frontier.challenger
        ),
        "HPA",
        &frontier.versus_hpa,
    );
    if frontier
        .versus_peers
        .iter()
        .any(|v| !v.hpa.starts_with("reactive"))
    {
        out.push_str(&versus_text(
            &format!(
                "{} against the best peer (HPA, crane-ehpa, phpa) at each point of their joint frontier",
                frontier.challenger
            ),
            "peer",
            &frontier.versus_peers,
        ));
    }
    out
}

fn versus_text(title: &str, peer: &str, rows: &[sim::frontier::VersusHpa]) -> String {
    let figure =
        |v: Option<f64>, digits: usize| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"));
    let mut out = format!(
        "\n{title}:\n{:<22} {:>12} {:>10} {:>30} {:>7} {:>32} {:>7}\n",
        peer,
        "replica-min",
        "min short",
        format!("min short at {peer} cost"),
        "ratio",
        format!("replica-min at {peer} short"),
        "ratio"
    );
    for v in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>12.0} {:>10.1} {:>30} {:>7} {:>32} {:>7}",
            v.hpa,
            v.hpa_replica_minutes,
            v.hpa_underprovisioned_minutes,
            format!(
                "{} ({})",
                figure(v.underprovisioned_minutes_at_hpa_cost, 1),
                v.best_at_hpa_cost.as_deref().unwrap_or("none")
            ),
            figure(v.shortfall_ratio_at_hpa_cost, 2),
            format!(
                "{} ({})",
                figure(v.replica_minutes_at_hpa_shortfall, 0),
                v.best_at_hpa_shortfall.as_deref().unwrap_or("none")
            ),
            figure(v.cost_ratio_at_hpa_shortfall, 2),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_is_refined_only_between_neighbours_that_bracket_an_hpa_setting() {
        // HPA at 381 replica-minutes, 4,862 short. Between q0.6 and q0.7 its cost (and its shortfall)
        // fall; between q0.3 and q0.6 neither does, nor between q0.7 and q0.9.
        let hpa = [(381.0, 4862.0)];
        let mut predictive = vec![
            (0.3, (296.0, 5137.0)),
            (0.6, (320.0, 4980.0)),
            (0.7, (391.0, 2513.0)),
            (0.9, (602.0, 812.0)),
        ];
        let added = bracket_quantiles(&hpa, &predictive);
        // Evenly in log(1 − q) between 0.6 and 0.7: 1 − 0.4 · 0.75^(k/4).
        assert_eq!(added, vec![0.6278, 0.6536, 0.6776]);
        // Already refined: nothing added twice.
        predictive.extend(added.iter().map(|q| (*q, (350.0, 3000.0))));
        predictive.sort_by(|a, b| a.0.total_cmp(&b.0));
        let again = bracket_quantiles(&hpa, &predictive);
        assert!(again.iter().all(|q| !added.contains(q)), "{again:?}");
        assert!(bracket_quantiles(&[], &predictive).is_empty());
        // Deep in the tail the new quantiles still fall strictly between their neighbours.
        let deep = [(0.99999, (3_087_215.0, 17.5)), (0.9999999, (3_169_159.0, 2.5))];
        let added = bracket_quantiles(&[(5_518_763.0, 2.5)], &deep);
        assert_eq!(added, vec![0.9999968, 0.999999, 0.99999968]);
    }

    #[test]
    fn a_sweep_that_stops_short_of_an_hpa_setting_is_carried_on_towards_one() {
        // The HPA at 0.6 costs more than q0.999 and is short less: the curve is carried on beyond it.
        let hpa = [(5_834_630.0, 68.5), (5_009_332.0, 147.5)];
        let predictive = vec![(0.99, (4_394_594.0, 467.0)), (0.999, (5_417_157.0, 103.0))];
        assert_eq!(
            extension_quantiles(&hpa[..1], &predictive),
            vec![0.9995, 0.9998, 0.9999, 0.99999]
        );
        // Also where the top is already short less than that HPA setting: hourly Saskatchewan traffic's
        // q0.999 was short 235.5 minutes at 4,223,617 replica-minutes, the HPA at 0.8 3,013.5 at
        // 4,761,242, and q0.9999 (4,384,379, 33.5) was never tried.
        let shorter = vec![(0.99, (3_976_546.0, 4_248.0)), (0.999, (4_223_617.0, 235.5))];
        let added = extension_quantiles(&[(4_761_242.0, 3_013.5)], &shorter);
        assert!(
            [0.9995, 0.9998, 0.9999].iter().all(|q| added.contains(q)),
            "{added:?}"
        );
        // Where the top setting already reaches past every HPA setting, nothing is added beyond it.
        assert!(extension_quantiles(&[(5_009_332.0, 147.5)], &predictive).is_empty());
        // Carried on again from a top that is still cheaper (NYC taxi, 30-minute steps: the HPA at 0.5
        // cost 5,518,763 replica-minutes, q0.99999 3,087,215), in the same steps; never to 1.
        let deep = vec![(0.999, (2_989_174.0, 121.0)), (0.99999, (3_087_215.0, 17.5))];
        assert_eq!(
            extension_quantiles(&[(5_518_763.0, 2.5)], &deep),
            vec![0.999995, 0.999998, 0.999999, 0.9999999]
        );
        let deepest = vec![(1.0 - 1e-11, (3_300_000.0, 2.5))];
        let added = extension_quantiles(&[(5_518_763.0, 2.5)], &deepest);
        assert!(
            !added.is_empty() && added.iter().all(|&q| q < 1.0 && 1.0 - q > FINEST_TAIL / 2.0),
            "{added:?}"
        );
    }

    #[test]
    fn a_sweep_whose_cheapest_setting_costs_more_than_an_hpa_setting_is_carried_on_towards_zero_once() {
        // NASA 1-minute at a 5-minute start-up, before baselines were priced at the reactive floor: the
        // HPA at 0.9 cost 469,660 replica-minutes, q0.3 517,882 (now 455,100, and no shipped trace's
        // q0.3 costs more than its HPA at 0.9; a user's trace still may).
        let hpa = [(469_660.0, 6_227.5), (527_554.0, 3_892.0)];
        let predictive = vec![(0.3, (517_882.0, 5_322.0)), (0.4, (540_000.0, 4_000.0))];
        assert_eq!(extension_quantiles(&hpa, &predictive), vec![0.03, 0.1, 0.2]);
        // From below the default sweep's lowest, not again.
        let lower = vec![(0.03, (470_000.0, 8_185.0)), (0.3, (517_882.0, 5_322.0))];
        assert!(extension_quantiles(&[(400_000.0, 9_000.0)], &lower).is_empty());
        // As cheap as every HPA setting already (and as costly): nothing below, nor beyond.
        assert!(extension_quantiles(&[(530_000.0, 3_000.0)], &predictive).is_empty());
    }

    #[test]
    fn quantiles_round_to_four_decimals_or_two_digits_of_their_tail() {
        assert_eq!(round_tail(0.627_812), 0.6278);
        assert_eq!(round_tail(0.987_75), 0.9878);
        assert_eq!(round_tail(0.999_683_77), 0.99968);
        assert_eq!(round_tail(0.999_996_837_72), 0.999_996_8);
        assert_eq!(round_tail(0.5), 0.5);
        assert_eq!(round_tail(1.0), 1.0);
    }
}
