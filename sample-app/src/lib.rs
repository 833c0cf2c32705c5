#![doc = include_str!("../README.md")]

pub mod loadgen;
pub mod server;
pub mod trace;
