//! The public types of the crate: errors, options, the fitted forecaster, forecasts and reports.

use serde::Serialize;

/// Errors of the model crate. Each carries the offending value so the message is actionable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// Too little usable history for the requested model/horizon. `need` and `have` are in steps.
    #[error("insufficient history: have {have} usable points, need at least {need}")]
    InsufficientHistory { have: usize, need: usize },
    #[error("series has no usable (finite) values")]
    AllMissing,
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error(
        "unknown model {0:?}; expected one of: auto, naive, seasonal_naive, holt_winters, mstl, linear, svr"
    )]
    UnknownModel(String),
    #[error("numerical failure in {model}: {reason}")]
    Numerical { model: String, reason: String },
}

/// Errors building a [`TimeSeries`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("empty series")]
    Empty,
    #[error("step must be positive, got {0} s")]
    InvalidStep(i64),
    #[error("cannot detect a step: all {0} timestamps are identical")]
    NoStep(usize),
    #[error("series would span {0} steps on its grid, more than the limit of {1}")]
    TooLong(usize, usize),
}

/// A series on a regular grid: `values[i]` is at `start + i * step_seconds` (unix seconds).
/// Missing values are `NaN`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSeries {
    pub(crate) start: i64,
    pub(crate) step_seconds: i64,
    pub(crate) values: Vec<f64>,
}

/// Which forecaster to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Naive,
    SeasonalNaive,
    HoltWinters,
    Mstl,
    Linear,
    Svr,
}

/// `auto` (selection by backtest) or one named model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ModelChoice {
    Auto,
    Named(ModelKind),
}

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Horizon the model is selected and calibrated for, in steps.
    pub horizon_steps: usize,
    pub model: ModelChoice,
    /// Rolling-origin folds used for selection and band calibration.
    pub folds: usize,
}

/// A fitted model (or ensemble) with its calibration; apply it to the latest history with `predict`.
#[derive(Debug, Clone)]
pub struct FittedForecaster {
    /// `naive`, ..., or `ensemble(a+b)`.
    pub(crate) name: String,
    /// Members whose forecasts are averaged (one for a single model).
    pub(crate) members: Vec<std::sync::Arc<dyn crate::models::Forecaster>>,
    pub(crate) seasons: Vec<usize>,
    pub(crate) step_seconds: i64,
    pub(crate) backtest_mase: Option<f64>,
    pub(crate) calibration: std::sync::Arc<crate::calibration::Calibration>,
    /// Horizon (steps) the model was selected and calibrated for.
    pub(crate) horizon: usize,
}

/// A forecast: point (`mean`) per step plus calibrated residual quantiles per horizon step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Timestamp of the first forecast step (the step after the history's last one).
    pub start: i64,
    pub step_seconds: i64,
    pub mean: Vec<f64>,
    /// Residual quantiles per horizon step, from the backtest (split-conformal).
    #[serde(skip)]
    pub(crate) calibration: std::sync::Arc<crate::calibration::Calibration>,
    /// Noise scale of the history the forecast starts from (residuals are calibrated relative to it).
    #[serde(skip)]
    pub(crate) noise_scale: f64,
}

/// Options of [`backtest`].
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestOptions {
    pub horizon_steps: usize,
    pub folds: usize,
    /// Central band level whose coverage is measured (e.g. 0.9).
    pub level: f64,
}

/// Scores of one model in a backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScore {
    pub model: String,
    pub mae: f64,
    pub rmse: f64,
    pub smape: f64,
    pub mase: f64,
    pub coverage: f64,
    pub pinball: f64,
    pub fit_seconds: f64,
    /// MAE per horizon step (1-based step = index + 1).
    pub mae_by_horizon: Vec<f64>,
}

/// The result of [`backtest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub step_seconds: i64,
    pub season_steps: Vec<usize>,
    pub horizon_steps: usize,
    pub folds: usize,
    pub level: f64,
    pub models: Vec<ModelScore>,
    /// What `auto` picks (a model name or an ensemble description), with its scores.
    pub auto: ModelScore,
}
