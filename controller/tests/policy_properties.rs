//! Properties of `policy::decide` on arbitrary inputs: no panic, the result within [min, max], stale or
//! missing data never lowers replicas, and the predictive part never asks for less than the forecast's
//! peak over the decision window needs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prescient::{
    core::ReplicaState,
    policy::{PolicyInput, PredictedDemand, RecentRecommendations, decide, replicas_for},
    spec::{ScalingBehavior, ScalingSpec},
};
use proptest::prelude::*;

fn spec(min: u32, max: u32, target: f64) -> ScalingSpec {
    ScalingSpec {
        min_replicas: min,
        max_replicas: max,
        target_per_replica: target,
        history: Duration::from_secs(86_400),
        step: Duration::from_secs(60),
        horizon: Duration::from_secs(900),
        lead_time: Duration::from_secs(120),
        model: prescient_model::ModelChoice::Auto,
        quantile: 0.9,
        refit_interval: Duration::from_secs(3600),
        sync_period: Duration::from_secs(30),
        behavior: ScalingBehavior::default(),
        scale_enabled: true,
        forecast_enabled: true,
        max_underprovisioned_fraction: None,
    }
}

fn demand() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1e6f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-5.0),
        Just(0.0)
    ]
}

proptest! {
    #[test]
    fn decisions_stay_within_bounds_and_never_drop_on_missing_data(
        min in 0u32..5,
        extra in 0u32..200,
        target in 0.1f64..1000.0,
        current in 0u32..300,
        observed in proptest::option::of(demand()),
        values in proptest::collection::vec(demand(), 0..20),
        start_offset in -600i64..600,
        stale in any::<bool>(),
        history in proptest::collection::vec((0i64..600, 0u32..300), 0..30),
    ) {
        let max = min + extra.max(1);
        let spec = spec(min, max, target);
        let now = 10_000;
        let mut recent = RecentRecommendations::new();
        // Some past decisions, recorded the way the core does.
        let mut replicas = current;
        for (age, value) in history {
            let at = now - 600 + age;
            let input = PolicyInput { now: at, forecast: None, observed_demand: Some(f64::from(value) * target), persistence_peak: None, stale: false, replicas: ReplicaState { desired: replicas, ready: replicas } };
            let d = decide(&input, &spec, &recent);
            recent.record(at, &d, replicas, true, &spec.behavior);
            replicas = d.desired_replicas;
        }
        let forecast = (!values.is_empty()).then(|| PredictedDemand::exact(now + start_offset, 60, values.clone()));
        let input = PolicyInput { now, forecast: forecast.clone(), observed_demand: observed, persistence_peak: None, stale, replicas: ReplicaState { desired: current, ready: current / 2 } };
        let d = decide(&input, &spec, &recent);
        prop_assert!(d.desired_replicas >= min && d.desired_replicas <= max, "{d:?}");
        prop_assert!(!d.message.is_empty());
        let in_bounds = current.clamp(min, max);
        let observed_ok = observed.is_some_and(|o| o.is_finite() && o >= 0.0);
        if stale || !observed_ok {
            prop_assert!(d.desired_replicas >= in_bounds, "missing/stale data lowered {current} to {}", d.desired_replicas);
        }
        // Pods asked for now serve from now + leadTime (120 s) to the next sync's (+ 30 s): that window's
        // peak sets a scale-up, the whole window's bounds a scale-down.
        if let (false, Some(f), Some(p)) = (stale, &forecast, d.predictive_replicas) {
            let whole = replicas_for(f.peak(now, now + 150).unwrap(), target);
            let expected = match f.peak(now + 120, now + 150) {
                Some(arrival) => replicas_for(arrival, target).max(whole.min(current)),
                None => whole,
            };
            prop_assert_eq!(p, expected);
        }
    }
}
