//! Reconcile scenarios against an in-memory Kubernetes API (kube-rs's tower-test mock: the test plays
//! the API server, answers and records every request) and a fake metrics source: first reconcile,
//! pre-scaling ahead of a forecast spike, ForecastOnly, an invalid spec, a missing target, a conflict on
//! `/scale`, Prometheus down (replicas held) and recovery.
#![allow(clippy::unwrap_used)]

mod operator_support;

use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use operator_support::{Harness, assert_requeued_at_period, autoscaler, condition, paths, requeue_secs};
use serde_json::json;

const DAY: i64 = 86_400;
/// A Monday 00:00 UTC, so "12:00" below is noon.
const T0: i64 = 1_700_438_400;

/// `value(t)` every `step` seconds over `[from, to]`.
fn samples(from: i64, to: i64, step: i64, value: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..=(to - from) / step)
        .map(|i| from + i * step)
        .map(|t| (t, value(t)))
        .collect()
}

/// 100 all day, 1000 from 12:00 to 12:30: a daily spike.
fn daily_spike(t: i64) -> f64 {
    let second_of_day = t.rem_euclid(DAY);
    if (12 * 3600..12 * 3600 + 1800).contains(&second_of_day) {
        1000.0
    } else {
        100.0
    }
}

fn reactive_spec(target: &str) -> serde_json::Value {
    json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1, "maxReplicas": 50,
        "metric": {"query": "sum(rate(http_requests_total{app=\"shop\"}[1m]))", "targetPerReplica": 100.0},
    })
}

fn spike_spec(target: &str, mode: &str) -> serde_json::Value {
    json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1, "maxReplicas": 50,
        "metric": {"query": "sum(rate(http_requests_total{app=\"shop\"}[5m]))", "targetPerReplica": 50.0},
        "forecast": {"history": "4d", "step": "5m", "horizon": "30m", "leadTime": "10m", "model": "seasonal_naive", "quantile": 0.9},
        "behavior": {"scaleUp": {"policies": [{"type": "Percent", "value": 1000, "periodSeconds": 15}]}},
        "mode": mode,
    })
}

#[tokio::test]
async fn first_reconcile_of_a_new_autoscaler_writes_status_and_scales_on_the_reactive_floor() {
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.api.add_deployment("shop", 1);
    let pa = autoscaler("shop", reactive_spec("shop"));

    let action = h.reconcile(&pa).await;

    assert_requeued_at_period(&action, 30, "requeued at the default sync period");
    // 250 rps at 100 per replica needs 3 replicas now; 30 minutes of history is too little to forecast.
    assert_eq!(h.api.replicas("shop"), Some(3));
    let status = h.api.last_status("shop");
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["currentReplicas"], 1);
    assert_eq!(status["desiredReplicas"], 3);
    assert_eq!(status["decisionReason"], "ReactiveFloor");
    assert!(status["lastScaleTime"].is_string());
    assert_eq!(condition(&status, "Ready")["status"], "True");
    let forecast = condition(&status, "ForecastHealthy");
    assert_eq!(forecast["status"], "False");
    assert_eq!(forecast["reason"], "InsufficientHistory");
    assert_eq!(condition(&status, "AbleToScale")["reason"], "SucceededRescale");
    assert!(
        h.api.event_reasons().contains(&"Scaled".to_owned()),
        "{:?}",
        h.api.event_reasons()
    );
    // The whole history window was asked for on the first sync.
    let calls = h.metrics_source.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, now);
    assert!(
        calls[0].0 <= now - 7 * DAY,
        "first fetch covers the history window: {calls:?}"
    );
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("prescient_desired_replicas{namespace=\"shop\",name=\"shop\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("prescient_scale_actions_total{namespace=\"shop\",name=\"shop\",direction=\"up\"} 1")
    );
}

#[tokio::test]
async fn pre_scales_before_a_forecast_spike() {
    // Day four, 11:55: demand is still at its base of 100 (2 replicas), the daily spike to 1000 starts at
    // 12:00, within the 10-minute lead time.
    let now = T0 + 3 * DAY + 11 * 3600 + 55 * 60;
    let h = Harness::new(samples(T0, now, 300, daily_spike), now);
    h.api.add_deployment("shop", 2);
    let pa = autoscaler("shop", spike_spec("shop", "Scale"));

    h.reconcile(&pa).await;

    let status = h.api.last_status("shop");
    assert_eq!(
        condition(&status, "ForecastHealthy")["status"],
        "True",
        "{status:#}"
    );
    assert_eq!(status["decisionReason"], "Predictive", "{status:#}");
    assert_eq!(
        h.api.replicas("shop"),
        Some(20),
        "1000 rps at 50 per replica, provisioned before 12:00"
    );
    assert_eq!(status["forecast"]["predictiveReplicas"], 20);
    assert!(status["forecast"]["peakQuantileDemand"].as_f64().unwrap() >= 999.0);
    // The 20 replicas are asked for the window they will serve: the spike is in it.
    assert!(
        status["forecast"]["arrivalPeakDemand"].as_f64().unwrap() >= 999.0,
        "{status:#}"
    );
    assert!(
        status["model"].as_str().unwrap().contains("seasonal_naive"),
        "{status:#}"
    );
    assert_eq!(h.api.scale_writes().len(), 1);
}

#[tokio::test]
async fn forecast_only_writes_status_but_never_scales() {
    let now = T0 + 3 * DAY + 11 * 3600 + 55 * 60;
    let h = Harness::new(samples(T0, now, 300, daily_spike), now);
    h.api.add_deployment("shop", 2);
    let pa = autoscaler("shop", spike_spec("shop", "ForecastOnly"));

    h.reconcile(&pa).await;

    assert!(
        h.api.scale_writes().is_empty(),
        "ForecastOnly must not write /scale: {:?}",
        paths(&h.api.requests())
    );
    assert_eq!(h.api.replicas("shop"), Some(2));
    let status = h.api.last_status("shop");
    assert_eq!(status["desiredReplicas"], 20, "the decision is still reported");
    let scaling = condition(&status, "ScalingActive");
    assert_eq!(scaling["status"], "False");
    assert_eq!(scaling["reason"], "ForecastOnly");
    assert!(!h.api.event_reasons().contains(&"Scaled".to_owned()));
}

#[tokio::test]
async fn invalid_spec_sets_a_condition_and_an_event_and_never_touches_the_target() {
    let now = T0 + 3600;
    let h = Harness::new(samples(T0, now, 60, |_| 100.0), now);
    h.api.add_deployment("shop", 4);
    let mut spec = reactive_spec("shop");
    spec["minReplicas"] = json!(10);
    spec["maxReplicas"] = json!(2);
    let pa = autoscaler("shop", spec);

    let action = h.reconcile(&pa).await;

    assert_eq!(
        action,
        Action::await_change(),
        "an invalid spec waits for the user to fix it"
    );
    let requests = h.api.requests();
    assert!(
        requests.iter().all(|r| !r.path.contains("/deployments/")),
        "the target must not be read or written: {:?}",
        paths(&requests)
    );
    assert!(
        h.metrics_source.calls.lock().unwrap().is_empty(),
        "no metrics fetched for an invalid spec"
    );
    let status = h.api.last_status("shop");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"].as_str().unwrap().contains("minReplicas"),
        "{ready}"
    );
    assert_eq!(h.api.event_reasons(), vec!["InvalidSpec".to_owned()]);
    assert_eq!(h.api.replicas("shop"), Some(4));
}

/// The watch hands the reconciler untyped objects: one the typed struct cannot read (here `maxReplicas`
/// beyond u32, stored through an older CRD without bounds) is a condition and an event on that object,
/// and an autoscaler beside it is still reconciled.
#[tokio::test]
async fn unreadable_object_is_a_condition_and_the_next_autoscaler_still_syncs() {
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.api.add_deployment("shop", 1);
    let good = autoscaler("shop", reactive_spec("shop"));
    let mut bad_value = serde_json::to_value(autoscaler("bad", reactive_spec("shop"))).unwrap();
    bad_value["spec"]["maxReplicas"] = json!(5_000_000_000_u64);
    h.api
        .0
        .lock()
        .unwrap()
        .autoscalers
        .insert("bad".to_owned(), bad_value.clone());
    h.api.add_autoscaler(&good);
    let bad: kube::api::DynamicObject = serde_json::from_value(bad_value).unwrap();
    let good_object: kube::api::DynamicObject =
        serde_json::from_value(serde_json::to_value(&good).unwrap()).unwrap();

    let action = prescient::operator::reconcile_object(std::sync::Arc::new(bad), h.ctx.clone())
        .await
        .unwrap();

    assert_eq!(
        action,
        Action::await_change(),
        "an unreadable object waits for its next change"
    );
    let ready = condition(&h.api.last_status("bad"), "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"].as_str().unwrap().contains("5000000000"),
        "the message names the value: {ready}"
    );
    assert!(
        ready["message"].as_str().unwrap().contains("spec.maxReplicas"),
        "the message names the field: {ready}"
    );
    assert_eq!(h.api.event_reasons(), vec!["InvalidSpec".to_owned()]);
    assert_eq!(
        h.api.scale_writes().len(),
        0,
        "nothing scaled for the unreadable object"
    );

    let action = prescient::operator::reconcile_object(std::sync::Arc::new(good_object), h.ctx.clone())
        .await
        .unwrap();
    assert_requeued_at_period(&action, 30, "the good one requeues at its sync period");
    let ready = condition(&h.api.last_status("shop"), "Ready");
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(
        h.api.replicas("shop"),
        Some(3),
        "the good one is scaled (reactive floor)"
    );
}

#[tokio::test]
async fn missing_target_sets_a_condition_and_retries_later() {
    let now = T0 + 3600;
    let h = Harness::new(samples(T0, now, 60, |_| 100.0), now);
    let pa = autoscaler("shop", reactive_spec("gone"));

    let action = h.reconcile(&pa).await;

    assert_requeued_at_period(&action, 30, "retried at the sync period, no crash");
    let status = h.api.last_status("shop");
    let able = condition(&status, "AbleToScale");
    assert_eq!(able["status"], "False");
    assert_eq!(able["reason"], "TargetNotFound");
    assert!(able["message"].as_str().unwrap().contains("gone"));
    assert_eq!(condition(&status, "Ready")["reason"], "TargetNotFound");
    assert_eq!(condition(&status, "ScalingActive")["reason"], "TargetNotFound");
    assert_eq!(
        condition(&status, "ForecastHealthy")["status"],
        "Unknown",
        "not evaluated without the target"
    );
    assert!(
        status.get("desiredReplicas").is_none(),
        "no decision reported without the target: {status:#}"
    );
    assert!(h.api.event_reasons().contains(&"TargetNotFound".to_owned()));
    assert!(h.api.scale_writes().is_empty());

    // The target appears: the next reconcile scales it.
    h.api.add_deployment("gone", 1);
    h.clock.advance(30);
    h.reconcile(&pa).await;
    let status = h.api.last_status("shop");
    assert_eq!(condition(&status, "AbleToScale")["status"], "True", "{status:#}");
}

#[tokio::test]
async fn conflict_on_scale_is_reread_and_retried() {
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.api.add_deployment("shop", 1);
    h.api.0.lock().unwrap().conflicts_on_next_put = 1;
    let pa = autoscaler("shop", reactive_spec("shop"));

    h.reconcile(&pa).await;

    let writes = h.api.scale_writes();
    assert_eq!(
        writes.len(),
        2,
        "one 409, then a retry: {:?}",
        paths(&h.api.requests())
    );
    assert_ne!(
        writes[0].body["metadata"]["resourceVersion"], writes[1].body["metadata"]["resourceVersion"],
        "the retry carries the re-read resourceVersion"
    );
    assert_eq!(h.api.replicas("shop"), Some(3));
    let status = h.api.last_status("shop");
    assert_eq!(condition(&status, "AbleToScale")["status"], "True");
    assert_eq!(condition(&status, "Ready")["status"], "True");
}

#[tokio::test]
async fn holds_replicas_when_prometheus_is_down_and_recovers_by_itself() {
    let now = T0 + 30 * 60;
    // Demand would need only 1 replica: without data the operator must not scale down from 5.
    let h = Harness::new(samples(T0, now + 3600, 60, |_| 80.0), now);
    h.api.add_deployment("shop", 5);
    h.metrics_source.set_down(true);
    let pa = autoscaler("shop", reactive_spec("shop"));

    let action = h.reconcile(&pa).await;

    assert_requeued_at_period(&action, 30, "requeued at the sync period");
    assert!(
        h.api.scale_writes().is_empty(),
        "held: {:?}",
        paths(&h.api.requests())
    );
    assert_eq!(h.api.replicas("shop"), Some(5));
    let status = h.api.last_status("shop");
    assert_eq!(status["desiredReplicas"], 5);
    let forecast = condition(&status, "ForecastHealthy");
    assert_eq!(forecast["status"], "False");
    assert_eq!(forecast["reason"], "MetricsUnavailable");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "ScalingActive")["reason"], "ReplicasHeld");
    assert!(h.api.event_reasons().contains(&"MetricsUnavailable".to_owned()));
    assert!(h.ctx.metrics.encode().contains("reason=\"MetricsUnavailable\""));

    // Prometheus is back: the next reconcile fetches, decides and reports healthy again.
    h.metrics_source.set_down(false);
    h.clock.advance(30);
    h.api.clear_requests();
    h.reconcile(&pa).await;
    let status = h.api.last_status("shop");
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status:#}");
    assert_ne!(
        condition(&status, "ForecastHealthy")["reason"],
        "MetricsUnavailable"
    );
    assert_eq!(condition(&status, "ScalingActive")["status"], "True");
    let calls = h.metrics_source.calls.lock().unwrap().clone();
    assert_eq!(calls.last().unwrap().1, now + 30);
    // Requests after recovery: read the target, patch status; no stray calls.
    assert!(
        h.api
            .requests()
            .iter()
            .any(|r| r.method == Method::GET && r.path.ends_with("/scale"))
    );
}

#[tokio::test]
async fn two_autoscalers_reconcile_concurrently_with_separate_state() {
    // Two autoscalers reconciled at once share the context; each holds only its own state lock.
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.api.add_deployment("a", 1);
    h.api.add_deployment("b", 1);
    let a = autoscaler("a", reactive_spec("a"));
    let b = autoscaler("b", reactive_spec("b"));
    let (ra, rb) = tokio::join!(h.reconcile(&a), h.reconcile(&b));
    assert_requeued_at_period(&ra, 30, "a requeued at its period");
    assert_requeued_at_period(&rb, 30, "b requeued at its period");
    assert_eq!(h.api.replicas("a"), Some(3));
    assert_eq!(h.api.replicas("b"), Some(3));
    assert_eq!(h.ctx.autoscaler_count(), 2);
}

/// The watch event of its own status patch does not make an autoscaler sync again before its period is
/// over; a new generation (a spec change) does. A real API server sends a watch event for every status
/// patch (the mock of these tests sends none): scripts/cluster-tests.sh and cluster-bench.sh found every
/// sync followed at once by a second one.
#[tokio::test]
async fn the_echo_of_a_status_patch_does_not_sync_again_before_the_period() {
    use std::sync::Arc;
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.api.add_deployment("shop", 1);
    let pa = autoscaler("shop", reactive_spec("shop"));
    h.reconcile(&pa).await;
    assert!(h.ctx.too_soon(&pa).is_some(), "just synced");
    h.api.clear_requests();

    let action = prescient::operator::reconcile_when_due(Arc::new(pa.clone()), h.ctx.clone())
        .await
        .unwrap();
    assert!(
        h.api.requests().is_empty(),
        "the echo reached the API: {:?}",
        paths(&h.api.requests())
    );
    assert_eq!(h.metrics_source.calls.lock().unwrap().len(), 1, "no second fetch");
    assert_ne!(action, Action::await_change(), "still requeued for its next sync");

    let mut edited = pa.clone();
    edited.metadata.generation = Some(4);
    assert!(h.ctx.too_soon(&edited).is_none(), "a spec change is due at once");
    h.api.add_autoscaler(&edited);
    prescient::operator::reconcile_when_due(Arc::new(edited), h.ctx.clone())
        .await
        .unwrap();
    assert!(
        !h.api.requests().is_empty(),
        "a new generation syncs: {:?}",
        paths(&h.api.requests())
    );
}

/// The next sync is due one period after this one started, not after it ended: a sync that takes a
/// while (a slow Prometheus, a busy API server, waiting for a slot) does not stretch the period. With the
/// period counted from the end, 1,000 autoscalers at 30 s synced 29.3 times a second instead of 33.3
/// (scripts/cluster-bench.sh).
#[tokio::test]
async fn the_period_counts_from_the_start_of_a_sync() {
    let now = T0 + 30 * 60;
    let h = Harness::new(samples(T0, now, 60, |_| 250.0), now);
    h.metrics_source.set_delay(Duration::from_millis(400));
    h.api.add_deployment("shop", 1);
    let pa = autoscaler("shop", reactive_spec("shop"));
    let action = h.reconcile(&pa).await;
    let period = Duration::from_secs(30);
    let after = requeue_secs(&action).expect("requeued");
    assert!(
        after <= 29.6,
        "requeued {after} s after a sync of 400 ms: the period counted from its end"
    );
    let left = h.ctx.too_soon(&pa).expect("just synced");
    assert!(
        left <= period - Duration::from_millis(400),
        "the sync took 400 ms, yet {left:?} are left of the 30 s period"
    );
}

/// At most `MAX_CONCURRENT_SYNCS` syncs run at once; the others wait for a slot and then sync. All
/// autoscalers of the first list are reconciled at once: unbounded, 10,000 were 10,000 syncs in flight,
/// and the operator ran out of connections (scripts/cluster-bench.sh).
#[tokio::test]
async fn at_most_the_configured_number_of_syncs_run_at_once() {
    let names: Vec<String> = (0..6).map(|i| format!("app-{i}")).collect();
    let (h, most) = syncs_in_flight(2, &names).await;
    assert!(most <= 2, "{most} syncs ran at once, the limit is 2");
    for name in &names {
        assert_eq!(
            h.api.replicas(name),
            Some(3),
            "{name} synced after waiting for a slot"
        );
    }
    // Without the limit they would all have run at once (so the check above means something).
    let (_, most) = syncs_in_flight(64, &names).await;
    assert_eq!(most, 6);
}

/// Reconciles one autoscaler per name at once, each sync's metrics query taking 50 ms, with at most
/// `limit` syncs at once; returns the harness and the most syncs that were in flight together.
async fn syncs_in_flight(limit: usize, names: &[String]) -> (Harness, usize) {
    let now = T0 + 30 * 60;
    let h = Harness::with_max_concurrent_syncs(samples(T0, now, 60, |_| 250.0), now, limit);
    h.metrics_source.set_delay(Duration::from_millis(50));
    let pas: Vec<_> = names
        .iter()
        .map(|name| {
            h.api.add_deployment(name, 1);
            autoscaler(name, reactive_spec(name))
        })
        .collect();
    futures::future::join_all(pas.iter().map(|pa| h.reconcile(pa))).await;
    let most = h
        .metrics_source
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    (h, most)
}
