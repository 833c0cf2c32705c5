//! The reconcile loop shared by the operator, the demo and the local process-pool run:
//! fetch history (IO) → pure core (fit, forecast, decide; off the async executor) → scale (IO).
//!
//! Each [`Autoscaler`] keeps its history in memory and asks its [`MetricsSource`] only for the points
//! after the last one it has (plus one step again, so a late scrape that changed the newest point is
//! picked up). Failures never scale down: a metrics error holds the current replicas, and the report
//! says why, for the status conditions, the events and the dashboard.
//!
//! A range query answers points on its step's grid, so with a coarse `forecast.step` the newest one can
//! be a whole step old. When it is older than a sync period, the demand now is asked for apart (the same
//! query, evaluated at `now` alone) and given to the reactive floor, as the HPA reads its metric at each
//! sync: a rise is then met one sync late, not one step late. That read is best effort: if it fails,
//! the newest history point stands in, as before.

use prescient_model::TimeSeries;

use crate::{
    core::{AutoscalerCore, ReplicaState, SyncOutcome},
    edges::{MetricsError, MetricsSource, ScaleError, ScaleTarget, TargetRef},
    spec::ScalingSpec,
};

/// How often a conflicting `/scale` update is re-read and retried within one sync.
const CONFLICT_RETRIES: usize = 2;

/// One autoscaler's live state: its spec, its history cache and its decision core.
#[derive(Debug)]
pub struct Autoscaler {
    pub spec: ScalingSpec,
    pub query: String,
    pub target: TargetRef,
    history: Option<TimeSeries>,
    // `None` only while the core is lent to a blocking task during a sync.
    core: Option<AutoscalerCore>,
}

/// What one sync observed, decided and did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub now: i64,
    pub outcome: SyncOutcome,
    /// The target's replicas before this sync (`None` if they could not be read).
    pub replicas_before: Option<ReplicaState>,
    /// Set when this sync changed the target's replicas.
    pub scaled_to: Option<u32>,
    pub metrics_error: Option<MetricsError>,
    pub scale_error: Option<ScaleError>,
    /// Points the metrics source returned in this sync.
    pub fetched_points: usize,
}

impl Autoscaler {
    pub fn new(spec: ScalingSpec, query: String, target: TargetRef) -> Self {
        let core = AutoscalerCore::new(spec.clone());
        Self {
            spec,
            query,
            target,
            history: None,
            core: Some(core),
        }
    }

    /// Applies a changed spec. A new query or step makes the cached history meaningless, so it is dropped
    /// and fetched again in full; the core refits when its forecast settings change.
    pub fn set_spec(&mut self, spec: ScalingSpec, query: String, target: TargetRef) {
        if query != self.query || spec.step != self.spec.step {
            self.history = None;
        }
        self.core_mut().set_spec(spec.clone());
        self.spec = spec;
        self.query = query;
        self.target = target;
    }

    /// The history cached so far.
    pub fn history(&self) -> Option<&TimeSeries> {
        self.history.as_ref()
    }

    fn core_mut(&mut self) -> &mut AutoscalerCore {
        self.core
            .get_or_insert_with(|| AutoscalerCore::new(self.spec.clone()))
    }

    fn step_seconds(&self) -> i64 {
        i64::try_from(self.spec.step.as_secs()).unwrap_or(i64::MAX).max(1)
    }

    /// Start of the next fetch: one step before the newest cached point, or the start of the history
    /// window on the grid of `step`, so that incremental fetches land on the same grid.
    fn fetch_start(&self, now: i64) -> i64 {
        let step = self.step_seconds();
        let window = i64::try_from(self.spec.history.as_secs()).unwrap_or(i64::MAX);
        let window_start = now.saturating_sub(window);
        let start = match &self.history {
            Some(series) if !series.is_empty() && series.end() >= window_start => series.end() - step,
            _ => window_start,
        };
        start.div_euclid(step) * step
    }

    /// Merges fetched points into the cache and trims it to the history window.
    fn merge(&mut self, points: &[(i64, f64)], now: i64) -> Result<(), MetricsError> {
        let step = self.step_seconds();
        let invalid =
            |e: prescient_model::SeriesError| MetricsError::BadQuery(format!("unusable samples: {e}"));
        match &mut self.history {
            Some(series) if !series.is_empty() => series.append(points).map_err(invalid)?,
            _ => self.history = Some(TimeSeries::from_pairs_with_step(points, step).map_err(invalid)?),
        }
        if let Some(series) = &mut self.history {
            let window = i64::try_from(self.spec.history.as_secs()).unwrap_or(i64::MAX);
            series.keep_since(now.saturating_sub(window));
        }
        Ok(())
    }
}

/// Runs the pure core on a blocking thread so one slow fit never stalls other autoscalers' syncs.
async fn run_core(
    autoscaler: &mut Autoscaler,
    observed: Option<f64>,
    replicas: ReplicaState,
    now: i64,
) -> Result<SyncOutcome, MetricsError> {
    let Some(history) = autoscaler.history.clone() else {
        return Err(MetricsError::Empty("no history fetched yet".to_owned()));
    };
    let mut core = autoscaler
        .core
        .take()
        .unwrap_or_else(|| AutoscalerCore::new(autoscaler.spec.clone()));
    let spec = autoscaler.spec.clone();
    let joined = tokio::task::spawn_blocking(move || {
        // A core that has not synced yet (the operator or its leadership just started) replays the
        // last day of the history before its first decision; afterwards this does nothing.
        let replayed = core.bootstrap(&history, now);
        if replayed > 0 {
            tracing::debug!(replayed, "calibration warmed on the history");
        }
        let outcome = core.sync_observed(&history, observed, replicas, now);
        (core, outcome)
    })
    .await;
    match joined {
        Ok((core, outcome)) => {
            autoscaler.core = Some(core);
            Ok(outcome)
        }
        Err(join_error) => {
            // The core panicked: start afresh (a refit next time) and hold this sync rather than crash.
            let mut core = AutoscalerCore::new(spec);
            let outcome = core.hold(replicas, now, format!("forecast task failed: {join_error}"));
            autoscaler.core = Some(core);
            Ok(outcome)
        }
    }
}

/// The demand at `now` when the history's newest point is older than a sync period (see the module
/// doc); `None` when it is not, or when the read fails or answers nothing newer and finite.
async fn demand_now<M: MetricsSource>(autoscaler: &Autoscaler, metrics: &M, now: i64) -> Option<f64> {
    let newest = autoscaler.history.as_ref()?.last_finite()?.0;
    let sync_period = i64::try_from(autoscaler.spec.sync_period.as_secs()).unwrap_or(i64::MAX);
    // A value is the demand of the step after its stamp: its sample was taken when that step ended.
    if now - newest.saturating_add(autoscaler.step_seconds()) <= sync_period {
        return None;
    }
    match metrics
        .range(&autoscaler.query, now, now, autoscaler.step_seconds())
        .await
    {
        Ok(points) => points
            .into_iter()
            .filter(|&(at, value)| at > newest && value.is_finite() && value >= 0.0)
            .max_by_key(|&(at, _)| at)
            .map(|(_, value)| value),
        Err(error) => {
            tracing::debug!(%error, "demand now unavailable; the newest history point stands in");
            None
        }
    }
}

/// One sync of one autoscaler at `now` (unix seconds): fetch → decide → scale.
pub async fn sync_once<M: MetricsSource, S: ScaleTarget>(
    autoscaler: &mut Autoscaler,
    metrics: &M,
    target: &S,
    now: i64,
) -> SyncReport {
    let replicas = match target.replicas(&autoscaler.target).await {
        Ok(replicas) => replicas,
        Err(scale_error) => {
            // Without the target's replicas nothing can be decided safely: report why, remember nothing.
            let outcome = autoscaler
                .core_mut()
                .target_unreadable(now, scale_error.to_string());
            return SyncReport {
                now,
                outcome,
                replicas_before: None,
                scaled_to: None,
                metrics_error: None,
                scale_error: Some(scale_error),
                fetched_points: 0,
            };
        }
    };

    let start = autoscaler.fetch_start(now);
    let fetched = metrics
        .range(&autoscaler.query, start, now, autoscaler.step_seconds())
        .await;
    // Counted before merging, so a batch the cache rejects still shows how many points came back.
    let fetched_points = fetched.as_ref().map_or(0, Vec::len);
    let merged = match fetched {
        Ok(points) => autoscaler.merge(&points, now),
        // An empty answer after we already have history means the newest points are not there yet:
        // decide on what we have (the core notices if it is stale).
        Err(MetricsError::Empty(_)) if autoscaler.history.as_ref().is_some_and(|h| h.finite_len() > 0) => {
            Ok(())
        }
        Err(error) => Err(error),
    };
    let decided = match merged {
        Ok(()) => {
            let observed = demand_now(autoscaler, metrics, now).await;
            run_core(autoscaler, observed, replicas, now).await
        }
        Err(error) => Err(error),
    };
    let (outcome, metrics_error) = match decided {
        Ok(outcome) => (outcome, None),
        Err(error) => (
            autoscaler.core_mut().hold(replicas, now, error.to_string()),
            Some(error),
        ),
    };

    let desired = outcome.decision.desired_replicas;
    let mut report = SyncReport {
        now,
        outcome,
        replicas_before: Some(replicas),
        scaled_to: None,
        metrics_error,
        scale_error: None,
        fetched_points,
    };
    if !autoscaler.spec.scale_enabled || desired == replicas.desired {
        return report;
    }
    let mut attempt = 0;
    loop {
        match target.set_replicas(&autoscaler.target, desired).await {
            Ok(()) => {
                report.scaled_to = Some(desired);
                break;
            }
            Err(ScaleError::Conflict(_)) if attempt < CONFLICT_RETRIES => {
                // Someone else changed the workload: re-read it; if it already has what we want, done.
                attempt += 1;
                match target.replicas(&autoscaler.target).await {
                    Ok(current) if current.desired == desired => break,
                    Ok(_) => continue,
                    Err(error) => {
                        report.scale_error = Some(error);
                        break;
                    }
                }
            }
            Err(error) => {
                report.scale_error = Some(error);
                break;
            }
        }
    }
    report
}
