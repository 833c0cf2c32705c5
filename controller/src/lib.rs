//! # prescient
//!
//! A predictive autoscaler for Kubernetes: it forecasts a workload's demand from its Prometheus history
//! and scales it *before* a spike arrives, never below what current load needs.
//!
//! ## The decision path, top-down
//!
//! 1. **fetch history** (IO) — [`edges::MetricsSource`]: Prometheus ([`prometheus`]) or a trace file
//!    ([`trace`]); [`reconcile`] keeps each autoscaler's history in memory and fetches only new points.
//! 2. **validate** (pure) — [`spec::ScalingSpec::from_resource`] turns the custom resource ([`crd`]) into
//!    typed values or a condition.
//! 3. **forecast** (pure) — [`core`] refits `prescient_model` at the refit interval and forecasts every
//!    sync.
//! 4. **decide** (pure) — [`policy::decide`]: clamp(max(predictive, reactive), min, max), then HPA-style
//!    behavior; missing or stale data never scales down.
//! 5. **scale** (IO) — [`edges::ScaleTarget`]: Kubernetes `/scale` ([`kubernetes`]), the simulated
//!    cluster ([`sim`]), or local processes ([`process_pool`]).
//! 6. **status** (IO) — the operator ([`operator`]) writes the CR status and events; the [`dashboard`]
//!    reads a store the loop writes.
//!
//! The simulator ([`sim`]), the demo and the operator share steps 2–4 ([`core`]) and the loop
//! ([`reconcile`]); only the adapters differ.

pub mod commands;
pub mod core;
pub mod crd;
pub mod dashboard;
pub mod duration;
pub mod edges;
pub mod kubernetes;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod process_pool;
pub mod prometheus;
pub mod reconcile;
pub mod sim;
pub mod spec;
pub mod telemetry;
pub mod trace;
