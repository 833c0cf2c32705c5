//! The value types the pure core owns: the replicas a decision starts from and the kinds of the
//! HPA-style rate limits. The custom resource ([`crate::crd`]) has its own serialisable twins of the
//! enums; [`crate::spec`] maps them onto these, so the decision never depends on the CRD's schema.

/// Replicas of a target: what its spec asks for and how many are ready to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaState {
    /// `spec.replicas` (provisioned: ready or still starting).
    pub desired: u32,
    /// Ready replicas (serving).
    pub ready: u32,
}

/// What a rate-limit policy's `value` counts: pods, or percent of the replicas at the period's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// Which of a direction's rate-limit policies applies: the one allowing the largest change, the
/// smallest, or none (scaling in that direction is disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}
