//! `prescient backtest`: rolling-origin comparison of every model on a trace, and what `auto` picks.
//!
//! `--json` prints the model crate's `BacktestReport`, a stable contract:
//! ```json
//! {"step_seconds": 60, "season_steps": [1440], "horizon_steps": 15, "folds": 20, "level": 0.9,
//!  "models": [{"model": "naive", "mae": 1.0, "rmse": 1.2, "smape": 0.1, "mase": 0.9, "coverage": 0.9,
//!              "pinball": 0.3, "fit_seconds": 0.001, "mae_by_horizon": [0.5, ...]}, ...],
//!  "auto": {"model": "ensemble(mstl+linear)", ... same fields ...}}
//! ```
//! `coverage` is the measured share of actual values inside the central `level` band (each fold's band
//! calibrated on the other folds); `pinball` is the mean pinball loss of the band's two quantiles;
//! `fit_seconds` is one fit (for `auto`, the fits of every candidate); `smape` is a fraction in [0, 2].
//! A metric that cannot be computed is `null`. `"cleaning"` counts the trace rows each cleaning rule
//! touched (`{"missing_values": 0, "negative_values": 0, "duplicate_rows": 0}`).

use std::{fmt::Write as _, path::PathBuf};

use anyhow::bail;
use prescient_model::{BacktestOptions, BacktestReport, MIN_FOLDS, backtest};
use serde::Serialize;

use crate::{
    commands::{
        forecast::{PreparedTrace, prepare_trace, shortfall},
        print_stdout,
    },
    duration::HumanDuration,
    edges::trace::Cleaning,
};

/// Arguments of `prescient backtest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace CSV (`timestamp,value`).
    #[arg(long)]
    pub input: PathBuf,
    /// Forecast horizon every model is scored at (e.g. `15m`, `2h`).
    #[arg(long, allow_hyphen_values = true)]
    pub horizon: HumanDuration,
    /// Rolling-origin folds (origins half a horizon apart at the end of the trace): at least 60,
    /// since the bands are calibrated on their residuals, and at most what the trace holds.
    #[arg(long, default_value_t = MIN_FOLDS)]
    pub folds: usize,
    /// Level of the central band whose coverage is measured, in (0, 1).
    #[arg(long, default_value_t = 0.9)]
    pub level: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` output: the report's fields, and how many trace rows each cleaning rule touched.
#[derive(Debug, Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a BacktestReport,
    cleaning: Cleaning,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.level > 0.0 && args.level < 1.0) {
        bail!("--level must be in (0, 1), got {}", args.level);
    }
    let PreparedTrace {
        history,
        horizon,
        folds,
        cleaning,
    } = prepare_trace(&args.input, args.horizon, args.folds)?;
    let options = BacktestOptions {
        horizon_steps: horizon,
        folds,
        level: args.level,
    };
    let report = backtest(&history, &options).map_err(|e| {
        let shortfall = shortfall(&e, history.step_seconds());
        anyhow::Error::new(e).context(format!(
            "cannot backtest {} ahead on {}{shortfall}",
            args.horizon,
            args.input.display()
        ))
    })?;
    if args.json {
        let output = Output {
            report: &report,
            cleaning,
        };
        return print_stdout(&format!("{}\n", serde_json::to_string_pretty(&output)?));
    }
    let mut text = String::new();
    writeln!(
        text,
        "step {}s  seasons {:?}  horizon {} steps  folds {}  band level {}",
        report.step_seconds, report.season_steps, report.horizon_steps, report.folds, report.level
    )?;
    writeln!(
        text,
        "{:<34} {:>10} {:>10} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "model", "MAE", "RMSE", "sMAPE", "MASE", "coverage", "pinball", "fit ms"
    )?;
    for (label, s) in report
        .models
        .iter()
        .map(|s| (s.model.clone(), s))
        .chain([(format!("auto = {}", report.auto.model), &report.auto)])
    {
        writeln!(
            text,
            "{label:<34} {:>10.3} {:>10.3} {:>8.3} {:>8.3} {:>9.3} {:>10.3} {:>10.1}",
            s.mae,
            s.rmse,
            s.smape,
            s.mase,
            s.coverage,
            s.pinball,
            s.fit_seconds * 1000.0
        )?;
    }
    print_stdout(&text)?;
    Ok(())
}
