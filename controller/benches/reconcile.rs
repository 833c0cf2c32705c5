//! Reconcile latency and memory per autoscaler with 1,000 `PredictiveAutoscaler`s against the in-memory
//! Kubernetes API of the operator tests (kube-rs's tower-test mock) and an in-memory metrics source with
//! 7 days of 1-minute history per autoscaler.
//!
//! Printed before the criterion groups: the first reconcile of all 1,000 (full history fetch and fit) and
//! the resident memory they add, per autoscaler. Criterion then measures one steady-state round: each
//! of the 1,000 reconciled once a minute later (incremental fetch, forecast, decide, status patch).
//! `PRESCIENT_BENCH_MODEL` picks the model (default `seasonal_naive`; `auto` fits every candidate).
#![allow(clippy::unwrap_used)]

#[path = "../tests/operator_support/mod.rs"]
mod operator_support;

use std::{sync::Arc, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use operator_support::{Harness, autoscaler};
use prescient::crd::PredictiveAutoscaler;
use serde_json::json;

const AUTOSCALERS: usize = 1000;
const STEP: i64 = 60;
const DAY: i64 = 86_400;
const T0: i64 = 1_700_438_400;

fn demand(t: i64) -> f64 {
    let phase = (t.rem_euclid(DAY)) as f64 / DAY as f64 * std::f64::consts::TAU;
    500.0 + 300.0 * phase.sin() + ((t / STEP) % 7) as f64 * 5.0
}

/// Resident set size in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn autoscalers(model: &str) -> Vec<PredictiveAutoscaler> {
    (0..AUTOSCALERS)
        .map(|i| {
            let name = format!("app-{i:04}");
            autoscaler(
                &name,
                json!({
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 1, "maxReplicas": 100,
                    "metric": {"query": format!("sum(rate(http_requests_total{{app=\"{name}\"}}[1m]))"), "targetPerReplica": 50.0},
                    "forecast": {"history": "7d", "step": "1m", "horizon": "30m", "leadTime": "3m", "model": model},
                    "syncPeriod": "60s",
                }),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = std::env::var("PRESCIENT_BENCH_MODEL").unwrap_or_else(|_| "seasonal_naive".to_owned());
    let start = T0 + 7 * DAY;
    // History up to `start`, and a day beyond it for the steady-state rounds.
    let points: Vec<(i64, f64)> = (0..=(8 * DAY / STEP))
        .map(|i| T0 + i * STEP)
        .map(|t| (t, demand(t)))
        .collect();
    let _guard = runtime.enter();
    let harness = Arc::new(Harness::new(points, start));
    harness.api.0.lock().unwrap().skip_recording = true;
    let objects = autoscalers(&model);
    for pa in &objects {
        harness
            .api
            .add_deployment(pa.spec.scale_target_ref.name.as_str(), 10);
        harness.api.add_autoscaler(pa);
    }

    let rss_before = rss_bytes();
    let began = Instant::now();
    runtime.block_on(async {
        for pa in &objects {
            prescient::operator::reconcile(Arc::new(pa.clone()), harness.ctx.clone())
                .await
                .unwrap();
        }
    });
    let first = began.elapsed();
    let rss_after = rss_bytes();
    println!(
        "first reconcile of {AUTOSCALERS} autoscalers (model {model}, 7d of 1m history each): {:.3} s in all, {:.2} ms each",
        first.as_secs_f64(),
        first.as_secs_f64() * 1000.0 / AUTOSCALERS as f64
    );
    println!(
        "resident memory added: {:.1} MiB in all, {:.1} KiB per autoscaler",
        rss_after.saturating_sub(rss_before) as f64 / 1_048_576.0,
        rss_after.saturating_sub(rss_before) as f64 / 1024.0 / AUTOSCALERS as f64
    );

    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.bench_function("steady_state_round_of_1000_autoscalers", |b| {
        b.iter_custom(|rounds| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..rounds {
                harness.clock.advance(STEP);
                let began = Instant::now();
                runtime.block_on(async {
                    for pa in &objects {
                        prescient::operator::reconcile(Arc::new(pa.clone()), harness.ctx.clone())
                            .await
                            .unwrap();
                    }
                });
                total += began.elapsed();
            }
            total
        })
    });
    group.bench_function("steady_state_round_of_1000_autoscalers_concurrent", |b| {
        b.iter_custom(|rounds| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..rounds {
                harness.clock.advance(STEP);
                let began = Instant::now();
                runtime.block_on(async {
                    let tasks: Vec<_> = objects
                        .iter()
                        .map(|pa| {
                            tokio::spawn(prescient::operator::reconcile(
                                Arc::new(pa.clone()),
                                harness.ctx.clone(),
                            ))
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap().unwrap();
                    }
                });
                total += began.elapsed();
            }
            total
        })
    });
    group.finish();
    println!(
        "after the rounds: {} autoscalers with live state, RSS {:.1} MiB",
        harness.ctx.autoscaler_count(),
        rss_bytes() as f64 / 1_048_576.0
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
