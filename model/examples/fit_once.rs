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
    if std::env::var_os("PER_MODEL").is_some() {
        per_model(&history);
    }
    // REPEAT=N fits N times, so CPU time per fit can be read off `/usr/bin/time` on a busy machine.
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let options = FitOptions {
        horizon_steps: 60,
        model: ModelChoice::Auto,
        folds: 10,
    };
    let started = std::time::Instant::now();
    let mut fitted = fit(&history, &options)?;
    for _ in 1..repeat {
        fitted = fit(&history, &options)?;
    }
    let forecast = fitted.predict(&history, 60)?;
    println!(
        "{} points: {} in {:.1} ms, first forecast {:.1}",
        history.len(),
        fitted.model_name(),
        started.elapsed().as_secs_f64() * 1000.0 / repeat as f64,
        forecast.mean[0]
    );
    Ok(())
}

#[allow(dead_code)]
fn per_model(history: &TimeSeries) {
    for kind in prescient_model::ModelKind::all() {
        let started = std::time::Instant::now();
        let fitted = fit(
            history,
            &FitOptions {
                horizon_steps: 60,
                model: ModelChoice::Named(kind),
                folds: 10,
            },
        );
        println!(
            "{:16} {:8.1} ms ok={}",
            kind.name(),
            started.elapsed().as_secs_f64() * 1000.0,
            fitted.is_ok()
        );
    }
    let started = std::time::Instant::now();
    let seasons = prescient_model::detect_seasons(history);
    println!(
        "seasons {seasons:?} {:8.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}
