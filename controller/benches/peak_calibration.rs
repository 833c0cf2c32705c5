//! The window-peak calibration of one autoscaler (`core::peak`): the heap it holds and the time of one
//! sync once it holds a full day.
//!
//! It replays the NASA 1-minute trace at 30 s syncs. Each sync plans the window `[now, now + 150 s]`
//! (a 2-minute start-up and the sync period), the model's point peak is the demand one step earlier,
//! and the history it is scored on is the last hour. Scores are kept for a day, so the state is at its
//! largest after the first day.
//!
//! Printed before the criterion group: the heap bytes the calibrator holds after 1, 2 and 3 days, as
//! `dhat`'s heap statistics count them (bytes allocated and not yet freed since just before it was
//! created; each sync's history is freed by then). Criterion then measures one sync (building the
//! hour of history, observe and plan) on the state of day 3, with the heap profiler stopped.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use prescient::{
    core::peak::{MissSignal, ModelPeak, PeakCalibrator, PlannedWindow},
    edges::trace::read_trace,
};
use prescient_model::TimeSeries;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const STEP: i64 = 60;
const SYNC: i64 = 30;
const WINDOW: i64 = 150;
/// Steps of history each sync scores windows against.
const HISTORY_STEPS: usize = 60;

fn nasa() -> (i64, Vec<f64>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/traces/nasa-http-jul1995-1min.csv");
    let points = read_trace(&path).unwrap();
    (points[0].0, points.into_iter().map(|(_, v)| v).collect())
}

/// One sync at `now`: scores what the last hour covers, then plans the next window.
fn sync(calibrator: &mut PeakCalibrator, start: i64, values: &[f64], now: i64) {
    let observed_steps = usize::try_from((now - start) / STEP).unwrap();
    let from = observed_steps.saturating_sub(HISTORY_STEPS);
    let history = TimeSeries::from_values(
        start + from as i64 * STEP,
        STEP,
        values[from..=observed_steps].to_vec(),
    )
    .unwrap();
    calibrator.observe(&history);
    let observed = values[observed_steps];
    let model = ModelPeak {
        peak: values[observed_steps.saturating_sub(1)],
        spread: 0.2 * observed.max(1.0),
    };
    let window = PlannedWindow {
        planned_at: now,
        from: now,
        to: now + WINDOW,
        model: Some(model),
        observed,
    };
    calibrator.plan(window, history.end(), STEP);
}

fn bench(c: &mut Criterion) {
    let (start, values) = nasa();
    let day_syncs = 86_400 / SYNC;
    let profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get().curr_bytes;
    let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.95 });
    let mut now = start + STEP;
    for day in 1..=3 {
        for _ in 0..day_syncs {
            sync(&mut calibrator, start, &values, now);
            now += SYNC;
        }
        let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        println!(
            "peak calibration after day {day}: {:.1} KiB on the heap, {} realised windows",
            held as f64 / 1024.0,
            calibrator.scores()
        );
    }
    drop(profiler);
    let mut group = c.benchmark_group("peak_calibration");
    group.bench_function("one_sync_with_a_day_of_scores", |b| {
        b.iter_batched(
            || calibrator.clone(),
            |mut state| sync(&mut state, start, &values, now),
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
