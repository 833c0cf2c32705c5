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
/// At most 9 digits per number, so no duration the API server accepts overflows (in the reconciler or in
/// the CEL rules, which compute milliseconds in 64 bits).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,9}(ms|s|m|h|d|w))+$";

/// Longest duration string the schema accepts (it also bounds the CEL rules' cost estimate).
pub const DURATION_MAX_LENGTH: u32 = 32;

/// Largest replica count the schema accepts: the `int32` of the Kubernetes `/scale` subresource.
pub const MAX_REPLICAS_LIMIT: u32 = i32::MAX as u32;

/// The values `forecast.model` accepts; each one is parsed by [`crate::spec::parse_model_choice`]
/// (checked by a test).
pub const MODEL_NAMES: [&str; 7] = [
    "auto",
    "naive",
    "seasonal_naive",
    "holt_winters",
    "mstl",
    "linear",
    "svr",
];

/// Schema of a duration field: pattern, bounded length, and positive (a `0s` period or horizon would
/// divide by zero or never fire). The field's doc comment and default are added by schemars.
fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": DURATION_MAX_LENGTH,
        "x-kubernetes-validations": [
            {
                "rule": format!("self.matches('{DURATION_PATTERN}')"),
                "message": "must be a duration such as 90s, 15m, 2h, 7d or 1h30m (units ms, s, m, h, d, w; at most 9 digits per number)"
            },
            {
                "rule": "!self.matches('^(0+(ms|s|m|h|d|w))+$')",
                "message": "must be a positive duration (not 0s)"
            }
        ]
    })
}

/// A CEL expression for the milliseconds of the duration string `field` (validated by
/// [`DURATION_PATTERN`], so every part is a number and a unit).
fn cel_millis(field: &str) -> String {
    format!(
        "{field}.findAll('[0-9]+(ms|s|m|h|d|w)').map(p, int(p.find('[0-9]+')) * \
         (p.endsWith('ms') ? 1 : p.endsWith('s') ? 1000 : p.endsWith('m') ? 60000 : \
         p.endsWith('h') ? 3600000 : p.endsWith('d') ? 86400000 : 604800000)).sum()"
    )
}

/// CEL rule of [`ForecastSpec`]: the lead time must lie within the forecast horizon.
fn lead_time_within_horizon() -> String {
    format!(
        "!has(self.leadTime) || !has(self.horizon) || {} <= {}",
        cel_millis("self.leadTime"),
        cel_millis("self.horizon")
    )
}

// Validation that can live in the schema does (the API server rejects the object at `kubectl apply`):
// `minReplicas <= maxReplicas` and `leadTime <= horizon` as CEL rules, `quantile` in (0, 1), positive
// durations, bounded integers. `crate::spec::ScalingSpec::from_resource` checks everything again and
// reports what is wrong as a condition (for objects stored before a rule existed).
// Doc comments here are what `kubectl explain` shows: user documentation, no Rust.
/// Desired behaviour of one predictive autoscaler: which workload to scale, between which bounds, on
/// which demand signal, and how that demand is forecast.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas"))]
#[kube(
    group = "prescient.dev",
    version = "v1alpha1",
    kind = "PredictiveAutoscaler",
    doc = "A PredictiveAutoscaler scales a workload ahead of demand: it forecasts the demand a Prometheus query measures and sets the workload's replicas (through its /scale subresource) to what the forecast needs by the time a new pod is ready, never below what current demand needs.",
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
    /// The workload to scale (a Deployment, StatefulSet, ReplicaSet or any resource with a `/scale`
    /// subresource), in the autoscaler's namespace.
    pub scale_target_ref: ScaleTargetRef,
    /// The fewest replicas the autoscaler sets (default 1). 0 is allowed: the workload may be scaled to
    /// zero when neither current nor forecast demand needs a replica.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
    pub min_replicas: u32,
    /// The most replicas the autoscaler sets, whatever the forecast; at least minReplicas.
    #[schemars(range(min = 1, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
    pub max_replicas: u32,
    /// The demand signal: a Prometheus query and how much of it one replica serves.
    pub metric: MetricSpec,
    /// How demand is forecast; every field has a default.
    #[serde(default)]
    pub forecast: ForecastSpec,
    /// Scaling behaviour as in the HorizontalPodAutoscaler (stabilization windows and rate limits per
    /// direction); the HPA's defaults apply to what is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
    /// `Scale` (default) sets the workload's replicas; `ForecastOnly` decides and reports in the status
    /// and events, but never changes the workload (a dry run).
    #[serde(default)]
    pub mode: Mode,
    /// How often the autoscaler decides (default `30s`).
    #[serde(default = "default_sync_period")]
    #[schemars(schema_with = "duration_schema")]
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

/// The workload to scale, as in the HorizontalPodAutoscaler's scaleTargetRef.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API version of the workload, e.g. `apps/v1`.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// Kind of the workload, e.g. `Deployment` or `StatefulSet`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the workload, in the autoscaler's namespace.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The demand signal: a Prometheus query and the demand one replica serves.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// PromQL expression of the workload's total demand, e.g.
    /// `sum(rate(http_requests_total{app="shop"}[1m]))`; it must return one series.
    #[schemars(length(min = 1))]
    pub query: String,
    /// Demand one replica serves within its SLO, in the query's unit (e.g. requests per second);
    /// greater than 0.
    #[schemars(extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub target_per_replica: f64,
}

/// How demand is forecast.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(lead_time_within_horizon()).message("forecast.leadTime must not be longer than forecast.horizon"))]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// How much history to fit on, read from Prometheus (default `7d`). At least two days lets a daily
    /// cycle be detected; with less than the model needs, the autoscaler scales on current demand alone
    /// and says so in the ForecastHealthy condition.
    #[serde(default = "default_history")]
    #[schemars(schema_with = "duration_schema")]
    pub history: String,
    /// Resolution of the history query (default `1m`).
    #[serde(default = "default_step")]
    #[schemars(schema_with = "duration_schema")]
    pub step: String,
    /// How far ahead to forecast (default `30m`).
    #[serde(default = "default_horizon")]
    #[schemars(schema_with = "duration_schema")]
    pub horizon: String,
    /// Pod start-up time plus a margin: how far ahead capacity must be decided (default `3m`).
    #[serde(default = "default_lead_time")]
    #[schemars(schema_with = "duration_schema")]
    pub lead_time: String,
    /// `auto` (default: the model with the lowest backtest error on this workload's history) or one of
    /// naive, seasonal_naive, holt_winters, mstl, linear, svr.
    #[serde(default = "default_model")]
    #[schemars(extend("enum" = MODEL_NAMES))]
    pub model: String,
    /// Quantile of the forecast to provision for, in (0, 1) (default 0.9).
    #[serde(default = "default_quantile")]
    #[schemars(extend("minimum" = 0.0, "maximum" = 1.0, "exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub quantile: f64,
    /// How often to refit the model (default `1h`); forecasts are made every sync.
    #[serde(default = "default_refit_interval")]
    #[schemars(schema_with = "duration_schema")]
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

/// Scaling behaviour as in the HorizontalPodAutoscaler (`autoscaling/v2`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Rules for scaling up (HPA default: no stabilization; 100 % or 4 pods per 15 s, whichever is more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// Rules for scaling down (HPA default: a 300 s stabilization window, see
    /// `stabilizationWindowSeconds` for Prescient's; up to 100 % per 15 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// Rules for one direction of scaling, as in the HPA.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// The reactive rule leaves the replicas alone while the usage ratio (observed demand over
    /// current replicas × targetPerReplica) is within this distance of 1 in this direction, e.g. 0.05
    /// (the HPA's per-direction tolerance, KEP-4951; a number here, where the HPA takes a quantity).
    /// Default 0.1, the HPA's cluster-wide default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub tolerance: Option<f64>,
    /// Seconds of past decisions to consider (0 to 3600): scaling down uses the highest, scaling up the
    /// lowest recommendation in the window, so short dips and bursts do not flap the workload.
    /// Defaults: 0 for scale-up; for scale-down the HPA's 300, except when `forecast.step` is 300 s or
    /// longer: then every decision in 300 s rests on the same data point, and each decision already
    /// provisions the peak of its whole decision window, so the window is one `syncPeriod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600), extend("format" = "int32"))]
    pub stabilization_window_seconds: Option<u32>,
    /// Which policy applies when several do: `Max` (the largest change, default), `Min`, or `Disabled`
    /// (no scaling in this direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    /// Rate limits: at most `value` pods, or `value` percent of the current replicas, per
    /// `periodSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<ScalingPolicy>>,
}

/// Which policy applies when several do.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// One rate limit, as in the HorizontalPodAutoscaler.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// `Pods` (an absolute number of pods) or `Percent` (of the current replicas).
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    /// How many pods, or what percentage of the current replicas, may be added or removed per
    /// period; at least 1.
    #[schemars(range(min = 1, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
    pub value: u32,
    /// The period the limit applies to, in seconds (1 to 1800).
    #[schemars(range(min = 1, max = 1800), extend("format" = "int32"))]
    pub period_seconds: u32,
}

/// Unit of a scaling policy's value.
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
    /// The spec generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas the workload had at the last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
    pub current_replicas: Option<u32>,
    /// Replicas the last decision asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
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
    /// A short summary of the last forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
    /// Why the last decision was what it was (Predictive, Reactive, MinReplicas, MaxReplicas,
    /// Stabilized, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// How the online calibration stands, and the realised shortfall beside the SLO target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloStatus>,
    /// `Ready`, `ForecastHealthy`, `ScalingActive` and `AbleToScale`, each with a reason a person can act
    /// on.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A short summary of the last forecast.
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
    /// The provisioned quantile's peak over the arrival window (`leadTime` to `leadTime + syncPeriod`
    /// ahead), which sets a scale-up: pods asked for now are ready only from `leadTime` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_peak_demand: Option<f64>,
    /// Replicas the forecast alone asks for.
    #[schemars(range(min = 0, max = MAX_REPLICAS_LIMIT), extend("format" = "int32"))]
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
    /// Decision windows the calibration rests on (below 10 the forecaster's own bands decide).
    #[schemars(range(min = 0, max = i32::MAX as u32), extend("format" = "int32"))]
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
    /// `Ready`, `ForecastHealthy`, `ScalingActive` or `AbleToScale`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A one-word reason, stable for searching (e.g. `InsufficientHistory`, `TargetNotFound`).
    pub reason: String,
    /// What happened, for a person.
    pub message: String,
    /// RFC 3339 time the condition last changed its status.
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
