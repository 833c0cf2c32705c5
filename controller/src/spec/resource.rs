//! The custom resource mapped onto the pure spec: [`ScalingSpec::from_resource`] validates a
//! `PredictiveAutoscaler`'s spec ([`crate::crd`]) into a [`ScalingSpec`], or says which field is wrong
//! and why.

use std::time::Duration;

use super::{
    DirectionRules, MAX_STABILIZATION_WINDOW, RatePolicy, ScalingBehavior, ScalingSpec, SpecError,
    default_scale_down_window, parse_model_choice,
};
use crate::{
    core::{PolicyType, SelectPolicy},
    crd::{self, PredictiveAutoscalerSpec},
    duration::parse_duration,
};

impl From<crd::PolicyType> for PolicyType {
    fn from(policy_type: crd::PolicyType) -> Self {
        match policy_type {
            crd::PolicyType::Pods => Self::Pods,
            crd::PolicyType::Percent => Self::Percent,
        }
    }
}

impl From<crd::SelectPolicy> for SelectPolicy {
    fn from(select_policy: crd::SelectPolicy) -> Self {
        match select_policy {
            crd::SelectPolicy::Max => Self::Max,
            crd::SelectPolicy::Min => Self::Min,
            crd::SelectPolicy::Disabled => Self::Disabled,
        }
    }
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
                        policy_type: p.policy_type.into(),
                        value: p.value,
                        period: Duration::from_secs(u64::from(p.period_seconds)),
                    })
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let stabilization_window = match rules.stabilization_window_seconds {
        Some(seconds) if u64::from(seconds) > MAX_STABILIZATION_WINDOW.as_secs() => {
            return Err(SpecError::new(
                field,
                format!(
                    "stabilizationWindowSeconds must be <= {}, got {seconds}",
                    MAX_STABILIZATION_WINDOW.as_secs()
                ),
            ));
        }
        Some(seconds) => Duration::from_secs(u64::from(seconds)),
        None => default.stabilization_window,
    };
    let tolerance = match rules.tolerance {
        Some(t) if !(t.is_finite() && (0.0..=1.0).contains(&t)) => {
            return Err(SpecError::new(
                field,
                format!("tolerance must be between 0 and 1, got {t}"),
            ));
        }
        Some(t) => t,
        None => default.tolerance,
    };
    Ok(DirectionRules {
        tolerance,
        stabilization_window,
        select_policy: rules.select_policy.map_or(default.select_policy, Into::into),
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
        let max_underprovisioned_fraction = match &spec.slo {
            Some(slo)
                if !(slo.max_underprovisioned_fraction > 0.0 && slo.max_underprovisioned_fraction < 1.0) =>
            {
                return Err(SpecError::new(
                    "slo.maxUnderprovisionedFraction",
                    format!("must be in (0, 1), got {}", slo.max_underprovisioned_fraction),
                ));
            }
            Some(slo) => Some(slo.max_underprovisioned_fraction),
            None => None,
        };
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
        // The history grid is whole seconds: a sub-second step would silently become another one.
        if step.subsec_nanos() != 0 {
            return Err(SpecError::new(
                "forecast.step",
                format!("must be whole seconds (e.g. 1s, 30s, 1m), got {:?}", f.step),
            ));
        }
        if history < step * 2 {
            return Err(SpecError::new(
                "forecast.history",
                format!("must cover at least two steps, got {}", f.history),
            ));
        }
        // More steps than a series holds would be refused at every sync; say so once, here.
        let steps = history.as_secs() / step.as_secs();
        if steps > prescient_model::MAX_POINTS as u64 {
            return Err(SpecError::new(
                "forecast.history",
                format!(
                    "covers {steps} steps of {}, at most {} are kept; raise forecast.step or shorten the history, got {}",
                    f.step,
                    prescient_model::MAX_POINTS,
                    f.history
                ),
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
        let mut defaults = ScalingBehavior::default();
        defaults.scale_down.stabilization_window =
            default_scale_down_window(step, sync_period, defaults.scale_down.stabilization_window);
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
            max_underprovisioned_fraction,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec::REACTIVE_TOLERANCE;

    fn spec_with_behavior(behavior: serde_json::Value) -> PredictiveAutoscalerSpec {
        serde_json::from_value(serde_json::json!({
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "maxReplicas": 10,
            "metric": { "query": "up", "targetPerReplica": 10 },
            "behavior": behavior,
        }))
        .unwrap()
    }

    #[test]
    fn each_direction_takes_its_tolerance_or_the_hpa_default() {
        let spec = ScalingSpec::from_resource(&spec_with_behavior(
            serde_json::json!({ "scaleUp": { "tolerance": 0.02 } }),
        ))
        .unwrap();
        assert_eq!(spec.behavior.scale_up.tolerance, 0.02);
        assert_eq!(spec.behavior.scale_down.tolerance, REACTIVE_TOLERANCE);
    }

    #[test]
    fn a_coarse_step_shortens_the_default_scale_down_window_and_a_set_one_wins() {
        let resource = |behavior: serde_json::Value| {
            let mut spec = spec_with_behavior(behavior);
            spec.forecast.step = "10m".to_owned();
            spec.forecast.lead_time = "2m".to_owned();
            spec.sync_period = "30s".to_owned();
            ScalingSpec::from_resource(&spec).unwrap()
        };
        let window = |spec: &ScalingSpec| spec.behavior.scale_down.stabilization_window;
        assert_eq!(window(&resource(serde_json::json!({}))), Duration::from_secs(30));
        assert_eq!(
            window(&resource(serde_json::json!({ "scaleDown": {} }))),
            Duration::from_secs(30)
        );
        assert_eq!(
            window(&resource(
                serde_json::json!({ "scaleDown": { "stabilizationWindowSeconds": 300 } })
            )),
            Duration::from_secs(300)
        );
        let one_minute = ScalingSpec::from_resource(&spec_with_behavior(serde_json::json!({}))).unwrap();
        assert_eq!(one_minute.step, Duration::from_secs(60));
        assert_eq!(window(&one_minute), Duration::from_secs(300));
    }

    #[test]
    fn a_tolerance_outside_zero_to_one_is_refused_with_its_field() {
        for bad in [-0.1, 1.5] {
            let error = ScalingSpec::from_resource(&spec_with_behavior(
                serde_json::json!({ "scaleDown": { "tolerance": bad } }),
            ))
            .unwrap_err();
            assert!(
                error.to_string().contains("scaleDown") && error.to_string().contains("tolerance"),
                "{error}"
            );
        }
    }
}
