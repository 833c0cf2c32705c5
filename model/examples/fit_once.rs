//! Fits `auto` once on the last 14 days of a 1-minute trace and forecasts 60 steps: a small binary whose
//! peak memory `/usr/bin/time -v` can measure. Usage: `fit_once [TRACE.csv]`.

use prescient_model::{FitOptions, ModelChoice, TimeSeries, fit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/traces/nasa-http-jul1995-1min.csv"
        )
        .to_owned()
    });
    let text = std::fs::read_to_string(&path)?;
    let values: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|line| {
            line.rsplit(',')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect();
    let values = values[values.len().saturating_sub(14 * 1440)..].to_vec();
    let history = TimeSeries::from_values(0, 60, values)?;
    let started = std::time::Instant::now();
    let fitted = fit(
        &history,
        &FitOptions {
            horizon_steps: 60,
            model: ModelChoice::Auto,
            folds: 10,
        },
    )?;
    let forecast = fitted.predict(&history, 60)?;
    println!(
        "{} points: {} in {:.1} ms, first forecast {:.1}",
        history.len(),
        fitted.model_name(),
        started.elapsed().as_secs_f64() * 1000.0,
        forecast.mean[0]
    );
    Ok(())
}
