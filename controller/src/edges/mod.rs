//! The IO edges: the small traits through which the reconcile loop reads demand and replicas and
//! writes replicas, and every implementation of them. The decision core never calls them itself: the
//! reconcile loop (operator, demo, local run) fetches through them, runs the pure core, and writes back
//! through them.
//!
//! - [`MetricsSource`]: Prometheus ([`prometheus`]), a trace file ([`trace`]), a trace seen at virtual
//!   time ([`sim::CompletedSteps`]).
//! - [`ScaleTarget`]: Kubernetes `/scale` ([`kubernetes`]), the simulated cluster ([`sim::SimTarget`]),
//!   the local process pool ([`process_pool`]).
//! - [`Clock`]: wall time ([`SystemClock`]) or virtual time ([`ManualClock`], used by the demo and tests).
//!
//! Beside them, [`local`] runs the other processes of `prescient local`: a real Prometheus (with its
//! history backfilled from a trace) and `loadgen`; [`leader`] says when the operator leads (the Lease).

pub mod kubernetes;
pub mod leader;
pub mod local;
pub mod process_pool;
pub mod progress;
pub mod prometheus;
pub mod sim;
pub mod trace;

use crate::core::ReplicaState;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

/// A workload to scale, namespaced (the simulated and process targets ignore the namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetRef {
    pub namespace: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// Why a metrics query failed; each maps to a condition reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics source unreachable: {0}")]
    Unavailable(String),
    #[error("metrics query timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("query rejected: {0}")]
    BadQuery(String),
    #[error("query returned no series: {0}")]
    Empty(String),
    #[error("query returned {0} series; the demand query must aggregate to one (wrap it in sum(...))")]
    MultipleSeries(usize),
}

/// Why reading or setting replicas failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleError {
    #[error("scale target {0} not found")]
    NotFound(String),
    #[error("scale target {0} has no /scale subresource")]
    NotScalable(String),
    /// The API server does not serve the kind (yet): a CRD not installed, or applied after the autoscaler.
    #[error(
        "scale target {0}: the API server does not serve this kind (is its CustomResourceDefinition installed?)"
    )]
    KindNotServed(String),
    #[error("conflicting update of {0}; re-read and retry")]
    Conflict(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("scale target error: {0}")]
    Other(String),
}

/// History of one query: `(unix seconds, value)` samples over `[start, end]` at `step_seconds`, each
/// value the demand over the step `[t, t + step)` that starts at its timestamp (a source whose samples
/// summarise the time before them, as Prometheus's do, answers the steps from `start` that have ended
/// by `end`, stamped a step before their sample).
pub trait MetricsSource: Send + Sync {
    fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_seconds: i64,
    ) -> impl Future<Output = Result<Vec<(i64, f64)>, MetricsError>> + Send;
}

/// Reads and sets the replicas of a workload.
pub trait ScaleTarget: Send + Sync {
    fn replicas(&self, target: &TargetRef) -> impl Future<Output = Result<ReplicaState, ScaleError>> + Send;
    fn set_replicas(
        &self,
        target: &TargetRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ScaleError>> + Send;
}

/// Unix time in seconds, real or virtual.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        jiff::Timestamp::now().as_second()
    }
}

/// Virtual time that its owner advances (the demo's accelerated clock, tests).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
