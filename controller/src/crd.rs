//! The `PredictiveAutoscaler` custom resource (group `prescient.dev`, version `v1alpha1`).
//!
//! This file is the single source of the CRD: `prescient crd` prints it and `manifests/` holds the
//! generated YAML (checked by a test). Durations are strings such as `15m` or `1h30m`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::peak::CalibrationState;

/// Durations as the CRD accepts them (`90s`, `15m`, `1h30m`, `7d`), checked by the API server; the
/// reconciler parses them with [`crate::duration::parse_duration`], which accepts the same language.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d|w))+$";

/// Desired behaviour of one predictive autoscaler.
///
/// Validation that can live in the schema does (the API server rejects the object at `kubectl apply`):
/// `minReplicas <= maxReplicas` as a CEL rule, `quantile` in (0, 1), durations by pattern. The rest
/// (e.g. `leadTime <= horizon`, which needs parsed durations) is checked by
/// [`crate::spec::ScalingSpec::from_resource`] and reported as a condition.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas"))]
#[kube(
    group = "prescient.dev",
    version = "v1alpha1",
    kind = "PredictiveAutoscaler",
    plural = "predictiveautoscalers",
    shortname = "pa",
    namespaced,
    status = "PredictiveAutoscalerStatus",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.scaleTargetRef.name"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.currentReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredReplicas"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".status.model"}"#,
    printcolumn = r#"{"name":"Error","type":"number","jsonPath":".status.backtestMase","description":"backtest MASE of the chosen model"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveAutoscalerSpec {
    /// The workload to scale; it must have a `/scale` subresource.
    pub scale_target_ref: ScaleTargetRef,
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: u32,
    #[schemars(range(min = 1))]
    pub max_replicas: u32,
    pub metric: MetricSpec,
    #[serde(default)]
    pub forecast: ForecastSpec,
    /// HPA-style scaling behaviour; the HPA's defaults apply to what is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
    #[serde(default)]
    pub mode: Mode,
    /// How often the autoscaler decides (default `30s`).
    #[serde(default = "default_sync_period")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub sync_period: String,
    /// A service-level target the controller holds online by choosing its quantile; when set it wins
    /// over `forecast.quantile`, which is then only where the controller starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloSpec>,
}

/// A service-level target for capacity.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    /// The share of time you accept demand above what the ready replicas serve, e.g. 0.01 for 1 %.
    #[schemars(extend("minimum" = 0.0, "maximum" = 1.0, "exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub max_underprovisioned_fraction: f64,
}

fn default_min_replicas() -> u32 {
    1
}
fn default_sync_period() -> String {
    "30s".to_owned()
}

/// Reference to the scaled workload, as in the HPA.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// The demand signal.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// PromQL expression of demand, e.g. `sum(rate(http_requests_total{app="shop"}[1m]))`.
    #[schemars(length(min = 1))]
    pub query: String,
    /// Demand one replica serves within its SLO, in the query's unit.
    #[schemars(extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub target_per_replica: f64,
}

/// How demand is forecast.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// How much history to fit on (default `7d`).
    #[serde(default = "default_history")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub history: String,
    /// Resolution of the history query (default `1m`).
    #[serde(default = "default_step")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub step: String,
    /// How far ahead to forecast (default `30m`).
    #[serde(default = "default_horizon")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub horizon: String,
    /// Pod start-up time plus a margin: how far ahead capacity must be decided (default `3m`).
    #[serde(default = "default_lead_time")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub lead_time: String,
    /// `auto` or a model name: naive, seasonal_naive, holt_winters, mstl, linear, svr.
    #[serde(default = "default_model")]
    pub model: String,
    /// Quantile of the forecast to provision for, in (0, 1) (default 0.9).
    #[serde(default = "default_quantile")]
    #[schemars(extend("minimum" = 0.0, "maximum" = 1.0, "exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub quantile: f64,
    /// How often to refit the model (default `1h`); forecasts are made every sync.
    #[serde(default = "default_refit_interval")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub refit_interval: String,
}

fn default_history() -> String {
    "7d".to_owned()
}
fn default_step() -> String {
    "1m".to_owned()
}
fn default_horizon() -> String {
    "30m".to_owned()
}
fn default_lead_time() -> String {
    "3m".to_owned()
}
fn default_model() -> String {
    "auto".to_owned()
}
fn default_quantile() -> f64 {
    0.9
}
fn default_refit_interval() -> String {
    "1h".to_owned()
}

impl Default for ForecastSpec {
    fn default() -> Self {
        Self {
            history: default_history(),
            step: default_step(),
            horizon: default_horizon(),
            lead_time: default_lead_time(),
            model: default_model(),
            quantile: default_quantile(),
            refit_interval: default_refit_interval(),
        }
    }
}

/// HPA-style behaviour (`autoscaling/v2` `HorizontalPodAutoscalerBehavior`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// Rules for one direction of scaling, as in the HPA.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<ScalingPolicy>>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    pub value: u32,
    pub period_seconds: u32,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// `Scale` acts on the target; `ForecastOnly` only writes status (a dry run).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Mode {
    #[default]
    Scale,
    ForecastOnly,
}

/// What the autoscaler observed and decided.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    /// RFC 3339 time of the last change of the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// The chosen model (or ensemble).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Backtest MASE of the chosen model at the configured horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest_mase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
    /// Why the last decision was what it was (predictive, reactive floor, min, max, stabilized, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// How the online calibration stands, and the realised shortfall beside the SLO target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A short forecast summary for `kubectl get -o yaml`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSummary {
    /// RFC 3339 time the forecast was made.
    pub made_at: String,
    /// Demand observed now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_demand: Option<f64>,
    /// Forecast mean at `now + leadTime`.
    pub demand_at_lead_time: f64,
    /// The provisioned quantile's peak over the decision window.
    pub peak_quantile_demand: f64,
    /// Replicas the forecast alone asks for.
    pub predictive_replicas: u32,
}

/// The calibration of the decision window's peak and the shortfall it produced.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloStatus {
    /// `spec.slo.maxUnderprovisionedFraction`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_underprovisioned_fraction: Option<f64>,
    /// Share of syncs in the last day at which demand exceeded what the ready replicas serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realised_underprovisioned_fraction: Option<f64>,
    /// The probability of serving the window peak the controller provisions for now.
    pub quantile_in_use: f64,
    /// Decision windows the calibration rests on (below 30 the forecaster's own bands decide).
    pub calibrated_windows: u32,
}

impl SloStatus {
    /// The status of a calibration, beside its SLO target if it holds one.
    pub fn from_calibration(state: &CalibrationState) -> Self {
        Self {
            target_underprovisioned_fraction: state.max_underprovisioned_fraction,
            realised_underprovisioned_fraction: state.shortfall_fraction_last_day,
            quantile_in_use: state.level,
            calibrated_windows: u32::try_from(state.realised_windows).unwrap_or(u32::MAX),
        }
    }
}

/// A status condition (`Ready`, `ForecastHealthy`, `ScalingActive`, `AbleToScale`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
}

/// Header of the generated manifest: says where it comes from and how to regenerate it.
pub const GENERATED_HEADER: &str = "# Generated by `prescient crd` from controller/src/crd.rs; do not edit.\n\
# Regenerate: cargo run -p prescient -- crd > manifests/crd/predictiveautoscaler.yaml\n";

/// The CRD as YAML, exactly as `prescient crd` prints it and `manifests/crd/` holds it.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&PredictiveAutoscaler::crd())?;
    Ok(format!("{GENERATED_HEADER}{body}"))
}
