//! A discrete-time simulated cluster driven by a demand trace, and the replay of a trace through the
//! policies Prescient is compared with. Pure and deterministic: virtual time, a seeded RNG for the
//! start-up jitter, no clock, no IO.
//!
//! - [`SimCluster`]: pods become ready `startupDelay` (plus jitter) after they are asked for; ready pods
//!   serve `capacityPerReplica` each; scale-down is immediate or graceful (terminating pods stop serving
//!   at once but are paid for until they are gone). [`crate::edges::sim::SimTarget`] wraps it as a
//!   `ScaleTarget` for the demo.
//! - [`simulate`]: replays a trace through one [`SimPolicy`]: `predictive` (the real
//!   [`AutoscalerCore`], refitted on the history seen so far, never the future), `reactive` (the
//!   Kubernetes HPA v2 algorithm on the lagged observation), `oracle` (knows the future: the lower bound
//!   of cost at zero under-provisioning) and `perfect` (the predictive policy given the true future as
//!   its forecast: what a perfect forecaster would buy).
//! - The other open-source predictive autoscalers, replayed from their published code beside ours:
//!   [`crane::CraneEhpaPolicy`] (gocrane/crane's EffectiveHPA with its DSP predictor, `crane-ehpa`) and
//!   [`phpa::PhpaPolicy`] (jthomperoo's Predictive Horizontal Pod Autoscaler, `phpa`). Their module
//!   docs list the upstream files read and where the replay must differ.
//!
//! Demand is observed as Prometheus would see it: the rate over `rate_window` ending one scrape
//! interval ago; a trace point joins the forecaster's history one scrape interval after its interval
//! ends.

use std::time::Duration;

pub mod crane;
pub mod frontier;
pub mod phpa;
pub mod progress;
pub mod report;

use prescient_model::{ModelChoice, TimeSeries};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    core::{AutoscalerCore, ReplicaState, SharedFits, SyncOutcome},
    policy::{self, PolicyInput, PredictedDemand, RecentRecommendations},
    spec::{self, ScalingBehavior, ScalingSpec},
};

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("the trace is empty")]
    EmptyTrace,
    #[error("the trace has no finite demand value")]
    NoDemand,
    #[error("cannot extend the simulated history: {0}")]
    History(#[from] prescient_model::SeriesError),
    #[error("invalid simulation setting {name}: {message}")]
    InvalidSetting { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> SimError {
    SimError::InvalidSetting {
        name,
        message: message.into(),
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// How the simulated cluster behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Time from asking for a pod to the pod serving.
    pub startup_delay: Duration,
    /// Demand one ready pod serves (the trace's unit, e.g. requests per step).
    pub capacity_per_replica: f64,
    /// Extra start-up time, uniform in `[0, startup_jitter]` per pod.
    pub startup_jitter: Duration,
    /// How long a removed pod keeps running (and costing) while it drains; zero = immediate.
    pub graceful_scale_down: Duration,
    /// Seed of the jitter RNG.
    pub seed: u64,
}

impl ClusterConfig {
    /// A cluster without jitter or graceful scale-down.
    pub fn new(startup_delay: Duration, capacity_per_replica: f64) -> Self {
        Self {
            startup_delay,
            capacity_per_replica,
            startup_jitter: Duration::ZERO,
            graceful_scale_down: Duration::ZERO,
            seed: 0,
        }
    }
}

/// A pod that is starting or ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pod {
    ready_at: i64,
}

/// A simulated Deployment in virtual time.
#[derive(Debug, Clone)]
pub struct SimCluster {
    config: ClusterConfig,
    rng: StdRng,
    now: i64,
    /// Starting and ready pods, in the order they were asked for.
    pods: Vec<Pod>,
    /// End times of pods draining after a scale-down.
    terminating: Vec<i64>,
    scale_events: u64,
}

impl SimCluster {
    /// A cluster at `now` with `initial_replicas` pods already ready.
    pub fn new(config: ClusterConfig, initial_replicas: u32, now: i64) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        let pods = vec![Pod { ready_at: now }; initial_replicas as usize];
        Self {
            config,
            rng,
            now,
            pods,
            terminating: Vec::new(),
            scale_events: 0,
        }
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Sets `spec.replicas` at `now`: new pods start; removed pods are the ones that are not ready yet,
    /// then the most recently ready (the ReplicaSet controller's order).
    pub fn set_desired(&mut self, replicas: u32, now: i64) {
        self.advance_to(now);
        let target = replicas as usize;
        if target == self.pods.len() {
            return;
        }
        self.scale_events += 1;
        if target > self.pods.len() {
            let jitter = secs(self.config.startup_jitter);
            for _ in self.pods.len()..target {
                let extra = if jitter > 0 {
                    self.rng.random_range(0..=jitter)
                } else {
                    0
                };
                self.pods.push(Pod {
                    ready_at: self.now + secs(self.config.startup_delay) + extra,
                });
            }
        } else {
            // Latest `ready_at` first: starting pods, then the youngest ready ones.
            self.pods.sort_by_key(|p| p.ready_at);
            let grace = secs(self.config.graceful_scale_down);
            for _ in target..self.pods.len() {
                if grace > 0 {
                    self.terminating.push(self.now + grace);
                }
            }
            self.pods.truncate(target);
        }
    }

    /// Moves virtual time forward (never back); drained pods disappear.
    pub fn advance_to(&mut self, now: i64) {
        self.now = self.now.max(now);
        let now = self.now;
        self.terminating.retain(|end| *end > now);
    }

    /// Desired (provisioned: ready or starting) and ready replicas.
    pub fn replicas(&self) -> ReplicaState {
        let ready = self.pods.iter().filter(|p| p.ready_at <= self.now).count();
        ReplicaState {
            desired: self.pods.len() as u32,
            ready: ready as u32,
        }
    }

    /// Pods paid for: ready, starting and draining.
    pub fn billed_replicas(&self) -> u32 {
        (self.pods.len() + self.terminating.len()) as u32
    }

    /// Demand the ready pods can serve.
    pub fn capacity(&self) -> f64 {
        f64::from(self.replicas().ready) * self.config.capacity_per_replica
    }

    /// How many times `spec.replicas` changed.
    pub fn scale_events(&self) -> u64 {
        self.scale_events
    }

    pub fn now(&self) -> i64 {
        self.now
    }
}

/// Demand on a regular grid: value `i` is the demand during `[start + i * step, start + (i + 1) * step)`,
/// `NaN` where the trace has a gap.
#[derive(Debug, Clone)]
pub struct DemandTrace {
    start: i64,
    step: i64,
    values: Vec<f64>,
    /// `prefix[i]` = integral of the finite demand over the first `i` steps (value × seconds).
    prefix: Vec<f64>,
    /// `known[i]` = seconds with a finite value in the first `i` steps.
    known: Vec<f64>,
}

impl DemandTrace {
    pub fn new(series: &TimeSeries) -> Result<Self, SimError> {
        Self::from_values(series.start(), series.step_seconds(), series.values().to_vec())
    }

    pub fn from_values(start: i64, step_seconds: i64, values: Vec<f64>) -> Result<Self, SimError> {
        if values.is_empty() {
            return Err(SimError::EmptyTrace);
        }
        if step_seconds <= 0 {
            return Err(invalid("step", format!("must be positive, got {step_seconds} s")));
        }
        // Negative or infinite demand is not demand: treat it as a gap.
        let values: Vec<f64> = values
            .into_iter()
            .map(|v| if v.is_finite() && v >= 0.0 { v } else { f64::NAN })
            .collect();
        if values.iter().all(|v| v.is_nan()) {
            return Err(SimError::NoDemand);
        }
        let mut prefix = Vec::with_capacity(values.len() + 1);
        let mut known = Vec::with_capacity(values.len() + 1);
        let (mut sum, mut seconds) = (0.0, 0.0);
        prefix.push(0.0);
        known.push(0.0);
        for v in &values {
            if v.is_finite() {
                sum += v * step_seconds as f64;
                seconds += step_seconds as f64;
            }
            prefix.push(sum);
            known.push(seconds);
        }
        Ok(Self {
            start,
            step: step_seconds,
            values,
            prefix,
            known,
        })
    }

    pub fn start(&self) -> i64 {
        self.start
    }
    pub fn step_seconds(&self) -> i64 {
        self.step
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    /// End of the last interval.
    pub fn end(&self) -> i64 {
        self.start + self.step * self.values.len() as i64
    }
    pub fn timestamp(&self, index: usize) -> i64 {
        self.start + self.step * index as i64
    }

    fn index_at(&self, t: i64) -> Option<usize> {
        if t < self.start {
            return None;
        }
        let i = usize::try_from((t - self.start) / self.step).ok()?;
        (i < self.values.len()).then_some(i)
    }

    /// Demand at time `t` (`NaN` in a gap or outside the trace).
    pub fn demand_at(&self, t: i64) -> f64 {
        self.index_at(t).map_or(f64::NAN, |i| self.values[i])
    }

    /// (integral of finite demand, seconds with finite demand) over `[start, t]`.
    fn cumulative(&self, t: i64) -> (f64, f64) {
        if t <= self.start {
            return (0.0, 0.0);
        }
        let offset = t - self.start;
        let i = usize::try_from(offset / self.step).unwrap_or(usize::MAX);
        if i >= self.values.len() {
            let n = self.values.len();
            return (self.prefix[n], self.known[n]);
        }
        let partial = (offset - i as i64 * self.step) as f64;
        let v = self.values[i];
        if v.is_finite() {
            (self.prefix[i] + v * partial, self.known[i] + partial)
        } else {
            (self.prefix[i], self.known[i])
        }
    }

    /// Mean finite demand over `[from, to]`, `None` if no finite demand lies in it.
    pub fn mean_over(&self, from: i64, to: i64) -> Option<f64> {
        let (sum_to, known_to) = self.cumulative(to);
        let (sum_from, known_from) = self.cumulative(from);
        let known = known_to - known_from;
        (known > 0.0).then(|| (sum_to - sum_from) / known)
    }

    /// Peak finite demand over intervals overlapping `[from, to)`.
    pub fn peak_over(&self, from: i64, to: i64) -> Option<f64> {
        let first = if from <= self.start {
            0
        } else {
            usize::try_from((from - self.start) / self.step).ok()?
        };
        let last = if to <= self.start {
            return None;
        } else {
            usize::try_from((to - 1 - self.start) / self.step).ok()?
        };
        let last = last.min(self.values.len().saturating_sub(1));
        if first > last {
            return None;
        }
        self.values[first..=last]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }

    /// The median of the finite values (for choosing a capacity).
    pub fn median(&self) -> f64 {
        let mut finite: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_by(f64::total_cmp);
        finite.get(finite.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Settings shared by every policy of one replay.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSettings {
    pub cluster: ClusterConfig,
    pub sync_period: Duration,
    /// Prometheus scrape interval: how old the newest sample is.
    pub scrape_interval: Duration,
    /// The `rate(...[window])` the demand query averages over.
    pub rate_window: Duration,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Metrics count only after this much of the trace has played (all policies run through it). A
    /// real deployment has this history in Prometheus from day one; the replay has to grow it.
    pub warmup: Duration,
    /// History window the predictive model is fitted on.
    pub history: Duration,
    pub refit_interval: Duration,
    pub model: ModelChoice,
    /// Forecast horizon the model is fitted for; `None` = the decision window plus the observation lag.
    pub horizon: Option<Duration>,
    /// Predictive lead time; `None` = start-up delay plus its jitter.
    pub lead_time: Option<Duration>,
    /// The HPA's behavior (`reactive`, and the peers' HPAs).
    pub behavior: ScalingBehavior,
    /// Replay an operator restart this often: each predictive core starts afresh on the history then
    /// seen, warmed by [`AutoscalerCore::bootstrap`] as the operator does. `None`: never restarted.
    pub restart_every: Option<Duration>,
    /// Prescient's scale-down stabilization window, as a `PredictiveAutoscaler`'s
    /// `behavior.scaleDown.stabilizationWindowSeconds` sets it; `None` = a resource's default without
    /// one ([`spec::default_scale_down_window`] of the HPA's). The rest of Prescient's behavior is
    /// [`Self::behavior`].
    pub predictive_scale_down_stabilization: Option<Duration>,
    /// Crane EHPA's prediction settings (`crane-ehpa`); its HPA is the `reactive` one.
    pub crane: crane::EhpaParams,
    /// PHPA's models (`phpa`); `None` = the documented settings with a daily season.
    pub phpa: Option<phpa::PhpaParams>,
    /// Keep the per-tick rows ([`SimRun::rows`]; `--series` and `--report` need them). Without them a
    /// replay's memory does not grow with the trace: on a long one they were most of it (56 bytes a tick).
    pub keep_rows: bool,
    /// Simulated seconds replayed so far are added here, for progress output; `None` counts nothing.
    pub progress: Option<progress::Progress>,
}

impl SimSettings {
    /// Defaults for a cluster: 30 s sync, 15 s scrape, 1 m rate window, replicas 1..=10000, no warm-up,
    /// 7 days of history, hourly refits, `auto` model, HPA default behavior.
    pub fn new(cluster: ClusterConfig) -> Self {
        Self {
            cluster,
            sync_period: Duration::from_secs(30),
            scrape_interval: Duration::from_secs(15),
            rate_window: Duration::from_secs(60),
            min_replicas: 1,
            max_replicas: 10_000,
            warmup: Duration::ZERO,
            history: Duration::from_secs(7 * 86_400),
            refit_interval: Duration::from_secs(3600),
            model: ModelChoice::Auto,
            horizon: None,
            lead_time: None,
            behavior: ScalingBehavior::default(),
            predictive_scale_down_stabilization: None,
            restart_every: None,
            crane: crane::EhpaParams::default(),
            phpa: None,
            keep_rows: true,
            progress: None,
        }
    }

    /// The PHPA settings in force.
    pub fn phpa_params(&self) -> phpa::PhpaParams {
        self.phpa
            .clone()
            .unwrap_or_else(|| phpa::PhpaParams::documented(self.sync_period))
    }

    /// Crane's settings for `margin_fraction` (every configured estimator at that margin), seeded by
    /// the cluster seed.
    pub fn crane_params(&self, margin_fraction: Option<f64>) -> crane::EhpaParams {
        let mut params = self.crane.clone();
        params.dsp.seed = self.cluster.seed;
        if let Some(margin) = margin_fraction {
            let mut estimators: Vec<crane::Estimator> = Vec::new();
            for e in &params.dsp.estimators {
                let e = match *e {
                    crane::Estimator::Fft {
                        min_num_of_spectrum_items,
                        max_num_of_spectrum_items,
                        high_frequency_threshold,
                        low_amplitude_threshold,
                        ..
                    } => crane::Estimator::Fft {
                        min_num_of_spectrum_items,
                        max_num_of_spectrum_items,
                        high_frequency_threshold,
                        low_amplitude_threshold,
                        margin_fraction: margin,
                    },
                    crane::Estimator::MaxValue { .. } => crane::Estimator::MaxValue {
                        margin_fraction: margin,
                    },
                };
                if !estimators.contains(&e) {
                    estimators.push(e);
                }
            }
            params.dsp.estimators = estimators;
        }
        params
    }

    fn validate(&self) -> Result<(), SimError> {
        let c = &self.cluster;
        if !(c.capacity_per_replica.is_finite() && c.capacity_per_replica > 0.0) {
            return Err(invalid(
                "capacity_per_replica",
                format!("must be positive, got {}", c.capacity_per_replica),
            ));
        }
        if self.sync_period.as_secs() == 0 {
            return Err(invalid("sync_period", "must be at least 1s"));
        }
        if self.max_replicas == 0 || self.min_replicas > self.max_replicas {
            return Err(invalid(
                "replicas",
                format!(
                    "need 1 <= max and min <= max, got min {} max {}",
                    self.min_replicas, self.max_replicas
                ),
            ));
        }
        if self.refit_interval.as_secs() == 0 {
            return Err(invalid("refit_interval", "must be at least 1s"));
        }
        Ok(())
    }

    /// The lead time: start-up plus jitter unless set.
    pub fn lead_time(&self) -> Duration {
        self.lead_time
            .unwrap_or(self.cluster.startup_delay + self.cluster.startup_jitter)
    }

    /// The step of the history the policies decide on for a trace of `trace_step` seconds: the rate
    /// window when the trace is finer and the window a whole number of its steps (a range query at the
    /// `rate()` window's step, as the operator's `forecast.step` would be set), else the trace's step.
    /// A controller never sees per-second demand: planning for the peak of per-second noise over the
    /// decision window would provision for spikes that a rate over a minute averages away.
    pub fn decision_step(&self, trace_step: i64) -> i64 {
        let window = secs(self.rate_window);
        if trace_step > 0 && window > trace_step && window % trace_step == 0 {
            window
        } else {
            trace_step
        }
    }

    /// Observation lag of a trace point: its interval must have ended and been scraped.
    fn scrape_lag(&self, step: i64) -> i64 {
        secs(self.scrape_interval).min(step)
    }

    /// The spec the predictive (and perfect-forecast) policy runs with, for a trace of `step` seconds:
    /// [`SimSettings::spec`] with Prescient's scale-down stabilization.
    pub fn predictive_spec(&self, step: i64, quantile: f64, utilization: f64) -> ScalingSpec {
        let mut spec = self.spec(step, quantile, utilization);
        spec.behavior.scale_down.stabilization_window =
            self.predictive_scale_down_stabilization.unwrap_or_else(|| {
                spec::default_scale_down_window(
                    spec.step,
                    spec.sync_period,
                    spec.behavior.scale_down.stabilization_window,
                )
            });
        spec
    }

    /// The spec of a policy replayed on a trace of `step` seconds, with the HPA's behavior: the
    /// reactive baseline and the peers take it as it is.
    pub fn spec(&self, step: i64, quantile: f64, utilization: f64) -> ScalingSpec {
        let lead = self.lead_time();
        let lag = step + self.scrape_lag(step);
        let horizon = self.horizon.unwrap_or_else(|| {
            // The decision window (lead + sync) seen from the history's end, which lags `now` by up to
            // one step, the scrape and a sync, plus a step of margin.
            let seconds = secs(lead) + 2 * secs(self.sync_period) + lag + step;
            let steps = (seconds + step - 1) / step.max(1);
            Duration::from_secs((steps.max(1) * step) as u64)
        });
        ScalingSpec {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            target_per_replica: self.cluster.capacity_per_replica * utilization,
            history: self.history,
            step: Duration::from_secs(step as u64),
            horizon,
            lead_time: lead,
            model: self.model,
            quantile,
            refit_interval: self.refit_interval,
            sync_period: self.sync_period,
            behavior: self.behavior.clone(),
            scale_enabled: true,
            forecast_enabled: true,
            max_underprovisioned_fraction: None,
        }
    }
}

/// Which policy drives the replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    /// Prescient: the forecast's `quantile`, at `utilization` of each replica's capacity.
    Predictive { quantile: f64, utilization: f64 },
    /// Prescient holding an SLO: it chooses its quantile online so that the share of time short stays
    /// at `max_underprovisioned_fraction`.
    PredictiveSlo {
        max_underprovisioned_fraction: f64,
        utilization: f64,
    },
    /// The Kubernetes HPA at target `utilization`.
    Reactive { utilization: f64 },
    /// Knows the future; asks for exactly enough pods, start-up delay ahead.
    Oracle,
    /// The predictive rule given the true future demand as its forecast.
    PerfectForecast { utilization: f64 },
    /// Crane's EffectiveHPA at target `utilization`; `margin_fraction` sets every estimator's margin
    /// (`None`: Crane's default estimators, whose margin the backtest picks).
    CraneEhpa {
        utilization: f64,
        margin_fraction: Option<f64>,
    },
    /// jthomperoo's Predictive HPA at target `utilization`.
    Phpa { utilization: f64 },
}

impl PolicyKind {
    /// `predictive`, `reactive`, `oracle`, `perfect`, `crane-ehpa` or `phpa`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Predictive { .. } | Self::PredictiveSlo { .. } => "predictive",
            Self::Reactive { .. } => "reactive",
            Self::Oracle => "oracle",
            Self::PerfectForecast { .. } => "perfect",
            Self::CraneEhpa { .. } => "crane-ehpa",
            Self::Phpa { .. } => "phpa",
        }
    }

    /// The name with its setting, e.g. `predictive@q0.95`, `reactive@u0.7`.
    pub fn label(&self) -> String {
        match self {
            Self::Predictive {
                quantile,
                utilization,
            } if *utilization == 1.0 => format!("predictive@q{quantile}"),
            Self::Predictive {
                quantile,
                utilization,
            } => format!("predictive@q{quantile}u{utilization}"),
            Self::PredictiveSlo {
                max_underprovisioned_fraction,
                utilization,
            } if *utilization == 1.0 => format!("predictive@slo{max_underprovisioned_fraction}"),
            Self::PredictiveSlo {
                max_underprovisioned_fraction,
                utilization,
            } => format!("predictive@slo{max_underprovisioned_fraction}u{utilization}"),
            Self::Reactive { utilization } => format!("reactive@u{utilization}"),
            Self::Oracle => "oracle".to_owned(),
            Self::PerfectForecast { utilization } => format!("perfect@u{utilization}"),
            Self::CraneEhpa {
                utilization,
                margin_fraction: None,
            } => format!("crane-ehpa@u{utilization}"),
            Self::CraneEhpa {
                utilization,
                margin_fraction: Some(margin),
            } => format!("crane-ehpa@u{utilization}m{margin}"),
            Self::Phpa { utilization } => format!("phpa@u{utilization}"),
        }
    }
}

/// What a policy sees at a sync.
#[derive(Debug)]
pub struct SimView<'a> {
    pub now: i64,
    /// Demand as the metrics pipeline reports it now (lagged, averaged); `None` if unknown.
    pub observed: Option<f64>,
    /// The history a real controller would have now (`None` before the first point is scraped).
    pub history: Option<&'a TimeSeries>,
    pub replicas: ReplicaState,
    /// The whole trace: only the oracle and the perfect forecast may look ahead in it.
    pub trace: &'a DemandTrace,
}

/// One policy decision at a sync.
#[derive(Debug, Clone)]
pub struct SimDecision {
    pub desired: u32,
    /// The forecast made at this sync: (time, mean, lower, upper) at `now + leadTime`.
    pub forecast_at_lead: Option<(i64, f64, f64, f64)>,
    /// The core's outcome, for policies that run it.
    pub outcome: Option<Box<SyncOutcome>>,
}

/// A policy in the replay.
pub trait SimPolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision;
}

/// Central band level drawn around the forecast in reports.
pub const REPORT_BAND_LEVEL: f64 = 0.8;

/// Prescient through the real [`AutoscalerCore`].
#[derive(Debug)]
pub struct PredictivePolicy {
    core: AutoscalerCore,
    /// Restart period in seconds ([`SimSettings::restart_every`]).
    restart_every: Option<i64>,
    /// When the core last (re)started: the first decision, then each restart.
    started_at: Option<i64>,
}

impl PredictivePolicy {
    pub fn new(spec: ScalingSpec) -> Self {
        Self {
            core: AutoscalerCore::new(spec),
            restart_every: None,
            started_at: None,
        }
    }
}

impl SimPolicy for PredictivePolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        let started_at = *self.started_at.get_or_insert(view.now);
        if self
            .restart_every
            .is_some_and(|period| view.now - started_at >= period)
        {
            self.started_at = Some(view.now);
            // A new core on the history the old one had: warmed on it as the operator's is.
            self.core = AutoscalerCore::new(self.core.spec().clone());
            if let Some(history) = view.history {
                self.core.bootstrap(history, view.now);
            }
        }
        let outcome = match view.history {
            // The reactive floor sees what the HPA sees: the lagged rate, not the last whole step.
            Some(history) => self
                .core
                .sync_observed(history, view.observed, view.replicas, view.now),
            None => self
                .core
                .hold(view.replicas, view.now, "no data scraped yet".to_owned()),
        };
        let lead_at = view.now + secs(self.core.spec().lead_time);
        let forecast_at_lead = outcome.forecast.as_ref().and_then(|f| {
            let step = f.step_seconds.max(1);
            if lead_at < f.start {
                return None;
            }
            let i = usize::try_from((lead_at - f.start) / step).ok()?;
            let (lower, upper) = f.band(REPORT_BAND_LEVEL);
            Some((lead_at, *f.mean.get(i)?, *lower.get(i)?, *upper.get(i)?))
        });
        SimDecision {
            desired: outcome.decision.desired_replicas,
            forecast_at_lead,
            outcome: Some(Box::new(outcome)),
        }
    }
}

/// The Kubernetes HPA v2: `ceil(observed / target)` outside the 10 % tolerance, default behavior
/// (5-minute scale-down stabilization, scale-up by max(100 %, 4 pods) per 15 s), on the lagged
/// observation; the same behavior code as Prescient's policy.
#[derive(Debug)]
pub struct ReactivePolicy {
    spec: ScalingSpec,
    recent: RecentRecommendations,
}

impl ReactivePolicy {
    pub fn new(spec: ScalingSpec) -> Self {
        Self {
            spec,
            recent: RecentRecommendations::new(),
        }
    }
}

impl SimPolicy for ReactivePolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        let input = PolicyInput {
            now: view.now,
            forecast: None,
            observed_demand: view.observed,
            persistence_peak: None,
            stale: view.observed.is_none(),
            replicas: view.replicas,
        };
        let decision = policy::decide(&input, &self.spec, &self.recent);
        self.recent.record(
            view.now,
            &decision,
            view.replicas.desired,
            true,
            &self.spec.behavior,
        );
        SimDecision {
            desired: decision.desired_replicas,
            forecast_at_lead: None,
            outcome: None,
        }
    }
}

/// Knows the future. At each sync it keeps exactly the pods some moment of `[now, now + startup + sync)`
/// needs: pods asked now are ready at `now + startup`, the next chance to ask is `now + sync`, and a pod
/// removed now cannot be back before `now + startup`. This is the cheapest schedule with no
/// under-provisioning at this sync period (keeping a pod through a gap shorter than the start-up costs
/// less than restarting it).
#[derive(Debug)]
pub struct OraclePolicy {
    capacity_per_replica: f64,
    window: i64,
    min_replicas: u32,
    max_replicas: u32,
}

impl OraclePolicy {
    pub fn new(settings: &SimSettings) -> Self {
        Self {
            capacity_per_replica: settings.cluster.capacity_per_replica,
            window: secs(settings.cluster.startup_delay + settings.cluster.startup_jitter)
                + secs(settings.sync_period),
            min_replicas: settings.min_replicas,
            max_replicas: settings.max_replicas,
        }
    }

    /// Replicas needed over `[now, now + window)`.
    pub fn needed(&self, trace: &DemandTrace, now: i64) -> u32 {
        let peak = trace.peak_over(now, now + self.window).unwrap_or(0.0);
        policy::replicas_for(peak, self.capacity_per_replica).clamp(self.min_replicas, self.max_replicas)
    }
}

impl SimPolicy for OraclePolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        SimDecision {
            desired: self.needed(view.trace, view.now),
            forecast_at_lead: None,
            outcome: None,
        }
    }
}

/// Prescient's decision rule fed the true future as its forecast (and the lagged observation as its
/// reactive floor): isolates the rule from the forecaster.
#[derive(Debug)]
pub struct PerfectForecastPolicy {
    spec: ScalingSpec,
    recent: RecentRecommendations,
}

impl PerfectForecastPolicy {
    pub fn new(spec: ScalingSpec) -> Self {
        Self {
            spec,
            recent: RecentRecommendations::new(),
        }
    }
}

impl SimPolicy for PerfectForecastPolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        let trace = view.trace;
        let reach = view.now + secs(self.spec.lead_time) + secs(self.spec.sync_period);
        // The true future at the step the policies decide on (the trace's, or the mean of each
        // rate window of a finer trace).
        let step = i64::try_from(self.spec.step.as_secs()).unwrap_or(1).max(1);
        let from = view.now.max(trace.start());
        let first = trace.start() + (from - trace.start()).div_euclid(step) * step;
        let values: Vec<f64> = (first..=reach.min(trace.end() - 1))
            .step_by(usize::try_from(step).unwrap_or(1))
            .map(|at| {
                if step == trace.step_seconds() {
                    trace.demand_at(at)
                } else {
                    trace.mean_over(at, at + step).unwrap_or(f64::NAN)
                }
            })
            .collect();
        let forecast = (!values.is_empty()).then(|| PredictedDemand::exact(first, step, values));
        let input = PolicyInput {
            now: view.now,
            forecast,
            observed_demand: view.observed,
            persistence_peak: None,
            stale: false,
            replicas: view.replicas,
        };
        let decision = policy::decide(&input, &self.spec, &self.recent);
        self.recent.record(
            view.now,
            &decision,
            view.replicas.desired,
            true,
            &self.spec.behavior,
        );
        let lead_at = view.now + secs(self.spec.lead_time);
        let truth = trace.demand_at(lead_at);
        let forecast_at_lead = truth.is_finite().then_some((lead_at, truth, truth, truth));
        SimDecision {
            desired: decision.desired_replicas,
            forecast_at_lead,
            outcome: None,
        }
    }
}

/// The figures of one replay (over the evaluated part of the trace).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct SimMetrics {
    /// Minutes with demand above ready capacity.
    pub underprovisioned_minutes: f64,
    /// Unserved demand over total demand.
    pub unserved_fraction: f64,
    /// Replica-minutes paid for (ready, starting and draining pods) over the evaluated minutes.
    pub replica_minutes: f64,
    /// Changes of the desired replica count.
    pub scale_events: u64,
    /// Minutes evaluated (with known demand).
    pub evaluated_minutes: f64,
    pub peak_replicas: u32,
}

/// One row per simulation tick and policy (the `--series` CSV).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRow {
    pub timestamp: i64,
    pub demand: f64,
    /// The mean forecast for this time, made a lead time earlier (`NaN` if none).
    pub forecast: f64,
    pub forecast_lower: f64,
    pub forecast_upper: f64,
    pub desired_replicas: u32,
    /// Pods paid for (ready, starting, draining).
    pub provisioned_replicas: u32,
    pub ready_replicas: u32,
}

/// The outcome of one replay.
#[derive(Debug, Clone)]
pub struct SimRun {
    pub policy: PolicyKind,
    pub metrics: SimMetrics,
    /// Evaluated ticks only (after the warm-up).
    pub rows: Vec<SeriesRow>,
    /// Seconds between rows.
    pub tick_seconds: i64,
    pub refits: usize,
    pub fit_seconds_total: f64,
    /// The last model the predictive policy used.
    pub last_model: Option<String>,
    /// Syncs per forecast health reason.
    pub health_counts: Vec<(String, usize)>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// Builds the policy of `kind` for `trace` under `settings`; a predictive policy takes its fits from
/// `shared_fits` when given.
pub fn make_policy(
    kind: PolicyKind,
    trace: &DemandTrace,
    settings: &SimSettings,
    shared_fits: Option<&SharedFits>,
) -> Box<dyn SimPolicy> {
    let step = settings.decision_step(trace.step_seconds());
    let predictive = |spec: ScalingSpec| -> Box<dyn SimPolicy> {
        let core = match shared_fits {
            Some(fits) => AutoscalerCore::new(spec).with_shared_fits(fits.clone()),
            None => AutoscalerCore::new(spec),
        };
        Box::new(PredictivePolicy {
            core,
            restart_every: settings.restart_every.map(|period| secs(period).max(1)),
            started_at: None,
        })
    };
    match kind {
        PolicyKind::Predictive {
            quantile,
            utilization,
        } => predictive(settings.predictive_spec(step, quantile, utilization)),
        PolicyKind::PredictiveSlo {
            max_underprovisioned_fraction,
            utilization,
        } => {
            // The quantile is only where the online level starts.
            let mut spec = settings.predictive_spec(step, 1.0 - max_underprovisioned_fraction, utilization);
            spec.max_underprovisioned_fraction = Some(max_underprovisioned_fraction);
            predictive(spec)
        }
        PolicyKind::Reactive { utilization } => {
            Box::new(ReactivePolicy::new(settings.spec(step, 0.5, utilization)))
        }
        PolicyKind::Oracle => Box::new(OraclePolicy::new(settings)),
        PolicyKind::PerfectForecast { utilization } => Box::new(PerfectForecastPolicy::new(
            settings.predictive_spec(step, 0.5, utilization),
        )),
        PolicyKind::CraneEhpa {
            utilization,
            margin_fraction,
        } => Box::new(crane::CraneEhpaPolicy::new(
            settings.spec(step, 0.5, utilization),
            settings.cluster.capacity_per_replica,
            settings.crane_params(margin_fraction),
        )),
        PolicyKind::Phpa { utilization } => Box::new(phpa::PhpaPolicy::new(
            settings.spec(step, 0.5, utilization),
            settings.phpa_params(),
        )),
    }
}

/// Replays `trace` through the policy `kind`.
pub fn simulate(trace: &DemandTrace, settings: &SimSettings, kind: PolicyKind) -> Result<SimRun, SimError> {
    simulate_sharing_fits(trace, settings, kind, None)
}

/// [`simulate`], with a predictive policy's fits taken from `shared_fits`: predictive replays of one
/// trace under the same settings (several quantiles or utilizations) then fit each model once.
pub fn simulate_sharing_fits(
    trace: &DemandTrace,
    settings: &SimSettings,
    kind: PolicyKind,
    shared_fits: Option<&SharedFits>,
) -> Result<SimRun, SimError> {
    settings.validate()?;
    match kind {
        PolicyKind::Predictive {
            quantile,
            utilization,
        } => {
            if !(quantile > 0.0 && quantile < 1.0) {
                return Err(invalid("quantile", format!("must be in (0, 1), got {quantile}")));
            }
            check_utilization(utilization)?;
        }
        PolicyKind::PredictiveSlo {
            max_underprovisioned_fraction: fraction,
            utilization,
        } => {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(invalid(
                    "max_underprovisioned_fraction",
                    format!("must be in (0, 1), got {fraction}"),
                ));
            }
            check_utilization(utilization)?;
        }
        PolicyKind::Reactive { utilization } | PolicyKind::PerfectForecast { utilization } => {
            check_utilization(utilization)?;
        }
        PolicyKind::Oracle => {}
        PolicyKind::CraneEhpa {
            utilization,
            margin_fraction,
        } => {
            check_utilization(utilization)?;
            settings
                .crane_params(margin_fraction)
                .dsp
                .check()
                .map_err(|e| invalid("crane", e.to_string()))?;
        }
        PolicyKind::Phpa { utilization } => {
            check_utilization(utilization)?;
            settings
                .phpa_params()
                .check()
                .map_err(|e| invalid("phpa", e.to_string()))?;
        }
    }
    let mut policy = make_policy(kind, trace, settings, shared_fits);
    simulate_with(trace, settings, kind, policy.as_mut())
}

fn check_utilization(utilization: f64) -> Result<(), SimError> {
    if utilization > 0.0 && utilization <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            "target_utilization",
            format!("must be in (0, 1], got {utilization}"),
        ))
    }
}

/// Replays `trace` through any [`SimPolicy`] (`kind` only labels the run).
pub fn simulate_with(
    trace: &DemandTrace,
    settings: &SimSettings,
    kind: PolicyKind,
    policy: &mut dyn SimPolicy,
) -> Result<SimRun, SimError> {
    settings.validate()?;
    let step = trace.step_seconds();
    let sync = secs(settings.sync_period);
    // One tick divides the sync period, the trace step and the start-up delay, so demand is constant
    // within a tick and pods without jitter become ready on a tick.
    let tick = [
        step,
        secs(settings.cluster.startup_delay),
        secs(settings.cluster.graceful_scale_down),
    ]
    .into_iter()
    .filter(|s| *s > 0)
    .fold(sync, gcd)
    .max(1);
    let start = trace.start();
    let end = trace.end();
    let evaluate_from = start + secs(settings.warmup);
    let lag = settings.scrape_lag(step);
    let window = secs(settings.rate_window).max(1);
    let capacity = settings.cluster.capacity_per_replica;

    let initial_demand = trace.peak_over(start, start + step).unwrap_or(0.0);
    let initial_target = match kind {
        PolicyKind::Reactive { utilization } | PolicyKind::PerfectForecast { utilization } => {
            capacity * utilization
        }
        PolicyKind::Predictive { utilization, .. } | PolicyKind::PredictiveSlo { utilization, .. } => {
            capacity * utilization
        }
        PolicyKind::CraneEhpa { utilization, .. } | PolicyKind::Phpa { utilization } => {
            capacity * utilization
        }
        PolicyKind::Oracle => capacity,
    };
    let initial = policy::replicas_for(initial_demand, initial_target)
        .clamp(settings.min_replicas, settings.max_replicas);
    let mut cluster = SimCluster::new(settings.cluster.clone(), initial, start);

    let mut history: Option<TimeSeries> = None;
    let history_step = settings.decision_step(step);
    let mut next_point = start;
    let history_window = secs(settings.history);
    let mut forecast_for: std::collections::HashMap<i64, (f64, f64, f64)> = std::collections::HashMap::new();
    let mut metrics = SimMetrics::default();
    let (mut demand_total, mut unserved_total) = (0.0, 0.0);
    let mut rows = Vec::new();
    let mut refits = 0usize;
    let mut fit_seconds_total = 0.0;
    let mut last_model = None;
    let mut health: Vec<(String, usize)> = Vec::new();
    let mut desired = initial;
    // Scale events: changes of the desired count between consecutive evaluated ticks.
    let (mut scale_events, mut last_desired) = (0u64, None);
    // Progress is added in batches of ticks, so that counting costs nothing.
    let mut reported = start;
    let mut t = start;
    while t < end {
        cluster.advance_to(t);
        if (t - start) % sync == 0 {
            // The history a controller would have: points whose interval ended a scrape ago.
            // At the decision step, each point the mean of the trace's finite values over it.
            let mut fresh = Vec::new();
            while next_point + history_step + lag <= t && next_point + history_step <= end {
                let mean = if history_step == step {
                    // The trace's own value, exactly (a mean of one step would round).
                    Some(trace.demand_at(next_point)).filter(|v| v.is_finite())
                } else {
                    trace.mean_over(next_point, next_point + history_step)
                };
                if let Some(v) = mean {
                    fresh.push((next_point, v));
                }
                next_point += history_step;
            }
            if !fresh.is_empty() {
                match &mut history {
                    Some(series) => {
                        series.append(&fresh)?;
                        if series.len() as i64 * history_step > history_window + 86_400 {
                            series.keep_since(t - history_window);
                        }
                    }
                    None => history = Some(TimeSeries::from_pairs_with_step(&fresh, history_step)?),
                }
            }
            let observed = trace.mean_over(t - lag - window, t - lag);
            let view = SimView {
                now: t,
                observed,
                history: history.as_ref(),
                replicas: cluster.replicas(),
                trace,
            };
            let decision = policy.decide(&view);
            if let Some(outcome) = &decision.outcome {
                if outcome.refitted {
                    refits += 1;
                }
                fit_seconds_total += outcome.fit_seconds.unwrap_or(0.0);
                if let Some(model) = &outcome.model {
                    last_model = Some(model.name.clone());
                }
                let reason = outcome.health.reason();
                match health.iter_mut().find(|(r, _)| r == reason) {
                    Some((_, n)) => *n += 1,
                    None => health.push((reason.to_owned(), 1)),
                }
            }
            if let Some((at, mean, lower, upper)) = decision.forecast_at_lead {
                // Shown at the first tick at or after the time it is for.
                let key = start + (at - start + tick - 1).div_euclid(tick) * tick;
                forecast_for.insert(key, (mean, lower, upper));
            }
            desired = decision.desired;
            cluster.set_desired(desired, t);
        }
        if t >= evaluate_from {
            let replicas = cluster.replicas();
            let demand = trace.demand_at(t);
            let served = f64::from(replicas.ready) * capacity;
            let minutes = tick as f64 / 60.0;
            metrics.peak_replicas = metrics.peak_replicas.max(cluster.billed_replicas());
            // Cost counts over the same minutes as shortfall (those with known demand): what a policy
            // holds through a gap in the trace cannot be compared with anything.
            if demand.is_finite() {
                metrics.replica_minutes += f64::from(cluster.billed_replicas()) * minutes;
                metrics.evaluated_minutes += minutes;
                if demand > served + 1e-9 {
                    metrics.underprovisioned_minutes += minutes;
                    unserved_total += (demand - served) * tick as f64;
                }
                demand_total += demand * tick as f64;
            }
            let (forecast, lower, upper) = forecast_for.remove(&t).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            scale_events += u64::from(last_desired.is_some_and(|d| d != desired));
            last_desired = Some(desired);
            if settings.keep_rows {
                rows.push(SeriesRow {
                    timestamp: t,
                    demand,
                    forecast,
                    forecast_lower: lower,
                    forecast_upper: upper,
                    desired_replicas: desired,
                    provisioned_replicas: cluster.billed_replicas(),
                    ready_replicas: replicas.ready,
                });
            }
        } else {
            forecast_for.remove(&t);
        }
        t += tick;
        if let Some(progress) = &settings.progress
            && t - reported >= 4096 * tick
        {
            progress.add(u64::try_from(t - reported).unwrap_or(0));
            reported = t;
        }
    }
    if let Some(progress) = &settings.progress {
        progress.add(u64::try_from(end - reported).unwrap_or(0));
    }
    metrics.scale_events = scale_events;
    metrics.unserved_fraction = if demand_total > 0.0 {
        unserved_total / demand_total
    } else {
        0.0
    };
    Ok(SimRun {
        policy: kind,
        metrics,
        rows,
        tick_seconds: tick,
        refits,
        fit_seconds_total,
        last_model,
        health_counts: health,
    })
}
