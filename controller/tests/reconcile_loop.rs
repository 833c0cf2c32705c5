//! The shared reconcile loop (`reconcile::sync_once`) against fake edges: incremental history fetches,
//! holding on metrics errors, an unreadable target, conflict retries, and ForecastOnly.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use prescient::{
    core::ReplicaState,
    crd::{ForecastSpec, MetricSpec, Mode, PredictiveAutoscalerSpec, ScaleTargetRef},
    edges::{MetricsError, MetricsSource, ScaleError, ScaleTarget, TargetRef},
    reconcile::{Autoscaler, sync_once},
    spec::ScalingSpec,
};

const STEP: i64 = 60;

/// A metrics source over fixed points that records every range it was asked for; `stray` points are
/// added to the next answer only; a query at a single instant is answered `now` (an error when `None`).
struct FakeMetrics {
    points: Vec<(i64, f64)>,
    down: Mutex<bool>,
    stray: Mutex<Vec<(i64, f64)>>,
    asked: Mutex<Vec<(i64, i64)>>,
    now: Mutex<Option<f64>>,
}

impl FakeMetrics {
    fn new(points: Vec<(i64, f64)>) -> Self {
        Self {
            points,
            down: Mutex::new(false),
            stray: Mutex::new(Vec::new()),
            asked: Mutex::new(Vec::new()),
            now: Mutex::new(Some(f64::NAN)),
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
        if start == end && !self.points.iter().any(|&(t, _)| t == start) {
            return match *self.now.lock().unwrap() {
                Some(value) => Ok(vec![(start, value)]),
                None => Err(MetricsError::Timeout(std::time::Duration::from_secs(5))),
            };
        }
        let mut answer: Vec<(i64, f64)> = self
            .points
            .iter()
            .copied()
            .filter(|&(t, _)| t >= start && t <= end)
            .collect();
        answer.append(&mut self.stray.lock().unwrap());
        Ok(answer)
    }
}

/// A scale target whose first `conflicts` writes answer 409, and which is gone while `missing`.
struct FakeTarget {
    state: Mutex<ReplicaState>,
    conflicts: Mutex<usize>,
    missing: Mutex<bool>,
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
            missing: Mutex::new(false),
            writes: Mutex::new(Vec::new()),
        }
    }
}

impl ScaleTarget for FakeTarget {
    async fn replicas(&self, t: &TargetRef) -> Result<ReplicaState, ScaleError> {
        if *self.missing.lock().unwrap() {
            return Err(ScaleError::NotFound(t.name.clone()));
        }
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
    spec_with_step(mode, "1m")
}

fn spec_with_step(mode: Mode, step: &str) -> ScalingSpec {
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
            step: step.into(),
            ..ForecastSpec::default()
        },
        behavior: None,
        mode,
        sync_period: "60s".into(),
        slo: None,
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
async fn an_unreadable_target_is_reported_as_such_and_left_alone() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now + 60));
    let target = FakeTarget::new(30);
    let mut autoscaler = Autoscaler::new(spec(Mode::Scale), "q".into(), target_ref());
    *target.missing.lock().unwrap() = true;

    let report = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(matches!(report.scale_error, Some(ScaleError::NotFound(_))));
    assert!(report.replicas_before.is_none() && report.scaled_to.is_none());
    assert_eq!(report.outcome.health.reason(), "TargetUnavailable");
    assert!(
        report.outcome.health.message().contains("shop"),
        "{}",
        report.outcome.health.message()
    );
    assert!(
        metrics.asked.lock().unwrap().is_empty(),
        "no metrics fetched for an unknown target"
    );
    assert!(target.writes.lock().unwrap().is_empty());
    // Counted once, by the scale error's reason, never as a metrics problem.
    let exported = prescient::metrics::Metrics::new();
    exported.observe_sync("default", "shop", &report);
    let text = exported.encode();
    assert!(
        text.contains("prescient_reconcile_errors_total{reason=\"TargetNotFound\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("reason=\"TargetUnavailable\"") && !text.contains("reason=\"MetricsUnavailable\"")
    );

    *target.missing.lock().unwrap() = false;
    let recovered = sync_once(&mut autoscaler, &metrics, &target, now + 60).await;
    assert!(recovered.scale_error.is_none());
    assert!(
        recovered.outcome.health.is_healthy(),
        "{:?}",
        recovered.outcome.health
    );
}

#[tokio::test]
async fn a_batch_the_cache_rejects_holds_replicas_and_keeps_the_history() {
    let now = 2 * 86_400;
    let metrics = FakeMetrics::new(daily_points(now + 120));
    let target = FakeTarget::new(12);
    let mut autoscaler = Autoscaler::new(spec(Mode::Scale), "q".into(), target_ref());
    let first = sync_once(&mut autoscaler, &metrics, &target, now).await;
    assert!(first.metrics_error.is_none());
    let replicas = target.state.lock().unwrap().desired;

    // A sample centuries ahead would need a grid too long to hold: the batch is refused as a whole.
    metrics.stray.lock().unwrap().push((i64::MAX / 4, 1.0));
    let rejected = sync_once(&mut autoscaler, &metrics, &target, now + 60).await;
    assert!(
        matches!(rejected.metrics_error, Some(MetricsError::BadQuery(_))),
        "{rejected:?}"
    );
    let (start, end) = metrics.asked.lock().unwrap()[1];
    let in_range = metrics
        .points
        .iter()
        .filter(|&&(t, _)| t >= start && t <= end)
        .count();
    assert_eq!(
        rejected.fetched_points,
        in_range + 1,
        "the points asked for and the stray one came back"
    );
    assert_eq!(
        rejected.outcome.decision.desired_replicas, replicas,
        "held, never scaled down"
    );

    let next = sync_once(&mut autoscaler, &metrics, &target, now + 120).await;
    assert!(next.metrics_error.is_none(), "{:?}", next.metrics_error);
    assert!(next.outcome.health.is_healthy(), "{:?}", next.outcome.health);
    let asked = metrics.asked.lock().unwrap();
    assert!(
        asked[2].0 > now - 3600,
        "the cache kept its history: only new points are fetched, {asked:?}"
    );
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

#[tokio::test]
async fn with_a_coarse_step_the_floor_follows_the_demand_now_not_the_newest_step() {
    // Five-minute steps at 100 (10 replicas of 10); the newest is the step that ended at `grid` (a value
    // is the demand of the step after its stamp); 4 minutes after that, demand is 400.
    let grid = 2 * 86_400;
    let now = grid + 240;
    let points: Vec<(i64, f64)> = (0..grid / 300).map(|i| (i * 300, 100.0)).collect();
    let sync = |metrics: FakeMetrics| async move {
        let target = FakeTarget::new(10);
        let mut autoscaler = Autoscaler::new(spec_with_step(Mode::Scale, "5m"), "q".into(), target_ref());
        let report = sync_once(&mut autoscaler, &metrics, &target, now).await;
        (report, metrics)
    };

    let fresh = FakeMetrics::new(points.clone());
    *fresh.now.lock().unwrap() = Some(400.0);
    let (report, fresh) = sync(fresh).await;
    assert!(report.metrics_error.is_none(), "{:?}", report.metrics_error);
    assert!(
        fresh.asked.lock().unwrap().contains(&(now, now)),
        "the demand now is read"
    );
    assert_eq!(report.outcome.observed_demand, Some(400.0));
    // 40 replicas are needed; the HPA's default scale-up limit (100 % per period) allows 20 at once.
    assert!(
        report.outcome.decision.desired_replicas >= 20,
        "the floor follows the demand now: {}",
        report.outcome.decision.desired_replicas
    );

    // The read fails: the sync still decides, on the newest step (no hold, no error reported).
    let failing = FakeMetrics::new(points);
    *failing.now.lock().unwrap() = None;
    let (report, _) = sync(failing).await;
    assert!(report.metrics_error.is_none(), "{:?}", report.metrics_error);
    assert_eq!(report.outcome.observed_demand, Some(100.0));
    assert!(
        report.outcome.decision.desired_replicas < 20,
        "{}",
        report.outcome.decision.desired_replicas
    );
}
