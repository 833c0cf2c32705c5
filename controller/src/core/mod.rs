//! The autoscaler's pure state machine, shared by the operator, the simulator and the demo: given the
//! history seen so far, the target's replicas and `now`, it refits the forecaster when due, forecasts,
//! and asks [`policy::decide`] for a decision. It reads no clock (time is an argument; `Instant` only
//! measures how long a fit took) and does no IO.
//!
//! "Not enough history", "stale data" and "fit failed" are health states of the outcome, not errors:
//! the reactive floor acts (raised, without a model, by the rise above observed demand that realised
//! windows showed), or replicas are held, and the health says why.
//!
//! The core owns its value types ([`ReplicaState`], [`PolicyType`], [`SelectPolicy`]), so it, the policy
//! and the simulator depend on nothing of the CRD or the IO edges.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use prescient_model::{FitOptions, FittedForecaster, Forecast, ModelChoice, ModelError, TimeSeries, fit};

pub mod peak;
mod types;

pub use types::{PolicyType, ReplicaState, SelectPolicy};

use crate::{
    core::peak::{
        CalibrationState, MissSignal, ModelPeak, PeakCalibrator, PlannedWindow, REFERENCE_QUANTILE,
    },
    policy::{self, Decision, DecisionReason, PolicyInput, PredictedDemand, RecentRecommendations},
    spec::ScalingSpec,
};

/// Rolling-origin folds used to select and calibrate the model at each refit (the model's minimum:
/// enough residuals per horizon step for calibrated bands, at the lowest fit cost).
pub const FIT_FOLDS: usize = prescient_model::MIN_FOLDS;

/// How far behind a replayed sync its observed demand is ([`AutoscalerCore::bootstrap`]): a rate over
/// the last minute, Prometheus' usual `rate(...[1m])`.
const REPLAY_OBSERVATION_LAG_SECONDS: i64 = 60;

/// Data older than this many steps (plus one sync period) is stale: the controller holds.
pub const STALE_AFTER_STEPS: i64 = 2;

/// A fit and how long it took.
type TimedFit = (Result<FittedForecaster, ModelError>, f64);

/// Fits shared by cores that fit the same history with the same options at the same moment.
///
/// The simulator replays one trace through predictive policies that differ only in quantile or
/// utilization: their refits see the same history at the same times, and a fit is deterministic, so
/// one fit serves them all. Each entry is dropped once every sharer has taken it, or, made
/// [`SharedFits::retained`], when the last clone is.
#[derive(Debug, Clone)]
pub struct SharedFits {
    entries: Arc<Mutex<HashMap<FitKey, Arc<SharedFit>>>>,
    sharers: usize,
}

#[derive(Debug, Default)]
struct SharedFit {
    result: OnceLock<TimedFit>,
    taken: AtomicUsize,
}

/// What a fit depends on: the options and the exact history (its grid and a hash of its values).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FitKey {
    start: i64,
    step_seconds: i64,
    len: usize,
    values_hash: u64,
    horizon_steps: usize,
    model: ModelChoice,
    folds: usize,
}

impl FitKey {
    fn new(history: &TimeSeries, options: &FitOptions) -> Self {
        let mut hasher = DefaultHasher::new();
        for value in history.values() {
            value.to_bits().hash(&mut hasher);
        }
        Self {
            start: history.start(),
            step_seconds: history.step_seconds(),
            len: history.len(),
            values_hash: hasher.finish(),
            horizon_steps: options.horizon_steps,
            model: options.model,
            folds: options.folds,
        }
    }
}

impl SharedFits {
    /// For `sharers` cores (each takes every fit once).
    pub fn new(sharers: usize) -> Self {
        Self {
            entries: Arc::default(),
            sharers: sharers.max(1),
        }
    }

    /// For replays in rounds that each take every fit (a frontier sweep, carried on once its first
    /// quantiles are replayed): every fit is kept until the last clone is dropped, so a later round
    /// fits nothing again. A fit is a model and its bands, a few kilobytes to tens of kilobytes.
    pub fn retained() -> Self {
        Self {
            entries: Arc::default(),
            sharers: usize::MAX,
        }
    }

    /// The fit of `history` with `options`: computed by the first core to ask, waited for by those
    /// asking meanwhile, and handed out until every sharer has taken it.
    fn fit(&self, history: &TimeSeries, options: &FitOptions) -> TimedFit {
        let key = FitKey::new(history, options);
        let entry = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(entries.entry(key.clone()).or_default())
        };
        let result = entry.result.get_or_init(|| timed_fit(history, options)).clone();
        if entry.taken.fetch_add(1, Ordering::SeqCst) + 1 >= self.sharers {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            entries.remove(&key);
        }
        result
    }

    /// Fits not yet taken by every sharer.
    pub fn pending(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }
}

fn timed_fit(history: &TimeSeries, options: &FitOptions) -> TimedFit {
    let started = Instant::now();
    let result = fit(history, options);
    (result, started.elapsed().as_secs_f64())
}

/// The fitted model as reported in status, the dashboard and the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub name: String,
    pub backtest_mase: Option<f64>,
    /// Unix seconds of the refit.
    pub fitted_at: i64,
    pub season_steps: Vec<usize>,
}

/// Whether the forecast could be used this sync, and if not, why.
#[derive(Debug, Clone, PartialEq)]
pub enum ForecastHealth {
    Healthy,
    /// Too little history for any forecast: the reactive floor acts, with headroom calibrated on the
    /// observed demand.
    InsufficientHistory {
        have: Duration,
        need: Duration,
    },
    /// The newest data point is too old: replicas are held.
    StaleData {
        age: Duration,
    },
    /// Metrics could not be fetched: replicas are held.
    MetricsUnavailable(String),
    /// The model could not be fitted: the reactive floor acts, as with too little history.
    FitFailed(String),
    /// The forecast is turned off (a reactive baseline): the reactive floor acts alone.
    Disabled,
    /// The target's replicas could not be read, so the sync stopped before fetching metrics: nothing
    /// was forecast and nothing is changed.
    TargetUnavailable(String),
}

impl ForecastHealth {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }

    /// The condition reason (CamelCase, stable).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::InsufficientHistory { .. } => "InsufficientHistory",
            Self::StaleData { .. } => "StaleData",
            Self::MetricsUnavailable(_) => "MetricsUnavailable",
            Self::FitFailed(_) => "FitFailed",
            Self::Disabled => "ForecastDisabled",
            Self::TargetUnavailable(_) => "TargetUnavailable",
        }
    }

    /// A sentence a person can act on.
    pub fn message(&self) -> String {
        use crate::duration::format_duration as fmt;
        match self {
            Self::Healthy => "forecast is up to date".to_owned(),
            Self::InsufficientHistory { have, need } => format!(
                "{} of history, the forecast needs {} ({} more); until then the reactive floor acts, with headroom calibrated on observed demand",
                fmt(*have),
                fmt(*need),
                fmt(need.saturating_sub(*have))
            ),
            Self::StaleData { age } => {
                format!(
                    "newest data point is {} old; holding replicas until fresh data arrives",
                    fmt(*age)
                )
            }
            Self::MetricsUnavailable(why) => format!("metrics unavailable ({why}); holding replicas"),
            Self::FitFailed(why) => format!(
                "model fit failed ({why}); the reactive floor acts, with headroom calibrated on observed demand"
            ),
            Self::Disabled => "forecast disabled; the reactive (HPA) rule acts alone".to_owned(),
            Self::TargetUnavailable(why) => {
                format!(
                    "forecast not evaluated: cannot read the target's replicas ({why}); nothing is changed"
                )
            }
        }
    }
}

/// What one sync saw and decided.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    pub now: i64,
    pub decision: Decision,
    pub forecast: Option<Forecast>,
    pub model: Option<ModelSummary>,
    pub health: ForecastHealth,
    /// The demand the reactive floor used (the newest finite history point).
    pub observed_demand: Option<f64>,
    /// Whether this sync refitted the model.
    pub refitted: bool,
    /// Wall time of the refit, if one ran.
    pub fit_seconds: Option<f64>,
    /// Where the online calibration of the window peak stands.
    pub calibration: CalibrationState,
}

/// The inputs a cached forecast was computed from; equal keys give equal forecasts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ForecastKey {
    fitted_at: i64,
    history_end: i64,
    history_len: usize,
    last_value_bits: u64,
    horizon_steps: usize,
}

/// The pure autoscaler state: the fitted model, the last forecast, the behavior's memory.
#[derive(Debug, Clone)]
pub struct AutoscalerCore {
    spec: ScalingSpec,
    fitted: Option<(FittedForecaster, ModelSummary)>,
    /// Time of the last fit attempt that failed, and why.
    failed_fit: Option<(i64, String)>,
    /// Usable points the model said it needs (from `InsufficientHistory`): no fit is tried below it.
    need_points: Option<usize>,
    refit_requested: bool,
    cached: Option<(ForecastKey, Forecast)>,
    recent: RecentRecommendations,
    shared_fits: Option<SharedFits>,
    /// Online calibration of the peak over the decision window `[now, now + leadTime + syncPeriod]`
    /// (see [`crate::core::peak`]): what the pods running now must serve, so it bounds a scale-down.
    calibrator: PeakCalibrator,
    /// The same for the arrival window `[now + leadTime, now + leadTime + syncPeriod]`: the part of
    /// the decision window that pods asked for now serve, so it sets a scale-up
    /// ([`policy::decide`]).
    arrival_calibrator: PeakCalibrator,
    /// Replaying past syncs ([`AutoscalerCore::bootstrap`]): no capacity was observed at them, and
    /// the model is fitted once.
    replaying: bool,
    /// Whether a sync has run on a history (replayed or real): a core bootstraps only before that.
    synced: bool,
}

/// What the calibration of the window peak aims at, from the spec.
fn miss_signal(spec: &ScalingSpec) -> MissSignal {
    match spec.max_underprovisioned_fraction {
        Some(max_fraction) => MissSignal::Shortfall { max_fraction },
        None => MissSignal::WindowPeak {
            quantile: spec.quantile,
        },
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `ceil(a / b)` for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// `steps` steps of `step_seconds` each, as a duration.
pub(crate) fn steps_duration(steps: usize, step_seconds: i64) -> Duration {
    Duration::from_secs((steps as u64).saturating_mul(step_seconds.max(0) as u64))
}

impl AutoscalerCore {
    pub fn new(spec: ScalingSpec) -> Self {
        Self {
            fitted: None,
            failed_fit: None,
            need_points: None,
            refit_requested: false,
            cached: None,
            recent: RecentRecommendations::new(),
            shared_fits: None,
            calibrator: PeakCalibrator::new(miss_signal(&spec)),
            arrival_calibrator: PeakCalibrator::new(miss_signal(&spec)),
            replaying: false,
            synced: false,
            spec,
        }
    }

    /// Warms a core that starts on a history it did not see arrive (an operator restarted, a new
    /// leader): replays the syncs of the last day of `history` before `now` as the operator would have
    /// run them, so that the window-peak calibration has its scores, its choices of unit and baseline
    /// and its adaptive level at the first real sync, instead of rebuilding them over hours (days with
    /// coarse steps) while the forecaster's own bands decide. Honest: the replay's model is fitted on
    /// the history before the replayed day and forecasts each past sync from the history seen then;
    /// it is not refitted during the replay (one fit, not one per refit interval) and the first real
    /// sync refits on the whole history. Returns the syncs replayed: none once the core has synced,
    /// or if it does not forecast.
    pub fn bootstrap(&mut self, history: &TimeSeries, now: i64) -> usize {
        if self.synced || !self.spec.forecast_enabled {
            return 0;
        }
        let step = history.step_seconds().max(1);
        let sync = secs(self.spec.sync_period).max(1);
        // The first replayed sync sees at least one point; syncs on the grid of `now`.
        let earliest = (history.start() + step).max(now.saturating_sub(peak::SCORE_LOOKBACK_SECONDS));
        let mut at = now - (now - earliest).div_euclid(sync) * sync;
        self.replaying = true;
        let mut replayed = 0;
        let mut seen = history.until(at - step);
        while at < now {
            // The points whose step had ended by then (copied once per step, not per sync), and the
            // demand observed then: a rate over the last minute, which a minute into a step is that
            // step's.
            if history.points_until(at - step) != seen.len() {
                seen = history.until(at - step);
            }
            if seen.last_finite().is_some() {
                let observed = history
                    .points_until(at - REPLAY_OBSERVATION_LAG_SECONDS)
                    .checked_sub(1)
                    .map(|last| history.values()[last]);
                self.sync_observed(&seen, observed, ReplicaState::default(), at);
                replayed += 1;
            }
            at += sync;
        }
        self.replaying = false;
        // The replay's decisions were never applied: the behavior forgets them.
        self.recent = RecentRecommendations::new();
        self.refit_requested = true;
        self.cached = None;
        replayed
    }

    /// Takes its fits from `fits`, shared with other cores replaying the same history.
    pub fn with_shared_fits(mut self, fits: SharedFits) -> Self {
        self.shared_fits = Some(fits);
        self
    }

    pub fn spec(&self) -> &ScalingSpec {
        &self.spec
    }

    /// Applies a new spec; refits at the next sync when a forecast setting changed.
    pub fn set_spec(&mut self, spec: ScalingSpec) {
        let forecast_changed = spec.history != self.spec.history
            || spec.step != self.spec.step
            || spec.horizon != self.spec.horizon
            || spec.model != self.spec.model;
        if forecast_changed {
            self.refit_requested = true;
            self.failed_fit = None;
            self.need_points = None;
            self.cached = None;
        }
        self.calibrator.set_signal(miss_signal(&spec));
        self.arrival_calibrator.set_signal(miss_signal(&spec));
        self.spec = spec;
    }

    /// The model currently in use.
    pub fn model(&self) -> Option<&ModelSummary> {
        self.fitted.as_ref().map(|(_, summary)| summary)
    }

    /// The behavior's memory (recent recommendations and scale events).
    pub fn recent(&self) -> &RecentRecommendations {
        &self.recent
    }

    /// Horizon the model is fitted for, in steps of the history.
    fn horizon_steps(&self, step_seconds: i64) -> usize {
        let steps = ceil_div(secs(self.spec.horizon), step_seconds.max(1));
        usize::try_from(steps).unwrap_or(usize::MAX).max(1)
    }

    /// Refits if due; returns (refitted, fit seconds, health if the model is unusable).
    fn refit_if_due(
        &mut self,
        history: &TimeSeries,
        now: i64,
    ) -> (bool, Option<f64>, Option<ForecastHealth>) {
        let step = history.step_seconds();
        let refit_every = secs(self.spec.refit_interval);
        let due = self.refit_requested
            || match (&self.fitted, &self.failed_fit) {
                // A replay fits once, when it can (see `bootstrap`).
                (Some(_), _) | (None, Some(_)) if self.replaying => false,
                (Some((_, summary)), _) => now - summary.fitted_at >= refit_every,
                (None, Some((at, _))) => now - at >= refit_every,
                (None, None) => true,
            };
        if !due && self.need_points.is_none() {
            let health = match (&self.fitted, &self.failed_fit) {
                (None, Some((_, why))) => Some(ForecastHealth::FitFailed(why.clone())),
                _ => None,
            };
            return (false, None, health);
        }
        // The fit sees at most `spec.history` and never a point after `now`.
        let mut bounded = history.until(now);
        bounded.keep_since(now.saturating_sub(secs(self.spec.history)));
        let have = bounded.finite_len();
        if let Some(need) = self.need_points.filter(|need| have < *need) {
            // Known too short: do not pay for a fit that must fail.
            self.fitted = None;
            let health = ForecastHealth::InsufficientHistory {
                have: steps_duration(have, step),
                need: steps_duration(need, step),
            };
            return (false, None, Some(health));
        }
        self.refit_requested = false;
        self.cached = None;
        let options = FitOptions {
            horizon_steps: self.horizon_steps(step),
            model: self.spec.model,
            folds: FIT_FOLDS,
        };
        let (result, fit_seconds) = match &self.shared_fits {
            Some(shared) => shared.fit(&bounded, &options),
            None => timed_fit(&bounded, &options),
        };
        match result {
            Ok(forecaster) => {
                let summary = ModelSummary {
                    name: forecaster.model_name().to_owned(),
                    backtest_mase: forecaster.backtest_mase(),
                    fitted_at: now,
                    season_steps: forecaster.season_steps().to_vec(),
                };
                self.fitted = Some((forecaster, summary));
                self.failed_fit = None;
                self.need_points = None;
                (true, Some(fit_seconds), None)
            }
            Err(ModelError::InsufficientHistory { have, need }) => {
                self.fitted = None;
                self.need_points = Some(need);
                let health = ForecastHealth::InsufficientHistory {
                    have: steps_duration(have, step),
                    need: steps_duration(need, step),
                };
                (false, Some(fit_seconds), Some(health))
            }
            Err(other) => {
                // Keep a previous model if there is one: an older forecast beats none.
                let why = other.to_string();
                if self.fitted.is_none() {
                    self.failed_fit = Some((now, why.clone()));
                    (false, Some(fit_seconds), Some(ForecastHealth::FitFailed(why)))
                } else {
                    if let Some((_, summary)) = &mut self.fitted {
                        // Try again at the next refit interval, not at every sync.
                        summary.fitted_at = now;
                    }
                    (false, Some(fit_seconds), None)
                }
            }
        }
    }

    /// The forecast from the current model on `history`, reusing the last one if nothing changed.
    fn forecast(&mut self, history: &TimeSeries, now: i64) -> Result<Forecast, ModelError> {
        let Some((forecaster, summary)) = &self.fitted else {
            return Err(ModelError::InvalidParameter("no fitted model".to_owned()));
        };
        let step = history.step_seconds().max(1);
        // Cover the decision window [now, now + leadTime + syncPeriod] from the history's last point.
        let window_end = now + secs(self.spec.lead_time) + secs(self.spec.sync_period);
        let needed = usize::try_from(ceil_div(window_end - history.end(), step)).unwrap_or(0) + 1;
        let horizon_steps = needed.max(self.horizon_steps(step));
        let key = ForecastKey {
            fitted_at: summary.fitted_at,
            history_end: history.end(),
            history_len: history.len(),
            last_value_bits: history.values().last().map_or(0, |v| v.to_bits()),
            horizon_steps,
        };
        if let Some((cached_key, forecast)) = &self.cached
            && *cached_key == key
        {
            return Ok(forecast.clone());
        }
        let forecast = forecaster.predict(history, horizon_steps)?;
        self.cached = Some((key, forecast.clone()));
        Ok(forecast)
    }

    /// One decision at `now` from the history seen so far (refit if due, forecast, decide).
    pub fn sync(&mut self, history: &TimeSeries, replicas: ReplicaState, now: i64) -> SyncOutcome {
        self.sync_observed(history, None, replicas, now)
    }

    /// Like [`AutoscalerCore::sync`], with the current demand observed apart from the history (an
    /// instant query, or the simulator's lagged rate) for the reactive floor; `None` uses the newest
    /// history point. With a coarse step the newest point can be a whole step old, while a rate over the
    /// last minute is not.
    pub fn sync_observed(
        &mut self,
        history: &TimeSeries,
        observed: Option<f64>,
        replicas: ReplicaState,
        now: i64,
    ) -> SyncOutcome {
        self.synced = true;
        let step = history.step_seconds().max(1);
        let stale_after = STALE_AFTER_STEPS * step + secs(self.spec.sync_period);
        let Some((latest_at, latest_value)) = history.last_finite() else {
            let health = ForecastHealth::InsufficientHistory {
                have: Duration::ZERO,
                need: self
                    .need_points
                    .map_or(self.spec.history, |n| steps_duration(n, step)),
            };
            return self.held(
                replicas,
                now,
                health,
                "no usable data point in the history".to_owned(),
            );
        };
        let age = now - latest_at;
        if age > stale_after {
            let health = ForecastHealth::StaleData {
                age: Duration::from_secs(age.max(0) as u64),
            };
            let why = format!("newest data point is {age}s old (limit {stale_after}s)");
            return self.held(replicas, now, health, why);
        }

        let observed_demand = observed
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(latest_value);
        let (refitted, fit_seconds, unusable) = if self.spec.forecast_enabled {
            self.refit_if_due(history, now)
        } else {
            (false, None, Some(ForecastHealth::Disabled))
        };
        let (forecast, health) = match unusable {
            Some(health) => (None, health),
            None => match self.forecast(history, now) {
                Ok(forecast) => (Some(forecast), ForecastHealth::Healthy),
                Err(error) => (
                    None,
                    ForecastHealth::FitFailed(format!("forecast failed: {error}")),
                ),
            },
        };
        // Realised windows (and capacities) first, so this sync's plan uses every outcome the history
        // now allows.
        let capacity = f64::from(replicas.ready) * self.spec.target_per_replica;
        for calibrator in [&mut self.calibrator, &mut self.arrival_calibrator] {
            calibrator.observe(history);
            if !self.replaying {
                calibrator.record_capacity(now, capacity);
            }
        }
        let arrival = now + secs(self.spec.lead_time);
        let window_end = arrival + secs(self.spec.sync_period);
        let predicted = forecast.as_ref().map(|f| {
            let reference = f.quantile(REFERENCE_QUANTILE);
            // The window `[from, window_end]` planned now: the forecast's point peak over it, never below
            // the demand observed now (so the scores measure only what is not yet known), and its spread,
            // how far the forecaster's reference band reaches above that peak.
            let plan = |calibrator: &mut PeakCalibrator, from: i64| {
                let floored_peak = |values: &[f64]| {
                    policy::peak_over(values, f.start, f.step_seconds, from, window_end)
                        .map(|peak| peak.max(observed_demand))
                };
                let peak = floored_peak(&f.mean)?;
                let spread = floored_peak(&reference).map_or(0.0, |band| band - peak);
                let window = PlannedWindow {
                    planned_at: now,
                    from,
                    to: window_end,
                    model: Some(ModelPeak { peak, spread }),
                    observed: observed_demand,
                };
                calibrator.plan(window, history.end(), history.step_seconds())
            };
            let calibrated_peak = plan(&mut self.calibrator, now);
            let calibrated_arrival_peak = plan(&mut self.arrival_calibrator, arrival);
            PredictedDemand {
                start: f.start,
                step_seconds: f.step_seconds,
                quantile: f.quantile(self.spec.quantile),
                mean: f.mean.clone(),
                calibrated_peak,
                calibrated_arrival_peak,
            }
        });
        // No model yet (or its fit failed): the calibration still knows how far window peaks rose above
        // the demand observed at their start, so the floor gets that headroom instead of none. A
        // disabled forecast (the reactive baseline) stays the HPA rule alone.
        let persistence_peak = match (&predicted, &health) {
            (None, ForecastHealth::InsufficientHistory { .. } | ForecastHealth::FitFailed(_)) => {
                let window = PlannedWindow {
                    planned_at: now,
                    from: now,
                    to: window_end,
                    model: None,
                    observed: observed_demand,
                };
                self.calibrator
                    .plan(window, history.end(), history.step_seconds())
            }
            _ => None,
        };
        let input = PolicyInput {
            now,
            forecast: predicted,
            observed_demand: Some(observed_demand),
            persistence_peak,
            stale: false,
            replicas,
        };
        let decision = policy::decide(&input, &self.spec, &self.recent);
        self.recent.record(
            now,
            &decision,
            replicas.desired,
            self.spec.scale_enabled,
            &self.spec.behavior,
        );
        SyncOutcome {
            now,
            decision,
            forecast,
            model: self.model().cloned(),
            health,
            observed_demand: Some(observed_demand),
            refitted,
            fit_seconds,
            calibration: self.calibrator.state(),
        }
    }

    /// Metrics could not be fetched: hold (never scale down), keep state.
    pub fn hold(&mut self, replicas: ReplicaState, now: i64, why: String) -> SyncOutcome {
        self.held(
            replicas,
            now,
            ForecastHealth::MetricsUnavailable(why.clone()),
            why,
        )
    }

    /// The target's replicas could not be read: nothing is decided and nothing is remembered (a
    /// recommendation made without knowing the replicas would skew the stabilization windows). The
    /// decision repeats the latest recommendation so reports show what the autoscaler last wanted.
    pub fn target_unreadable(&self, now: i64, why: String) -> SyncOutcome {
        let last = self
            .recent
            .recommendations()
            .last()
            .map_or(self.spec.min_replicas, |(_, r)| r);
        let decision = Decision {
            desired_replicas: last,
            reason: DecisionReason::HeldOnStaleData,
            predictive_replicas: None,
            reactive_replicas: None,
            demand_at_lead_time: None,
            peak_quantile_demand: None,
            arrival_peak_demand: None,
            message: format!("{why}; not scaling until the target can be read"),
            recommendation: last,
        };
        self.without_forecast(now, decision, ForecastHealth::TargetUnavailable(why))
    }

    fn held(&mut self, replicas: ReplicaState, now: i64, health: ForecastHealth, why: String) -> SyncOutcome {
        let input = PolicyInput {
            now,
            forecast: None,
            observed_demand: None,
            persistence_peak: None,
            stale: true,
            replicas,
        };
        let mut decision = policy::decide(&input, &self.spec, &self.recent);
        decision.message = format!("{why}; holding {} replicas", decision.desired_replicas);
        debug_assert_eq!(decision.reason, DecisionReason::HeldOnStaleData);
        self.recent.record(
            now,
            &decision,
            replicas.desired,
            self.spec.scale_enabled,
            &self.spec.behavior,
        );
        self.without_forecast(now, decision, health)
    }

    /// The outcome of a sync that made no forecast and observed no demand.
    fn without_forecast(&self, now: i64, decision: Decision, health: ForecastHealth) -> SyncOutcome {
        SyncOutcome {
            now,
            decision,
            forecast: None,
            model: self.model().cloned(),
            health,
            observed_demand: None,
            refitted: false,
            fit_seconds: None,
            calibration: self.calibrator.state(),
        }
    }
}
