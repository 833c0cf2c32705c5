//! How far the replays have got, for progress output: simulated seconds, added to by the replay loop
//! ([`super::simulate_with`]) and read by whoever shows progress, on another thread.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// A shared count of simulated seconds replayed (every policy's replay adds its own).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn add(&self, simulated_seconds: u64) {
        self.0.fetch_add(simulated_seconds, Ordering::Relaxed);
    }

    pub fn simulated_seconds(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Two settings are equal when they report to the same count.
impl PartialEq for Progress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
