//! Rolling-origin backtest, accuracy metrics, automatic selection (and ensembles), and [`fit`].
//!
//! The backtest is cheap by construction: every model is fitted **once** on the history before the
//! earliest fold origin, then each fold applies those fitted parameters to the history up to its origin
//! (which is also how a fitted model is used live: no refit per forecast). Origins are `stride =
//! ceil(h / 2)` steps apart at the end of the history.

use std::{sync::Arc, time::Instant};

use crate::{
    BacktestOptions, BacktestReport, FitOptions, FittedForecaster, Forecast, ModelChoice, ModelError,
    ModelKind, ModelScore, TimeSeries,
    calibration::{Calibration, noise_scale, noise_window},
    models::{FitInput, Forecaster, fill_missing, fit_model, mask_dropouts},
    seasons::detect_seasons,
};

/// Fewest folds used for selection and calibration, whatever is asked: bands need residual samples.
pub const MIN_FOLDS: usize = 60;
/// Fewest points a model is trained on.
const MIN_TRAIN: usize = 16;
/// Most recent points a model sees (beyond three cycles of the longest season).
const BASE_WINDOW: usize = 2000;
/// Relative MASE difference under which two candidates tie (the cheaper one wins).
const TIE: f64 = 0.005;
/// Every model, cheapest first.
const ALL_MODELS: [ModelKind; 6] = [
    ModelKind::Naive,
    ModelKind::SeasonalNaive,
    ModelKind::HoltWinters,
    ModelKind::Linear,
    ModelKind::Mstl,
    ModelKind::Svr,
];

impl ModelKind {
    /// The model's name in the CLI, the CRD and reports.
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Naive => "naive",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::HoltWinters => "holt_winters",
            ModelKind::Mstl => "mstl",
            ModelKind::Linear => "linear",
            ModelKind::Svr => "svr",
        }
    }

    /// Every model, cheapest first (the tie-break order of `auto`).
    pub fn all() -> [ModelKind; 6] {
        ALL_MODELS
    }

    /// Parses a model name (`auto` is a [`ModelChoice`], not a kind).
    pub fn from_name(name: &str) -> Result<ModelKind, ModelError> {
        ALL_MODELS
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| ModelError::UnknownModel(name.to_owned()))
    }

    fn cost_rank(self) -> usize {
        ALL_MODELS.iter().position(|k| *k == self).unwrap_or(usize::MAX)
    }
}

impl std::str::FromStr for ModelChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(ModelChoice::Auto)
        } else {
            ModelKind::from_name(s).map(ModelChoice::Named)
        }
    }
}

/// The history as the models see it: a bounded recent window, filled, with its seasons and folds.
struct Prepared {
    /// Values with NaN for missing ones (for scoring: only observed values count).
    raw: Vec<f64>,
    /// Values with missing ones filled (what models are fitted on).
    filled: Vec<f64>,
    /// Absolute step index of `raw[0]`.
    t0: i64,
    seasons: Vec<usize>,
    step_seconds: i64,
    horizon: usize,
    /// Fold origins (index of the last observed point), newest first.
    origins: Vec<usize>,
    /// Noise scale of the history up to each origin (same order), which normalises its residuals.
    scales: Vec<f64>,
    /// In-sample MAE of seasonal naive (the MASE denominator).
    mase_scale: f64,
}

impl Prepared {
    fn new(history: &TimeSeries, horizon: usize, folds: usize) -> Result<Self, ModelError> {
        if horizon == 0 {
            return Err(ModelError::InvalidParameter(
                "horizon must be at least one step, got 0".into(),
            ));
        }
        if folds == 0 {
            return Err(ModelError::InvalidParameter(
                "folds must be at least 1, got 0".into(),
            ));
        }
        let stride = horizon.div_ceil(2);
        let need = MIN_TRAIN.max(horizon) + horizon + stride;
        let have = history.finite_len();
        if history.is_empty() {
            return Err(ModelError::InsufficientHistory { have: 0, need });
        }
        if have == 0 {
            return Err(ModelError::AllMissing);
        }
        if have < need {
            return Err(ModelError::InsufficientHistory { have, need });
        }
        let seasons = detect_seasons(history);
        let folds = folds.max(MIN_FOLDS);
        let span = horizon + (folds - 1) * stride;
        let longest = seasons.iter().copied().max().unwrap_or(0);
        let window = (3 * longest).max(BASE_WINDOW.max(4 * horizon)) + span;
        let values = history.values();
        let mut from = values.len().saturating_sub(window);
        while from < values.len() && !values[from].is_finite() {
            from += 1;
        }
        let raw = values[from..].to_vec();
        let filled = fill_missing(
            &mask_dropouts(&raw, dropout_limit(history.step_seconds(), &seasons)),
            seasons.first().copied(),
        )
        .ok_or(ModelError::AllMissing)?;
        let n = raw.len();
        let max_origin = n
            .checked_sub(horizon + 1)
            .ok_or(ModelError::InsufficientHistory { have, need })?;
        let min_origin = MIN_TRAIN.max(horizon) - 1;
        if max_origin < min_origin + stride {
            return Err(ModelError::InsufficientHistory { have, need });
        }
        // Origins half a horizon apart; closer when the history is too short for that many folds
        // (overlapping folds still add calibration samples).
        let room = max_origin - min_origin;
        let stride = stride.min(room / (folds - 1).max(1)).max(1);
        let count = (room / stride + 1).min(folds);
        let origins: Vec<usize> = (0..count).map(|j| max_origin - j * stride).collect();
        let train_end = origins.last().copied().unwrap_or(max_origin) + 1;
        let mase_scale = mase_scale(&raw[..train_end], history.step_seconds(), &seasons);
        let scales = origins
            .iter()
            .map(|&o| noise_scale(&filled, o, noise_window(horizon)))
            .collect();
        Ok(Self {
            raw,
            filled,
            t0: history.start_index() + from as i64,
            seasons,
            step_seconds: history.step_seconds(),
            horizon,
            origins,
            scales,
            mase_scale,
        })
    }

    fn train_end(&self) -> usize {
        self.origins.last().map_or(0, |o| o + 1)
    }

    fn input(&self, end: usize) -> FitInput<'_> {
        FitInput {
            values: &self.filled[..end],
            t0: self.t0,
            seasons: &self.seasons,
            horizon: self.horizon,
        }
    }

    /// Forecast of `model` from fold origin `origin`, sanitised.
    fn fold_forecast(&self, model: &dyn Forecaster, origin: usize) -> Vec<f64> {
        let from = (origin + 1).saturating_sub(model.window());
        let history = &self.filled[from..=origin];
        sanitize(
            model.predict(history, self.t0 + from as i64, self.horizon),
            history,
        )
    }

    fn actuals(&self, origin: usize) -> &[f64] {
        &self.raw[origin + 1..origin + 1 + self.horizon]
    }
}

/// Longest run of zeros taken for a drop-out: the primary season, else a day (at least an hour).
fn dropout_limit(step_seconds: i64, seasons: &[usize]) -> usize {
    let steps = |seconds: i64| usize::try_from(seconds / step_seconds.max(1)).unwrap_or(1).max(1);
    seasons
        .first()
        .copied()
        .unwrap_or_else(|| steps(86_400))
        .max(steps(3600))
}

/// In-sample MAE of seasonal naive at the daily period (else the primary season, else lag 1).
fn mase_scale(raw: &[f64], step_seconds: i64, seasons: &[usize]) -> f64 {
    let daily = (86_400 % step_seconds.max(1) == 0)
        .then(|| usize::try_from(86_400 / step_seconds.max(1)).ok())
        .flatten();
    let lag = daily
        .filter(|&d| raw.len() >= 2 * d)
        .or_else(|| seasons.first().copied().filter(|&p| raw.len() > p))
        .unwrap_or(1);
    let (mut sum, mut count) = (0.0, 0usize);
    for i in lag..raw.len() {
        let d = raw[i] - raw[i - lag];
        if d.is_finite() {
            sum += d.abs();
            count += 1;
        }
    }
    let scale = if count > 0 { sum / count as f64 } else { 0.0 };
    if scale > 1e-12 { scale } else { 1.0 }
}

/// Replaces non-finite forecasts by the last history value and clamps demand at 0.
fn sanitize(mut forecast: Vec<f64>, history: &[f64]) -> Vec<f64> {
    let fallback = history
        .iter()
        .rev()
        .copied()
        .find(|v| v.is_finite())
        .unwrap_or(0.0)
        .max(0.0);
    for v in &mut forecast {
        *v = if v.is_finite() { v.max(0.0) } else { fallback };
    }
    forecast
}

/// One model's fold forecasts.
struct Evaluated {
    kind: ModelKind,
    model: Arc<dyn Forecaster>,
    fit_seconds: f64,
    /// Per fold (same order as `Prepared::origins`), `horizon` values.
    forecasts: Vec<Vec<f64>>,
}

fn evaluate(prepared: &Prepared, kinds: &[ModelKind]) -> (Vec<Evaluated>, Option<ModelError>) {
    let mut out = Vec::new();
    let mut first_error = None;
    let input = prepared.input(prepared.train_end());
    for &kind in kinds {
        let started = Instant::now();
        match fit_model(kind, &input) {
            Ok(model) => {
                let fit_seconds = started.elapsed().as_secs_f64();
                let forecasts = prepared
                    .origins
                    .iter()
                    .map(|&o| prepared.fold_forecast(model.as_ref(), o))
                    .collect();
                out.push(Evaluated {
                    kind,
                    model,
                    fit_seconds,
                    forecasts,
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (out, first_error)
}

/// Point accuracy of fold forecasts.
struct PointScores {
    mae: f64,
    rmse: f64,
    smape: f64,
    mase: f64,
    mae_by_horizon: Vec<f64>,
}

fn point_scores(prepared: &Prepared, forecasts: &[Vec<f64>]) -> PointScores {
    let h = prepared.horizon;
    let (mut abs, mut sq, mut sm, mut count) = (0.0, 0.0, 0.0, 0usize);
    let mut by_h = vec![(0.0, 0usize); h];
    for (fold, &origin) in forecasts.iter().zip(&prepared.origins) {
        for (k, (f, a)) in fold.iter().zip(prepared.actuals(origin)).enumerate() {
            if !a.is_finite() {
                continue;
            }
            let e = a - f;
            abs += e.abs();
            sq += e * e;
            let denominator = a.abs() + f.abs();
            sm += if denominator > 0.0 {
                2.0 * e.abs() / denominator
            } else {
                0.0
            };
            count += 1;
            by_h[k].0 += e.abs();
            by_h[k].1 += 1;
        }
    }
    let c = count.max(1) as f64;
    let mae = abs / c;
    PointScores {
        mae,
        rmse: (sq / c).sqrt(),
        smape: sm / c,
        mase: if count > 0 {
            mae / prepared.mase_scale
        } else {
            f64::INFINITY
        },
        mae_by_horizon: by_h
            .iter()
            .map(|(s, n)| if *n > 0 { s / *n as f64 } else { f64::NAN })
            .collect(),
    }
}

/// Residuals (actual − forecast) per horizon step over the given folds.
fn residuals(
    prepared: &Prepared,
    forecasts: &[Vec<f64>],
    folds: impl Iterator<Item = usize>,
) -> Vec<Vec<f64>> {
    let mut by_step = vec![Vec::new(); prepared.horizon];
    for j in folds {
        let (origin, scale) = (prepared.origins[j], prepared.scales[j]);
        for (k, (f, a)) in forecasts[j].iter().zip(prepared.actuals(origin)).enumerate() {
            let r = (a - f) / scale;
            if r.is_finite() {
                by_step[k].push(r);
            }
        }
    }
    by_step
}

/// Coverage and pinball loss of the central `level` band, each fold calibrated on the other folds that
/// do not overlap it in time (cross-conformal), so the measured coverage is out of sample.
fn interval_scores(prepared: &Prepared, forecasts: &[Vec<f64>], level: f64) -> (f64, f64) {
    let (q_lo, q_hi) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    let (mut inside, mut loss, mut count) = (0usize, 0.0, 0usize);
    let folds = prepared.origins.len();
    for j in 0..folds {
        let oj = prepared.origins[j];
        let apart: Vec<usize> = (0..folds)
            .filter(|&i| prepared.origins[i].abs_diff(oj) >= prepared.horizon)
            .collect();
        let others: Vec<usize> = if apart.is_empty() {
            (0..folds).filter(|&i| i != j).collect()
        } else {
            apart
        };
        if others.is_empty() {
            continue;
        }
        let calibration = Calibration::from_residuals(&residuals(prepared, forecasts, others.into_iter()));
        let scale = prepared.scales[j];
        for (k, (f, a)) in forecasts[j].iter().zip(prepared.actuals(oj)).enumerate() {
            if !a.is_finite() {
                continue;
            }
            let lower = (f + calibration.offset(k, q_lo) * scale).max(0.0);
            let upper = (f + calibration.offset(k, q_hi) * scale).max(0.0);
            inside += usize::from(*a >= lower && *a <= upper);
            loss += pinball(*a, lower, q_lo) + pinball(*a, upper, q_hi);
            count += 1;
        }
    }
    if count == 0 {
        return (f64::NAN, f64::NAN);
    }
    (inside as f64 / count as f64, loss / (2 * count) as f64)
}

/// The quantile (pinball) loss of `quantile_forecast` at level `q` for an `actual` value.
pub fn pinball(actual: f64, quantile_forecast: f64, q: f64) -> f64 {
    let d = actual - quantile_forecast;
    if d >= 0.0 { q * d } else { (q - 1.0) * d }
}

/// A candidate of `auto`: one model or the mean of several.
struct Candidate {
    members: Vec<usize>,
    forecasts: Vec<Vec<f64>>,
    /// MASE over all folds (reported).
    mase: f64,
    /// MASE with recent folds weighted more (what `auto` ranks by).
    recent: f64,
}

/// Fold weights of the selection: the newest quarter of the folds carries about half the weight (weights
/// halve every quarter of the folds, newest first), so `auto` follows a change in which model fits best
/// without trusting a single recent fold.
fn recency_weights(folds: usize) -> Vec<f64> {
    let half_life = (folds as f64 / 4.0).max(1.0);
    (0..folds).map(|j| 0.5f64.powf(j as f64 / half_life)).collect()
}

/// MASE with each fold's absolute errors weighted by `weights` (folds newest first).
fn weighted_mase(prepared: &Prepared, forecasts: &[Vec<f64>], weights: &[f64]) -> f64 {
    let (mut sum, mut total) = (0.0, 0.0);
    for ((fold, &origin), w) in forecasts.iter().zip(&prepared.origins).zip(weights) {
        for (f, a) in fold.iter().zip(prepared.actuals(origin)) {
            if a.is_finite() {
                sum += w * (a - f).abs();
                total += w;
            }
        }
    }
    if total > 0.0 {
        sum / total / prepared.mase_scale
    } else {
        f64::INFINITY
    }
}

fn candidate_name(evaluated: &[Evaluated], members: &[usize]) -> String {
    if members.len() == 1 {
        evaluated[members[0]].kind.name().to_owned()
    } else {
        let names: Vec<&str> = members.iter().map(|&i| evaluated[i].kind.name()).collect();
        format!("ensemble({})", names.join("+"))
    }
}

/// `auto`: the lowest recency-weighted MASE (ties to the cheaper model), or the mean of the best two or
/// three when that backtests better.
fn select(prepared: &Prepared, evaluated: &[Evaluated]) -> Option<Candidate> {
    let weights = recency_weights(prepared.origins.len());
    let mut ranked: Vec<(usize, f64)> = evaluated
        .iter()
        .enumerate()
        .map(|(i, e)| (i, weighted_mase(prepared, &e.forecasts, &weights)))
        .collect();
    ranked.retain(|(_, m)| m.is_finite());
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let &(best_index, best_recent) = ranked.first()?;
    // Ties: the cheapest model within TIE of the best.
    let (best, recent) = ranked
        .iter()
        .filter(|(_, m)| *m <= best_recent * (1.0 + TIE))
        .min_by_key(|(i, _)| evaluated[*i].kind.cost_rank())
        .copied()
        .unwrap_or((best_index, best_recent));
    let mut chosen = Candidate {
        members: vec![best],
        forecasts: evaluated[best].forecasts.clone(),
        mase: point_scores(prepared, &evaluated[best].forecasts).mase,
        recent,
    };
    for size in [2, 3] {
        if ranked.len() < size {
            break;
        }
        let members: Vec<usize> = ranked[..size].iter().map(|(i, _)| *i).collect();
        let forecasts: Vec<Vec<f64>> = (0..prepared.origins.len())
            .map(|j| {
                (0..prepared.horizon)
                    .map(|k| members.iter().map(|&i| evaluated[i].forecasts[j][k]).sum::<f64>() / size as f64)
                    .collect()
            })
            .collect();
        let recent = weighted_mase(prepared, &forecasts, &weights);
        if recent < chosen.recent * (1.0 - TIE) {
            chosen = Candidate {
                members,
                mase: point_scores(prepared, &forecasts).mase,
                forecasts,
                recent,
            };
        }
    }
    Some(chosen)
}

/// Fits one named model, or selects one automatically (`auto`), and calibrates its bands.
pub fn fit(history: &TimeSeries, options: &FitOptions) -> Result<FittedForecaster, ModelError> {
    let prepared = Prepared::new(history, options.horizon_steps, options.folds)?;
    let kinds: Vec<ModelKind> = match options.model {
        ModelChoice::Auto => ALL_MODELS.to_vec(),
        ModelChoice::Named(kind) => vec![kind],
    };
    let (evaluated, error) = evaluate(&prepared, &kinds);
    let Some(chosen) = select(&prepared, &evaluated) else {
        return Err(error.unwrap_or(ModelError::AllMissing));
    };
    let calibration = Calibration::from_residuals(&residuals(
        &prepared,
        &chosen.forecasts,
        0..prepared.origins.len(),
    ));
    // The members are used as fitted before the folds, not refitted on the whole window: the backtest
    // (and so the bands) measured exactly these parameters applied to newer history, and every model
    // forecasts from the newest data anyway. It also halves the cost of a fit.
    let members = chosen
        .members
        .iter()
        .map(|&i| Arc::clone(&evaluated[i].model))
        .collect();
    Ok(FittedForecaster {
        name: candidate_name(&evaluated, &chosen.members),
        members,
        seasons: prepared.seasons.clone(),
        step_seconds: prepared.step_seconds,
        backtest_mase: Some(chosen.mase).filter(|m| m.is_finite()),
        calibration: Arc::new(calibration),
        horizon: prepared.horizon,
    })
}

/// Rolling-origin comparison of every model, and of what `auto` picks.
pub fn backtest(history: &TimeSeries, options: &BacktestOptions) -> Result<BacktestReport, ModelError> {
    if !(options.level > 0.0 && options.level < 1.0) {
        return Err(ModelError::InvalidParameter(format!(
            "level must be in (0, 1), got {}",
            options.level
        )));
    }
    let prepared = Prepared::new(history, options.horizon_steps, options.folds)?;
    let (evaluated, error) = evaluate(&prepared, &ALL_MODELS);
    let Some(chosen) = select(&prepared, &evaluated) else {
        return Err(error.unwrap_or(ModelError::AllMissing));
    };
    let score = |model: String, forecasts: &[Vec<f64>], fit_seconds: f64| {
        let p = point_scores(&prepared, forecasts);
        let (coverage, pinball) = interval_scores(&prepared, forecasts, options.level);
        ModelScore {
            model,
            mae: p.mae,
            rmse: p.rmse,
            smape: p.smape,
            mase: p.mase,
            coverage,
            pinball,
            fit_seconds,
            mae_by_horizon: p.mae_by_horizon,
        }
    };
    let models: Vec<ModelScore> = evaluated
        .iter()
        .map(|e| score(e.kind.name().to_owned(), &e.forecasts, e.fit_seconds))
        .collect();
    let auto_seconds: f64 = evaluated.iter().map(|e| e.fit_seconds).sum();
    let auto = score(
        candidate_name(&evaluated, &chosen.members),
        &chosen.forecasts,
        auto_seconds,
    );
    Ok(BacktestReport {
        step_seconds: prepared.step_seconds,
        season_steps: prepared.seasons.clone(),
        horizon_steps: prepared.horizon,
        folds: prepared.origins.len(),
        level: options.level,
        models,
        auto,
    })
}

impl FittedForecaster {
    /// e.g. `holt_winters` or `ensemble(mstl+linear)`.
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// MASE of the chosen model in the selection backtest.
    pub fn backtest_mase(&self) -> Option<f64> {
        self.backtest_mase
    }

    /// Detected seasons (steps), strongest first.
    pub fn season_steps(&self) -> &[usize] {
        &self.seasons
    }

    pub fn step_seconds(&self) -> i64 {
        self.step_seconds
    }

    /// Applies the fitted parameters to the latest history (no refit); the forecast starts at
    /// `history.end() + step`.
    pub fn predict(&self, history: &TimeSeries, horizon_steps: usize) -> Result<Forecast, ModelError> {
        if history.step_seconds() != self.step_seconds {
            return Err(ModelError::InvalidParameter(format!(
                "history step is {} s but the model was fitted at {} s",
                history.step_seconds(),
                self.step_seconds
            )));
        }
        let Some((_, last)) = history.last_finite() else {
            return Err(if history.is_empty() {
                ModelError::InsufficientHistory { have: 0, need: 1 }
            } else {
                ModelError::AllMissing
            });
        };
        let window = self
            .members
            .iter()
            .map(|m| m.window())
            .max()
            .unwrap_or(1)
            .max(noise_window(self.horizon));
        let values = history.values();
        let from = values.len().saturating_sub(window);
        // Drop-outs are judged on their past and filled from a season earlier: both need the points
        // before the window.
        let limit = dropout_limit(self.step_seconds, &self.seasons);
        let context = from.saturating_sub(limit + self.seasons.first().copied().unwrap_or(0) + 16);
        let cleaned = mask_dropouts(&values[context..], limit);
        let filled = match fill_missing(&cleaned, self.seasons.first().copied()) {
            Some(mut all) => all.split_off(from - context),
            None => vec![last; values.len() - from],
        };
        let t0 = history.start_index() + from as i64;
        let mut mean = vec![0.0; horizon_steps];
        for member in &self.members {
            for (m, v) in mean.iter_mut().zip(member.predict(&filled, t0, horizon_steps)) {
                *m += v / self.members.len() as f64;
            }
        }
        Ok(Forecast {
            start: history.end() + history.step_seconds(),
            step_seconds: history.step_seconds(),
            mean: sanitize(mean, &filled),
            calibration: Arc::clone(&self.calibration),
            noise_scale: noise_scale(
                &filled,
                filled.len().saturating_sub(1),
                noise_window(self.horizon),
            ),
        })
    }
}
