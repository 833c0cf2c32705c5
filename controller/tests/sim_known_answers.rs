//! Known-answer tests of the simulator: a step in demand with a 2-minute start-up, the oracle's cost,
//! the simulated cluster's pods, that the predictive policy never sees the future, and that replays
//! sharing their fits decide exactly as alone.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prescient::{
    core::SharedFits,
    sim::{
        ClusterConfig, DemandTrace, PolicyKind, PredictivePolicy, SimCluster, SimDecision, SimPolicy,
        SimSettings, SimView, simulate, simulate_sharing_fits, simulate_with,
    },
};

const STEP: i64 = 60;

/// 1-minute demand: `low` for `minutes_low` minutes, then `high` for `minutes_high`.
fn step_trace(low: f64, high: f64, minutes_low: usize, minutes_high: usize) -> DemandTrace {
    let mut values = vec![low; minutes_low];
    values.extend(vec![high; minutes_high]);
    DemandTrace::from_values(0, STEP, values).unwrap()
}

fn settings() -> SimSettings {
    // Capacity 10 per replica, 2-minute start-up, 30 s sync, 15 s scrape, 1 m rate window (defaults).
    SimSettings::new(ClusterConfig::new(Duration::from_secs(120), 10.0))
}

#[test]
fn step_increase_leaves_reactive_short_for_about_the_startup_time_and_a_perfect_forecast_not_at_all() {
    let trace = step_trace(50.0, 100.0, 60, 60);
    let settings = settings();
    let reactive = simulate(&trace, &settings, PolicyKind::Reactive { utilization: 1.0 }).unwrap();
    let perfect = simulate(
        &trace,
        &settings,
        PolicyKind::PerfectForecast { utilization: 1.0 },
    )
    .unwrap();
    let under = reactive.metrics.underprovisioned_minutes;
    // The HPA sees the step only through the lagged rate (15 s scrape + part of the 1 m window) and then
    // waits the 2-minute start-up: short for the start-up time plus the observation lag.
    assert!(
        (2.0..=3.75).contains(&under),
        "reactive under-provisioned {under} minutes"
    );
    assert!(reactive.metrics.unserved_fraction > 0.0);
    assert_eq!(perfect.metrics.underprovisioned_minutes, 0.0);
    assert_eq!(perfect.metrics.unserved_fraction, 0.0);
    // The perfect forecast asks for the 10 replicas 2 minutes (plus at most one sync) ahead, not earlier.
    let asked = perfect
        .rows
        .iter()
        .find(|r| r.desired_replicas == 10)
        .unwrap()
        .timestamp;
    assert!((3600 - 150..=3600 - 120).contains(&asked), "asked at {asked}");
}

#[test]
fn oracle_pays_exactly_the_needed_replicas_plus_the_startup_of_added_pods() {
    let settings = settings();
    // Rising: 5 replicas for an hour, then 10. The 5 added pods start 2 minutes ahead: +10 replica-minutes.
    let rising = step_trace(50.0, 100.0, 60, 60);
    let run = simulate(&rising, &settings, PolicyKind::Oracle).unwrap();
    let needed: f64 = rising.values().iter().map(|d| (d / 10.0).ceil()).sum();
    assert_eq!(needed, 900.0);
    assert!(
        (run.metrics.replica_minutes - (needed + 5.0 * 2.0)).abs() < 1e-9,
        "{}",
        run.metrics.replica_minutes
    );
    assert_eq!(run.metrics.underprovisioned_minutes, 0.0);
    // Falling and uneven demand (never rising above the first minute): exactly sum ceil(demand / capacity).
    let falling =
        DemandTrace::from_values(0, STEP, vec![100.0, 95.0, 71.0, 71.0, 40.0, 12.0, 12.0, 3.0]).unwrap();
    let run = simulate(&falling, &settings, PolicyKind::Oracle).unwrap();
    let needed: f64 = falling.values().iter().map(|d| (d / 10.0).ceil()).sum();
    assert!(
        (run.metrics.replica_minutes - needed).abs() < 1e-9,
        "{} vs {needed}",
        run.metrics.replica_minutes
    );
    assert_eq!(run.metrics.underprovisioned_minutes, 0.0);
}

#[test]
fn metrics_can_be_recomputed_from_the_series() {
    let trace = step_trace(50.0, 100.0, 60, 60);
    let run = simulate(&trace, &settings(), PolicyKind::Reactive { utilization: 0.7 }).unwrap();
    let minutes = run.tick_seconds as f64 / 60.0;
    let replica_minutes: f64 = run
        .rows
        .iter()
        .map(|r| f64::from(r.provisioned_replicas) * minutes)
        .sum();
    let under: f64 = run
        .rows
        .iter()
        .filter(|r| r.demand > f64::from(r.ready_replicas) * 10.0)
        .map(|_| minutes)
        .sum();
    assert!((replica_minutes - run.metrics.replica_minutes).abs() < 1e-6);
    assert!((under - run.metrics.underprovisioned_minutes).abs() < 1e-6);
}

#[test]
fn warmup_excludes_the_start_from_the_metrics() {
    let trace = step_trace(50.0, 100.0, 60, 60);
    let mut settings = settings();
    settings.warmup = Duration::from_secs(3600);
    let run = simulate(&trace, &settings, PolicyKind::Oracle).unwrap();
    assert_eq!(run.rows.first().unwrap().timestamp, 3600);
    assert!((run.metrics.evaluated_minutes - 60.0).abs() < 1e-9);
}

#[test]
fn simulated_pods_become_ready_after_the_startup_delay_and_the_youngest_go_first() {
    let mut cluster = SimCluster::new(ClusterConfig::new(Duration::from_secs(120), 10.0), 2, 0);
    assert_eq!((cluster.replicas().desired, cluster.replicas().ready), (2, 2));
    cluster.set_desired(5, 30);
    assert_eq!((cluster.replicas().desired, cluster.replicas().ready), (5, 2));
    cluster.advance_to(149);
    assert_eq!(cluster.replicas().ready, 2);
    cluster.advance_to(150);
    assert_eq!(cluster.replicas().ready, 5);
    assert_eq!(cluster.capacity(), 50.0);
    cluster.set_desired(7, 200);
    // Scale down while two pods still start: the starting ones go first, capacity is unchanged.
    cluster.set_desired(5, 210);
    assert_eq!((cluster.replicas().desired, cluster.replicas().ready), (5, 5));
    cluster.set_desired(3, 220);
    assert_eq!((cluster.replicas().desired, cluster.replicas().ready), (3, 3));
    assert_eq!(cluster.scale_events(), 4);
}

#[test]
fn graceful_scale_down_pays_for_draining_pods_without_serving() {
    let mut config = ClusterConfig::new(Duration::from_secs(60), 10.0);
    config.graceful_scale_down = Duration::from_secs(90);
    let mut cluster = SimCluster::new(config, 4, 0);
    cluster.set_desired(1, 10);
    assert_eq!(cluster.capacity(), 10.0);
    assert_eq!(cluster.billed_replicas(), 4);
    cluster.advance_to(100);
    assert_eq!(cluster.billed_replicas(), 1);
}

#[test]
fn startup_jitter_is_seeded_and_bounded() {
    let mut config = ClusterConfig::new(Duration::from_secs(60), 10.0);
    config.startup_jitter = Duration::from_secs(30);
    config.seed = 7;
    let ready_times = |config: ClusterConfig| {
        let mut cluster = SimCluster::new(config, 0, 0);
        cluster.set_desired(20, 0);
        (55..=95)
            .map(|t| {
                cluster.advance_to(t);
                cluster.replicas().ready
            })
            .collect::<Vec<_>>()
    };
    let a = ready_times(config.clone());
    assert_eq!(a, ready_times(config), "same seed, same start-up times");
    assert_eq!(a[0], 0, "no pod before the start-up delay");
    assert_eq!(*a.last().unwrap(), 20, "every pod by delay + jitter");
    assert!(
        a.iter().any(|r| *r > 0 && *r < 20),
        "jitter spreads the start-ups"
    );
}

/// Wraps the predictive policy and checks it is never shown a point the metrics pipeline could not have
/// delivered yet (a point's interval must have ended and been scraped).
struct NoLookahead {
    inner: PredictivePolicy,
    step: i64,
    checked: usize,
}

impl SimPolicy for NoLookahead {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        if let Some(history) = view.history {
            assert!(
                history.end() + self.step + 15 <= view.now,
                "history ends at {} at {}",
                history.end(),
                view.now
            );
            self.checked += 1;
        }
        self.inner.decide(view)
    }
}

#[test]
fn predictive_forecasts_from_history_seen_so_far_only() {
    // Three days of a daily cycle at 5-minute steps (fits quickly), capacity 10.
    let step = 300;
    let values: Vec<f64> = (0..3 * 288)
        .map(|i| 100.0 + 60.0 * (2.0 * std::f64::consts::PI * (i % 288) as f64 / 288.0).sin())
        .collect();
    let trace = DemandTrace::from_values(0, step, values).unwrap();
    let mut settings = settings();
    settings.refit_interval = Duration::from_secs(6 * 3600);
    let spec = settings.predictive_spec(step, 0.9, 1.0);
    let mut policy = NoLookahead {
        inner: PredictivePolicy::new(spec),
        step,
        checked: 0,
    };
    let kind = PolicyKind::Predictive {
        quantile: 0.9,
        utilization: 1.0,
    };
    let run = simulate_with(&trace, &settings, kind, &mut policy).unwrap();
    assert!(policy.checked > 1000);
    assert!(run.refits >= 2, "refits: {}", run.refits);
    let healthy = run
        .health_counts
        .iter()
        .find(|(r, _)| r == "Healthy")
        .map_or(0, |(_, n)| *n);
    assert!(healthy > 0, "health: {:?}", run.health_counts);
    assert!(
        run.rows.iter().any(|r| r.forecast.is_finite()),
        "the series carries the forecast"
    );
}

#[test]
fn predictive_replays_sharing_their_fits_decide_exactly_as_alone() {
    // Three days of a noisy daily cycle at 5-minute steps, refitted every 6 hours.
    let step = 300;
    let values: Vec<f64> = (0..3 * 288)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * (i % 288) as f64 / 288.0;
            100.0 + 60.0 * phase.sin() + ((i * 7919) % 23) as f64
        })
        .collect();
    let trace = DemandTrace::from_values(0, step, values).unwrap();
    let mut settings = settings();
    settings.refit_interval = Duration::from_secs(6 * 3600);
    let kinds = [0.5, 0.95].map(|quantile| PolicyKind::Predictive {
        quantile,
        utilization: 1.0,
    });
    let fits = SharedFits::new(kinds.len());
    let kept = SharedFits::retained();
    // A sweep in rounds: the second round's quantile takes every fit the first made.
    let second_round = PolicyKind::Predictive {
        quantile: 0.8,
        utilization: 1.0,
    };
    let sweep = [kinds[0], kinds[1], second_round];
    let alone = sweep.map(|kind| simulate(&trace, &settings, kind).unwrap());
    let mut kept_after_first_round = 0;
    for (replay, (kind, alone)) in sweep.into_iter().zip(&alone).enumerate() {
        if replay == kinds.len() {
            kept_after_first_round = kept.pending();
        }
        let shared = simulate_sharing_fits(&trace, &settings, kind, Some(&kept)).unwrap();
        assert_eq!(shared.metrics, alone.metrics, "{kind:?}");
        assert_eq!(shared.refits, alone.refits);
    }
    assert!(kept_after_first_round >= 2, "kept: {kept_after_first_round}");
    assert_eq!(
        kept.pending(),
        kept_after_first_round,
        "the second round fitted nothing new"
    );
    for (kind, alone) in kinds.into_iter().zip(&alone) {
        let shared = simulate_sharing_fits(&trace, &settings, kind, Some(&fits)).unwrap();
        assert!(shared.refits >= 2, "refits: {}", shared.refits);
        assert_eq!(shared.metrics, alone.metrics, "{kind:?}");
        assert_eq!(shared.refits, alone.refits);
        assert_eq!(shared.last_model, alone.last_model);
        let desired =
            |run: &prescient::sim::SimRun| run.rows.iter().map(|r| r.desired_replicas).collect::<Vec<_>>();
        assert_eq!(desired(&shared), desired(alone));
    }
    assert_eq!(
        fits.pending(),
        0,
        "every fit was taken by both replays, then dropped"
    );
}

#[test]
fn a_gap_in_the_trace_counts_neither_cost_nor_shortfall() {
    // Two hours of demand 100, three days missing, two more hours: cost and minutes are both measured
    // over the four known hours only, so policies held through the gap stay comparable.
    let mut values = vec![100.0; 120];
    values.extend(vec![f64::NAN; 3 * 1440]);
    values.extend(vec![100.0; 120]);
    let trace = DemandTrace::from_values(0, STEP, values).unwrap();
    let settings = settings();
    for kind in [PolicyKind::Reactive { utilization: 1.0 }, PolicyKind::Oracle] {
        let run = simulate(&trace, &settings, kind).unwrap();
        assert_eq!(run.metrics.evaluated_minutes, 240.0, "{kind:?}");
        // 10 replicas serve 100: at most the start-up of the first pods beyond that.
        let per_minute = run.metrics.replica_minutes / run.metrics.evaluated_minutes;
        assert!(
            (10.0..=11.0).contains(&per_minute),
            "{kind:?}: {per_minute} replicas per minute"
        );
    }
}

#[test]
fn a_replay_without_rows_has_the_same_figures_and_reports_its_progress() {
    // `simulate` keeps no per-tick rows unless it writes them (`--series`, `--report`): on a long trace
    // they were most of its memory. The figures, scale events included, must not depend on them.
    let trace = step_trace(50.0, 300.0, 90, 90);
    let kind = PolicyKind::Reactive { utilization: 0.7 };
    let with_rows = simulate(&trace, &settings(), kind).unwrap();
    let progress = prescient::sim::progress::Progress::default();
    let mut lean = settings();
    lean.keep_rows = false;
    lean.progress = Some(progress.clone());
    let without_rows = simulate(&trace, &lean, kind).unwrap();

    assert!(without_rows.rows.is_empty());
    assert!(!with_rows.rows.is_empty());
    assert!(with_rows.metrics.scale_events > 0, "the step must scale");
    assert_eq!(without_rows.metrics, with_rows.metrics);
    assert_eq!(
        progress.simulated_seconds(),
        u64::try_from(trace.end() - trace.start()).unwrap(),
        "progress counts the whole replay"
    );
}

/// When the replay first asks for fewer than 10 replicas at or after `from` (the drop to 20 of the
/// stabilization tests, at capacity 10).
fn released_after(run: &prescient::sim::SimRun, from: i64) -> i64 {
    run.rows
        .iter()
        .find(|r| r.timestamp >= from && r.desired_replicas < 10)
        .map(|r| r.timestamp)
        .unwrap()
}

#[test]
fn prescient_scale_down_stabilization_is_its_own_and_the_hpa_keeps_its_300_s() {
    // 100 for an hour, then 20: the rule holds the old count for its scale-down window after the drop
    // is in its decision window. A 60 s window for Prescient releases the pods 240 s sooner; the HPA
    // replayed beside it keeps its 300 s.
    let trace = step_trace(100.0, 20.0, 60, 30);
    let (mut short_window, default) = (settings(), settings());
    short_window.predictive_scale_down_stabilization = Some(Duration::from_secs(60));
    let perfect = PolicyKind::PerfectForecast { utilization: 1.0 };
    let hpa = PolicyKind::Reactive { utilization: 1.0 };
    let released_at =
        |settings: &SimSettings, kind| released_after(&simulate(&trace, settings, kind).unwrap(), 60 * STEP);
    assert_eq!(
        released_at(&default, perfect) - released_at(&short_window, perfect),
        240
    );
    assert_eq!(released_at(&default, hpa), released_at(&short_window, hpa));
}

#[test]
fn on_steps_as_long_as_the_hpa_window_prescient_holds_only_its_newest_plans() {
    // The same drop on a 10-minute grid: every recommendation within a step rests on one observation,
    // and each already provisions its whole decision window, so by default Prescient's window is one
    // 30 s sync and releases the pods 270 s before a 300 s window would. On 1-minute steps the default
    // stays the HPA's 300 s, which spans five observations.
    let ten_minutes = DemandTrace::from_values(0, 600, [vec![100.0; 12], vec![20.0; 6]].concat()).unwrap();
    let one_minute = step_trace(100.0, 20.0, 60, 30);
    let (mut hpa_window, default) = (settings(), settings());
    hpa_window.predictive_scale_down_stabilization = Some(Duration::from_secs(300));
    let perfect = PolicyKind::PerfectForecast { utilization: 1.0 };
    let released_at = |trace: &DemandTrace, settings: &SimSettings, from: i64| {
        released_after(&simulate(trace, settings, perfect).unwrap(), from)
    };
    assert_eq!(
        released_at(&ten_minutes, &hpa_window, 12 * 600) - released_at(&ten_minutes, &default, 12 * 600),
        270
    );
    assert_eq!(
        released_at(&one_minute, &hpa_window, 60 * STEP),
        released_at(&one_minute, &default, 60 * STEP)
    );
}
