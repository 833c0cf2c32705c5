//! The autoscaler core as a state machine: refits at the refit interval and on a spec change, acts on the
//! reactive floor alone with too little history, holds on stale data and on a metrics outage.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prescient::{
    core::{AutoscalerCore, ForecastHealth, ReplicaState},
    policy::DecisionReason,
    spec::{ScalingBehavior, ScalingSpec, parse_model_choice},
};
use prescient_model::TimeSeries;

const STEP: i64 = 300;
const DAY: i64 = 86_400;

fn spec() -> ScalingSpec {
    ScalingSpec {
        min_replicas: 1,
        max_replicas: 100,
        target_per_replica: 10.0,
        history: Duration::from_secs(7 * DAY as u64),
        step: Duration::from_secs(STEP as u64),
        horizon: Duration::from_secs(1800),
        lead_time: Duration::from_secs(120),
        model: parse_model_choice("seasonal_naive").unwrap(),
        quantile: 0.9,
        refit_interval: Duration::from_secs(3600),
        sync_period: Duration::from_secs(30),
        behavior: ScalingBehavior::default(),
        scale_enabled: true,
        forecast_enabled: true,
        max_underprovisioned_fraction: None,
    }
}

/// `days` of a daily cycle (100 ± 50) at 5-minute steps, starting at 0.
fn daily(days: i64) -> TimeSeries {
    let values = (0..days * DAY / STEP)
        .map(|i| 100.0 + 50.0 * (2.0 * std::f64::consts::PI * (i * STEP % DAY) as f64 / DAY as f64).sin())
        .collect();
    TimeSeries::from_values(0, STEP, values).unwrap()
}

fn replicas(n: u32) -> ReplicaState {
    ReplicaState { desired: n, ready: n }
}

#[test]
fn refits_at_the_refit_interval_and_when_the_forecast_settings_change() {
    let history = daily(4);
    let now = history.end() + STEP + 15;
    let mut core = AutoscalerCore::new(spec());
    let first = core.sync(&history, replicas(10), now);
    assert!(first.refitted, "health: {:?}", first.health);
    assert!(first.health.is_healthy());
    assert!(first.fit_seconds.is_some());
    assert!(first.forecast.is_some());
    assert_eq!(first.model.as_ref().unwrap().fitted_at, now);
    let second = core.sync(&history, replicas(10), now + 30);
    assert!(!second.refitted);
    let later = core.sync(&history, replicas(10), now + 3600);
    assert!(!later.refitted, "history went stale: no refit on stale data");
    assert_eq!(later.health.reason(), "StaleData");
    let fresh = daily(5);
    let now = fresh.end() + STEP + 15;
    assert!(
        core.sync(&fresh, replicas(10), now).refitted,
        "an hour later with fresh data"
    );
    assert!(!core.sync(&fresh, replicas(10), now + 30).refitted);
    let mut changed = spec();
    changed.model = parse_model_choice("naive").unwrap();
    core.set_spec(changed);
    assert!(
        core.sync(&fresh, replicas(10), now + 60).refitted,
        "a new model refits at once"
    );
    let mut quantile_only = core.spec().clone();
    quantile_only.quantile = 0.5;
    core.set_spec(quantile_only);
    assert!(
        !core.sync(&fresh, replicas(10), now + 90).refitted,
        "a new quantile needs no refit"
    );
}

#[test]
fn too_little_history_acts_on_the_reactive_floor_and_says_how_much_is_needed() {
    let history = TimeSeries::from_values(0, STEP, vec![200.0, 210.0, 220.0]).unwrap();
    let now = history.end() + STEP + 15;
    let mut core = AutoscalerCore::new(spec());
    let outcome = core.sync(&history, replicas(10), now);
    match &outcome.health {
        ForecastHealth::InsufficientHistory { have, need } => {
            assert!(have < need, "{have:?} < {need:?}");
            assert!(
                outcome.health.message().contains("more"),
                "{}",
                outcome.health.message()
            );
        }
        other => panic!("expected InsufficientHistory, got {other:?}"),
    }
    assert!(outcome.forecast.is_none());
    // 220 observed at 10 per replica needs 22 (rate-limited from 10 to 20 this sync).
    assert_eq!(outcome.decision.reactive_replicas, Some(22));
    assert_eq!(outcome.decision.desired_replicas, 20);
    assert_eq!(outcome.observed_demand, Some(220.0));
}

#[test]
fn stale_data_holds_replicas() {
    let history = daily(4);
    let mut core = AutoscalerCore::new(spec());
    // Newest point is an hour old: far beyond 2 steps + sync period.
    let outcome = core.sync(&history, replicas(30), history.end() + 3600);
    assert_eq!(outcome.decision.reason, DecisionReason::HeldOnStaleData);
    assert_eq!(outcome.decision.desired_replicas, 30);
    assert!(matches!(outcome.health, ForecastHealth::StaleData { age } if age == Duration::from_secs(3600)));
}

#[test]
fn holds_replicas_when_metrics_are_unavailable() {
    let history = daily(4);
    let now = history.end() + STEP + 15;
    let mut core = AutoscalerCore::new(spec());
    core.sync(&history, replicas(10), now);
    let outcome = core.hold(replicas(40), now + 30, "connection refused".to_owned());
    assert_eq!(outcome.decision.desired_replicas, 40);
    assert_eq!(outcome.decision.reason, DecisionReason::HeldOnStaleData);
    assert_eq!(outcome.health.reason(), "MetricsUnavailable");
    assert!(outcome.decision.message.contains("connection refused"));
    assert!(outcome.model.is_some(), "the model is kept through an outage");
}

#[test]
fn the_forecast_feeds_the_decision() {
    let history = daily(4);
    let now = history.end() + STEP + 15;
    let mut core = AutoscalerCore::new(spec());
    let outcome = core.sync(&history, replicas(10), now);
    let decision = &outcome.decision;
    assert!(decision.predictive_replicas.is_some(), "{decision:?}");
    assert!(decision.peak_quantile_demand.unwrap() > 0.0);
    assert!(decision.demand_at_lead_time.is_some());
}

/// Before a model can be fitted, the floor carries the rise above the observed demand that realised
/// windows showed: on noisy demand around a constant level (lognormal, σ = 0.3, a known distribution),
/// the window peak is served at about the quantile (0.9), where the plain floor, `ceil(observed /
/// target)`, serves it about a quarter of the time.
#[test]
fn without_a_model_the_floor_carries_headroom_calibrated_on_observed_demand() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    const MINUTE: i64 = 60;
    let mut rng = StdRng::seed_from_u64(7);
    let demand: Vec<f64> = (0..12 * 60)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            100.0 * (0.3 * z).exp()
        })
        .collect();
    let mut spec = spec();
    spec.step = Duration::from_secs(MINUTE as u64);
    // Five minutes of history: too little for any model, so the health stays InsufficientHistory.
    spec.history = Duration::from_secs(5 * MINUTE as u64);
    let window = (spec.lead_time + spec.sync_period).as_secs() as i64;
    let mut core = AutoscalerCore::new(spec);
    let (mut served, mut plain_served, mut judged) = (0u32, 0u32, 0u32);
    let mut current = 10;
    for now in (10 * MINUTE..11 * 60 * MINUTE).step_by(30) {
        // A point joins the history once its minute has ended and been scraped (15 s).
        let known = usize::try_from((now - 15) / MINUTE).unwrap();
        let history = TimeSeries::from_values(0, MINUTE, demand[..known].to_vec()).unwrap();
        let outcome = core.sync(&history, replicas(current), now);
        assert_eq!(outcome.health.reason(), "InsufficientHistory");
        current = outcome.decision.desired_replicas;
        if now < 2 * 60 * MINUTE {
            continue; // calibrating
        }
        let first = usize::try_from(now / MINUTE).unwrap();
        let last = usize::try_from((now + window) / MINUTE).unwrap();
        let peak = demand[first..=last].iter().copied().fold(f64::MIN, f64::max);
        let floor = f64::from(outcome.decision.reactive_replicas.unwrap()) * 10.0;
        let plain = (outcome.observed_demand.unwrap() / 10.0).ceil() * 10.0;
        judged += 1;
        served += u32::from(floor >= peak);
        plain_served += u32::from(plain >= peak);
        assert!(
            outcome.decision.message.contains("calibrated"),
            "{}",
            outcome.decision.message
        );
    }
    let rate = f64::from(served) / f64::from(judged);
    let plain_rate = f64::from(plain_served) / f64::from(judged);
    assert!((0.85..=0.95).contains(&rate), "served {rate:.3} of window peaks");
    assert!(plain_rate < 0.5, "the plain floor served {plain_rate:.3}");
}

/// A core that starts on a history it did not see arrive (an operator restart, a new leader) replays
/// the last day of it: at its first decision its calibration stands where a core that ran through
/// that day would stand, instead of at zero realised windows.
#[test]
fn a_restarted_core_warms_its_calibration_on_the_last_day_before_deciding() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(17);
    let clean = daily(4);
    // The daily cycle with ±20 % noise, so that the windows' scores are not all zero.
    let noisy: Vec<f64> = clean
        .values()
        .iter()
        .map(|v| v * rng.random_range(0.8..1.2))
        .collect();
    let history = TimeSeries::from_values(0, STEP, noisy).unwrap();
    let now = history.end() + STEP + 15;

    // What the operator had before the restart: a core that synced every 30 s through the last day on
    // the steps ended by then, with the demand of the last minute observed apart (the step in progress
    // once it is a minute old).
    let mut live = AutoscalerCore::new(spec());
    let mut at = now - DAY;
    while at < now {
        let observed = history.until(at - 60).values().last().copied();
        live.sync_observed(&history.until(at - STEP), observed, replicas(15), at);
        at += 30;
    }
    let live = live.sync(&history, replicas(15), now);

    let cold = AutoscalerCore::new(spec()).sync(&history, replicas(15), now);
    assert_eq!(cold.calibration.realised_windows, 0);

    let mut restarted = AutoscalerCore::new(spec());
    assert_eq!(restarted.bootstrap(&history, now), (DAY / 30) as usize);
    let warm = restarted.sync(&history, replicas(15), now);
    let (warm_windows, live_windows) = (
        warm.calibration.realised_windows,
        live.calibration.realised_windows,
    );
    assert!(
        warm_windows > 2_000 && warm_windows.abs_diff(live_windows) * 100 <= live_windows,
        "realised windows: warmed {warm_windows}, live {live_windows}"
    );
    let (warm_peak, live_peak) = (
        warm.decision.peak_quantile_demand.unwrap(),
        live.decision.peak_quantile_demand.unwrap(),
    );
    assert!(
        (warm_peak - live_peak).abs() <= 0.05 * live_peak,
        "planned peak: warmed {warm_peak}, live {live_peak}"
    );
    // The first real sync refits on the whole history; the replay's syncs and decisions are not
    // recorded as the target's: no capacity was judged, and a second bootstrap does nothing.
    assert!(warm.refitted);
    assert_eq!(warm.calibration.shortfall_fraction_last_day, None);
    assert_eq!(restarted.bootstrap(&history, now + 30), 0);
}
