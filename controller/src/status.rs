//! The status of an autoscaler after a sync: conditions (`Ready`, `ForecastHealthy`, `ScalingActive`,
//! `AbleToScale`) with reasons a person can act on, the forecast summary and the replica fields. One
//! builder, [`status_from_report`], turns a [`SyncReport`] into it, so a condition reads the same in the
//! operator (which writes it to the custom resource), the demo and the local run (which show it).
//! Pure: time comes from the report.

use crate::{
    core::ForecastHealth,
    crd::{Condition, ForecastSummary, Mode, PredictiveAutoscalerStatus, SloStatus},
    duration::rfc3339,
    reconcile::SyncReport,
};

/// Condition types and reasons: stable strings a person can search for.
pub mod reasons {
    use crate::edges::{MetricsError, ScaleError};

    pub const READY: &str = "Ready";
    pub const FORECAST_HEALTHY: &str = "ForecastHealthy";
    pub const SCALING_ACTIVE: &str = "ScalingActive";
    pub const ABLE_TO_SCALE: &str = "AbleToScale";

    pub const RECONCILED: &str = "Reconciled";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A HorizontalPodAutoscaler scales the same target: this autoscaler does not.
    pub const CONFLICTING_AUTOSCALER: &str = "ConflictingAutoscaler";
    pub const FORECAST_ONLY: &str = "ForecastOnly";
    pub const HELD: &str = "ReplicasHeld";
    pub const SUCCEEDED_RESCALE: &str = "SucceededRescale";
    pub const READY_FOR_NEW_SCALE: &str = "ReadyForNewScale";
    pub const SCALED: &str = "Scaled";

    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    pub const METRICS_TIMEOUT: &str = "MetricsTimeout";
    pub const BAD_QUERY: &str = "BadQuery";
    pub const EMPTY_RESULT: &str = "EmptyResult";
    pub const MULTIPLE_SERIES: &str = "MultipleSeries";

    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    pub const TARGET_NOT_SCALABLE: &str = "TargetNotScalable";
    pub const SCALE_CONFLICT: &str = "ScaleConflict";
    pub const SCALE_FORBIDDEN: &str = "ScaleForbidden";
    pub const SCALE_FAILED: &str = "ScaleFailed";

    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// The watch of the autoscalers failed (RBAC, a removed CRD, an unreachable API server): a metric
    /// and a log, not a condition, since no autoscaler can be read then.
    pub const WATCH_FAILED: &str = "WatchFailed";

    pub fn metrics_error_reason(error: &MetricsError) -> &'static str {
        match error {
            MetricsError::Unavailable(_) => METRICS_UNAVAILABLE,
            MetricsError::Timeout(_) => METRICS_TIMEOUT,
            MetricsError::BadQuery(_) => BAD_QUERY,
            MetricsError::Empty(_) => EMPTY_RESULT,
            MetricsError::MultipleSeries(_) => MULTIPLE_SERIES,
        }
    }

    pub fn scale_error_reason(error: &ScaleError) -> &'static str {
        match error {
            ScaleError::NotFound(_) => TARGET_NOT_FOUND,
            ScaleError::NotScalable(_) | ScaleError::KindNotServed(_) => TARGET_NOT_SCALABLE,
            ScaleError::Conflict(_) => SCALE_CONFLICT,
            ScaleError::Forbidden(_) => SCALE_FORBIDDEN,
            ScaleError::Other(_) => SCALE_FAILED,
        }
    }
}

/// A condition; keeps the previous transition time when the status did not change.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: i64,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| rfc3339(now));
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
    }
}

/// The status after one sync (pure: from the report, the previous status, the object's generation and
/// its mode).
pub fn status_from_report(
    report: &SyncReport,
    previous: &PredictiveAutoscalerStatus,
    generation: Option<i64>,
    mode: Mode,
) -> PredictiveAutoscalerStatus {
    let now = report.now;
    let outcome = &report.outcome;
    let decision = &outcome.decision;
    let old = &previous.conditions;

    // Without the target's replicas the sync stopped before fetching metrics: the forecast's health is
    // unknown this time, and the decision (a hold on zero known replicas) is not worth reporting.
    let target_unreadable = report.replicas_before.is_none();
    let forecast_condition = match (&report.metrics_error, &outcome.health, &report.scale_error) {
        (None, _, Some(error)) if target_unreadable => {
            let mut c = condition(
                old,
                reasons::FORECAST_HEALTHY,
                false,
                reasons::scale_error_reason(error),
                format!("forecast not evaluated: {error}"),
                now,
            );
            c.status = "Unknown".to_owned();
            c.last_transition_time = old
                .iter()
                .find(|p| p.type_ == reasons::FORECAST_HEALTHY && p.status == "Unknown")
                .map_or_else(|| rfc3339(now), |p| p.last_transition_time.clone());
            c
        }
        (Some(error), _, _) => condition(
            old,
            reasons::FORECAST_HEALTHY,
            false,
            reasons::metrics_error_reason(error),
            format!("{error}; holding replicas, never scaling down on missing data"),
            now,
        ),
        (None, health, _) => condition(
            old,
            reasons::FORECAST_HEALTHY,
            health.is_healthy(),
            health.reason(),
            health.message(),
            now,
        ),
    };
    let able = match &report.scale_error {
        Some(error) => condition(
            old,
            reasons::ABLE_TO_SCALE,
            false,
            reasons::scale_error_reason(error),
            error.to_string(),
            now,
        ),
        None if report.scaled_to.is_some() => condition(
            old,
            reasons::ABLE_TO_SCALE,
            true,
            reasons::SUCCEEDED_RESCALE,
            format!("scaled the target to {} replicas", decision.desired_replicas),
            now,
        ),
        None => condition(
            old,
            reasons::ABLE_TO_SCALE,
            true,
            reasons::READY_FOR_NEW_SCALE,
            "the target's /scale is readable".to_owned(),
            now,
        ),
    };
    let held = report.metrics_error.is_some()
        || report.scale_error.is_some()
        || matches!(
            outcome.health,
            ForecastHealth::StaleData { .. } | ForecastHealth::MetricsUnavailable(_)
        );
    let scaling = if let (true, Some(error)) = (target_unreadable, &report.scale_error) {
        condition(
            old,
            reasons::SCALING_ACTIVE,
            false,
            reasons::scale_error_reason(error),
            format!("cannot read the target's replicas ({error}); nothing is changed until it can"),
            now,
        )
    } else if mode == Mode::ForecastOnly {
        condition(
            old,
            reasons::SCALING_ACTIVE,
            false,
            reasons::FORECAST_ONLY,
            format!(
                "mode is ForecastOnly: would scale to {} ({}), status only",
                decision.desired_replicas, decision.message
            ),
            now,
        )
    } else if held {
        condition(
            old,
            reasons::SCALING_ACTIVE,
            false,
            reasons::HELD,
            decision.message.clone(),
            now,
        )
    } else {
        condition(
            old,
            reasons::SCALING_ACTIVE,
            true,
            decision.reason.as_str(),
            decision.message.clone(),
            now,
        )
    };
    let ready = match (&report.scale_error, &report.metrics_error) {
        (Some(error), _) => condition(
            old,
            reasons::READY,
            false,
            reasons::scale_error_reason(error),
            error.to_string(),
            now,
        ),
        (None, Some(error)) => condition(
            old,
            reasons::READY,
            false,
            reasons::metrics_error_reason(error),
            error.to_string(),
            now,
        ),
        (None, None) => condition(
            old,
            reasons::READY,
            true,
            reasons::RECONCILED,
            decision.message.clone(),
            now,
        ),
    };
    let forecast = forecast_summary(report);
    PredictiveAutoscalerStatus {
        observed_generation: generation,
        current_replicas: report
            .replicas_before
            .map(|r| r.desired)
            .or(previous.current_replicas),
        desired_replicas: if target_unreadable {
            previous.desired_replicas
        } else {
            Some(decision.desired_replicas)
        },
        last_scale_time: if report.scaled_to.is_some() {
            Some(rfc3339(now))
        } else {
            previous.last_scale_time.clone()
        },
        model: outcome
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .or_else(|| previous.model.clone()),
        backtest_mase: outcome
            .model
            .as_ref()
            .and_then(|m| m.backtest_mase)
            .filter(|m| m.is_finite())
            // Three decimals: the `Error` column of `kubectl get pa` showed all seventeen digits.
            .map(|m| (m * 1000.0).round() / 1000.0)
            .or(previous.backtest_mase),
        forecast,
        decision_reason: if target_unreadable {
            previous.decision_reason.clone()
        } else {
            Some(decision.reason.as_str().to_owned())
        },
        slo: if target_unreadable {
            previous.slo.clone()
        } else {
            Some(SloStatus::from_calibration(&outcome.calibration))
        },
        conditions: vec![ready, forecast_condition, scaling, able],
    }
}

/// The status of an object whose spec cannot be used: `Ready` and `ScalingActive` are `False`
/// (`InvalidSpec`, with `message`); the rest of the previous status is kept.
pub fn invalid_status(
    previous: PredictiveAutoscalerStatus,
    generation: Option<i64>,
    message: &str,
    now: i64,
) -> PredictiveAutoscalerStatus {
    not_active_status(previous, generation, reasons::INVALID_SPEC, message, now)
}

/// The status of an object whose target another autoscaler (an HPA) already scales: `Ready` and
/// `ScalingActive` are `False` (`ConflictingAutoscaler`, with `message`); the rest of the previous status
/// is kept.
pub fn conflict_status(
    previous: PredictiveAutoscalerStatus,
    generation: Option<i64>,
    message: &str,
    now: i64,
) -> PredictiveAutoscalerStatus {
    not_active_status(
        previous,
        generation,
        reasons::CONFLICTING_AUTOSCALER,
        message,
        now,
    )
}

/// `Ready` and `ScalingActive` set `False` for `reason`; the rest of the previous status kept.
fn not_active_status(
    previous: PredictiveAutoscalerStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    now: i64,
) -> PredictiveAutoscalerStatus {
    let old = &previous.conditions;
    let inactive = |type_: &str| condition(old, type_, false, reason, message.to_owned(), now);
    PredictiveAutoscalerStatus {
        observed_generation: generation,
        conditions: vec![inactive(reasons::READY), inactive(reasons::SCALING_ACTIVE)],
        ..previous
    }
}

/// The forecast summary of a sync, when the decision had a forecast.
pub fn forecast_summary(report: &SyncReport) -> Option<ForecastSummary> {
    let decision = &report.outcome.decision;
    match (
        decision.demand_at_lead_time,
        decision.peak_quantile_demand,
        decision.predictive_replicas,
    ) {
        (Some(at_lead), Some(peak), Some(predictive)) => Some(ForecastSummary {
            made_at: rfc3339(report.now),
            current_demand: report.outcome.observed_demand,
            demand_at_lead_time: at_lead,
            peak_quantile_demand: peak,
            arrival_peak_demand: decision.arrival_peak_demand,
            predictive_replicas: predictive,
        }),
        _ => None,
    }
}
