//! Fit + automatic selection + a 60-step forecast on 14 days of 1-minute data (20,160 points), the size
//! of real use, on a shipped real trace (NASA HTTP, July 1995).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prescient_model::{FitOptions, ModelChoice, ModelKind, TimeSeries, fit};

const POINTS: usize = 14 * 1440;

/// The last 14 days of the trace's `value` column (the file is on a regular 1-minute grid).
fn nasa_14_days() -> TimeSeries {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/traces/nasa-http-jul1995-1min.csv"
    );
    let text = std::fs::read_to_string(path).expect("shipped trace is readable");
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
    assert!(values.len() >= POINTS, "trace has {} points", values.len());
    TimeSeries::from_values(0, 60, values[values.len() - POINTS..].to_vec()).expect("valid series")
}

fn bench(c: &mut Criterion) {
    let history = nasa_14_days();
    let mut group = c.benchmark_group("fit_forecast_14d_1min");
    group.sample_size(20);
    group.bench_function("auto_fit_and_forecast_60", |b| {
        b.iter(|| {
            let options = FitOptions {
                horizon_steps: 60,
                model: ModelChoice::Auto,
                folds: 10,
            };
            let fitted = fit(black_box(&history), &options).expect("fit");
            fitted.predict(&history, 60).expect("forecast")
        })
    });
    for kind in ModelKind::all() {
        group.bench_function(format!("{}_fit_and_forecast_60", kind.name()), |b| {
            b.iter(|| {
                let options = FitOptions {
                    horizon_steps: 60,
                    model: ModelChoice::Named(kind),
                    folds: 10,
                };
                let fitted = fit(black_box(&history), &options).expect("fit");
                fitted.predict(&history, 60).expect("forecast")
            })
        });
    }
    let fitted = fit(
        &history,
        &FitOptions {
            horizon_steps: 60,
            model: ModelChoice::Auto,
            folds: 10,
        },
    )
    .expect("fit");
    group.bench_function("predict_60_with_fitted_model", |b| {
        b.iter(|| fitted.predict(black_box(&history), 60))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
