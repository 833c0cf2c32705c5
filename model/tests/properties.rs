//! Property tests: whatever the series (random, empty, constant, all missing, spiky, very short, with
//! NaN, infinities and negatives), no forecaster panics, a forecast never holds NaN or negative demand,
//! and when no forecast is possible the error is typed.

#![allow(clippy::unwrap_used)]

use prescient_model::{
    BacktestOptions, FitOptions, ModelChoice, ModelError, ModelKind, TimeSeries, backtest, detect_seasons,
    fit,
};
use proptest::prelude::*;

fn choices() -> Vec<ModelChoice> {
    let mut all: Vec<ModelChoice> = ModelKind::all().into_iter().map(ModelChoice::Named).collect();
    all.push(ModelChoice::Auto);
    all
}

/// A value generator mixing ordinary demand, spikes, zeros, missing values and garbage.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0..100.0f64,
        1 => 1e3..1e7f64,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => -50.0..0.0f64,
    ]
}

fn check_series(series: &TimeSeries, horizon: usize) {
    let _ = detect_seasons(series);
    for choice in choices() {
        let options = FitOptions {
            horizon_steps: horizon,
            model: choice,
            folds: 3,
        };
        match fit(series, &options) {
            Ok(fitted) => {
                let forecast = fitted.predict(series, horizon).unwrap();
                assert_eq!(forecast.len(), horizon);
                assert_eq!(forecast.start, series.end() + series.step_seconds());
                let (lower, upper) = forecast.band(0.9);
                for k in 0..horizon {
                    let m = forecast.mean[k];
                    assert!(m.is_finite() && m >= 0.0, "{choice:?}: mean {m} at step {k}");
                    assert!(lower[k].is_finite() && upper[k].is_finite() && lower[k] >= 0.0);
                    assert!(
                        lower[k] <= upper[k] + 1e-9,
                        "{choice:?}: band [{}, {}]",
                        lower[k],
                        upper[k]
                    );
                }
                // Forecasting further than fitted for is allowed and stays sane.
                let longer = fitted.predict(series, 2 * horizon + 3).unwrap();
                assert!(longer.quantile(0.99).iter().all(|v| v.is_finite() && *v >= 0.0));
            }
            Err(
                ModelError::InsufficientHistory { .. }
                | ModelError::AllMissing
                | ModelError::Numerical { .. },
            ) => {}
            Err(other) => panic!("{choice:?}: unexpected error {other}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_series_never_panic_or_emit_nan(values in prop::collection::vec(value(), 0..300), horizon in 1usize..12) {
        let series = TimeSeries::from_values(1_700_000_000, 60, values).unwrap();
        check_series(&series, horizon);
    }

    #[test]
    fn random_pairs_build_a_grid_or_a_typed_error(
        pairs in prop::collection::vec((0i64..100_000, value()), 0..200),
    ) {
        match TimeSeries::from_pairs(&pairs) {
            Ok(series) => {
                prop_assert!(series.step_seconds() > 0);
                prop_assert!(series.values().iter().all(|v| v.is_nan() || (v.is_finite() && *v >= 0.0)));
                check_series(&series, 3);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn spiky_series_forecast_finite(base in 0.0..50.0f64, spike_every in 5usize..50, horizon in 1usize..20) {
        let values: Vec<f64> = (0..400).map(|i| if i % spike_every == 0 { base * 100.0 + 1e4 } else { base }).collect();
        let series = TimeSeries::from_values(0, 300, values).unwrap();
        check_series(&series, horizon);
    }
}

#[test]
fn empty_constant_all_missing_and_short_series() {
    let empty = TimeSeries::from_values(0, 60, vec![]).unwrap();
    let constant = TimeSeries::from_values(0, 60, vec![7.0; 500]).unwrap();
    let missing = TimeSeries::from_values(0, 60, vec![f64::NAN; 500]).unwrap();
    let short = TimeSeries::from_values(0, 60, vec![1.0, 2.0, 3.0]).unwrap();
    for series in [&empty, &constant, &missing, &short] {
        check_series(series, 5);
    }
    let auto = FitOptions {
        horizon_steps: 5,
        model: ModelChoice::Auto,
        folds: 3,
    };
    assert!(matches!(
        fit(&empty, &auto),
        Err(ModelError::InsufficientHistory { have: 0, .. })
    ));
    assert_eq!(fit(&missing, &auto).unwrap_err(), ModelError::AllMissing);
    assert!(matches!(
        fit(&short, &auto),
        Err(ModelError::InsufficientHistory { have: 3, .. })
    ));
    let fitted = fit(&constant, &auto).unwrap();
    let forecast = fitted.predict(&constant, 5).unwrap();
    assert!(
        forecast.mean.iter().all(|v| (v - 7.0).abs() < 1e-6),
        "{:?}",
        forecast.mean
    );
    let options = BacktestOptions {
        horizon_steps: 5,
        folds: 3,
        level: 1.5,
    };
    assert!(matches!(
        backtest(&constant, &options),
        Err(ModelError::InvalidParameter(_))
    ));
    let zero = FitOptions {
        horizon_steps: 0,
        model: ModelChoice::Auto,
        folds: 3,
    };
    assert!(matches!(
        fit(&constant, &zero),
        Err(ModelError::InvalidParameter(_))
    ));
}

#[test]
fn predict_rejects_a_history_on_another_step() {
    let values: Vec<f64> = (0..500).map(|i| (i % 10) as f64).collect();
    let history = TimeSeries::from_values(0, 60, values.clone()).unwrap();
    let fitted = fit(
        &history,
        &FitOptions {
            horizon_steps: 5,
            model: ModelChoice::Auto,
            folds: 3,
        },
    )
    .unwrap();
    let other = TimeSeries::from_values(0, 30, values).unwrap();
    assert!(matches!(
        fitted.predict(&other, 5),
        Err(ModelError::InvalidParameter(_))
    ));
}
