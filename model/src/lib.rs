#![doc = include_str!("../README.md")]

mod api;
mod calibration;
pub mod models;
mod optimize;
mod seasons;
mod select;
mod series;

pub use api::*;
pub use calibration::Calibration;
pub use models::Forecaster;
pub use seasons::detect_seasons;
pub use select::{MIN_FOLDS, backtest, fit, pinball};
pub use series::{MAX_INTERPOLATED_GAP, MAX_POINTS};
