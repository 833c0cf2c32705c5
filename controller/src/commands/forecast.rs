//! `prescient forecast`: fits a model (or `auto`) on a trace and prints the forecast after its end.
//!
//! `--json` is a stable contract:
//! `{"model": "holt_winters", "step_seconds": 60, "season_steps": [1440],
//!   "forecast": [{"timestamp": 1700000060, "mean": 12.5, "lower": 9.1, "upper": 16.0}, ...]}`
//! where `timestamp` is unix seconds (the first is one step after the trace's last timestamp) and
//! `lower`/`upper` are the central band at `--quantile` (e.g. 0.9: the 5 % and 95 % quantiles).

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::bail;
use prescient_model::{FitOptions, MIN_FOLDS, ModelChoice, ModelError, TimeSeries, fit};
use serde::Serialize;

use crate::{
    commands::print_stdout,
    core::steps_duration,
    duration::{HumanDuration, format_duration, rfc3339},
    edges::trace::{Cleaning, read_trace, trace_series},
};

/// Arguments of `prescient forecast`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace CSV (`timestamp,value`).
    #[arg(long)]
    pub input: PathBuf,
    /// How far ahead to forecast (e.g. `30m`, `2h`).
    #[arg(long, allow_hyphen_values = true)]
    pub horizon: HumanDuration,
    /// `auto` or one of naive, seasonal_naive, holt_winters, mstl, linear, svr.
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Level of the central prediction band (lower/upper), in (0, 1).
    #[arg(long, default_value_t = 0.9)]
    pub quantile: f64,
    /// Rolling-origin folds used for selection and band calibration (at least 60, at most what the
    /// trace holds).
    #[arg(long, default_value_t = MIN_FOLDS)]
    pub folds: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Output {
    model: String,
    step_seconds: i64,
    season_steps: Vec<usize>,
    forecast: Vec<Point>,
    /// How many trace rows each cleaning rule touched.
    cleaning: Cleaning,
}

#[derive(Debug, Serialize)]
struct Point {
    timestamp: i64,
    mean: f64,
    lower: f64,
    upper: f64,
}

/// Horizon in steps of the series (rounded up), refusing a zero horizon.
pub(crate) fn horizon_steps(horizon: HumanDuration, step_seconds: i64) -> anyhow::Result<usize> {
    let seconds = i64::try_from(horizon.0.as_secs()).unwrap_or(i64::MAX);
    if seconds <= 0 {
        bail!("--horizon must be at least one second, got {horizon}");
    }
    Ok(usize::try_from((seconds + step_seconds - 1) / step_seconds.max(1)).unwrap_or(usize::MAX))
}

/// The folds to run for `requested`: at least [`MIN_FOLDS`] (the bands are calibrated on the folds'
/// residuals) and at most as many origins half a horizon apart as the trace holds (beyond that, folds
/// only overlap more and the backtest grows quadratically). Returns a note when `requested` changed.
pub(crate) fn fold_count(requested: usize, history_len: usize, horizon: usize) -> (usize, Option<String>) {
    let stride = horizon.div_ceil(2).max(1);
    // The first origin needs a minimal training window, every fold a full horizon of actuals.
    let supported = (history_len.saturating_sub(horizon.max(16) + horizon) / stride + 1).max(MIN_FOLDS);
    let folds = requested.clamp(MIN_FOLDS, supported);
    let note = if requested < MIN_FOLDS {
        Some(format!(
            "--folds {requested} raised to {MIN_FOLDS}: the prediction bands are calibrated on the folds' \
             residuals and need at least {MIN_FOLDS}"
        ))
    } else if requested > supported {
        Some(format!(
            "--folds {requested} capped to {supported}: the trace's {history_len} points hold {supported} \
             origins half a horizon ({horizon} steps) apart"
        ))
    } else {
        None
    };
    (folds, note)
}

/// Says on stderr what was repaired in the trace and what was changed in the flags (stderr may be
/// gone: that is no reason to fail).
/// A trace made ready for a fit or a backtest at a horizon.
pub(crate) struct PreparedTrace {
    pub history: TimeSeries,
    /// The horizon in steps of the history.
    pub horizon: usize,
    /// Folds, raised to the minimum or capped to what the trace holds.
    pub folds: usize,
    pub cleaning: Cleaning,
}

/// Reads `input` onto its grid, turns `horizon` into steps and `folds` into what the trace supports, and
/// says on stderr what cleaning touched and how the folds changed.
pub(crate) fn prepare_trace(
    input: &Path,
    horizon: HumanDuration,
    folds: usize,
) -> anyhow::Result<PreparedTrace> {
    let points = read_trace(input)?;
    let history = trace_series(&points)?;
    let horizon = horizon_steps(horizon, history.step_seconds())?;
    let cleaning = Cleaning::of(&points, &history);
    let (folds, folds_note) = fold_count(folds, history.len(), horizon);
    warn(cleaning.note().into_iter().chain(folds_note));
    Ok(PreparedTrace {
        history,
        horizon,
        folds,
        cleaning,
    })
}

pub(crate) fn warn(notes: impl IntoIterator<Item = String>) {
    let mut stderr = std::io::stderr().lock();
    for note in notes {
        let _ = writeln!(stderr, "note: {note}");
    }
}

/// What a too-short history lacks, in time rather than steps (empty for other errors), so that
/// "cannot forecast 1h ahead" says how much data that takes.
pub(crate) fn shortfall(error: &ModelError, step_seconds: i64) -> String {
    let ModelError::InsufficientHistory { have, need } = error else {
        return String::new();
    };
    let span = |steps: usize| format_duration(steps_duration(steps, step_seconds));
    format!(
        ": the history holds {} ({have} usable points) and this horizon needs at least {} ({need} points)",
        span(*have),
        span(*need)
    )
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.quantile > 0.0 && args.quantile < 1.0) {
        bail!("--quantile must be in (0, 1), got {}", args.quantile);
    }
    let model: ModelChoice = args.model.parse()?;
    let PreparedTrace {
        history,
        horizon,
        folds,
        cleaning,
    } = prepare_trace(&args.input, args.horizon, args.folds)?;
    let options = FitOptions {
        horizon_steps: horizon,
        model,
        folds,
    };
    let fitted = fit(&history, &options).map_err(|e| {
        let shortfall = shortfall(&e, history.step_seconds());
        anyhow::Error::new(e).context(format!(
            "cannot forecast {} ahead from {}{shortfall}",
            args.horizon,
            args.input.display()
        ))
    })?;
    let forecast = fitted.predict(&history, horizon)?;
    let (lower, upper) = forecast.band(args.quantile);
    let output = Output {
        model: fitted.model_name().to_owned(),
        step_seconds: forecast.step_seconds,
        season_steps: fitted.season_steps().to_vec(),
        forecast: forecast
            .timestamps()
            .into_iter()
            .zip(&forecast.mean)
            .zip(lower.iter().zip(&upper))
            .map(|((timestamp, &mean), (&lower, &upper))| Point {
                timestamp,
                mean,
                lower,
                upper,
            })
            .collect(),
        cleaning,
    };
    if args.json {
        return print_stdout(&format!("{}\n", serde_json::to_string_pretty(&output)?));
    }
    let mut text = String::new();
    writeln!(
        text,
        "model {}  step {}s  seasons {:?}  backtest MASE {}",
        output.model,
        output.step_seconds,
        output.season_steps,
        fitted
            .backtest_mase()
            .map_or("-".to_owned(), |m| format!("{m:.3}"))
    )?;
    let band = format!("{:.0}% band", args.quantile * 100.0);
    writeln!(
        text,
        "{:<22} {:>12} {:>12} {:>12}  ({band})",
        "timestamp", "mean", "lower", "upper"
    )?;
    for p in &output.forecast {
        let time = rfc3339(p.timestamp);
        writeln!(
            text,
            "{time:<22} {:>12.2} {:>12.2} {:>12.2}",
            p.mean, p.lower, p.upper
        )?;
    }
    print_stdout(&text)?;
    Ok(())
}
