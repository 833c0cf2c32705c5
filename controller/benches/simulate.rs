//! The simulator as a benchmark: 14 days of the NASA trace at a 1-minute step (20,160 points), 30 s
//! syncs, hourly refits of the `auto` model on up to 7 days of history, through the real core. Also the
//! reactive (HPA) and oracle replays of the same trace for scale.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use prescient::{
    edges::trace::{read_trace, trace_series},
    sim::{ClusterConfig, DemandTrace, PolicyKind, SimSettings, simulate},
};

fn nasa_14_days() -> DemandTrace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/traces/nasa-http-jul1995-1min.csv");
    let points = read_trace(&path).unwrap();
    let first = points[0].0;
    let window: Vec<(i64, f64)> = points
        .into_iter()
        .filter(|(t, _)| *t < first + 14 * 86_400)
        .collect();
    DemandTrace::new(&trace_series(&window).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let trace = nasa_14_days();
    assert_eq!(trace.len(), 14 * 1440);
    // Capacity puts the median at about 10 replicas.
    let capacity = trace.median() / 10.0;
    let settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(120), capacity));
    let mut group = c.benchmark_group("simulate_14d_1min");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("predictive_hourly_refit", |b| {
        b.iter(|| {
            simulate(
                &trace,
                &settings,
                PolicyKind::Predictive {
                    quantile: 0.9,
                    utilization: 1.0,
                },
            )
            .unwrap()
        })
    });
    group.bench_function("reactive", |b| {
        b.iter(|| simulate(&trace, &settings, PolicyKind::Reactive { utilization: 0.7 }).unwrap())
    });
    group.bench_function("oracle", |b| {
        b.iter(|| simulate(&trace, &settings, PolicyKind::Oracle).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
