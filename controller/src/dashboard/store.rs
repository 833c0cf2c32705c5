//! The dashboard's in-memory view of every autoscaler, written by the reconcile loop (operator or demo)
//! after each sync and read by the API. The loop never knows the dashboard: it hands over what it already
//! has (spec, status, autoscaler, report) and this store keeps bounded rings of what the chart needs.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use crate::{
    crd::{PredictiveAutoscalerSpec, PredictiveAutoscalerStatus},
    dashboard::api::{
        AutoscalerDetail, AutoscalerSummary, ConditionView, DecisionView, DemandPoint, ErrorView,
        ForecastPoint, ForecastResponse, ForecastView, HealthView, ModelView, ReplicaPoint, SpecView,
        StatusView, TallyView, TargetView,
    },
    reconcile::{Autoscaler, SyncReport},
};

/// Default number of demand points kept per autoscaler (one day at a 1-minute step).
pub const DEFAULT_HISTORY_POINTS: usize = 1440;
/// Default number of replica points kept per autoscaler (one day at a 30-second sync period).
pub const DEFAULT_REPLICA_POINTS: usize = 2880;
/// Recent errors kept per autoscaler; repeats of the newest one only bump its count.
pub const MAX_ERRORS: usize = 20;

/// What the store keeps of one autoscaler.
#[derive(Debug, Clone)]
struct Entry {
    spec: SpecView,
    status: StatusView,
    model: Option<ModelView>,
    health: HealthView,
    decision: Option<DecisionView>,
    errors: VecDeque<ErrorView>,
    history: VecDeque<DemandPoint>,
    step_seconds: i64,
    forecast: Option<ForecastView>,
    replicas: VecDeque<ReplicaPoint>,
    last_sync: i64,
    observed_demand: Option<f64>,
    tally: Option<TallyView>,
}

#[derive(Debug)]
struct Inner {
    history_points: usize,
    replica_points: usize,
    entries: BTreeMap<(String, String), Entry>,
}

/// Shared, cheaply cloned handle on the dashboard's state (an `Arc<RwLock<..>>` inside).
#[derive(Debug, Clone)]
pub struct DashboardStore {
    inner: Arc<RwLock<Inner>>,
}

impl Default for DashboardStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_HISTORY_POINTS, DEFAULT_REPLICA_POINTS)
    }
}

/// Pushes onto a ring, dropping the oldest beyond `capacity`.
fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, capacity: usize) {
    ring.push_back(item);
    while ring.len() > capacity.max(1) {
        ring.pop_front();
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn ceil_replicas(demand: f64, target_per_replica: f64, min: u32, max: u32) -> u32 {
    let raw = (demand / target_per_replica).ceil();
    // Saturating float-to-int casts: NaN becomes 0, then clamped to min.
    (raw.max(0.0).min(f64::from(u32::MAX)) as u32).clamp(min, max.max(min))
}

impl DashboardStore {
    /// A store keeping `history_points` demand points and `replica_points` replica points per autoscaler.
    pub fn with_capacity(history_points: usize, replica_points: usize) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Inner {
                history_points: history_points.max(1),
                replica_points: replica_points.max(1),
                entries: BTreeMap::new(),
            })),
        }
    }

    // A writer that panicked mid-update leaves at worst one half-updated entry: keep serving it.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one sync of one autoscaler.
    pub fn record(
        &self,
        namespace: &str,
        name: &str,
        spec: &PredictiveAutoscalerSpec,
        status: &PredictiveAutoscalerStatus,
        autoscaler: &Autoscaler,
        report: &SyncReport,
    ) {
        let scaling = &autoscaler.spec;
        let outcome = &report.outcome;
        let mut inner = self.write();
        let (history_cap, replica_cap) = (inner.history_points, inner.replica_points);
        let entry = inner
            .entries
            .entry((namespace.to_owned(), name.to_owned()))
            .or_insert_with(|| Entry {
                spec: SpecView::from_resource(spec),
                status: StatusView::default(),
                model: None,
                health: HealthView::from_health(&outcome.health),
                decision: None,
                errors: VecDeque::new(),
                history: VecDeque::new(),
                step_seconds: i64::try_from(scaling.step.as_secs()).unwrap_or(60).max(1),
                forecast: None,
                replicas: VecDeque::new(),
                last_sync: report.now,
                observed_demand: None,
                tally: None,
            });
        entry.spec = SpecView::from_resource(spec);
        entry.status = StatusView::from_resource(status);
        entry.last_sync = report.now;
        entry.observed_demand = outcome.observed_demand;
        entry.health = HealthView::from_health(&outcome.health);
        if let Some(model) = &outcome.model {
            entry.model = Some(ModelView {
                name: model.name.clone(),
                backtest_mase: model.backtest_mase.and_then(finite),
                fitted_at: model.fitted_at,
                season_steps: model.season_steps.clone(),
            });
        }
        let decision = &outcome.decision;
        entry.decision = Some(DecisionView {
            at: report.now,
            desired_replicas: decision.desired_replicas,
            reason: decision.reason.as_str().to_owned(),
            message: decision.message.clone(),
            predictive_replicas: decision.predictive_replicas,
            reactive_replicas: decision.reactive_replicas,
            demand_at_lead_time: decision.demand_at_lead_time.and_then(finite),
            peak_quantile_demand: decision.peak_quantile_demand.and_then(finite),
            arrival_peak_demand: decision.arrival_peak_demand.and_then(finite),
        });

        // Demand: every history point newer than the newest kept one (on the first sync, the tail of the
        // whole cached history, so the chart has a past from the first second).
        if let Some(series) = autoscaler.history() {
            entry.step_seconds = series.step_seconds().max(1);
            let newest = entry.history.back().map_or(i64::MIN, |p| p.timestamp);
            let first_new = (0..series.len())
                .rev()
                .take_while(|&i| series.timestamp(i) > newest)
                .last();
            if let Some(first) = first_new {
                let skip = (series.len() - first).saturating_sub(history_cap);
                for (i, value) in series.values().iter().enumerate().skip(first + skip) {
                    push_bounded(
                        &mut entry.history,
                        DemandPoint {
                            timestamp: series.timestamp(i),
                            demand: finite(*value),
                        },
                        history_cap,
                    );
                }
            }
        }

        // The latest forecast: mean and the band between the (1 - q) and q quantiles, whose upper edge
        // is exactly what the autoscaler provisions for; planned replicas follow from that edge.
        entry.forecast = outcome.forecast.as_ref().map(|forecast| {
            let q = scaling.quantile;
            let upper = forecast.quantile(q);
            let lower = forecast.quantile(1.0 - q);
            let points = forecast
                .timestamps()
                .into_iter()
                .enumerate()
                .map(|(i, timestamp)| {
                    let mean = forecast.mean.get(i).copied().and_then(finite);
                    let up = upper.get(i).copied().and_then(finite);
                    ForecastPoint {
                        timestamp,
                        mean,
                        lower: lower.get(i).copied().and_then(finite),
                        upper: up,
                        planned_replicas: up.map(|u| {
                            ceil_replicas(
                                u,
                                scaling.target_per_replica,
                                scaling.min_replicas,
                                scaling.max_replicas,
                            )
                        }),
                    }
                })
                .collect();
            ForecastView {
                made_at: report.now,
                model: outcome.model.as_ref().map(|m| m.name.clone()),
                quantile: q,
                points,
            }
        });

        if let Some(before) = report.replicas_before {
            push_bounded(
                &mut entry.replicas,
                ReplicaPoint {
                    timestamp: report.now,
                    desired: decision.desired_replicas,
                    provisioned: report.scaled_to.unwrap_or(before.desired),
                    ready: before.ready,
                },
                replica_cap,
            );
        }

        let mut errors = Vec::new();
        if let Some(error) = &report.metrics_error {
            errors.push(("metrics", error.to_string()));
        }
        if let Some(error) = &report.scale_error {
            errors.push(("scale", error.to_string()));
        }
        if matches!(outcome.health, crate::core::ForecastHealth::FitFailed(_)) {
            errors.push(("forecast", outcome.health.message()));
        }
        for (kind, message) in errors {
            match entry.errors.back_mut() {
                Some(last) if last.kind == kind && last.message == message => {
                    last.last_seen = report.now;
                    last.count += 1;
                }
                _ => push_bounded(
                    &mut entry.errors,
                    ErrorView {
                        kind: kind.to_owned(),
                        message,
                        first_seen: report.now,
                        last_seen: report.now,
                        count: 1,
                    },
                    MAX_ERRORS,
                ),
            }
        }
    }

    /// Forgets an autoscaler (its custom resource was deleted).
    pub fn remove(&self, namespace: &str, name: &str) {
        self.write()
            .entries
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Every autoscaler, ordered by namespace then name.
    pub fn list(&self) -> Vec<AutoscalerSummary> {
        self.read()
            .entries
            .iter()
            .map(|((namespace, name), entry)| {
                let last = entry.replicas.back();
                AutoscalerSummary {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    target: format!(
                        "{}/{}",
                        entry.spec.scale_target_ref.kind, entry.spec.scale_target_ref.name
                    ),
                    mode: entry.spec.mode.clone(),
                    desired_replicas: entry.decision.as_ref().map(|d| d.desired_replicas),
                    provisioned_replicas: last.map(|p| p.provisioned),
                    ready_replicas: last.map(|p| p.ready),
                    demand: entry.observed_demand.and_then(finite),
                    target_per_replica: entry.spec.target_per_replica,
                    model: entry.model.as_ref().map(|m| m.name.clone()),
                    backtest_mase: entry.model.as_ref().and_then(|m| m.backtest_mase),
                    forecast_healthy: entry.health.healthy,
                    health_reason: entry.health.reason.clone(),
                    last_sync: entry.last_sync,
                    error_count: entry.errors.iter().map(|e| e.count).sum(),
                    tally: entry.tally,
                }
            })
            .collect()
    }

    /// Sets the running tally of an autoscaler already recorded (ignored for an unknown one: a tally
    /// without its autoscaler's sync would be a row without a name on the page).
    pub fn record_tally(&self, namespace: &str, name: &str, tally: TallyView) {
        let mut inner = self.write();
        if let Some(entry) = inner.entries.get_mut(&(namespace.to_owned(), name.to_owned())) {
            entry.tally = Some(tally);
        }
    }

    /// One autoscaler's spec, status, model, health, last decision and recent errors.
    pub fn detail(&self, namespace: &str, name: &str) -> Option<AutoscalerDetail> {
        let inner = self.read();
        let entry = inner.entries.get(&(namespace.to_owned(), name.to_owned()))?;
        Some(AutoscalerDetail {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            spec: entry.spec.clone(),
            status: entry.status.clone(),
            model: entry.model.clone(),
            health: entry.health.clone(),
            decision: entry.decision.clone(),
            errors: entry.errors.iter().cloned().collect(),
            last_sync: entry.last_sync,
        })
    }

    /// One autoscaler's demand history, latest forecast and replicas over time.
    pub fn forecast(&self, namespace: &str, name: &str) -> Option<ForecastResponse> {
        let inner = self.read();
        let entry = inner.entries.get(&(namespace.to_owned(), name.to_owned()))?;
        Some(ForecastResponse {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            now: entry.last_sync,
            step_seconds: entry.step_seconds,
            target_per_replica: entry.spec.target_per_replica,
            history: entry.history.iter().cloned().collect(),
            forecast: entry.forecast.clone(),
            replicas: entry.replicas.iter().cloned().collect(),
        })
    }

    /// Number of autoscalers known.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether no autoscaler has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.read().entries.is_empty()
    }
}

impl SpecView {
    fn from_resource(spec: &PredictiveAutoscalerSpec) -> Self {
        let f = &spec.forecast;
        Self {
            scale_target_ref: TargetView {
                api_version: spec.scale_target_ref.api_version.clone(),
                kind: spec.scale_target_ref.kind.clone(),
                name: spec.scale_target_ref.name.clone(),
            },
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            query: spec.metric.query.clone(),
            target_per_replica: spec.metric.target_per_replica,
            history: f.history.clone(),
            step: f.step.clone(),
            horizon: f.horizon.clone(),
            lead_time: f.lead_time.clone(),
            model: f.model.clone(),
            quantile: f.quantile,
            refit_interval: f.refit_interval.clone(),
            mode: format!("{:?}", spec.mode),
            sync_period: spec.sync_period.clone(),
        }
    }
}

impl StatusView {
    fn from_resource(status: &PredictiveAutoscalerStatus) -> Self {
        Self {
            current_replicas: status.current_replicas,
            desired_replicas: status.desired_replicas,
            last_scale_time: status.last_scale_time.clone(),
            model: status.model.clone(),
            backtest_mase: status.backtest_mase.and_then(finite),
            decision_reason: status.decision_reason.clone(),
            conditions: status
                .conditions
                .iter()
                .map(|c| ConditionView {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }
}

impl HealthView {
    fn from_health(health: &crate::core::ForecastHealth) -> Self {
        Self {
            healthy: health.is_healthy(),
            reason: health.reason().to_owned(),
            message: health.message(),
        }
    }
}
