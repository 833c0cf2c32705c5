//! Leader election a replica can vouch for. kube-lease-manager acquires and renews the Lease; this edge
//! decides when the replica *leads*: only while the Lease names it and it has seen its own renewal in
//! the last [`RENEW_DEADLINE`] — client-go's renew deadline, shorter than the Lease.
//!
//! Why not kube-lease-manager's own signal alone: while it cannot reach the API server it keeps saying
//! "leader" (it backs off for up to 30 s and changes its mind only when it next reads the Lease). Met on
//! a real API server killed for 25 s: the leader led through the outage, though its Lease had expired at
//! second 15, and after the restart it and a standby both led at once (2 of 36 half-second samples) —
//! two replicas scaling the same workloads. Now it stops within [`RENEW_DEADLINE`] of its last renewal,
//! before the Lease expires for the others, and leads again once it has renewed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// How long the Lease holds without renewal before another replica may take it (seconds).
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The Lease is renewed when this much of it is left (seconds): every 5 s, so that one failed renewal
/// is retried well within [`RENEW_DEADLINE`].
pub const LEASE_GRACE_SECONDS: u64 = 10;
/// A leader that has not seen its own renewal for this long stops leading: with the Lease read back
/// every [`POLL`], it stops at most 11 s after its last renewal, and with [`STOP_GRACE`] for running
/// reconciles, within the 15 s after which another replica may take the Lease.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Time running reconciles get to finish once leadership ends, before the controller is aborted.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often the Lease is read back, and a failed read or renewal retried.
pub const POLL: Duration = Duration::from_secs(1);

// The deadline, the read lag and the stop grace fit in the Lease; one failed renewal does not end
// leadership.
const _: () =
    assert!(RENEW_DEADLINE.as_secs() + POLL.as_secs() + STOP_GRACE.as_secs() <= LEASE_DURATION_SECONDS);
const _: () = assert!(2 * (LEASE_DURATION_SECONDS - LEASE_GRACE_SECONDS) <= RENEW_DEADLINE.as_secs());

/// The last renewal of its own Lease this replica has seen, and when it saw it (its own clock, so that
/// no clock skew between replicas and the API server enters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenewalSeen {
    renew_time: Option<MicroTime>,
    seen_at: Option<Instant>,
}

impl RenewalSeen {
    /// A successful read of the Lease at `now`: who holds it, and its `renewTime`.
    pub fn observe(&mut self, now: Instant, held_by_us: bool, renew_time: Option<MicroTime>) {
        if !held_by_us {
            *self = Self::default();
        } else if renew_time.is_some() && renew_time != self.renew_time {
            self.renew_time = renew_time;
            self.seen_at = Some(now);
        }
    }

    /// Whether this replica can still vouch at `now` that it holds the Lease.
    pub fn holds(&self, now: Instant) -> bool {
        self.seen_at
            .is_some_and(|at| now.saturating_duration_since(at) < RENEW_DEADLINE)
    }
}

/// The Lease an operator replica competes for, and who it is.
pub struct LeaseSettings {
    pub client: Client,
    pub namespace: String,
    pub name: String,
    pub identity: String,
}

impl LeaseSettings {
    /// A kube-lease-manager for this Lease, with this module's timings.
    fn manager(&self) -> LeaseManagerBuilder {
        LeaseManagerBuilder::new(self.client.clone(), &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .with_field_manager(format!("prescient-{}", self.identity))
    }
}

/// Runs the election until `stop` is cancelled, then releases the Lease. Returns whether this replica
/// leads (kube-lease-manager says it holds the Lease, and it has seen its renewal within the deadline)
/// and the election task; fails if the first Lease manager cannot be set up.
///
/// Two things kube-lease-manager 0.13 does not do, done here:
/// - a failed renewal is retried every [`POLL`], not after its back-off of up to 30 s, so that
///   leadership comes back soon after the API server does;
/// - a standby sleeps until the holder's Lease would expire and never reads it meanwhile, so a Lease
///   released by a leader shutting down (a rollout of the operator) was taken only when it would have
///   expired, 15 s later (measured: 14.1 s). Its state cannot be refreshed from outside, so when the
///   Lease is seen free and this replica does not lead, its manager is replaced by a new one, which
///   reads the Lease and takes it.
pub async fn elect(
    settings: LeaseSettings,
    stop: CancellationToken,
) -> kube_lease_manager::Result<(watch::Receiver<bool>, JoinHandle<()>)> {
    let manager = settings.manager().build().await?;
    let leases: Api<Lease> = Api::namespaced(settings.client.clone(), &settings.namespace);
    let (leads_tx, leads) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut manager = Arc::new(manager);
        // One `changed()` runs across the loop's turns: cancelled, it would never reach the renewal it
        // sleeps towards.
        let next = |manager: &Arc<LeaseManager>,
                    after: Option<Duration>|
         -> BoxFuture<'static, kube_lease_manager::Result<bool>> {
            let manager = Arc::clone(manager);
            Box::pin(async move {
                if let Some(delay) = after {
                    tokio::time::sleep(delay).await;
                }
                manager.changed().await
            })
        };
        let mut changed = next(&manager, None);
        let mut holds_per_manager = false;
        let mut failing = false;
        let mut seen = RenewalSeen::default();
        // The first read after one period: at once, it would find the Lease not yet taken by the manager
        // just built, and build another.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                result = &mut changed => {
                    changed = match result {
                        Ok(holds) => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("leader Lease: reachable again");
                            }
                            if holds && !holds_per_manager {
                                // Just taken: read it back now rather than up to a period later, so a
                                // handover does not wait for the next read to confirm the renewal.
                                tick.reset_immediately();
                            }
                            holds_per_manager = holds;
                            next(&manager, None)
                        }
                        Err(error) => {
                            // Retried every second: a warning for the first failure, not for each.
                            if std::mem::replace(&mut failing, true) {
                                tracing::debug!(%error, "leader Lease: still failing");
                            } else {
                                tracing::warn!(%error, "leader Lease: cannot read or renew it; retrying every second");
                            }
                            next(&manager, Some(POLL))
                        }
                    };
                }
                _ = tick.tick() => {
                    // Bounded, so that a hung API server does not hold the deadline check.
                    match tokio::time::timeout(POLL, leases.get_opt(&settings.name)).await {
                        Ok(Ok(lease)) => {
                            let spec = lease.and_then(|l| l.spec);
                            let holder = spec.as_ref().and_then(|s| s.holder_identity.clone());
                            let renewed = spec.and_then(|s| s.renew_time);
                            seen.observe(Instant::now(), holder.as_deref() == Some(settings.identity.as_str()), renewed);
                            if holder.is_none() && !*leads_tx.borrow() {
                                match tokio::time::timeout(POLL, settings.manager().build()).await {
                                    Ok(Ok(fresh)) => {
                                        tracing::debug!("leader Lease is free; taking it with a fresh manager");
                                        manager = Arc::new(fresh);
                                        holds_per_manager = false;
                                        changed = next(&manager, None);
                                    }
                                    Ok(Err(error)) => tracing::debug!(%error, "a fresh Lease manager"),
                                    Err(_) => tracing::debug!("a fresh Lease manager timed out"),
                                }
                            }
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "reading the leader Lease"),
                        Err(_) => tracing::debug!("reading the leader Lease timed out"),
                    }
                }
            }
            let leads_now = holds_per_manager && seen.holds(Instant::now());
            leads_tx.send_if_modified(|leads| {
                if *leads != leads_now {
                    if !leads_now && *leads {
                        tracing::warn!(deadline = ?RENEW_DEADLINE, "leader Lease lost (not renewed within the deadline, taken over or deleted); leading stops");
                    }
                    *leads = leads_now;
                    true
                } else {
                    false
                }
            });
        }
        drop(changed);
        leads_tx.send_replace(false);
        match tokio::time::timeout(Duration::from_secs(5), manager.release()).await {
            Ok(Ok(())) => tracing::info!("released the leader Lease"),
            Ok(Err(error)) => tracing::warn!(%error, "releasing the leader Lease failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out"),
        }
    });
    Ok((leads, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<MicroTime> {
        Some(MicroTime(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + seconds).unwrap_or_default(),
        ))
    }

    #[test]
    fn leads_only_within_the_deadline_of_a_renewal_it_has_seen_and_while_it_holds_the_lease() {
        let start = Instant::now();
        let after = |s: u64| start + Duration::from_secs(s);
        let mut seen = RenewalSeen::default();
        assert!(!seen.holds(start), "nothing seen yet");
        seen.observe(after(0), true, at(0));
        assert!(seen.holds(after(9)));
        // Read again with the same renewTime: no renewal since, the deadline still runs from second 0.
        seen.observe(after(9), true, at(0));
        assert!(!seen.holds(after(10)), "no renewal seen for the deadline: stops");
        // Unreachable API server: no read at all, the same.
        seen.observe(after(12), true, at(12));
        assert!(seen.holds(after(21)));
        assert!(!seen.holds(after(22)));
        // Taken over by another replica: at once, whatever the deadline.
        seen.observe(after(23), true, at(23));
        seen.observe(after(24), false, at(24));
        assert!(!seen.holds(after(24)));
        // Its own again, only from a renewal seen after that.
        seen.observe(after(30), true, at(30));
        assert!(seen.holds(after(30)));
    }
}
