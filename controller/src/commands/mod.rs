//! One module per `prescient` subcommand: each defines its clap `Args` and an async `run`.
//! `main.rs` only wires them.

pub mod backtest;
pub mod crd;
pub mod demo;
pub mod forecast;
pub mod local;
pub mod run;
pub mod simulate;
