//! jthomperoo's Predictive Horizontal Pod Autoscaler (PHPA), replayed in the simulator
//! (`--policy phpa`).
//!
//! Read from jthomperoo/predictive-horizontal-pod-autoscaler (v0.13 line, commit c91d0609 of
//! 2023-07-01):
//! - `internal/controllers/controller.go` — each sync computes the HPA's replica count from the
//!   metrics (`calculateReplicas`, tolerance 0.1); every model appends that count (not demand) to its
//!   own replica history, predicts from it and prunes it (`processModels`); the decision is over the
//!   HPA's count and every model's output (`decisionType`, default `maximum`); then PHPA's copy of the
//!   HPA behavior (`fillBehaviorDefaults`: scale-up max(100 %, 4 pods) per 60 s, scale-down 100 % per
//!   60 s after a 300 s stabilization) and min/max. A model with `startInterval` starts at the next
//!   multiple of it (`nextInterval`).
//! - `internal/prediction/linear/linear.go` and `algorithms/linear_regression/linear_regression.py` —
//!   ordinary least squares of replicas on "seconds before `now + lookAhead` (milliseconds)", the
//!   intercept rounded up; one point is returned as is; the history keeps the newest `historySize`.
//! - `internal/prediction/holtwinters/holtwinters.go` and `algorithms/holt_winters/holt_winters.py` —
//!   statsmodels 0.14 `ExponentialSmoothing(trend, seasonal, seasonal_periods,
//!   initialization_method="estimated").fit(alpha, beta, gamma, optimized=False)`, one step forecast
//!   rounded up. No prediction (the model contributes 0) while the history has fewer than
//!   `2 × seasonalPeriods` or `10 + 2 × (seasonalPeriods // 2)` values (the check added for PHPA#74,
//!   where statsmodels refused fewer than two seasons). Pruning keeps between `storedSeasons` and
//!   `storedSeasons + 1` seasons. statsmodels' "estimated" with this many observations and
//!   `optimized=False` means its heuristic initial values (`_initialization_heuristic`, Hyndman &
//!   Athanasopoulos §2.6: centred moving average over the first min(5, n/m) seasons, mean detrended
//!   value per position, normalized; level and trend from a regression on the first ten deseasonalized
//!   values) and the additive recursions of `holt_win_add_add_dam` with φ = 1.
//! - `docs/user-guide/models.md` and `examples/simple-holt-winters/phpa.yaml`,
//!   `examples/simple-linear/phpa.yaml` — the documented settings used as defaults here: linear
//!   `lookAhead: 10000`, `historySize: 6`; Holt-Winters `alpha = beta = gamma = 0.9`, `storedSeasons:
//!   4`, `trend: additive`, `seasonal: additive`.
//!
//! Where the replay must differ:
//! - The example's `seasonalPeriods: 6` at `syncPeriod: 20000` is a two-minute season made for its load
//!   generator; the models guide describes a season "starting at midnight … and lasting the whole day"
//!   (with `startInterval`) for real traffic, so the default season is one day of sync periods and the
//!   Holt-Winters model starts at the next UTC midnight.
//! - The released `PruneHistory` sorts the history newest first and the next sync appends the new value
//!   after it, so from the second prediction on Holt-Winters is fitted on an out-of-order series. The
//!   default replays the documented intent (chronological); `SeriesOrder::AsReleased` replays the code.
//! - The sync period is the simulator's (same for every policy), the HPA metric is the lagged demand
//!   observation our `reactive` uses, and `resetDuration` never fires (the replay never stops syncing).
//! - Min/max are applied before the rate limits (the shared behavior code) rather than after them.

use std::{collections::VecDeque, time::Duration};

use crate::{
    policy::{self, Decision, DecisionReason, RecentRecommendations},
    sim::{SimDecision, SimPolicy, SimView, secs},
    spec::{ScalingBehavior, ScalingSpec},
};

/// Why a PHPA setting is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhpaError {
    #[error("invalid PHPA setting {name}: {message}")]
    InvalidSetting { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: String) -> PhpaError {
    PhpaError::InvalidSetting { name, message }
}

/// The `linear` model (`spec.models[].linear`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    /// `lookAhead` (PHPA takes milliseconds).
    pub look_ahead: Duration,
    /// `historySize`.
    pub history_size: usize,
}

impl Default for LinearParams {
    /// The documented example: 10 s ahead, 6 evaluations.
    fn default() -> Self {
        Self {
            look_ahead: Duration::from_millis(10_000),
            history_size: 6,
        }
    }
}

/// In which order the Holt-Winters model sees its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOrder {
    /// Oldest first, as the models guide describes.
    Chronological,
    /// As the released code passes it: the pruned history newest first, then the new value.
    AsReleased,
}

/// The additive `holtWinters` model (`spec.models[].holtWinters`).
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWintersParams {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    /// `seasonalPeriods`, in sync periods.
    pub seasonal_periods: usize,
    /// `storedSeasons`.
    pub stored_seasons: usize,
    /// `startInterval`: the model starts at the next multiple of it (`None`: at once).
    pub start_interval: Option<Duration>,
    pub order: SeriesOrder,
}

impl HoltWintersParams {
    /// The documented example's smoothing and storage (0.9, 0.9, 0.9, 4 seasons) with a season of
    /// `season_periods` sync periods, starting at the next multiple of `season`.
    pub fn documented(seasonal_periods: usize, season: Duration) -> Self {
        Self {
            alpha: 0.9,
            beta: 0.9,
            gamma: 0.9,
            seasonal_periods,
            stored_seasons: 4,
            start_interval: Some(season),
            order: SeriesOrder::Chronological,
        }
    }

    pub fn check(&self) -> Result<(), PhpaError> {
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(name, format!("must be in [0, 1], got {v}")));
            }
        }
        if self.seasonal_periods < 2 {
            return Err(invalid(
                "seasonalPeriods",
                format!("must be at least 2, got {}", self.seasonal_periods),
            ));
        }
        if self.stored_seasons < 2 {
            return Err(invalid(
                "storedSeasons",
                format!(
                    "must be at least 2 (Holt-Winters needs two seasons), got {}",
                    self.stored_seasons
                ),
            ));
        }
        Ok(())
    }
}

/// Which models a PHPA runs and how it decides.
#[derive(Debug, Clone, PartialEq)]
pub struct PhpaParams {
    pub linear: Option<LinearParams>,
    pub holt_winters: Option<HoltWintersParams>,
    /// PHPA's own behavior defaults (not the HPA's 15 s periods).
    pub behavior: ScalingBehavior,
}

/// `fillBehaviorDefaults` of PHPA's controller: the HPA's defaults, with every rate policy's period a
/// minute instead of 15 s.
pub fn phpa_default_behavior() -> ScalingBehavior {
    let mut behavior = ScalingBehavior::default();
    for policy in behavior
        .scale_up
        .policies
        .iter_mut()
        .chain(behavior.scale_down.policies.iter_mut())
    {
        policy.period = Duration::from_secs(60);
    }
    behavior
}

impl PhpaParams {
    /// Both documented models, a daily season of `sync_period`s, decision `maximum`.
    pub fn documented(sync_period: Duration) -> Self {
        let day = Duration::from_secs(86_400);
        let periods = usize::try_from(86_400 / sync_period.as_secs().max(1)).unwrap_or(usize::MAX);
        Self {
            linear: Some(LinearParams::default()),
            holt_winters: Some(HoltWintersParams::documented(periods, day)),
            behavior: phpa_default_behavior(),
        }
    }

    pub fn check(&self) -> Result<(), PhpaError> {
        if let Some(hw) = &self.holt_winters {
            hw.check()?;
        }
        if let Some(l) = &self.linear
            && l.history_size == 0
        {
            return Err(invalid("historySize", "must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// The linear model's prediction (`linear_regression.py`): OLS of replicas on seconds before
/// `now + look_ahead`, evaluated there (the intercept), rounded up. `history` is `(time, replicas)`.
pub fn linear_prediction(history: &[(i64, u32)], now: i64, look_ahead: Duration) -> Option<i64> {
    match history {
        [] => None,
        [(_, only)] => Some(i64::from(*only)),
        _ => {
            let search = now as f64 + look_ahead.as_secs_f64();
            let n = history.len() as f64;
            let xs: Vec<f64> = history.iter().map(|(t, _)| search - *t as f64).collect();
            let ys: Vec<f64> = history.iter().map(|(_, r)| f64::from(*r)).collect();
            let mx = xs.iter().sum::<f64>() / n;
            let my = ys.iter().sum::<f64>() / n;
            let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
            let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
            // statsmodels' OLS uses the pseudo-inverse: with one distinct time the slope is 0.
            let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            let intercept = my - slope * mx;
            Some(ceil(intercept))
        }
    }
}

/// `math.ceil`, with a relative slack for the rounding noise of a different summation order.
fn ceil(v: f64) -> i64 {
    (v - 1e-9 * v.abs().max(1.0)).ceil() as i64
}

/// statsmodels' heuristic initial level, trend and seasonals for additive trend and season
/// (`_initialization_heuristic`); `None` with fewer than two seasons or `10 + 2 (m // 2)` values.
pub fn heuristic_initialization(y: &[f64], m: usize) -> Option<(f64, f64, Vec<f64>)> {
    let n = y.len();
    let min_obs = 10 + 2 * (m / 2);
    if n < 10 || m < 2 || n < 2 * m || n < min_obs {
        return None;
    }
    let k_cycles = (n / m).min(5).max(min_obs.div_ceil(m));
    let series = &y[..(m * k_cycles).min(n)];
    let len = series.len();
    // pandas' rolling(m, center=True).mean(): the window of m ending at i + m/2 (NaN where incomplete).
    let mut prefix = vec![0.0; len + 1];
    for (i, v) in series.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    let rolling = |i: isize| -> Option<f64> {
        let end = i + (m / 2) as isize; // inclusive
        let start = end - m as isize + 1;
        (start >= 0 && (end as usize) < len)
            .then(|| (prefix[end as usize + 1] - prefix[start as usize]) / m as f64)
    };
    let trend: Vec<Option<f64>> = (0..len as isize)
        .map(|i| {
            if m.is_multiple_of(2) {
                // .shift(-1).rolling(2).mean(): the mean of the centred windows at i and i + 1.
                match (rolling(i), rolling(i + 1)) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0),
                    _ => None,
                }
            } else {
                rolling(i)
            }
        })
        .collect();
    let mut seasonal = vec![0.0; m];
    for (j, s) in seasonal.iter_mut().enumerate() {
        let values: Vec<f64> = (0..k_cycles)
            .filter_map(|c| {
                let i = c * m + j;
                Some(series.get(i)? - trend.get(i).copied().flatten()?)
            })
            .collect();
        *s = if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        };
    }
    let mean = seasonal.iter().sum::<f64>() / m as f64;
    seasonal.iter_mut().for_each(|s| *s -= mean);
    // Level and trend: least squares of the first ten trend values on 1..=10.
    let level_data: Vec<f64> = trend.iter().flatten().copied().take(10).collect();
    if level_data.len() < 10 || seasonal.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let xs: Vec<f64> = (1..=10).map(f64::from).collect();
    let mx = 5.5;
    let my = level_data.iter().sum::<f64>() / 10.0;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&level_data).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    Some((my - slope * mx, slope, seasonal))
}

/// The state of the additive Holt-Winters recursions after some observations.
#[derive(Debug, Clone, PartialEq)]
struct HwState {
    level: f64,
    trend: f64,
    /// Seasonal values of the next `m` observations, the next one first.
    seasons: VecDeque<f64>,
    consumed: usize,
}

impl HwState {
    fn new(level: f64, trend: f64, seasonal: Vec<f64>) -> Self {
        Self {
            level,
            trend,
            seasons: seasonal.into(),
            consumed: 0,
        }
    }

    /// One step of `holt_win_add_add_dam` (φ = 1).
    fn update(&mut self, y: f64, alpha: f64, beta: f64, gamma: f64) {
        let season = self.seasons.pop_front().unwrap_or(0.0);
        let level = alpha * (y - season) + (1.0 - alpha) * (self.level + self.trend);
        let trend = beta * (level - self.level) + (1.0 - beta) * self.trend;
        let next_season = gamma * (y - self.level - self.trend) + (1.0 - gamma) * season;
        self.level = level;
        self.trend = trend;
        self.seasons.push_back(next_season);
        self.consumed += 1;
    }

    fn forecast(&self) -> f64 {
        self.level + self.trend + self.seasons.front().copied().unwrap_or(0.0)
    }
}

/// `ExponentialSmoothing(..., "add", "add", m).fit(alpha, beta, gamma, optimized=False).forecast(1)`,
/// unrounded; `None` where PHPA does not predict.
pub fn holt_winters_forecast(y: &[f64], params: &HoltWintersParams) -> Option<f64> {
    let (level, trend, seasonal) = heuristic_initialization(y, params.seasonal_periods)?;
    let mut state = HwState::new(level, trend, seasonal);
    for v in y {
        state.update(*v, params.alpha, params.beta, params.gamma);
    }
    Some(state.forecast())
}

/// One PHPA model's replica history and, for Holt-Winters, the recursion carried forward between
/// syncs (exactly what refitting from scratch gives while the series only grows and its
/// initialization window does not change; refitted otherwise).
#[derive(Debug, Clone, Default)]
struct ModelHistory {
    /// Chronological.
    replicas: VecDeque<(i64, u32)>,
    start_time: Option<i64>,
    /// `(first timestamp, initialization window)` the cached state was initialized for, and the state.
    cache: Option<((i64, usize), HwState)>,
}

/// PHPA's `nextInterval`: `t` rounded to a multiple of `d`, the next one if that is before `t`.
fn next_interval(t: i64, d: i64) -> i64 {
    if d <= 0 {
        return t;
    }
    let rounded = (t + d / 2).div_euclid(d) * d;
    if rounded < t { rounded + d } else { rounded }
}

/// PHPA's controller loop around the HPA count, in the simulator.
#[derive(Debug)]
pub struct PhpaPolicy {
    spec: ScalingSpec,
    params: PhpaParams,
    recent: RecentRecommendations,
    linear: ModelHistory,
    holt_winters: ModelHistory,
    /// The last outputs: (HPA, linear, Holt-Winters), for tests and reports.
    pub last_outputs: (u32, Option<i64>, Option<i64>),
}

impl PhpaPolicy {
    /// `spec` gives the HPA target per replica and bounds; its behavior is replaced by
    /// `params.behavior`.
    pub fn new(mut spec: ScalingSpec, params: PhpaParams) -> Self {
        spec.behavior = params.behavior.clone();
        Self {
            spec,
            params,
            recent: RecentRecommendations::new(),
            linear: ModelHistory::default(),
            holt_winters: ModelHistory::default(),
            last_outputs: (0, None, None),
        }
    }

    fn linear_step(&mut self, now: i64, calculated: u32) -> Option<i64> {
        let params = self.params.linear.as_ref()?;
        let h = &mut self.linear;
        h.replicas.push_back((now, calculated));
        let history: Vec<(i64, u32)> = h.replicas.iter().copied().collect();
        let out = linear_prediction(&history, now, params.look_ahead);
        while h.replicas.len() > params.history_size {
            h.replicas.pop_front();
        }
        out
    }

    fn holt_winters_step(&mut self, now: i64, calculated: u32) -> Option<i64> {
        let params = self.params.holt_winters.clone()?;
        let h = &mut self.holt_winters;
        if let Some(interval) = params.start_interval {
            let start = *h
                .start_time
                .get_or_insert_with(|| next_interval(now, secs(interval)));
            if now < start {
                return None;
            }
        }
        h.replicas.push_back((now, calculated));
        let m = params.seasonal_periods;
        let n = h.replicas.len();
        let out = if n < 2 * m || n < 10 + 2 * (m / 2) {
            // PHPA returns 0 (no error) here: the model's output is 0.
            Some(0)
        } else {
            match params.order {
                SeriesOrder::Chronological => {
                    let k_cycles = (n / m).min(5).max((10 + 2 * (m / 2)).div_ceil(m));
                    // The initialization reads the first min(k_cycles · m, n) values: the state
                    // carries forward only while that window is the same.
                    let window = (k_cycles * m).min(n);
                    let key = (h.replicas.front().map_or(now, |(t, _)| *t), window);
                    let cached = h.cache.take().filter(|(k, _)| *k == key);
                    let mut state = match cached {
                        Some((_, state)) => Some(state),
                        None => {
                            let y: Vec<f64> = h.replicas.iter().map(|(_, r)| f64::from(*r)).collect();
                            heuristic_initialization(&y, m).map(|(l, b, s)| HwState::new(l, b, s))
                        }
                    };
                    let forecast = state.as_mut().map(|s| {
                        for (_, r) in h.replicas.iter().skip(s.consumed) {
                            s.update(f64::from(*r), params.alpha, params.beta, params.gamma);
                        }
                        s.forecast()
                    });
                    h.cache = state.map(|s| (key, s));
                    forecast.map(ceil)
                }
                SeriesOrder::AsReleased => {
                    // The stored history newest first, then the value appended this sync.
                    let mut y: Vec<f64> = h
                        .replicas
                        .iter()
                        .rev()
                        .skip(1)
                        .map(|(_, r)| f64::from(*r))
                        .collect();
                    y.push(f64::from(calculated));
                    holt_winters_forecast(&y, &params).map(ceil)
                }
            }
        };
        // PruneHistory: drop whole seasons beyond `storedSeasons` (keeps storedSeasons..storedSeasons+1).
        let seasons_to_remove = (n / m).saturating_sub(params.stored_seasons);
        for _ in 0..seasons_to_remove * m {
            h.replicas.pop_front();
        }
        if seasons_to_remove > 0 {
            h.cache = None;
        }
        out
    }

    /// Holt-Winters history length now (for tests).
    pub fn holt_winters_history_len(&self) -> usize {
        self.holt_winters.replicas.len()
    }
}

impl SimPolicy for PhpaPolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        let current = view.replicas.desired;
        let target = self.spec.target_per_replica;
        let Some(observed) = view.observed.filter(|d| d.is_finite() && *d >= 0.0) else {
            // calculateReplicas fails without metrics: the reconcile returns early, nothing changes.
            return SimDecision {
                desired: current,
                forecast_at_lead: None,
                outcome: None,
            };
        };
        let calculated = policy::hpa_replicas(observed, current, target, &self.spec.behavior);
        let linear = self.linear_step(view.now, calculated);
        let holt_winters = self.holt_winters_step(view.now, calculated);
        self.last_outputs = (calculated, linear, holt_winters);
        // decisionType maximum over the HPA count and the models' outputs.
        let decided = [Some(i64::from(calculated)), linear, holt_winters]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(i64::from(calculated));
        let decided = u32::try_from(decided.max(0)).unwrap_or(u32::MAX);
        let reason = if decided > calculated {
            DecisionReason::Predictive
        } else {
            DecisionReason::ReactiveFloor
        };
        let (desired, _) = policy::apply_behavior(decided, current, view.now, &self.spec, &self.recent);
        let max = self.spec.max_replicas.max(self.spec.min_replicas);
        let desired = desired.clamp(self.spec.min_replicas, max);
        let decision = Decision {
            desired_replicas: desired,
            reason,
            predictive_replicas: Some(decided),
            reactive_replicas: Some(calculated),
            demand_at_lead_time: None,
            peak_quantile_demand: None,
            arrival_peak_demand: None,
            message: String::new(),
            recommendation: decided,
        };
        self.recent
            .record(view.now, &decision, current, true, &self.spec.behavior);
        SimDecision {
            desired,
            forecast_at_lead: None,
            outcome: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{ClusterConfig, SimSettings};

    fn policy(m: usize, stored: usize) -> PhpaPolicy {
        let mut params = PhpaParams::documented(Duration::from_secs(30));
        params.linear = None;
        params.holt_winters = Some(HoltWintersParams {
            seasonal_periods: m,
            stored_seasons: stored,
            start_interval: None,
            ..HoltWintersParams::documented(m, Duration::from_secs(60))
        });
        let settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(60), 10.0));
        PhpaPolicy::new(settings.spec(30, 0.5, 1.0), params)
    }

    #[test]
    fn the_carried_forward_recursion_equals_a_refit_from_scratch_at_every_sync() {
        let (m, stored) = (6, 3);
        let mut p = policy(m, stored);
        let params = p.params.holt_winters.clone().expect("hw");
        let mut replicas: Vec<(i64, u32)> = Vec::new();
        let mut state = 12345u64;
        for i in 0..200i64 {
            // A season plus a pseudo-random wobble.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = 10 + [0, 2, 5, 7, 5, 2][(i % 6) as usize] + (state >> 61) as u32;
            let now = i * 30;
            replicas.push((now, r));
            let got = p.holt_winters_step(now, r);
            let n = replicas.len();
            let expected = if n < 2 * m || n < 10 + 2 * (m / 2) {
                Some(0)
            } else {
                let y: Vec<f64> = replicas.iter().map(|(_, r)| f64::from(*r)).collect();
                holt_winters_forecast(&y, &params).map(ceil)
            };
            assert_eq!(got, expected, "sync {i}, history {n}");
            let remove = (n / m).saturating_sub(stored) * m;
            replicas.drain(..remove);
            assert_eq!(p.holt_winters_history_len(), replicas.len());
        }
    }

    #[test]
    fn the_next_interval_rounds_up_to_a_multiple() {
        assert_eq!(next_interval(100, 60), 120);
        assert_eq!(next_interval(120, 60), 120);
        assert_eq!(next_interval(86_400 + 5, 86_400), 2 * 86_400);
    }
}
