//! The validated, pure form of an autoscaler's spec that the policy, the reconcile core and the simulator
//! use. `ScalingSpec::from_resource` turns the custom resource's strings into typed values, or says what
//! is wrong with it (an invalid spec becomes a condition and an event, never a scaling action).

use std::time::Duration;

use prescient_model::{ModelChoice, ModelKind};

use crate::{
    crd::{self, PolicyType, PredictiveAutoscalerSpec, SelectPolicy},
    duration::parse_duration,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionRules {
    pub stabilization_window: Duration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<RatePolicy>,
}

/// Scale-up and scale-down rules, HPA semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Forecast quantile to provision for, in (0, 1).
    pub quantile: f64,
    pub refit_interval: Duration,
    pub sync_period: Duration,
    pub behavior: ScalingBehavior,
    /// `false` in `ForecastOnly` mode: decide and report, never scale.
    pub scale_enabled: bool,
    /// `false` turns the forecast off: the reactive (HPA) rule decides alone. The demo's and the
    /// simulator's reactive baselines use it; a custom resource always forecasts.
    pub forecast_enabled: bool,
}

/// The HPA's tolerance: reactive changes smaller than 10 % of the ratio are ignored.
pub const REACTIVE_TOLERANCE: f64 = 0.1;

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

fn positive_duration(field: &'static str, text: &str) -> Result<Duration, SpecError> {
    let value = parse_duration(text).map_err(|e| SpecError::new(field, e.to_string()))?;
    if value.is_zero() {
        return Err(SpecError::new(field, format!("must be positive, got {text:?}")));
    }
    Ok(value)
}

fn direction_rules(
    field: &'static str,
    rules: Option<&crd::ScalingRules>,
    default: DirectionRules,
) -> Result<DirectionRules, SpecError> {
    let Some(rules) = rules else { return Ok(default) };
    let policies = match &rules.policies {
        None => default.policies,
        Some(list) if list.is_empty() => {
            return Err(SpecError::new(field, "policies must not be empty (leave the field out for the defaults)"));
        }
        Some(list) => list
            .iter()
            .map(|p| {
                if p.value == 0 || p.period_seconds == 0 || p.period_seconds > 1800 {
                    Err(SpecError::new(
                        field,
                        format!(
                            "policy value must be > 0 and periodSeconds in 1..=1800, got value {} periodSeconds {}",
                            p.value, p.period_seconds
                        ),
                    ))
                } else {
                    Ok(RatePolicy {
                        policy_type: p.policy_type,
                        value: p.value,
                        period: Duration::from_secs(u64::from(p.period_seconds)),
                    })
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let stabilization_window = match rules.stabilization_window_seconds {
        Some(seconds) if seconds > 3600 => {
            return Err(SpecError::new(
                field,
                format!("stabilizationWindowSeconds must be <= 3600, got {seconds}"),
            ));
        }
        Some(seconds) => Duration::from_secs(u64::from(seconds)),
        None => default.stabilization_window,
    };
    Ok(DirectionRules {
        stabilization_window,
        select_policy: rules.select_policy.unwrap_or(default.select_policy),
        policies,
    })
}

impl ScalingSpec {
    /// Validates a custom resource's spec.
    pub fn from_resource(spec: &PredictiveAutoscalerSpec) -> Result<Self, SpecError> {
        if spec.max_replicas == 0 {
            return Err(SpecError::new("maxReplicas", "must be at least 1"));
        }
        if spec.min_replicas > spec.max_replicas {
            return Err(SpecError::new(
                "minReplicas",
                format!(
                    "must be <= maxReplicas ({}), got {}",
                    spec.max_replicas, spec.min_replicas
                ),
            ));
        }
        let target = spec.metric.target_per_replica;
        if !(target.is_finite() && target > 0.0) {
            return Err(SpecError::new(
                "metric.targetPerReplica",
                format!("must be a positive number, got {target}"),
            ));
        }
        if spec.metric.query.trim().is_empty() {
            return Err(SpecError::new(
                "metric.query",
                "must be a PromQL expression, got an empty string",
            ));
        }
        if spec.scale_target_ref.name.is_empty() || spec.scale_target_ref.kind.is_empty() {
            return Err(SpecError::new("scaleTargetRef", "kind and name are required"));
        }
        let f = &spec.forecast;
        let quantile = f.quantile;
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(SpecError::new(
                "forecast.quantile",
                format!("must be in (0, 1), got {quantile}"),
            ));
        }
        let step = positive_duration("forecast.step", &f.step)?;
        let history = positive_duration("forecast.history", &f.history)?;
        let horizon = positive_duration("forecast.horizon", &f.horizon)?;
        let lead_time = positive_duration("forecast.leadTime", &f.lead_time)?;
        let refit_interval = positive_duration("forecast.refitInterval", &f.refit_interval)?;
        let sync_period = positive_duration("syncPeriod", &spec.sync_period)?;
        if history < step * 2 {
            return Err(SpecError::new(
                "forecast.history",
                format!("must cover at least two steps, got {}", f.history),
            ));
        }
        if lead_time > horizon {
            return Err(SpecError::new(
                "forecast.leadTime",
                format!(
                    "must not exceed forecast.horizon ({}), got {}",
                    f.horizon, f.lead_time
                ),
            ));
        }
        let model = parse_model_choice(&f.model).map_err(|m| SpecError::new("forecast.model", m))?;
        let defaults = ScalingBehavior::default();
        let behavior = match &spec.behavior {
            None => defaults,
            Some(b) => ScalingBehavior {
                scale_up: direction_rules("behavior.scaleUp", b.scale_up.as_ref(), defaults.scale_up)?,
                scale_down: direction_rules(
                    "behavior.scaleDown",
                    b.scale_down.as_ref(),
                    defaults.scale_down,
                )?,
            },
        };
        Ok(Self {
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            target_per_replica: target,
            history,
            step,
            horizon,
            lead_time,
            model,
            quantile,
            refit_interval,
            sync_period,
            behavior,
            scale_enabled: spec.mode == crd::Mode::Scale,
            forecast_enabled: true,
        })
    }
}
