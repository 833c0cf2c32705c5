//! The forecasters, behind one trait.
//!
//! Each model is fitted by a function `fit_*` from a [`FitInput`] (filled values, their absolute step
//! index, detected seasons, horizon) and returns a fitted model implementing [`Forecaster`], which
//! forecasts from any newer history by applying its fitted parameters (no refit). Fitted models are
//! immutable and shared behind `Arc`, so a fitted forecaster is cheap to clone and `Send + Sync`.

use std::{fmt::Debug, sync::Arc};

use linfa::{Dataset, traits::Fit, traits::Predict};
use linfa_elasticnet::ElasticNet;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView1};

use crate::{ModelError, ModelKind, optimize::nelder_mead};

/// A fitted forecaster.
pub trait Forecaster: Debug + Send + Sync {
    fn kind(&self) -> ModelKind;
    /// How many of the latest history points `predict` uses.
    fn window(&self) -> usize;
    /// Point forecast of `horizon` steps after the last value of `values` (finite, missing values filled);
    /// `t0` is the absolute step index (`timestamp / step`) of `values[0]`, for calendar phases.
    fn predict(&self, values: &[f64], t0: i64, horizon: usize) -> Vec<f64>;
}

/// What a model is fitted on.
#[derive(Debug, Clone, Copy)]
pub struct FitInput<'a> {
    /// Finite values (missing ones filled), oldest first.
    pub values: &'a [f64],
    /// Absolute step index of `values[0]`.
    pub t0: i64,
    /// Detected seasons usable with this history, strongest first.
    pub seasons: &'a [usize],
    /// Horizon the model is selected for, in steps.
    pub horizon: usize,
}

/// Fits one model.
pub fn fit_model(kind: ModelKind, input: &FitInput) -> Result<Arc<dyn Forecaster>, ModelError> {
    if input.values.is_empty() {
        return Err(ModelError::InsufficientHistory { have: 0, need: 1 });
    }
    Ok(match kind {
        ModelKind::Naive => Arc::new(Naive),
        ModelKind::SeasonalNaive => Arc::new(SeasonalNaive {
            period: input.seasons.first().copied(),
        }),
        ModelKind::HoltWinters => Arc::new(fit_holt_winters(input)),
        ModelKind::Mstl => Arc::new(fit_mstl(input)),
        ModelKind::Linear => fit_regression(input, Learner::Linear)?,
        ModelKind::Svr => fit_regression(input, Learner::Svr)?,
    })
}

/// Fills missing values with the value one `period` earlier when known, else the last value
/// (leading missing values take the first finite one). Returns `None` when nothing is finite.
pub fn fill_missing(values: &[f64], period: Option<usize>) -> Option<Vec<f64>> {
    let first = values.iter().copied().find(|v| v.is_finite())?;
    let mut out: Vec<f64> = Vec::with_capacity(values.len());
    let mut last = first;
    for (i, &v) in values.iter().enumerate() {
        let filled = if v.is_finite() {
            v
        } else {
            match period {
                Some(p) if p >= 2 && i >= p => out[i - p],
                _ => last,
            }
        };
        last = filled;
        out.push(filled);
    }
    Some(out)
}

/// Points whose median is the reference level of a drop-out test.
const DROPOUT_REFERENCE: usize = 12;
/// A zero below a reference level of this many is a drop-out: a Poisson count with that mean is zero
/// with probability e^-10 < 5e-5, so the zero is a failed scrape or an outage, not quiet demand.
const DROPOUT_LEVEL: f64 = 10.0;

/// Marks drop-outs as missing (NaN), so that models fill them from one season earlier instead of
/// learning them: a zero where the median of the last [`DROPOUT_REFERENCE`] values before it (drop-outs
/// skipped) is at least [`DROPOUT_LEVEL`]. Causal (each point is judged on its past only) and bounded: a
/// run of zeros longer than `longest` steps (a day, or the primary season) is real, and is kept from
/// there on.
pub fn mask_dropouts(values: &[f64], longest: usize) -> Vec<f64> {
    let mut out = values.to_vec();
    let mut recent: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let mut sorted = Vec::with_capacity(DROPOUT_REFERENCE);
    let mut run = 0usize;
    let mut off = false;
    for v in &mut out {
        if !v.is_finite() {
            continue;
        }
        if *v == 0.0 && recent.len() == DROPOUT_REFERENCE && run < longest && !off {
            sorted.clear();
            sorted.extend(recent.iter().copied());
            sorted.sort_by(f64::total_cmp);
            if sorted[DROPOUT_REFERENCE / 2] >= DROPOUT_LEVEL {
                run += 1;
                *v = f64::NAN;
                continue;
            }
        }
        // A run of zeros that reached the limit stays real until demand returns.
        off = *v == 0.0 && (off || run >= longest);
        run = 0;
        if recent.len() == DROPOUT_REFERENCE {
            recent.pop_front();
        }
        recent.push_back(*v);
    }
    out
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

fn tail(values: &[f64], n: usize) -> &[f64] {
    &values[values.len().saturating_sub(n)..]
}

// ---------------------------------------------------------------------------------------------------
// Naive and seasonal naive

/// Repeats the last value: the benchmark every other model must beat.
#[derive(Debug)]
struct Naive;

impl Forecaster for Naive {
    fn kind(&self) -> ModelKind {
        ModelKind::Naive
    }
    fn window(&self) -> usize {
        1
    }
    fn predict(&self, values: &[f64], _t0: i64, horizon: usize) -> Vec<f64> {
        vec![values.last().copied().unwrap_or(0.0); horizon]
    }
}

/// Repeats the last cycle of the primary season (naive when there is none).
#[derive(Debug)]
struct SeasonalNaive {
    period: Option<usize>,
}

impl Forecaster for SeasonalNaive {
    fn kind(&self) -> ModelKind {
        ModelKind::SeasonalNaive
    }
    fn window(&self) -> usize {
        self.period.unwrap_or(1)
    }
    fn predict(&self, values: &[f64], _t0: i64, horizon: usize) -> Vec<f64> {
        let n = values.len();
        match self.period {
            Some(p) if n >= p => (0..horizon).map(|k| values[n - p + k % p]).collect(),
            _ => Naive.predict(values, 0, horizon),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Holt-Winters: additive seasonality, additive damped trend.

/// Smoothing parameters of additive damped Holt(-Winters).
#[derive(Debug, Clone, Copy)]
struct Smoothing {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Smoothing {
    /// Maps unconstrained optimiser coordinates to admissible parameters
    /// (0 < beta < alpha < 1, 0 < gamma < 1 - alpha, 0.8 <= phi <= 0.98).
    fn from_free(x: &[f64], seasonal: bool) -> Self {
        let alpha = 0.001 + 0.998 * sigmoid(x[0]);
        let beta = alpha * 0.5 * sigmoid(x[1]);
        let phi = 0.8 + 0.18 * sigmoid(x[2]);
        let gamma = if seasonal {
            (1.0 - alpha) * sigmoid(x[3])
        } else {
            0.0
        };
        Self {
            alpha,
            beta,
            gamma,
            phi,
        }
    }
}

/// State after filtering: level, trend, season (indexed by position mod m from the window start).
struct HwState {
    level: f64,
    trend: f64,
    season: Vec<f64>,
    /// Sum of squared (clipped) one-step errors after the first cycle: the robust fitting objective.
    sse: f64,
}

/// A one-step error beyond this many times the running mean absolute error is an outlier: it moves the
/// state only by the clipped amount (a Huber-type filter, as in Gelper, Fried and Croux's robust
/// Holt-Winters), unless it is part of a level shift.
const CLIP: f64 = 4.0;
/// This many consecutive outliers on the same side are a level shift, not outliers: the level is reset to
/// the latest observation, so a shift is followed within this many steps.
const SHIFT_RUN: usize = 3;
/// Weight of the newest clipped error in the running mean absolute error.
const SCALE_WEIGHT: f64 = 0.05;

/// The Huber-type clipping of one-step errors, with the level-shift rule.
struct Clipper {
    /// Running mean absolute (clipped) one-step error.
    scale: f64,
    /// Consecutive outliers, signed (positive: above the forecast).
    run: i64,
}

impl Clipper {
    fn new(y: &[f64]) -> Self {
        // Start from the mean absolute one-step change, a robust-enough first scale of the noise.
        let k = y.len().min(200);
        let scale = if k >= 2 {
            y[..k].windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (k - 1) as f64
        } else {
            0.0
        };
        Self { scale, run: 0 }
    }

    /// The error the state is updated with, and whether the level must jump to the observation.
    fn clip(&mut self, error: f64) -> (f64, bool) {
        let bound = CLIP * self.scale;
        if bound.is_nan() || bound <= 0.0 || error.abs() <= bound {
            self.run = 0;
            self.scale += SCALE_WEIGHT * (error.abs() - self.scale);
            return (error, false);
        }
        let side = if error > 0.0 { 1 } else { -1 };
        self.run = if self.run.signum() == side {
            self.run + side
        } else {
            side
        };
        self.scale += SCALE_WEIGHT * (bound - self.scale);
        let shift = self.run.unsigned_abs() as usize >= SHIFT_RUN;
        if shift {
            self.run = 0;
        }
        (error.clamp(-bound, bound), shift)
    }
}

/// Runs the additive damped Holt-Winters recursions over `y` (season length `m`, 0 = none), with
/// outlier-clipped errors and level shifts followed.
fn hw_filter(y: &[f64], m: usize, p: Smoothing) -> HwState {
    hw_filter_scored(y, m, p, if m >= 2 { m } else { 1 })
}

/// [`hw_filter`] with the squared errors summed from step `score_from` on.
fn hw_filter_scored(y: &[f64], m: usize, p: Smoothing, score_from: usize) -> HwState {
    let n = y.len();
    let (mut level, mut trend, mut season) = if m >= 2 && n >= 2 * m {
        let first = mean(&y[..m]);
        let second = mean(&y[m..2 * m]);
        let season: Vec<f64> = (0..m)
            .map(|i| 0.5 * ((y[i] - first) + (y[m + i] - second)))
            .collect();
        (first, (second - first) / m as f64, season)
    } else {
        let k = n.min(10);
        let slope = if k >= 2 {
            (y[k - 1] - y[0]) / (k - 1) as f64
        } else {
            0.0
        };
        (y.first().copied().unwrap_or(0.0), slope, Vec::new())
    };
    let mut clipper = Clipper::new(y);
    let mut sse = 0.0;
    // One step of the recursions; `s` is the seasonal state of the step's phase (0 without a season).
    let mut update = |value: f64, s: &mut f64, scored: bool, level: &mut f64, trend: &mut f64| {
        let raw = value - (*level + p.phi * *trend + *s);
        let (error, shift) = clipper.clip(raw);
        if scored {
            sse += error * error;
        }
        *level += p.phi * *trend + if shift { raw } else { p.alpha * error };
        *trend = p.phi * *trend + p.beta * error;
        *s += p.gamma * error;
    };
    if season.is_empty() {
        let mut none = 0.0;
        for (t, &value) in y.iter().enumerate() {
            update(value, &mut none, t >= score_from, &mut level, &mut trend);
            none = 0.0;
        }
    } else {
        // Cycle by cycle, so the season index needs no division.
        for (cycle, chunk) in y.chunks(m).enumerate() {
            for (i, (s, &value)) in season.iter_mut().zip(chunk).enumerate() {
                update(value, s, cycle * m + i >= score_from, &mut level, &mut trend);
            }
        }
    }
    HwState {
        level,
        trend,
        season,
        sse,
    }
}

fn hw_forecast(state: &HwState, n: usize, m: usize, phi: f64, horizon: usize) -> Vec<f64> {
    let mut damp = 0.0;
    let mut factor = 1.0;
    (1..=horizon)
        .map(|k| {
            factor *= phi;
            damp += factor;
            let s = if state.season.is_empty() {
                0.0
            } else {
                state.season[(n + k - 1) % m]
            };
            state.level + damp * state.trend + s
        })
        .collect()
}

/// Fits smoothing parameters on `y` by Nelder–Mead on the one-step squared error.
fn fit_smoothing(y: &[f64], m: usize) -> Smoothing {
    let seasonal = m >= 2 && y.len() >= 2 * m;
    let x0 = [-1.0, -1.0, 1.0, -2.0];
    let dim = if seasonal { 4 } else { 3 };
    // Long seasons make every evaluation expensive: fewer evaluations, the start point is sensible.
    let budget = if y.len() > 3000 { 100 } else { 160 };
    let best = nelder_mead(
        |x| hw_filter(y, if seasonal { m } else { 0 }, Smoothing::from_free(x, seasonal)).sse,
        &x0[..dim],
        1.0,
        budget,
    );
    Smoothing::from_free(&best, seasonal)
}

/// Fits simple exponential smoothing (ETS(A,N,N): α only, no trend) on `y` by Nelder–Mead.
fn fit_level(y: &[f64]) -> Smoothing {
    let params = |x: &[f64]| Smoothing {
        alpha: 0.001 + 0.998 * sigmoid(x[0]),
        beta: 0.0,
        gamma: 0.0,
        phi: 0.8,
    };
    let best = nelder_mead(|x| hw_filter(y, 0, params(x)).sse, &[-1.0], 1.0, 40);
    params(&best)
}

/// Additive Holt-Winters with a damped trend on the primary season.
#[derive(Debug)]
struct HoltWinters {
    params: Smoothing,
    period: usize,
    window: usize,
}

/// Points the Holt-Winters filter runs over: enough cycles for the seasonal state to settle.
fn hw_window(period: usize, available: usize) -> usize {
    let want = if period >= 2 { (3 * period).max(1000) } else { 1000 };
    want.min(available)
}

fn fit_holt_winters(input: &FitInput) -> HoltWinters {
    let n = input.values.len();
    // The shortest detected season that fits twice in the data (cheap and the best-identified).
    let period = input
        .seasons
        .iter()
        .copied()
        .filter(|&p| n > 2 * p)
        .min()
        .unwrap_or(0);
    let window = hw_window(period, n);
    let y = tail(input.values, window);
    let m = if y.len() >= 2 * period { period } else { 0 };
    // Seasonal, damped trend or level only, by AIC as ETS chooses (each state and smoothing parameter
    // counts; a season of m steps costs m initial states): a long, noisy season fitted on a few cycles, or
    // a trend fitted to noise, is often worse than none.
    let aic = |sse: f64, scored: usize, parameters: usize| {
        let scored = scored.max(1) as f64;
        scored * (sse.max(1e-300) / scored).ln() + 2.0 * parameters as f64
    };
    // Every candidate is scored on the same steps, after the two cycles the seasonal states start from
    // (scored on them, a season would be credited with fitting its own initial values).
    let from = if m > 0 { 2 * m } else { 1 };
    let scored = y.len().saturating_sub(from);
    let level = fit_level(y);
    let damped = fit_smoothing(y, 0);
    let mut best = (aic(hw_filter_scored(y, 0, level, from).sse, scored, 2), level, 0);
    let candidate = aic(hw_filter_scored(y, 0, damped, from).sse, scored, 5);
    if candidate < best.0 {
        best = (candidate, damped, 0);
    }
    if m > 0 {
        let seasonal = fit_smoothing(y, m);
        let candidate = aic(hw_filter_scored(y, m, seasonal, from).sse, scored, 6 + m);
        if candidate < best.0 {
            best = (candidate, seasonal, m);
        }
    }
    HoltWinters {
        params: best.1,
        period: best.2,
        window,
    }
}

impl Forecaster for HoltWinters {
    fn kind(&self) -> ModelKind {
        ModelKind::HoltWinters
    }
    fn window(&self) -> usize {
        self.window
    }
    fn predict(&self, values: &[f64], _t0: i64, horizon: usize) -> Vec<f64> {
        let y = tail(values, self.window);
        let m = if y.len() >= 2 * self.period {
            self.period
        } else {
            0
        };
        let state = hw_filter(y, m, self.params);
        hw_forecast(&state, y.len(), m, self.params.phi, horizon)
    }
}

// ---------------------------------------------------------------------------------------------------
// MSTL-like: seasonal profiles of up to two periods by robust per-phase averaging, damped Holt on the rest.

/// Seasonal profiles (indexed by absolute phase) plus a damped Holt model of the deseasonalised series.
#[derive(Debug)]
struct Mstl {
    profiles: Vec<(usize, Vec<f64>)>,
    params: Smoothing,
    window: usize,
}

impl Mstl {
    fn seasonal_at(&self, absolute: i64) -> f64 {
        self.profiles
            .iter()
            .map(|(p, prof)| prof[phase(absolute, *p)])
            .sum()
    }
}

fn phase(absolute: i64, period: usize) -> usize {
    let p = i64::try_from(period).unwrap_or(i64::MAX).max(1);
    usize::try_from(absolute.rem_euclid(p)).unwrap_or(0)
}

/// Centered moving average with window `w` (edges use the available part).
fn moving_average(x: &[f64], w: usize) -> Vec<f64> {
    let n = x.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for v in x {
        prefix.push(prefix[prefix.len() - 1] + v);
    }
    let half = w / 2;
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + w - half).min(n);
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

/// Median-of-phase profile of `x` (absolute index of x[0] is `t0`), circularly smoothed, zero mean.
fn phase_profile(x: &[f64], t0: i64, period: usize) -> Vec<f64> {
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); period];
    for (i, v) in x.iter().enumerate() {
        buckets[phase(t0 + i as i64, period)].push(*v);
    }
    let raw: Vec<f64> = buckets
        .iter_mut()
        .map(|b| {
            if b.is_empty() {
                return 0.0;
            }
            b.sort_by(f64::total_cmp);
            // Robust centre: mean of the middle half (median for few samples).
            let q = b.len() / 4;
            mean(&b[q..b.len() - q])
        })
        .collect();
    let half = period / 96;
    let smooth: Vec<f64> = if half == 0 {
        raw
    } else {
        (0..period)
            .map(|i| {
                let s: f64 = (0..=2 * half)
                    .map(|j| raw[(i + period + j - half) % period])
                    .sum();
                s / (2 * half + 1) as f64
            })
            .collect()
    };
    let centre = mean(&smooth);
    smooth.iter().map(|v| v - centre).collect()
}

fn fit_mstl(input: &FitInput) -> Mstl {
    let n = input.values.len();
    let mut periods: Vec<usize> = input
        .seasons
        .iter()
        .copied()
        .filter(|&p| n >= 2 * p)
        .take(2)
        .collect();
    periods.sort_unstable();
    let window = periods.last().map_or(2000, |&p| (3 * p).max(2000)).min(n);
    let start = n - window;
    let y = &input.values[start..];
    let t0 = input.t0 + start as i64;
    let mut profiles: Vec<(usize, Vec<f64>)> = periods.iter().map(|&p| (p, vec![0.0; p])).collect();
    for _ in 0..2 {
        for k in 0..profiles.len() {
            let p = profiles[k].0;
            let others: Vec<f64> = (0..y.len())
                .map(|i| {
                    let t = t0 + i as i64;
                    y[i] - profiles
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != k)
                        .map(|(_, (q, pr))| pr[phase(t, *q)])
                        .sum::<f64>()
                })
                .collect();
            let trend = moving_average(&others, p);
            let detrended: Vec<f64> = others.iter().zip(&trend).map(|(a, b)| a - b).collect();
            profiles[k].1 = phase_profile(&detrended, t0, p);
        }
    }
    let mut model = Mstl {
        profiles,
        params: Smoothing {
            alpha: 0.5,
            beta: 0.0,
            gamma: 0.0,
            phi: 0.9,
        },
        window: 0,
    };
    let holt_window = window.min(1500);
    let rest: Vec<f64> = (start + window - holt_window..n)
        .map(|i| input.values[i] - model.seasonal_at(input.t0 + i as i64))
        .collect();
    model.params = fit_smoothing(&rest, 0);
    model.window = holt_window;
    model
}

impl Forecaster for Mstl {
    fn kind(&self) -> ModelKind {
        ModelKind::Mstl
    }
    fn window(&self) -> usize {
        self.window
    }
    fn predict(&self, values: &[f64], t0: i64, horizon: usize) -> Vec<f64> {
        let start = values.len().saturating_sub(self.window);
        let rest: Vec<f64> = (start..values.len())
            .map(|i| values[i] - self.seasonal_at(t0 + i as i64))
            .collect();
        let state = hw_filter(&rest, 0, self.params);
        let end = t0 + values.len() as i64;
        hw_forecast(&state, rest.len(), 0, self.params.phi, horizon)
            .into_iter()
            .enumerate()
            .map(|(k, v)| v + self.seasonal_at(end + k as i64))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// Regression on engineered features (linfa): one pooled direct model for every horizon step.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learner {
    Linear,
    Svr,
}

/// Rows of the training set for each learner (SVR's cost grows with the square of it).
const LINEAR_ROWS: usize = 1500;
const SVR_ROWS: usize = 150;
/// Points averaged into the "recent level".
const LEVEL_POINTS: usize = 5;
/// Fourier harmonics per detected period.
const HARMONICS: usize = 2;

/// Builds the features of target `origin + k` from history up to `origin` (inclusive).
/// Everything is relative to the recent level, so the model learns shapes, not absolute values.
#[derive(Debug, Clone)]
struct Features {
    periods: Vec<usize>,
    horizon: usize,
}

impl Features {
    /// Oldest history needed before an origin.
    fn lookback(&self) -> usize {
        self.periods.iter().copied().max().unwrap_or(0) + LEVEL_POINTS + 30
    }

    fn level(y: &[f64], origin: usize) -> f64 {
        mean(&y[origin + 1 - LEVEL_POINTS.min(origin + 1)..=origin])
    }

    fn build(&self, y: &[f64], t0: i64, origin: usize, k: usize, out: &mut Vec<f64>) {
        let level = Self::level(y, origin);
        let h = k as f64 / self.horizon.max(1) as f64;
        let h = h.min(2.0);
        out.push(y[origin] - level);
        let long = mean(&y[origin + 1 - 30.min(origin + 1)..=origin]) - level;
        out.push(long);
        out.push(long * h);
        out.push(h);
        let absolute = t0 + (origin + k) as i64;
        for &p in &self.periods {
            // Latest observation at the target's phase, and the origin's phase one cycle ago.
            let back = p * k.div_ceil(p);
            let same_phase = if origin + k >= back {
                y[origin + k - back]
            } else {
                level
            };
            let origin_last_cycle = if origin >= p {
                Self::level(y, origin - p)
            } else {
                level
            };
            let seasonal = same_phase - level;
            let deviation = level - origin_last_cycle;
            out.push(seasonal);
            out.push(deviation);
            out.push(deviation * h);
            out.push(seasonal * h);
            for j in 1..=HARMONICS {
                let angle = 2.0 * std::f64::consts::PI * j as f64 * phase(absolute, p) as f64 / p as f64;
                out.push(angle.sin());
                out.push(angle.cos());
            }
        }
    }

    fn width(&self) -> usize {
        4 + self.periods.len() * (4 + 2 * HARMONICS)
    }
}

#[derive(Debug)]
enum Regressor {
    Linear { weights: Vec<f64>, intercept: f64 },
    Svr(Box<Svm<f64, f64>>),
}

/// A linfa regression on standardised features, predicting (target − recent level) / scale.
#[derive(Debug)]
struct Regression {
    learner: Learner,
    features: Features,
    x_mean: Vec<f64>,
    x_scale: Vec<f64>,
    y_scale: f64,
    regressor: Regressor,
}

fn fit_regression(input: &FitInput, learner: Learner) -> Result<Arc<dyn Forecaster>, ModelError> {
    let y = input.values;
    let n = y.len();
    let horizon = input.horizon.max(1);
    let mut periods: Vec<usize> = input
        .seasons
        .iter()
        .copied()
        .filter(|&p| n >= p + horizon + 200)
        .take(2)
        .collect();
    periods.sort_unstable();
    let features = Features { periods, horizon };
    let first_origin = features.lookback().min(n.saturating_sub(1));
    if n < first_origin + horizon + 20 {
        // Too short to learn anything: a model that always predicts the recent level.
        return Err(ModelError::InsufficientHistory {
            have: n,
            need: first_origin + horizon + 20,
        });
    }
    let wanted = if learner == Learner::Linear {
        LINEAR_ROWS
    } else {
        SVR_ROWS
    };
    let last_origin = n - 2; // at least one target ahead
    let span = last_origin - first_origin + 1;
    let rows = wanted.min(span * horizon.min(span));
    let width = features.width();
    let mut x = Vec::with_capacity(rows * width);
    let mut targets = Vec::with_capacity(rows);
    // Deterministic spread of (origin, k): newest origins first so short histories keep recent rows.
    for r in 0..rows {
        let origin = last_origin - ((r * 7919) % span);
        let max_k = (n - 1 - origin).min(horizon);
        let k = 1 + (r * 104_729) % max_k;
        features.build(y, input.t0, origin, k, &mut x);
        targets.push(y[origin + k] - Features::level(y, origin));
    }
    let mut x_mean = vec![0.0; width];
    let mut x_scale = vec![0.0; width];
    for j in 0..width {
        let column: Vec<f64> = (0..rows).map(|i| x[i * width + j]).collect();
        let m = mean(&column);
        let sd = (column.iter().map(|v| (v - m).powi(2)).sum::<f64>() / rows as f64).sqrt();
        x_mean[j] = m;
        x_scale[j] = if sd > 1e-12 { sd } else { 1.0 };
    }
    let y_scale = {
        let sd = (targets.iter().map(|v| v * v).sum::<f64>() / rows as f64).sqrt();
        if sd > 1e-12 { sd } else { 1.0 }
    };
    for i in 0..rows {
        for j in 0..width {
            x[i * width + j] = (x[i * width + j] - x_mean[j]) / x_scale[j];
        }
    }
    let records = Array2::from_shape_vec((rows, width), x).map_err(|e| ModelError::Numerical {
        model: name(learner).into(),
        reason: e.to_string(),
    })?;
    let target = Array1::from_iter(targets.iter().map(|v| v / y_scale));
    let dataset = Dataset::new(records, target);
    let numerical = |reason: String| ModelError::Numerical {
        model: name(learner).into(),
        reason,
    };
    let regressor = match learner {
        Learner::Linear => {
            let model = ElasticNet::params()
                .penalty(1e-3)
                .l1_ratio(0.5)
                .max_iterations(100)
                .tolerance(1e-3)
                .fit(&dataset)
                .map_err(|e| numerical(e.to_string()))?;
            Regressor::Linear {
                weights: model.hyperplane().to_vec(),
                intercept: model.intercept(),
            }
        }
        Learner::Svr => {
            let model = Svm::<f64, f64>::params()
                .c_svr(1.0, Some(0.1))
                .eps(1e-2)
                .gaussian_kernel(2.0 * width as f64)
                .fit(&dataset)
                .map_err(|e| numerical(e.to_string()))?;
            Regressor::Svr(Box::new(model))
        }
    };
    Ok(Arc::new(Regression {
        learner,
        features,
        x_mean,
        x_scale,
        y_scale,
        regressor,
    }))
}

fn name(learner: Learner) -> &'static str {
    match learner {
        Learner::Linear => "linear",
        Learner::Svr => "svr",
    }
}

impl Forecaster for Regression {
    fn kind(&self) -> ModelKind {
        match self.learner {
            Learner::Linear => ModelKind::Linear,
            Learner::Svr => ModelKind::Svr,
        }
    }
    fn window(&self) -> usize {
        self.features.lookback() + 1
    }
    fn predict(&self, values: &[f64], t0: i64, horizon: usize) -> Vec<f64> {
        let Some(origin) = values.len().checked_sub(1) else {
            return vec![0.0; horizon];
        };
        let level = Features::level(values, origin);
        let mut row = Vec::with_capacity(self.features.width());
        (1..=horizon)
            .map(|k| {
                row.clear();
                self.features.build(values, t0, origin, k, &mut row);
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (*v - self.x_mean[j]) / self.x_scale[j];
                }
                let z = match &self.regressor {
                    Regressor::Linear { weights, intercept } => {
                        intercept + weights.iter().zip(&row).map(|(w, x)| w * x).sum::<f64>()
                    }
                    Regressor::Svr(svm) => svm.predict(ArrayView1::from(&row[..])),
                };
                level + z * self.y_scale
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_amid_busy_demand_are_drop_outs_and_quiet_zeros_are_not() {
        let mut busy = vec![50.0; 40];
        busy[20] = 0.0;
        busy[21] = 0.0;
        let masked = mask_dropouts(&busy, 100);
        assert!(masked[20].is_nan() && masked[21].is_nan());
        assert_eq!(masked[22], 50.0);
        // Sparse counts: a zero is ordinary.
        let quiet: Vec<f64> = (0..40).map(|i| f64::from(i % 3)).collect();
        assert_eq!(mask_dropouts(&quiet, 100), quiet);
        // A run of zeros longer than the limit is real from there on.
        let mut off = vec![50.0; 20];
        off.extend(vec![0.0; 10]);
        let masked = mask_dropouts(&off, 4);
        assert!(masked[20..24].iter().all(|v| v.is_nan()));
        assert!(masked[24..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn clipping_bounds_outliers_and_lets_a_shift_through() {
        let mut clipper = Clipper::new(&[10.0, 11.0, 10.0, 11.0]);
        assert_eq!(clipper.clip(0.5), (0.5, false));
        let (clipped, shift) = clipper.clip(100.0);
        assert!(clipped < 10.0 && !shift);
        let _ = clipper.clip(100.0);
        assert!(
            clipper.clip(100.0).1,
            "the third outlier on one side is a level shift"
        );
    }
}
