//! One module per `prescient` subcommand: each defines its clap `Args` and an async `run` that parses
//! flags and wires parts together (adapters from [`crate::edges`], the core, the loop, the status
//! builder). No edge implementation or child process lives here (`tests/architecture.rs` checks it).
//! `main.rs` only wires them.

pub mod backtest;
pub mod crd;
pub mod demo;
pub mod forecast;
pub mod local;
pub mod run;
pub mod simulate;
