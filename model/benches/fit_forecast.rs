//! Fit + automatic selection + a 60-step forecast on 14 days of 1-minute data (20,160 points), the size
//! of real use, on a shipped real trace (NASA HTTP, July 1995). A second group fits a 15-minute horizon
//! on an hour of 1-second data (the Azure LLM trace): 900 steps to calibrate, the long-horizon case.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prescient_model::{FitOptions, Forecast, ModelChoice, ModelKind, TimeSeries, fit};

const POINTS: usize = 14 * 1440;

/// The `value` column of a shipped trace (each is on a regular grid).
fn trace_values(name: &str) -> Vec<f64> {
    let path = format!("{}/../data/traces/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("shipped trace is readable");
    text.lines()
        .skip(1)
        .map(|line| {
            line.rsplit(',')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// The last 14 days of the 1-minute NASA trace.
fn nasa_14_days() -> TimeSeries {
    let values = trace_values("nasa-http-jul1995-1min.csv");
    assert!(values.len() >= POINTS, "trace has {} points", values.len());
    TimeSeries::from_values(0, 60, values[values.len() - POINTS..].to_vec()).expect("valid series")
}

/// One iteration: fits `model` for `horizon` steps on `history` and forecasts that far (10 folds are
/// asked for; the crate raises that to its minimum).
fn fit_and_forecast(history: &TimeSeries, model: ModelChoice, horizon: usize) -> Forecast {
    let options = FitOptions {
        horizon_steps: horizon,
        model,
        folds: 10,
    };
    let fitted = fit(black_box(history), &options).expect("fit");
    fitted.predict(history, horizon).expect("forecast")
}

fn bench(c: &mut Criterion) {
    let history = nasa_14_days();
    let mut group = c.benchmark_group("fit_forecast_14d_1min");
    group.sample_size(20);
    group.bench_function("auto_fit_and_forecast_60", |b| {
        b.iter(|| fit_and_forecast(&history, ModelChoice::Auto, 60))
    });
    for kind in ModelKind::all() {
        group.bench_function(format!("{}_fit_and_forecast_60", kind.name()), |b| {
            b.iter(|| fit_and_forecast(&history, ModelChoice::Named(kind), 60))
        });
    }
    let options = FitOptions {
        horizon_steps: 60,
        model: ModelChoice::Auto,
        folds: 10,
    };
    let fitted = fit(&history, &options).expect("fit");
    group.bench_function("predict_60_with_fitted_model", |b| {
        b.iter(|| fitted.predict(black_box(&history), 60))
    });
    group.finish();

    let azure =
        TimeSeries::from_values(0, 1, trace_values("azure-llm-conv-2023-1s.csv")).expect("valid series");
    let mut group = c.benchmark_group("fit_forecast_1h_1s");
    group.sample_size(10);
    group.bench_function("auto_fit_and_forecast_900", |b| {
        b.iter(|| fit_and_forecast(&azure, ModelChoice::Auto, 900))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
