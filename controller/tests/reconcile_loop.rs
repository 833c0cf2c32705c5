//! The shared reconcile loop (`reconcile::sync_once`) against fake edges: incremental history fetches,
//! holding on metrics errors, conflict retries, and ForecastOnly.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use prescient::{
    crd::{ForecastSpec, MetricSpec, Mode, PredictiveAutoscalerSpec, ScaleTargetRef},
    edges::{MetricsError, MetricsSource, ReplicaState, ScaleError, ScaleTarget, TargetRef},
    reconcile::{Autoscaler, sync_once},
    spec::ScalingSpec,
};

const STEP: i64 = 60;

/// A metrics source over fixed points that records every range it was asked for.
struct FakeMetrics {
    points: Vec<(i64, f64)>,
    down: Mutex<bool>,
    asked: Mutex<Vec<(i64, i64)>>,
}

impl FakeMetrics {
    fn new(points: Vec<(i64, f64)>) -> Self {
        Self {
            points,
            down: Mutex::new(false),
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl MetricsSource for FakeMetrics {
    async fn range(
        &self,
        _q: &str,
        start: i64,
        end: i64,
        _step: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        self.asked.lock().unwrap().push((start, end));
        if *self.down.lock().unwrap() {
            return Err(MetricsError::Unavailable("connection refused".into()));
        }
        Ok(self
            .points
            .iter()
            .copied()
            .filter(|&(t, _)| t >= start && t <= end)
            .collect())
    }
}

/// A scale target whose first `conflicts` writes answer 409.
struct FakeTarget {
    state: Mutex<ReplicaState>,
    conflicts: Mutex<usize>,
    writes: Mutex<Vec<u32>>,
}

impl FakeTarget {
    fn new(replicas: u32) -> Self {
        Self {
            state: Mutex::new(ReplicaState {
                desired: replicas,
                ready: replicas,
            }),
            conflicts: Mutex::new(0),
            writes: Mutex::new(Vec::new()),
        }
    }
}

impl ScaleTarget for FakeTarget {
    async fn replicas(&self, _t: &TargetRef) -> Result<ReplicaState, ScaleError> {
        Ok(*self.state.lock().unwrap())
    }
    async fn set_replicas(&self, t: &TargetRef, replicas: u32) -> Result<(), ScaleError> {
        let mut conflicts = self.conflicts.lock().unwrap();
        if *conflicts > 0 {
            *conflicts -= 1;
            return Err(ScaleError::Conflict(t.name.clone()));
        }
        self.writes.lock().unwrap().push(replicas);
        *self.state.lock().unwrap() = ReplicaState {
            desired: replicas,
            ready: replicas,
        };
        Ok(())
    }
}

fn spec(mode: Mode) -> ScalingSpec {
    ScalingSpec::from_resource(&PredictiveAutoscalerSpec {
        scale_target_ref: ScaleTargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "shop".into(),
        },
        min_replicas: 1,
        max_replicas: 50,
        metric: MetricSpec {
            query: "sum(rate(x[1m]))".into(),
            target_per_replica: 10.0,
        },
        forecast: ForecastSpec {
            history: "2d".into(),
            ..ForecastSpec::default()
        },
        behavior: None,
        mode,
        sync_period: "60s".into(),
    })
    .unwrap()
}

fn target_ref() -> TargetRef {
    TargetRef {
        namespace: "default".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "shop".into(),
    }
}

/// Two days of a daily cycle at one-minute steps, demand between 50 and 150.
fn daily_points(until: i64) -> Vec<(i64, f64)> {
    (0..=until / STEP)
        .map(|i| {
            let t = i * STEP;
            let phase = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            (t, 100.0 + 50.0 * phase.sin())
        })
        .collect()
}

#[tokio::test]
async fn fetches_the_whole_window_once_then_only_new_points() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now + 600));
    let target = FakeTarget::new(10);
    let mut autoscaler = Autoscaler::new(spec(Mode::Scale), "q".into(), target_ref());

    let first = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(first.metrics_error.is_none(), "{:?}", first.metrics_error);
    assert!(
        first.fetched_points > 2000,
        "first sync fetches the history window, got {}",
        first.fetched_points
    );

    let second = sync_once(&mut autoscaler, &metrics, &target, now + 120).await;
    assert!(
        second.fetched_points <= 4,
        "later syncs fetch only new points, got {}",
        second.fetched_points
    );
    let asked = metrics.asked.lock().unwrap().clone();
    assert_eq!(asked[0], (0, now), "the first fetch covers the history window");
    assert!(
        asked[1].0 >= now - STEP,
        "incremental fetch starts at the newest cached point: {:?}",
        asked[1]
    );
    assert_eq!(autoscaler.history().unwrap().end(), now + 120);
}

#[tokio::test]
async fn holds_replicas_when_metrics_are_down_and_recovers() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now + 3600));
    let target = FakeTarget::new(30);
    let mut autoscaler = Autoscaler::new(spec(Mode::Scale), "q".into(), target_ref());
    *metrics.down.lock().unwrap() = true;

    let held = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(matches!(held.metrics_error, Some(MetricsError::Unavailable(_))));
    assert_eq!(
        held.outcome.decision.desired_replicas, 30,
        "never scales down without data"
    );
    assert!(held.scaled_to.is_none());
    assert!(!held.outcome.health.is_healthy());
    assert!(target.writes.lock().unwrap().is_empty());

    *metrics.down.lock().unwrap() = false;
    let recovered = sync_once(&mut autoscaler, &metrics, &target, now + 60).await;
    assert!(recovered.metrics_error.is_none());
    assert!(recovered.outcome.decision.desired_replicas >= 1);
}

#[tokio::test]
async fn retries_a_conflicting_scale_after_reading_again() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now));
    // Demand is about 100-150 (10-15 replicas at 10 per replica): 1 replica must scale up.
    let target = FakeTarget::new(1);
    *target.conflicts.lock().unwrap() = 1;
    let mut autoscaler = Autoscaler::new(spec(Mode::Scale), "q".into(), target_ref());

    let report = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(report.scale_error.is_none(), "{:?}", report.scale_error);
    let desired = report.outcome.decision.desired_replicas;
    assert!(desired > 1);
    assert_eq!(report.scaled_to, Some(desired));
    assert_eq!(*target.writes.lock().unwrap(), vec![desired]);
}

#[tokio::test]
async fn forecast_only_mode_never_writes_to_the_target() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now));
    let target = FakeTarget::new(1);
    let mut autoscaler = Autoscaler::new(spec(Mode::ForecastOnly), "q".into(), target_ref());

    let report = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(report.outcome.decision.desired_replicas > 1, "it still decides");
    assert!(report.scaled_to.is_none());
    assert!(target.writes.lock().unwrap().is_empty());
}
