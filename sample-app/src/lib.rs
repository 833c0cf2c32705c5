#![doc = include_str!("../README.md")]

pub mod lifecycle;
pub mod loadgen;
pub mod server;
pub mod trace;
