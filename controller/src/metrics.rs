//! The controller's own metrics and its forecasts as Prometheus gauges (prometheus-client), served at
//! `/metrics` so Grafana can plot the forecast next to the real traffic.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `prescient_reconcile_total` | counter | |
//! | `prescient_reconcile_duration_seconds` | histogram | |
//! | `prescient_reconcile_errors_total` | counter | `reason` |
//! | `prescient_fit_duration_seconds` | histogram | |
//! | `prescient_scale_actions_total` | counter | `namespace`, `name`, `direction` (`up`/`down`) |
//! | `prescient_forecast_demand` | gauge | `namespace`, `name`, `stat` (`mean`/`lower`/`upper` at the lead time) |
//! | `prescient_desired_replicas` | gauge | `namespace`, `name` |
//! | `prescient_current_replicas` | gauge | `namespace`, `name` |
//! | `prescient_backtest_mase` | gauge | `namespace`, `name` |
//! | `prescient_forecast_healthy` | gauge (0/1) | `namespace`, `name` |

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prescient_model::Forecast;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{core::ForecastHealth, reconcile::SyncReport};

/// Lead time assumed for an autoscaler whose spec was never registered (the CRD's default).
const DEFAULT_LEAD_TIME: Duration = Duration::from_secs(180);
/// Provisioned quantile assumed for an autoscaler whose spec was never registered (the CRD's default).
const DEFAULT_QUANTILE: f64 = 0.9;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AutoscalerLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DemandLabels {
    namespace: String,
    name: String,
    stat: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    namespace: String,
    name: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    reason: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// All of the controller's metrics in one registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_duration: Histogram,
    errors: Family<ErrorLabels, Counter>,
    fit_duration: Histogram,
    scale_actions: Family<ScaleLabels, Counter>,
    forecast_demand: Family<DemandLabels, FloatGauge>,
    desired_replicas: Family<AutoscalerLabels, Gauge>,
    current_replicas: Family<AutoscalerLabels, Gauge>,
    backtest_mase: Family<AutoscalerLabels, FloatGauge>,
    forecast_healthy: Family<AutoscalerLabels, Gauge>,
    leader: Gauge,
    leadership_changes: Counter,
    /// (lead time, quantile) per autoscaler, to read the forecast at the right step and band.
    settings: Mutex<HashMap<(String, String), (Duration, f64)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(namespace: &str, name: &str) -> AutoscalerLabels {
    AutoscalerLabels {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Index of the forecast step covering time `t` (clamped to the forecast).
fn step_index(forecast: &Forecast, t: i64) -> Option<usize> {
    if forecast.mean.is_empty() || forecast.step_seconds <= 0 {
        return None;
    }
    let offset = (t - forecast.start).max(0) / forecast.step_seconds;
    Some(
        usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(forecast.mean.len() - 1),
    )
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("prescient");
        let reconciles = Counter::default();
        registry.register(
            "reconcile",
            "Reconciles of PredictiveAutoscalers",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "reconcile_duration_seconds",
            "Wall time of one reconcile (fetch, forecast, decide, scale, status)",
            reconcile_duration.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Reconcile problems by reason", errors.clone());
        let fit_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "fit_duration_seconds",
            "Wall time of one model refit",
            fit_duration.clone(),
        );
        let scale_actions = Family::<ScaleLabels, Counter>::default();
        registry.register(
            "scale_actions",
            "Changes of a target's replicas",
            scale_actions.clone(),
        );
        let forecast_demand = Family::<DemandLabels, FloatGauge>::default();
        registry.register(
            "forecast_demand",
            "Forecast demand at the lead time: mean, and the band of the provisioned quantile",
            forecast_demand.clone(),
        );
        let desired_replicas = Family::<AutoscalerLabels, Gauge>::default();
        registry.register(
            "desired_replicas",
            "Replicas the autoscaler decided",
            desired_replicas.clone(),
        );
        let current_replicas = Family::<AutoscalerLabels, Gauge>::default();
        registry.register(
            "current_replicas",
            "Replicas of the target before the decision",
            current_replicas.clone(),
        );
        let backtest_mase = Family::<AutoscalerLabels, FloatGauge>::default();
        registry.register(
            "backtest_mase",
            "Backtest MASE of the chosen model",
            backtest_mase.clone(),
        );
        let forecast_healthy = Family::<AutoscalerLabels, Gauge>::default();
        registry.register(
            "forecast_healthy",
            "1 if the forecast was usable at the last sync",
            forecast_healthy.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads (runs the controller); alert when no replica of the operator does",
            leader.clone(),
        );
        let leadership_changes = Counter::default();
        registry.register(
            "leadership_changes",
            "Times this replica started or stopped leading",
            leadership_changes.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            errors,
            fit_duration,
            scale_actions,
            forecast_demand,
            desired_replicas,
            current_replicas,
            backtest_mase,
            forecast_healthy,
            leader,
            leadership_changes,
            settings: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers an autoscaler's lead time and provisioned quantile, which place its forecast gauges.
    pub fn set_settings(&self, namespace: &str, name: &str, lead_time: Duration, quantile: f64) {
        if let Ok(mut map) = self.settings.lock() {
            map.insert((namespace.to_owned(), name.to_owned()), (lead_time, quantile));
        }
    }

    /// One reconcile finished (whatever its outcome) after `elapsed`.
    pub fn observe_reconcile(&self, elapsed: Duration) {
        self.reconciles.inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Whether this replica leads now; a change is counted.
    pub fn set_leader(&self, leads: bool) {
        if self.leader.set(i64::from(leads)) != i64::from(leads) {
            self.leadership_changes.inc();
        }
    }

    /// Whether this replica leads now, as [`Metrics::set_leader`] last said (`/readyz` reads it too).
    pub fn leads(&self) -> bool {
        self.leader.get() == 1
    }

    /// A reconcile problem, by condition reason (`MetricsUnavailable`, `TargetNotFound`, ...).
    pub fn observe_error(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records what one sync decided: gauges, fit time, scale actions and its errors.
    pub fn observe_sync(&self, namespace: &str, name: &str, report: &SyncReport) {
        let key = labels(namespace, name);
        let outcome = &report.outcome;
        self.desired_replicas
            .get_or_create(&key)
            .set(i64::from(outcome.decision.desired_replicas));
        if let Some(before) = report.replicas_before {
            self.current_replicas
                .get_or_create(&key)
                .set(i64::from(before.desired));
            if let Some(to) = report.scaled_to {
                let direction = if to > before.desired { "up" } else { "down" };
                self.scale_actions
                    .get_or_create(&ScaleLabels {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        direction,
                    })
                    .inc();
            }
        }
        if let Some(seconds) = outcome.fit_seconds {
            self.fit_duration.observe(seconds);
        }
        if let Some(mase) = outcome.model.as_ref().and_then(|m| m.backtest_mase) {
            self.backtest_mase.get_or_create(&key).set(mase);
        }
        self.forecast_healthy
            .get_or_create(&key)
            .set(i64::from(outcome.health.is_healthy()));
        // An unreadable target is counted once, by its scale error's reason, below.
        if !outcome.health.is_healthy() && !matches!(outcome.health, ForecastHealth::TargetUnavailable(_)) {
            self.observe_error(outcome.health.reason());
        }
        if let Some(error) = &report.scale_error {
            self.observe_error(crate::status::reasons::scale_error_reason(error));
        }
        if let Some(forecast) = &outcome.forecast {
            let (lead_time, quantile) = self
                .settings
                .lock()
                .ok()
                .and_then(|map| map.get(&(namespace.to_owned(), name.to_owned())).copied())
                .unwrap_or((DEFAULT_LEAD_TIME, DEFAULT_QUANTILE));
            let at = report.now + i64::try_from(lead_time.as_secs()).unwrap_or(0);
            if let Some(i) = step_index(forecast, at) {
                let upper = forecast.quantile(quantile.max(1.0 - quantile));
                let lower = forecast.quantile(quantile.min(1.0 - quantile));
                for (stat, value) in [
                    ("mean", forecast.mean.get(i)),
                    ("lower", lower.get(i)),
                    ("upper", upper.get(i)),
                ] {
                    if let Some(value) = value.copied().filter(|v| v.is_finite()) {
                        self.forecast_demand
                            .get_or_create(&DemandLabels {
                                namespace: namespace.to_owned(),
                                name: name.to_owned(),
                                stat,
                            })
                            .set(value);
                    }
                }
            }
        }
    }

    /// Drops the gauges of a deleted autoscaler.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = labels(namespace, name);
        self.desired_replicas.remove(&key);
        self.current_replicas.remove(&key);
        self.backtest_mase.remove(&key);
        self.forecast_healthy.remove(&key);
        for stat in ["mean", "lower", "upper"] {
            self.forecast_demand.remove(&DemandLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                stat,
            });
        }
        if let Ok(mut map) = self.settings.lock() {
            map.remove(&(namespace.to_owned(), name.to_owned()));
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// `GET /metrics` for axum.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leadership_is_a_gauge_and_its_changes_are_counted() {
        let metrics = Metrics::new();
        assert!(metrics.encode().contains("prescient_leader 0"));
        metrics.set_leader(true);
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(text.contains("prescient_leader 1"), "{text}");
        assert!(text.contains("prescient_leadership_changes_total 1"), "{text}");
        metrics.set_leader(false);
        let text = metrics.encode();
        assert!(text.contains("prescient_leader 0"), "{text}");
        assert!(text.contains("prescient_leadership_changes_total 2"), "{text}");
    }

    #[test]
    fn encodes_counters_and_errors() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(Duration::from_millis(5));
        metrics.observe_error("MetricsUnavailable");
        let text = metrics.encode();
        assert!(text.contains("prescient_reconcile_total 1"), "{text}");
        assert!(
            text.contains("prescient_reconcile_errors_total{reason=\"MetricsUnavailable\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("prescient_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
