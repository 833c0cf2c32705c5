//! The validated, pure form of an autoscaler's spec that the policy, the reconcile core and the simulator
//! use. This module is pure and knows nothing of the custom resource; [`resource`] maps the custom
//! resource onto it: `ScalingSpec::from_resource` turns the resource's strings into typed values, or says
//! what is wrong with it (an invalid spec becomes a condition and an event, never a scaling action).

use std::time::Duration;

use prescient_model::{ModelChoice, ModelKind};

use crate::core::{PolicyType, SelectPolicy};

pub mod resource;

/// A spec that cannot be used, with the field and the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

impl SpecError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// One HPA scaling policy: at most `value` pods (or percent of current) per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub policy_type: PolicyType,
    pub value: u32,
    pub period: Duration,
}

/// Rules of one direction with the HPA's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionRules {
    /// The reactive rule ignores usage ratios within this distance of 1 in this direction (the HPA's
    /// per-direction `tolerance`, KEP-4951; default [`REACTIVE_TOLERANCE`]).
    pub tolerance: f64,
    pub stabilization_window: Duration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<RatePolicy>,
}

/// Scale-up and scale-down rules, HPA semantics.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingBehavior {
    pub scale_up: DirectionRules,
    pub scale_down: DirectionRules,
}

impl Default for ScalingBehavior {
    /// The Kubernetes HPA defaults: scale up by max(100 %, 4 pods) per 15 s with no stabilization;
    /// scale down by up to 100 % per 15 s after a 300 s stabilization window.
    fn default() -> Self {
        Self {
            scale_up: DirectionRules {
                tolerance: REACTIVE_TOLERANCE,
                stabilization_window: Duration::ZERO,
                select_policy: SelectPolicy::Max,
                policies: vec![
                    RatePolicy {
                        policy_type: PolicyType::Percent,
                        value: 100,
                        period: Duration::from_secs(15),
                    },
                    RatePolicy {
                        policy_type: PolicyType::Pods,
                        value: 4,
                        period: Duration::from_secs(15),
                    },
                ],
            },
            scale_down: DirectionRules {
                tolerance: REACTIVE_TOLERANCE,
                stabilization_window: Duration::from_secs(300),
                select_policy: SelectPolicy::Max,
                policies: vec![RatePolicy {
                    policy_type: PolicyType::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                }],
            },
        }
    }
}

/// Everything the pure decision path needs, typed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Demand one replica serves within its SLO (the metric's unit, e.g. requests per second).
    pub target_per_replica: f64,
    pub history: Duration,
    pub step: Duration,
    pub horizon: Duration,
    /// Pod start-up plus margin.
    pub lead_time: Duration,
    pub model: ModelChoice,
    /// Probability that each decision window's peak demand is served, in (0, 1).
    pub quantile: f64,
    /// The share of time the user accepts being short (`spec.slo.maxUnderprovisionedFraction`): when
    /// set, the controller chooses its quantile online to hold it, and `quantile` is only the start.
    pub max_underprovisioned_fraction: Option<f64>,
    pub refit_interval: Duration,
    pub sync_period: Duration,
    pub behavior: ScalingBehavior,
    /// `false` in `ForecastOnly` mode: decide and report, never scale.
    pub scale_enabled: bool,
    /// `false` turns the forecast off: the reactive (HPA) rule decides alone. The demo's and the
    /// simulator's reactive baselines use it; a custom resource always forecasts.
    pub forecast_enabled: bool,
}

/// The HPA's default tolerance (its `--horizontal-pod-autoscaler-tolerance`): reactive changes smaller
/// than 10 % of the ratio are ignored, in either direction unless `behavior` sets one per direction.
pub const REACTIVE_TOLERANCE: f64 = 0.1;

/// The longest stabilization window a resource may set (`stabilizationWindowSeconds`, as the HPA's).
pub const MAX_STABILIZATION_WINDOW: Duration = Duration::from_secs(3600);

/// Prescient's scale-down stabilization window when the resource does not set one, for a history of
/// `step` synced every `sync_period`.
///
/// The HPA's window (`hpa_window`, 300 s by default) keeps the highest recommendation of the last five
/// minutes so that one noisy observation does not scale a workload down. That holds while the window
/// spans several observations. Once the history's step is at least as long as the window, every
/// recommendation in it rests on the same observation, and the window smooths nothing: it keeps the
/// headroom planned for the last step boundary after that step's demand is known. Each plan already
/// keeps what the peak of its whole decision window `[now, now + leadTime + syncPeriod]` needs on the
/// newest observation, so an older plan only holds headroom the newer one has released; the window is then
/// one sync period (no decision from before the last sync is held), up to the longest a resource may set.
pub fn default_scale_down_window(step: Duration, sync_period: Duration, hpa_window: Duration) -> Duration {
    if step >= hpa_window {
        sync_period.min(MAX_STABILIZATION_WINDOW)
    } else {
        hpa_window
    }
}

/// Parses a model name as used in the CRD and the CLI.
pub fn parse_model_choice(name: &str) -> Result<ModelChoice, String> {
    let kind = match name {
        "auto" => return Ok(ModelChoice::Auto),
        "naive" => ModelKind::Naive,
        "seasonal_naive" => ModelKind::SeasonalNaive,
        "holt_winters" => ModelKind::HoltWinters,
        "mstl" => ModelKind::Mstl,
        "linear" => ModelKind::Linear,
        "svr" => ModelKind::Svr,
        other => {
            return Err(format!(
                "unknown model {other:?}; expected auto, naive, seasonal_naive, holt_winters, mstl, linear or svr"
            ));
        }
    };
    Ok(ModelChoice::Named(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scale_down_window_is_the_hpas_until_a_step_spans_it() {
        let (sync, hpa) = (Duration::from_secs(30), Duration::from_secs(300));
        let window = |step| default_scale_down_window(Duration::from_secs(step), sync, hpa);
        assert_eq!(window(60), hpa);
        assert_eq!(window(299), hpa);
        assert_eq!(window(300), sync);
        assert_eq!(window(600), sync);
        let long_sync = default_scale_down_window(Duration::from_secs(7200), Duration::from_secs(7200), hpa);
        assert_eq!(long_sync, MAX_STABILIZATION_WINDOW);
    }
}
