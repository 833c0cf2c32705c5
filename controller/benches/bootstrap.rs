//! What a restarted operator spends per autoscaler before its first decision: one
//! [`AutoscalerCore::bootstrap`] on 7 days of the NASA 1-minute trace (2,880 replayed syncs at 30 s,
//! one fit on the history before the replayed day), for the `auto` model and for `seasonal_naive`.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use prescient::{
    core::AutoscalerCore,
    edges::trace::read_trace,
    sim::{ClusterConfig, SimSettings},
    spec::{ScalingSpec, parse_model_choice},
};
use prescient_model::TimeSeries;

const STEP: i64 = 60;
const DAY: i64 = 86_400;

/// The spec `prescient simulate` replays NASA with (2-minute start-up, 30 s syncs, hourly refits).
fn spec(model: &str) -> ScalingSpec {
    let mut settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(120), 4.1));
    settings.model = parse_model_choice(model).unwrap();
    settings.predictive_spec(STEP, 0.95, 1.0)
}

/// The first 7 days of the trace, as the operator fetches them.
fn week() -> TimeSeries {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/traces/nasa-http-jul1995-1min.csv");
    let points = read_trace(&path).unwrap();
    let start = points[0].0;
    let values: Vec<f64> = points
        .into_iter()
        .take_while(|(t, _)| *t < start + 7 * DAY)
        .map(|(_, v)| v)
        .collect();
    TimeSeries::from_values(start, STEP, values).unwrap()
}

fn bench(c: &mut Criterion) {
    let history = week();
    let now = history.end() + STEP + 15;
    let mut group = c.benchmark_group("bootstrap");
    group.sample_size(10);
    for model in ["seasonal_naive", "auto"] {
        group.bench_function(format!("one_autoscaler_7d_nasa_1min_{model}"), |b| {
            b.iter(|| {
                let mut core = AutoscalerCore::new(spec(model));
                assert_eq!(core.bootstrap(&history, now), 2880);
                core
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
