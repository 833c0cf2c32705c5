//! The scaling policy: one pure function, [`decide`], from what is known at `now` (a forecast of demand
//! with its bands, the observed demand, the target's replicas, the spec and the recent recommendations)
//! to a [`Decision`]. No clock, no IO: the operator, the simulator and the demo all call it, and tests
//! feed it hand-made forecasts.
//!
//! The rule (DESIGN.md): `clamp(max(predictive, reactive), min, max)`, then the HPA-style behavior
//! (stabilization windows, then rate limits). Missing or stale data never lowers replicas.

use std::{collections::VecDeque, fmt, time::Duration};

use crate::{
    core::{PolicyType, ReplicaState, SelectPolicy},
    spec::{DirectionRules, ScalingBehavior, ScalingSpec},
};

/// Why the desired replica count is what it is: the last rule that shaped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionReason {
    /// The forecast's quantile over the decision window set it.
    Predictive,
    /// What current (observed) demand needs was higher than the forecast.
    ReactiveFloor,
    /// Raised to `minReplicas`.
    MinReplicas,
    /// Capped at `maxReplicas`.
    MaxReplicas,
    /// A stabilization window held it (scale-down: highest recent recommendation; scale-up: lowest).
    Stabilized,
    /// A scaling policy (pods or percent per period) limited the change.
    RateLimited,
    /// Data was missing or stale: replicas held (never lowered).
    HeldOnStaleData,
}

impl DecisionReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Predictive => "Predictive",
            Self::ReactiveFloor => "ReactiveFloor",
            Self::MinReplicas => "MinReplicas",
            Self::MaxReplicas => "MaxReplicas",
            Self::Stabilized => "Stabilized",
            Self::RateLimited => "RateLimited",
            Self::HeldOnStaleData => "HeldOnStaleData",
        }
    }
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub desired_replicas: u32,
    pub reason: DecisionReason,
    /// Replicas the forecast asks for (`None` without a usable forecast).
    pub predictive_replicas: Option<u32>,
    /// Replicas the observed demand needs (`None` without a usable observation).
    pub reactive_replicas: Option<u32>,
    /// The provisioned quantile of demand at `now + leadTime`.
    pub demand_at_lead_time: Option<f64>,
    /// The peak of the provisioned quantile over the decision window `[now, now + leadTime + syncPeriod]`.
    pub peak_quantile_demand: Option<f64>,
    /// The peak of the provisioned quantile over the arrival window `[now + leadTime, now + leadTime +
    /// syncPeriod]`, which sets a scale-up: the pods asked for now serve only that part of the window.
    pub arrival_peak_demand: Option<f64>,
    /// A sentence a person can read.
    pub message: String,
    /// The recommendation before stabilization and rate limits (clamped to min/max); this, not the
    /// final value, is what the stabilization windows remember (as the HPA does).
    pub recommendation: u32,
}

/// The forecast as the policy needs it: the chosen quantile (and the mean, for reports) per step.
/// Kept apart from `prescient_model::Forecast` so tests can inject any forecast, e.g. a perfect one.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedDemand {
    /// Timestamp of the first value; value `i` covers `[start + i * step, start + (i + 1) * step)`.
    pub start: i64,
    pub step_seconds: i64,
    /// The provisioned quantile of demand per step (same unit as `targetPerReplica`).
    pub quantile: Vec<f64>,
    /// The point forecast per step.
    pub mean: Vec<f64>,
    /// The provisioned peak over the decision window, calibrated online on realised window peaks
    /// ([`crate::core::peak`]); when set, it replaces the peak of the per-step quantiles.
    pub calibrated_peak: Option<f64>,
    /// The same for the arrival window `[now + leadTime, now + leadTime + syncPeriod]`; read only
    /// beside a calibrated decision-window peak (the two are calibrated alike).
    pub calibrated_arrival_peak: Option<f64>,
}

impl PredictedDemand {
    /// A forecast that is certain: quantile and mean are both `values`.
    pub fn exact(start: i64, step_seconds: i64, values: Vec<f64>) -> Self {
        Self {
            start,
            step_seconds,
            quantile: values.clone(),
            mean: values,
            calibrated_peak: None,
            calibrated_arrival_peak: None,
        }
    }

    /// Index of the step covering time `t`, if any.
    fn index_at(&self, t: i64) -> Option<usize> {
        if self.step_seconds <= 0 || t < self.start {
            return None;
        }
        let index = usize::try_from((t - self.start) / self.step_seconds).ok()?;
        (index < self.quantile.len()).then_some(index)
    }

    /// The provisioned quantile at time `t` (finite values only).
    pub fn quantile_at(&self, t: i64) -> Option<f64> {
        self.index_at(t)
            .map(|i| self.quantile[i])
            .filter(|v| v.is_finite())
    }

    /// Peak of the quantile over steps that overlap `[from, to]`; `None` if no finite step overlaps.
    pub fn peak(&self, from: i64, to: i64) -> Option<f64> {
        self.peak_of(&self.quantile, from, to)
    }

    /// Peak of the point forecast over steps that overlap `[from, to]`.
    pub fn mean_peak(&self, from: i64, to: i64) -> Option<f64> {
        self.peak_of(&self.mean, from, to)
    }

    fn peak_of(&self, values: &[f64], from: i64, to: i64) -> Option<f64> {
        peak_over(values, self.start, self.step_seconds, from, to)
    }
}

/// Peak of the finite `values` (value `i` covering `[start + i * step, start + (i + 1) * step)`) over
/// the steps that overlap `[from, to]`; `None` if no finite step overlaps. Forecasts and histories
/// alike: what was planned for a window and what it realised are read by the same rule.
pub fn peak_over(values: &[f64], start: i64, step_seconds: i64, from: i64, to: i64) -> Option<f64> {
    if step_seconds <= 0 || to < start {
        return None;
    }
    let first = usize::try_from((from - start).div_euclid(step_seconds).max(0)).ok()?;
    let last = usize::try_from((to - start).div_euclid(step_seconds)).ok()?;
    values
        .get(first..=last.min(values.len().checked_sub(1)?))?
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f64::max)
}

/// Everything [`decide`] reads besides the spec and the recent recommendations.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInput {
    /// Unix seconds.
    pub now: i64,
    /// `None` when there is no forecast (too little history, fit failed).
    pub forecast: Option<PredictedDemand>,
    /// Current demand as last observed (same unit as `targetPerReplica`); `None` if missing.
    pub observed_demand: Option<f64>,
    /// Without a forecast (too little history for a model, or its fit failed): the peak to provision
    /// over the decision window, the observed demand plus the rise above it calibrated on realised
    /// windows (see [`crate::core::peak`]). It raises the reactive floor, never lowers it; `None` until
    /// the calibration has enough windows, and ignored when there is a forecast.
    pub persistence_peak: Option<f64>,
    /// The data is too old to act on: hold, never scale down.
    pub stale: bool,
    pub replicas: ReplicaState,
}

/// One scale change that was made, for the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScaleEvent {
    at: i64,
    /// Replicas added (positive) or removed (negative).
    change: i64,
}

/// The memory the behavior needs: recommendations (for the stabilization windows) and scale events (for
/// the rate-limit periods), each with its time and pruned by time. Owned by the caller (the core) and
/// updated with [`RecentRecommendations::record`] after each decision, so [`decide`] stays pure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentRecommendations {
    recommendations: VecDeque<(i64, u32)>,
    events: VecDeque<ScaleEvent>,
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl RecentRecommendations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a decision taken at `now` when the target had `current` replicas: its (unstabilized)
    /// recommendation, and the scale event if the desired count differs from `current` (pass
    /// `scaled = false` when the change will not be applied, e.g. in ForecastOnly mode).
    pub fn record(
        &mut self,
        now: i64,
        decision: &Decision,
        current: u32,
        scaled: bool,
        behavior: &ScalingBehavior,
    ) {
        self.recommendations.push_back((now, decision.recommendation));
        if scaled && decision.desired_replicas != current {
            self.events.push_back(ScaleEvent {
                at: now,
                change: i64::from(decision.desired_replicas) - i64::from(current),
            });
        }
        self.prune(now, behavior);
    }

    /// Drops what no window or period can still see.
    pub fn prune(&mut self, now: i64, behavior: &ScalingBehavior) {
        let window = seconds(
            behavior
                .scale_up
                .stabilization_window
                .max(behavior.scale_down.stabilization_window),
        );
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - *t > window)
        {
            self.recommendations.pop_front();
        }
        let period = behavior
            .scale_up
            .policies
            .iter()
            .chain(&behavior.scale_down.policies)
            .map(|p| seconds(p.period))
            .max()
            .unwrap_or(0);
        while self.events.front().is_some_and(|e| now - e.at > period) {
            self.events.pop_front();
        }
    }

    /// Recommendations remembered, oldest first.
    pub fn recommendations(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.recommendations.iter().copied()
    }

    /// Replicas added and removed by scale events strictly within `period` before `now` (the HPA's
    /// `getReplicasChangePerPeriod`, for each direction).
    fn changes_within(&self, now: i64, period: Duration) -> (i64, i64) {
        let cutoff = now - seconds(period);
        self.events
            .iter()
            .filter(|e| e.at > cutoff)
            .fold((0, 0), |(up, down), e| {
                if e.change > 0 {
                    (up + e.change, down)
                } else {
                    (up, down - e.change)
                }
            })
    }
}

/// Replicas the observed demand needs by the HPA rule for a demand metric with an average-value target:
/// no change while the usage ratio `observed / (current * target)` is within the tolerance of its
/// direction (`behavior.scaleUp.tolerance` above 1, `scaleDown.tolerance` below; 10 % each by default,
/// as the HPA since KEP-4951), else `ceil(observed / target)`.
///
/// Why not `current * observed / (ready * target)`: while pods start, that multiplies the load per
/// ready pod by pods that are not serving yet and overshoots; the HPA itself divides by all pods (it
/// counts unready pods as idle when scaling up), which is the same as `observed / target`.
pub fn hpa_replicas(observed: f64, current: u32, target_per_replica: f64, behavior: &ScalingBehavior) -> u32 {
    let needed = replicas_for(observed, target_per_replica);
    if current == 0 {
        return needed;
    }
    let ratio = observed / (f64::from(current) * target_per_replica);
    let within = ratio <= 1.0 + behavior.scale_up.tolerance && ratio >= 1.0 - behavior.scale_down.tolerance;
    if within { current } else { needed }
}

/// `ceil(demand / target)` as a replica count (0 for non-positive or non-finite demand).
pub fn replicas_for(demand: f64, target_per_replica: f64) -> u32 {
    if !(demand.is_finite() && demand > 0.0 && target_per_replica > 0.0) {
        return 0;
    }
    // A tiny slack so that a demand of exactly k targets (after floating-point noise) needs k replicas.
    let ratio = demand / target_per_replica;
    let replicas = (ratio - 1e-9 * ratio.max(1.0)).ceil();
    if replicas >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        replicas.max(0.0) as u32
    }
}

/// The one decision at `input.now`. Pure: same inputs, same decision.
pub fn decide(input: &PolicyInput, spec: &ScalingSpec, recent: &RecentRecommendations) -> Decision {
    let current = input.replicas.desired;
    let now = input.now;
    let target = spec.target_per_replica;

    // Predictive. The pods running now serve the whole decision window [now, now + leadTime +
    // syncPeriod], and removing one takes effect at once while a new one takes leadTime: a scale-down
    // never goes below the window's peak. The pods asked for now are ready only at now + leadTime and
    // serve until the next sync's are: a scale-up is set by the peak of that arrival window alone.
    // Scaled up to the whole window's peak, a rise forecast within the lead time asked for pods that
    // come after it, and the headroom for what may still happen before new pods can be ready was
    // bought at every sync, though only the pods already running can serve it. At HPA@0.7's cost,
    // minutes short as a share of the HPA's went 0.52x -> 0.49x (ELB, 5-minute start-up), 0.19x ->
    // 0.13x (Alibaba, 2-minute); see the README for every trace.
    let arrival = now + seconds(spec.lead_time);
    let window_end = arrival + seconds(spec.sync_period);
    let forecast = if input.stale {
        None
    } else {
        input.forecast.as_ref()
    };
    let demand_at_lead_time = forecast.and_then(|f| f.quantile_at(arrival));
    let peak = forecast.and_then(|f| f.calibrated_peak.or_else(|| f.peak(now, window_end)));
    let arrival_peak = forecast.and_then(|f| match f.calibrated_peak {
        Some(_) => f.calibrated_arrival_peak,
        None => f.peak(arrival, window_end),
    });
    let whole = peak.map(|p| replicas_for(p, target));
    let asked = arrival_peak.map(|p| replicas_for(p, target));
    let predictive = whole.map(|whole| match asked {
        Some(asked) => asked.max(whole.min(current)),
        // A calibrated window peak without its arrival peak (too few arrival windows of its kind
        // yet): the whole window, as a scale-up too.
        None => whole,
    });

    let observed = if input.stale {
        None
    } else {
        input.observed_demand.filter(|d| d.is_finite() && *d >= 0.0)
    };
    // A rise calibrated on the observed demand alone: before a model can be fitted, a new workload is
    // not left at zero headroom.
    let persistence_peak = input
        .persistence_peak
        .filter(|p| p.is_finite() && *p >= 0.0 && predictive.is_none());
    let reactive = observed.map(|d| {
        if predictive.is_some() {
            // Under a forecast the floor is plain `ceil(observed / target)`: the HPA's tolerance exists to
            // stop the HPA flapping, but a floor max'ed with a forecast does not flap (scale-downs are
            // damped by the stabilization window), and upwards the tolerance would leave demand up to
            // 10 % above what the replicas serve within their SLO unanswered until the forecast caught
            // up. Acting alone (no forecast), the floor is the HPA rule, tolerance included.
            replicas_for(d, target)
        } else {
            let hpa = hpa_replicas(d, current, target, &spec.behavior);
            persistence_peak.map_or(hpa, |peak| hpa.max(replicas_for(peak, target)))
        }
    });

    let base = |recommendation: u32, reason: DecisionReason, message: String| Decision {
        desired_replicas: recommendation,
        reason,
        predictive_replicas: predictive,
        reactive_replicas: reactive,
        demand_at_lead_time,
        peak_quantile_demand: peak,
        arrival_peak_demand: arrival_peak,
        message,
        recommendation,
    };

    let (raw, mut reason, mut message) = match (predictive, reactive) {
        (Some(p), Some(r)) if r > p => (
            r,
            DecisionReason::ReactiveFloor,
            format!("observed demand needs {r} replicas, more than the forecast's {p}"),
        ),
        (Some(p), _) => (
            p,
            DecisionReason::Predictive,
            match (asked, arrival_peak) {
                (Some(asked), Some(arrival_peak)) if asked >= p => format!(
                    "forecast q{} peak {arrival_peak:.1} from when new pods would be ready ({}s) to {}s ahead needs {p} replicas",
                    spec.quantile,
                    arrival - now,
                    window_end - now
                ),
                (Some(asked), Some(arrival_peak)) if whole.is_some_and(|whole| whole > p) => {
                    format!(
                        "forecast q{} peak {:.1} over the next {}s keeps the {p} replicas running; new pods would be ready only in {}s, when the peak {arrival_peak:.1} needs {asked}",
                        spec.quantile,
                        peak.unwrap_or(0.0),
                        window_end - now,
                        arrival - now
                    )
                }
                _ => format!(
                    "forecast q{} peak {:.1} over the next {}s needs {p} replicas",
                    spec.quantile,
                    peak.unwrap_or(0.0),
                    window_end - now
                ),
            },
        ),
        (None, Some(r)) => (
            r,
            DecisionReason::ReactiveFloor,
            match persistence_peak {
                Some(peak) => format!(
                    "no forecast; observed demand with its rise calibrated over the next {}s (peak {peak:.1}) needs {r} replicas",
                    window_end - now
                ),
                None => format!("no forecast; observed demand needs {r} replicas"),
            },
        ),
        (None, None) => {
            // Nothing to act on: hold (raise to min / cap at max only, as the spec demands).
            let held = current.clamp(spec.min_replicas, spec.max_replicas.max(spec.min_replicas));
            let why = if input.stale {
                "data is stale"
            } else {
                "no forecast and no observed demand"
            };
            return base(
                held,
                DecisionReason::HeldOnStaleData,
                format!("{why}: holding {held} replicas"),
            );
        }
    };
    // Missing observation with a forecast: act on the forecast but never below current.
    let raw = if observed.is_none() && raw < current {
        message = format!("{message}; observed demand missing, holding {current}");
        reason = DecisionReason::HeldOnStaleData;
        current
    } else {
        raw
    };

    let max = spec.max_replicas.max(spec.min_replicas);
    let recommendation = raw.clamp(spec.min_replicas, max);
    if recommendation > raw {
        reason = DecisionReason::MinReplicas;
        message = format!("{message}; raised to minReplicas {recommendation}");
    } else if recommendation < raw {
        reason = DecisionReason::MaxReplicas;
        message = format!("{message}; capped at maxReplicas {recommendation}");
    }

    let (desired, limit) = apply_behavior(recommendation, current, now, spec, recent);
    match limit {
        Some(Limit::Stabilized(window_value)) => {
            reason = DecisionReason::Stabilized;
            message = format!(
                "{message}; stabilization window keeps {window_value} (recommendation {recommendation})"
            );
        }
        Some(Limit::Rate) => {
            reason = DecisionReason::RateLimited;
            message = format!("{message}; scaling policy limits this sync to {desired}");
        }
        Some(Limit::AboveMax) => {
            reason = DecisionReason::MaxReplicas;
            message = format!(
                "{message}; {current} replicas are above maxReplicas: going to {desired} at once, as the HPA does"
            );
        }
        None => {}
    }
    Decision {
        desired_replicas: desired,
        reason,
        message,
        ..base(recommendation, reason, String::new())
    }
}

/// What changed the recommendation in [`apply_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Stabilized(u32),
    Rate,
    /// The count was above `maxReplicas` (just lowered): it goes to it at once, whatever was recommended.
    AboveMax,
}

/// The HPA's `normalizeDesiredReplicasWithBehaviors`: stabilize the recommendation (scale-up: lowest
/// recommendation within the scale-up window; scale-down: highest within the scale-down window, the
/// current one included), then limit the change by the scaling policies of that direction. Returns the
/// desired replicas and what limited them. Bounds are the spec's min/max.
pub fn apply_behavior(
    recommendation: u32,
    current: u32,
    now: i64,
    spec: &ScalingSpec,
    recent: &RecentRecommendations,
) -> (u32, Option<Limit>) {
    let behavior = &spec.behavior;
    let max = spec.max_replicas.max(spec.min_replicas);
    // The HPA's `reconcileAutoscaler`: replicas above `maxReplicas` (it was just lowered) go straight to
    // it, before stabilization and rate limits, which would otherwise hold them there for a window.
    if current > max {
        return (max, (recommendation != max).then_some(Limit::AboveMax));
    }
    let up_cutoff = now - seconds(behavior.scale_up.stabilization_window);
    let down_cutoff = now - seconds(behavior.scale_down.stabilization_window);
    let mut up_recommendation = recommendation;
    let mut down_recommendation = recommendation;
    for (at, value) in recent.recommendations() {
        if at > up_cutoff {
            up_recommendation = up_recommendation.min(value);
        }
        if at > down_cutoff {
            down_recommendation = down_recommendation.max(value);
        }
    }
    let stabilized = current.max(up_recommendation).min(down_recommendation);
    let mut limit = (stabilized != recommendation).then_some(Limit::Stabilized(stabilized));

    let desired = if stabilized > current {
        let up_limit = direction_limit(&behavior.scale_up, current, now, recent, true).max(current);
        if stabilized > up_limit.min(max) {
            if up_limit < max {
                limit = Some(Limit::Rate);
            }
            up_limit.min(max)
        } else {
            stabilized
        }
    } else if stabilized < current {
        let down_limit = direction_limit(&behavior.scale_down, current, now, recent, false).min(current);
        if stabilized < down_limit.max(spec.min_replicas) {
            if down_limit > spec.min_replicas {
                limit = Some(Limit::Rate);
            }
            down_limit.max(spec.min_replicas)
        } else {
            stabilized
        }
    } else {
        stabilized
    };
    (desired, limit)
}

/// The HPA's `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`: the
/// furthest the replica count may go in one direction given the changes already made in each policy's
/// period. `Disabled` allows no change.
fn direction_limit(
    rules: &DirectionRules,
    current: u32,
    now: i64,
    recent: &RecentRecommendations,
    up: bool,
) -> u32 {
    if rules.select_policy == SelectPolicy::Disabled || rules.policies.is_empty() {
        return current;
    }
    let proposals = rules.policies.iter().map(|policy| {
        let (added, removed) = recent.changes_within(now, policy.period);
        let period_start = (i64::from(current) - added + removed).max(0);
        let value = i64::from(policy.value);
        match (policy.policy_type, up) {
            (PolicyType::Pods, true) => period_start + value,
            // Rounded up so a small deployment can always grow.
            (PolicyType::Percent, true) => (period_start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64,
            (PolicyType::Pods, false) => period_start - value,
            (PolicyType::Percent, false) => (period_start as f64 * (1.0 - value as f64 / 100.0)) as i64,
        }
    });
    // Max picks the largest change: the highest limit going up, the lowest going down.
    let largest_change = rules.select_policy == SelectPolicy::Max;
    let chosen = if up == largest_change {
        proposals.max()
    } else {
        proposals.min()
    };
    let chosen = chosen.unwrap_or(i64::from(current)).clamp(0, i64::from(u32::MAX));
    u32::try_from(chosen).unwrap_or(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{REACTIVE_TOLERANCE, RatePolicy};

    fn spec() -> ScalingSpec {
        ScalingSpec {
            min_replicas: 1,
            max_replicas: 100,
            target_per_replica: 10.0,
            history: Duration::from_secs(7 * 86_400),
            step: Duration::from_secs(60),
            horizon: Duration::from_secs(600),
            lead_time: Duration::from_secs(120),
            model: prescient_model::ModelChoice::Auto,
            quantile: 0.9,
            refit_interval: Duration::from_secs(3600),
            sync_period: Duration::from_secs(15),
            behavior: ScalingBehavior::default(),
            scale_enabled: true,
            forecast_enabled: true,
            max_underprovisioned_fraction: None,
        }
    }

    fn input(
        now: i64,
        forecast: Option<PredictedDemand>,
        observed: Option<f64>,
        current: u32,
    ) -> PolicyInput {
        PolicyInput {
            now,
            forecast,
            observed_demand: observed,
            persistence_peak: None,
            stale: false,
            replicas: ReplicaState {
                desired: current,
                ready: current,
            },
        }
    }

    /// Runs a sequence of decisions as a controller would, recording each; returns the desired counts.
    fn run_reactive(spec: &ScalingSpec, start: u32, demand: &[(i64, f64)]) -> Vec<u32> {
        let mut recent = RecentRecommendations::new();
        let mut current = start;
        let mut out = Vec::new();
        for &(now, observed) in demand {
            let decision = decide(&input(now, None, Some(observed), current), spec, &recent);
            recent.record(now, &decision, current, true, &spec.behavior);
            current = decision.desired_replicas;
            out.push(current);
        }
        out
    }

    #[test]
    fn each_direction_has_its_own_tolerance() {
        // KEP-4951: quick to scale up (2 %), slow to scale down (30 %).
        let mut behavior = ScalingBehavior::default();
        behavior.scale_up.tolerance = 0.02;
        behavior.scale_down.tolerance = 0.3;
        assert_eq!(hpa_replicas(103.0, 10, 10.0, &behavior), 11, "3 % above: up");
        assert_eq!(hpa_replicas(101.0, 10, 10.0, &behavior), 10, "1 % above: within");
        assert_eq!(hpa_replicas(75.0, 10, 10.0, &behavior), 10, "25 % below: within");
        assert_eq!(hpa_replicas(65.0, 10, 10.0, &behavior), 7, "35 % below: down");
        // Zero tolerance follows every change.
        behavior.scale_up.tolerance = 0.0;
        behavior.scale_down.tolerance = 0.0;
        assert_eq!(hpa_replicas(100.5, 10, 10.0, &behavior), 11);
        assert_eq!(hpa_replicas(99.0, 10, 10.0, &behavior), 10);
        assert_eq!(hpa_replicas(89.0, 10, 10.0, &behavior), 9);
    }

    #[test]
    fn hpa_tolerance_ignores_changes_within_ten_percent() {
        let hpa = ScalingBehavior::default();
        assert_eq!(hpa_replicas(105.0, 10, 10.0, &hpa), 10);
        assert_eq!(hpa_replicas(95.0, 10, 10.0, &hpa), 10);
        assert_eq!(hpa_replicas(111.0, 10, 10.0, &hpa), 12);
        assert_eq!(hpa_replicas(89.0, 10, 10.0, &hpa), 9);
        assert_eq!(hpa_replicas(50.0, 0, 10.0, &hpa), 5);
        assert_eq!(replicas_for(100.0, 10.0), 10);
        assert_eq!(
            replicas_for(0.1 + 0.2, 0.1),
            3,
            "floating-point noise must not add a replica"
        );
        assert_eq!(replicas_for(100.01, 10.0), 11);
        assert_eq!(replicas_for(f64::NAN, 10.0), 0);
    }

    #[test]
    fn scale_down_stabilization_keeps_the_highest_recommendation_of_the_last_five_minutes() {
        // Kubernetes docs: with the default 300 s window the HPA scales down to the highest recommendation
        // of the last 5 minutes. Demand drops from 100 (10 replicas) to 60, 40, then 20, one per minute.
        let spec = spec();
        let demand = [
            (0, 100.0),
            (60, 60.0),
            (120, 40.0),
            (180, 20.0),
            (240, 20.0),
            (300, 20.0),
            (360, 20.0),
            (420, 20.0),
        ];
        let desired = run_reactive(&spec, 10, &demand);
        // The 10 of t=0 is remembered until t=300 (exclusive window), then 6 (t=60) until t=360, 4 until 420.
        assert_eq!(desired, vec![10, 10, 10, 10, 10, 6, 4, 2]);
        let mut recent = RecentRecommendations::new();
        let first = decide(&input(0, None, Some(100.0), 10), &spec, &recent);
        recent.record(0, &first, 10, true, &spec.behavior);
        let held = decide(&input(60, None, Some(20.0), 10), &spec, &recent);
        assert_eq!(held.desired_replicas, 10);
        assert_eq!(held.reason, DecisionReason::Stabilized);
        assert_eq!(held.recommendation, 2);
    }

    #[test]
    fn lowering_max_replicas_below_the_count_scales_to_it_at_once() {
        // As the HPA: a count above maxReplicas goes to it whatever the stabilization window holds
        // (found when a new leader kept 15 replicas under maxReplicas 12 for the window's 5 minutes).
        let mut spec = spec();
        let mut recent = RecentRecommendations::new();
        let first = decide(&input(0, None, Some(150.0), 15), &spec, &recent);
        recent.record(0, &first, 15, true, &spec.behavior);
        assert_eq!(first.desired_replicas, 15);
        spec.max_replicas = 12;
        let lowered = decide(&input(30, None, Some(150.0), 15), &spec, &recent);
        assert_eq!(lowered.desired_replicas, 12);
        assert_eq!(lowered.reason, DecisionReason::MaxReplicas);
        // Demand needing fewer than the new maximum: still to the maximum at once (not below it, which
        // the window would have held), and the reason says why, not "Predictive" or "ReactiveFloor".
        let lowered_further = decide(&input(30, None, Some(50.0), 15), &spec, &recent);
        assert_eq!(
            (lowered_further.desired_replicas, lowered_further.reason),
            (12, DecisionReason::MaxReplicas)
        );
        assert!(
            lowered_further.message.contains("above maxReplicas"),
            "{}",
            lowered_further.message
        );
        // Within the bounds the window still holds a scale-down.
        spec.max_replicas = 20;
        let held = decide(&input(60, None, Some(20.0), 15), &spec, &recent);
        assert_eq!(
            (held.desired_replicas, held.reason),
            (15, DecisionReason::Stabilized)
        );
    }

    #[test]
    fn default_scale_up_is_max_of_100_percent_and_4_pods_per_15_seconds() {
        // From 1 replica, demand for 30: +4 pods (beats +100 % = 2), then double every 15 s.
        let spec = spec();
        let demand: Vec<(i64, f64)> = (0..5).map(|i| (i * 15, 300.0)).collect();
        assert_eq!(run_reactive(&spec, 1, &demand), vec![5, 10, 20, 30, 30]);
        // Two syncs within one 15 s period: the second may not add more.
        let demand = [(0, 300.0), (5, 300.0), (10, 300.0), (15, 300.0)];
        assert_eq!(run_reactive(&spec, 1, &demand), vec![5, 5, 5, 10]);
        let mut recent = RecentRecommendations::new();
        let first = decide(&input(0, None, Some(300.0), 1), &spec, &recent);
        assert_eq!(first.reason, DecisionReason::RateLimited);
        recent.record(0, &first, 1, true, &spec.behavior);
    }

    #[test]
    fn scale_down_policies_follow_the_documented_pods_and_percent_example() {
        // Docs: Pods 4 per 60 s and Percent 10 per 60 s; with selectPolicy Max the percent policy wins
        // above 40 replicas. No stabilization, to see the rate limit alone.
        let mut spec = spec();
        spec.max_replicas = 200;
        spec.behavior.scale_down = DirectionRules {
            tolerance: REACTIVE_TOLERANCE,
            stabilization_window: Duration::ZERO,
            select_policy: SelectPolicy::Max,
            policies: vec![
                RatePolicy {
                    policy_type: PolicyType::Pods,
                    value: 4,
                    period: Duration::from_secs(60),
                },
                RatePolicy {
                    policy_type: PolicyType::Percent,
                    value: 10,
                    period: Duration::from_secs(60),
                },
            ],
        };
        let recent = RecentRecommendations::new();
        let d = decide(&input(0, None, Some(10.0), 80), &spec, &recent);
        assert_eq!((d.desired_replicas, d.reason), (72, DecisionReason::RateLimited));
        let d = decide(&input(0, None, Some(10.0), 20), &spec, &recent);
        assert_eq!(d.desired_replicas, 16);
        spec.behavior.scale_down.select_policy = SelectPolicy::Min;
        let d = decide(&input(0, None, Some(10.0), 80), &spec, &recent);
        assert_eq!(d.desired_replicas, 76);
        spec.behavior.scale_down.select_policy = SelectPolicy::Disabled;
        let d = decide(&input(0, None, Some(10.0), 80), &spec, &recent);
        assert_eq!(d.desired_replicas, 80);
        // After a scale-down of 8 within the period, the next one starts from the period's start (80).
        spec.behavior.scale_down.select_policy = SelectPolicy::Max;
        let mut recent = RecentRecommendations::new();
        let first = decide(&input(0, None, Some(10.0), 80), &spec, &recent);
        recent.record(0, &first, 80, true, &spec.behavior);
        let second = decide(&input(30, None, Some(10.0), 72), &spec, &recent);
        assert_eq!(
            second.desired_replicas, 72,
            "80 - 10 % already used within the 60 s period"
        );
        let third = decide(&input(61, None, Some(10.0), 72), &spec, &recent);
        assert_eq!(
            third.desired_replicas, 64,
            "a new period allows 10 % of 72 (rounded down: 64.8 -> 64)"
        );
    }

    #[test]
    fn predictive_provisions_the_peak_of_the_quantile_over_the_decision_window() {
        let spec = spec();
        let recent = RecentRecommendations::new();
        // Steps of 60 s from now; a spike of 200 two minutes ahead (= lead time) needs 20 replicas.
        let values = vec![50.0, 50.0, 200.0, 50.0, 50.0];
        let forecast = PredictedDemand::exact(0, 60, values);
        let d = decide(&input(0, Some(forecast), Some(50.0), 10), &spec, &recent);
        assert_eq!(d.desired_replicas, 20);
        assert_eq!(d.reason, DecisionReason::Predictive);
        assert_eq!(d.predictive_replicas, Some(20));
        assert_eq!(d.reactive_replicas, Some(5));
        assert_eq!(d.demand_at_lead_time, Some(200.0));
        assert_eq!(d.peak_quantile_demand, Some(200.0));
        // A spike beyond now + lead + sync is not provisioned yet.
        let far = PredictedDemand::exact(0, 60, vec![50.0, 50.0, 50.0, 50.0, 200.0]);
        let d = decide(&input(0, Some(far), Some(50.0), 10), &spec, &recent);
        assert_eq!(d.desired_replicas, 5);
    }

    #[test]
    fn a_scale_up_is_set_by_the_window_its_new_pods_serve() {
        // A spike within the lead time: pods asked for now would be ready after it, so none are asked
        // for; the 5 running are kept (a scale-down would be at once, before the spike).
        let mut spec = spec();
        spec.behavior.scale_down.stabilization_window = Duration::ZERO;
        let recent = RecentRecommendations::new();
        let spike_before_arrival =
            || PredictedDemand::exact(0, 30, vec![20.0, 20.0, 150.0, 20.0, 20.0, 20.0]);
        let d = decide(
            &input(0, Some(spike_before_arrival()), Some(20.0), 5),
            &spec,
            &recent,
        );
        assert_eq!((d.desired_replicas, d.reason), (5, DecisionReason::Predictive));
        assert_eq!(d.peak_quantile_demand, Some(150.0));
        // Calibrated peaks: the arrival window's sets the scale-up, the whole window's bounds a
        // scale-down.
        let calibrated = |arrival: Option<f64>| PredictedDemand {
            calibrated_peak: Some(150.0),
            calibrated_arrival_peak: arrival,
            ..spike_before_arrival()
        };
        let up = decide(
            &input(0, Some(calibrated(Some(40.0))), Some(20.0), 3),
            &spec,
            &recent,
        );
        assert_eq!(up.desired_replicas, 4);
        assert!(
            up.message.contains("new pods would be ready (120s)"),
            "{}",
            up.message
        );
        let held = decide(
            &input(0, Some(calibrated(Some(40.0))), Some(20.0), 30),
            &spec,
            &recent,
        );
        assert_eq!(held.desired_replicas, 15);
        // Too few arrival windows calibrated yet: the whole window's peak, as a scale-up too.
        let whole = decide(&input(0, Some(calibrated(None)), Some(20.0), 10), &spec, &recent);
        assert_eq!(whole.desired_replicas, 15);
    }

    #[test]
    fn predictive_never_scales_down_right_before_a_spike() {
        // Demand is low now and at the lead time, but a spike comes in between: keep the replicas.
        let mut spec = spec();
        spec.behavior.scale_down.stabilization_window = Duration::ZERO;
        let recent = RecentRecommendations::new();
        let forecast = PredictedDemand::exact(0, 30, vec![20.0, 20.0, 150.0, 20.0, 20.0, 20.0]);
        let d = decide(&input(0, Some(forecast), Some(20.0), 15), &spec, &recent);
        assert_eq!(d.desired_replicas, 15);
    }

    #[test]
    fn reactive_floor_wins_when_demand_exceeds_the_forecast_and_tolerance_is_only_reactive() {
        let spec = spec();
        let recent = RecentRecommendations::new();
        let forecast = PredictedDemand::exact(0, 60, vec![50.0; 5]);
        let d = decide(&input(0, Some(forecast), Some(150.0), 10), &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (15, DecisionReason::ReactiveFloor)
        );
        // Forecast 5 % above current capacity: the predictive target still scales (no tolerance).
        let up = PredictedDemand::exact(0, 60, vec![105.0; 5]);
        let d = decide(&input(0, Some(up), Some(100.0), 10), &spec, &recent);
        assert_eq!(d.desired_replicas, 11);
        // Observed 5 % above: within tolerance, the reactive path alone keeps 10 ...
        let d = decide(&input(0, None, Some(105.0), 10), &spec, &recent);
        assert_eq!(d.desired_replicas, 10);
        // ... but under a forecast the floor answers it (10 % overload is not tolerated under a forecast).
        let low = PredictedDemand::exact(0, 60, vec![50.0; 5]);
        let d = decide(&input(0, Some(low), Some(105.0), 10), &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (11, DecisionReason::ReactiveFloor)
        );
    }

    #[test]
    fn the_calibrated_rise_raises_the_floor_without_a_forecast_only() {
        let spec = spec();
        let recent = RecentRecommendations::new();
        let with_rise = |forecast: Option<PredictedDemand>, observed: Option<f64>, peak: f64| PolicyInput {
            persistence_peak: Some(peak),
            ..input(0, forecast, observed, 10)
        };
        // 100 observed at 10 per replica: 10 by the HPA rule, 13 with a calibrated peak of 125.
        let d = decide(&with_rise(None, Some(100.0), 125.0), &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (13, DecisionReason::ReactiveFloor)
        );
        assert!(d.message.contains("calibrated"), "{}", d.message);
        // Never below the HPA rule: a peak under the observed demand changes nothing.
        let d = decide(&with_rise(None, Some(150.0), 90.0), &spec, &recent);
        assert_eq!(d.reactive_replicas, Some(15));
        // With a forecast, the forecast's own calibrated peak decides; the rise is ignored.
        let forecast = PredictedDemand::exact(0, 60, vec![100.0; 5]);
        let d = decide(&with_rise(Some(forecast), Some(100.0), 300.0), &spec, &recent);
        assert_eq!(d.desired_replicas, 10);
        // Stale data: held, whatever the rise says.
        let mut stale = with_rise(None, Some(100.0), 300.0);
        stale.stale = true;
        let d = decide(&stale, &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (10, DecisionReason::HeldOnStaleData)
        );
    }

    #[test]
    fn stale_or_missing_data_never_lowers_replicas() {
        let mut spec = spec();
        spec.behavior.scale_down.stabilization_window = Duration::ZERO;
        let recent = RecentRecommendations::new();
        let low = PredictedDemand::exact(0, 60, vec![10.0; 5]);
        let mut stale = input(0, Some(low.clone()), Some(10.0), 8);
        stale.stale = true;
        let d = decide(&stale, &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (8, DecisionReason::HeldOnStaleData)
        );
        let d = decide(&input(0, Some(low), None, 8), &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (8, DecisionReason::HeldOnStaleData)
        );
        let d = decide(&input(0, None, None, 8), &spec, &recent);
        assert_eq!(
            (d.desired_replicas, d.reason),
            (8, DecisionReason::HeldOnStaleData)
        );
        // A forecast above current still scales up when the observation is missing.
        let high = PredictedDemand::exact(0, 60, vec![200.0; 5]);
        let d = decide(&input(0, Some(high), None, 8), &spec, &recent);
        assert_eq!(d.desired_replicas, 16);
    }

    #[test]
    fn min_and_max_bound_the_recommendation() {
        let mut spec = spec();
        spec.min_replicas = 3;
        spec.max_replicas = 12;
        let recent = RecentRecommendations::new();
        let d = decide(&input(0, None, Some(1.0), 3), &spec, &recent);
        assert_eq!((d.desired_replicas, d.reason), (3, DecisionReason::MinReplicas));
        let d = decide(&input(0, None, Some(1000.0), 10), &spec, &recent);
        assert_eq!((d.desired_replicas, d.reason), (12, DecisionReason::MaxReplicas));
    }

    #[test]
    fn recent_recommendations_are_pruned_by_time() {
        let spec = spec();
        let mut recent = RecentRecommendations::new();
        for now in (0..3600).step_by(15) {
            let d = decide(&input(now, None, Some(100.0), 10), &spec, &recent);
            recent.record(now, &d, 10, true, &spec.behavior);
        }
        assert!(
            recent.recommendations().count() <= 21,
            "only the 300 s window is kept"
        );
    }
}
