//! The simulated edges of `prescient demo` (and of the tests that drive the real loop over a trace):
//! [`SimTarget`], the [`ScaleTarget`] over a [`SimCluster`] whose virtual time its owner advances, and
//! [`CompletedSteps`], a [`MetricsSource`] that sees a trace as Prometheus would at virtual `now`.

use std::sync::{Arc, Mutex};

use super::{MetricsError, MetricsSource, ScaleError, ScaleTarget, TargetRef, trace::TraceSource};
use crate::{core::ReplicaState, sim::SimCluster};

/// A simulated cluster shared between the demo loop (which advances its time) and the reconcile loop
/// (which scales it through [`ScaleTarget`]).
#[derive(Debug, Clone)]
pub struct SimTarget(pub Arc<Mutex<SimCluster>>);

impl SimTarget {
    pub fn new(cluster: SimCluster) -> Self {
        Self(Arc::new(Mutex::new(cluster)))
    }

    /// Runs `f` on the cluster; a poisoned lock still holds a consistent cluster (its methods don't panic
    /// half-way), so it is used as is.
    pub fn with<R>(&self, f: impl FnOnce(&mut SimCluster) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

impl ScaleTarget for SimTarget {
    async fn replicas(&self, _target: &TargetRef) -> Result<ReplicaState, ScaleError> {
        Ok(self.with(|c| c.replicas()))
    }

    async fn set_replicas(&self, _target: &TargetRef, replicas: u32) -> Result<(), ScaleError> {
        self.with(|c| {
            let now = c.now();
            c.set_desired(replicas, now);
        });
        Ok(())
    }
}

/// A trace seen as Prometheus would see it at virtual `now`: a step's count exists only once its
/// interval has ended, so the loop never reads the future.
#[derive(Debug, Clone)]
pub struct CompletedSteps {
    pub source: TraceSource,
    pub step_seconds: i64,
}

impl MetricsSource for CompletedSteps {
    async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        self.source
            .range(query, start, end - self.step_seconds, step)
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn completed_steps_never_returns_the_current_step() {
        let source = CompletedSteps {
            source: TraceSource::new(vec![(0, 1.0), (60, 2.0), (120, 3.0)]),
            step_seconds: 60,
        };
        let points = source.range("q", 0, 120, 60).await.unwrap();
        assert_eq!(points, vec![(0, 1.0), (60, 2.0)]);
    }
}
