//! # prescient
//!
//! A predictive autoscaler for Kubernetes: it forecasts a workload's demand from its Prometheus history
//! and scales it *before* a spike arrives, never below what current load needs.
//!
//! ## The decision path, top-down
//!
//! 1. **fetch history** (IO) — [`edges::MetricsSource`]: Prometheus ([`edges::prometheus`]) or a trace
//!    file ([`edges::trace`]); [`reconcile`] keeps each autoscaler's history in memory and fetches only
//!    new points.
//! 2. **validate** (pure) — [`spec::ScalingSpec::from_resource`] ([`spec::resource`]) turns the custom
//!    resource ([`crd`]) into the core's typed values, or a condition.
//! 3. **forecast** (pure) — [`core`] refits `prescient_model` at the refit interval and forecasts every
//!    sync; [`core::peak`] turns the forecast into the peak demand of the decision window to provision
//!    for, calibrated online on the windows already lived through (the quantile, or an SLO target).
//! 4. **decide** (pure) — [`policy::decide`]: clamp(max(predictive, reactive), min, max), then HPA-style
//!    behavior; missing or stale data never scales down.
//! 5. **scale** (IO) — [`edges::ScaleTarget`]: Kubernetes `/scale` ([`edges::kubernetes`]), the simulated
//!    cluster ([`edges::sim`]), or local processes ([`edges::process_pool`]).
//! 6. **status** — [`status::status_from_report`] (pure) turns the sync's report into conditions and
//!    reasons, the same for every caller; the operator ([`operator`]) writes it to the CR with events
//!    (IO); the [`dashboard`] reads a store the loop writes.
//!
//! The simulator ([`sim`]), the demo and the operator share steps 2–4 ([`core`]) and the loop
//! ([`reconcile`]); only the adapters differ.
//!
//! ## Where things live
//!
//! - **The pure core** — [`core`] (with its value types: [`core::ReplicaState`], the rate-limit kinds),
//!   [`policy`], [`sim`] and [`spec`]'s validated types: no IO, no clock, no Kubernetes, CRD or edge
//!   type (`tests/architecture.rs` keeps it so).
//! - **The IO edges** — [`edges`]: the small traits and every implementation of them, and the
//!   processes of a local run ([`edges::local`]).
//! - **Between them** — [`crd`] (the custom resource's schema), [`reconcile`] (the loop), [`status`],
//!   [`operator`], [`dashboard`], [`metrics`], [`telemetry`], [`duration`].
//! - **The CLI** — [`commands`]: one module per subcommand, each parsing its flags and wiring the parts
//!   above; `main.rs` only dispatches.

pub mod commands;
pub mod core;
pub mod crd;
pub mod dashboard;
pub mod duration;
pub mod edges;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod reconcile;
pub mod sim;
pub mod spec;
pub mod status;
pub mod telemetry;
