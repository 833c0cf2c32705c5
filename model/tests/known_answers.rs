//! Known answers: a sine with noise (its season found, errors near the noise level), a linear trend
//! (followed, not flattened), a weekly pattern (found, and beaten against seasonal naive), and bands
//! that cover about what they claim.

#![allow(clippy::unwrap_used)]

use prescient_model::{
    BacktestOptions, FitOptions, ModelChoice, ModelKind, TimeSeries, backtest, detect_seasons, fit,
};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};

fn gaussian(n: usize, sd: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, sd).unwrap();
    (0..n).map(|_| normal.sample(&mut rng)).collect()
}

fn mae(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// Daily sine at a 5-minute step: 10 days of history, noise sd 2.
fn daily_sine(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 100.0 + 40.0 * (std::f64::consts::TAU * i as f64 / 288.0).sin())
        .collect()
}

#[test]
fn sine_with_noise_season_found_and_error_near_noise() {
    let n = 288 * 10;
    let horizon = 24;
    let truth = daily_sine(n + horizon);
    let noise = gaussian(n + horizon, 2.0, 7);
    let observed: Vec<f64> = truth.iter().zip(&noise).map(|(t, e)| t + e).collect();
    let history = TimeSeries::from_values(0, 300, observed[..n].to_vec()).unwrap();
    assert_eq!(detect_seasons(&history), vec![288]);
    let fitted = fit(
        &history,
        &FitOptions {
            horizon_steps: horizon,
            model: ModelChoice::Auto,
            folds: 10,
        },
    )
    .unwrap();
    assert_eq!(fitted.season_steps(), &[288]);
    let forecast = fitted.predict(&history, horizon).unwrap();
    // Against the noiseless truth, the error is a fraction of the noise (sd 2, MAE of noise ~1.6).
    let error = mae(&forecast.mean, &truth[n..]);
    assert!(
        error < 1.6,
        "MAE against truth {error}, model {}",
        fitted.model_name()
    );
    let report = backtest(
        &history,
        &BacktestOptions {
            horizon_steps: horizon,
            folds: 20,
            level: 0.9,
        },
    )
    .unwrap();
    assert!(
        report.auto.mae < 2.2,
        "backtest MAE {} (noise MAE ~1.6)",
        report.auto.mae
    );
    let snaive = report
        .models
        .iter()
        .find(|m| m.model == "seasonal_naive")
        .unwrap();
    assert!(
        report.auto.mase < snaive.mase,
        "auto {} vs seasonal naive {}",
        report.auto.mase,
        snaive.mase
    );
    assert!(
        (0.8..=0.98).contains(&report.auto.coverage),
        "coverage {}",
        report.auto.coverage
    );
}

#[test]
fn linear_trend_is_followed() {
    let n = 1500;
    let horizon = 20;
    let noise = gaussian(n, 0.2, 11);
    let values: Vec<f64> = (0..n).map(|i| 10.0 + 0.5 * i as f64 + noise[i]).collect();
    let history = TimeSeries::from_values(0, 60, values).unwrap();
    assert!(detect_seasons(&history).is_empty());
    for choice in [
        ModelChoice::Auto,
        ModelChoice::Named(ModelKind::HoltWinters),
        ModelChoice::Named(ModelKind::Linear),
    ] {
        let fitted = fit(
            &history,
            &FitOptions {
                horizon_steps: horizon,
                model: choice,
                folds: 10,
            },
        )
        .unwrap();
        let forecast = fitted.predict(&history, horizon).unwrap();
        let truth: Vec<f64> = (n..n + horizon).map(|i| 10.0 + 0.5 * i as f64).collect();
        let error = mae(&forecast.mean, &truth);
        // Naive is off by 0.5 * 10.5 = 5.25 on average; a damped trend (phi <= 0.98) gives up a little.
        assert!(error < 0.3 * 5.25, "{choice:?}: MAE {error}");
    }
}

#[test]
fn weekly_pattern_found_and_beaten() {
    // Hourly demand, 6 weeks: a daily cycle and quieter weekends.
    let n = 24 * 7 * 6;
    let noise = gaussian(n, 3.0, 5);
    let values: Vec<f64> = (0..n)
        .map(|i| {
            let weekend = if (i / 24) % 7 >= 5 { 0.5 } else { 1.0 };
            weekend * (100.0 + 50.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin()) + noise[i]
        })
        .collect();
    let history = TimeSeries::from_values(0, 3600, values).unwrap();
    let seasons = detect_seasons(&history);
    assert!(seasons.contains(&24) && seasons.contains(&168), "{seasons:?}");
    let report = backtest(
        &history,
        &BacktestOptions {
            horizon_steps: 6,
            folds: 20,
            level: 0.9,
        },
    )
    .unwrap();
    let snaive = report
        .models
        .iter()
        .find(|m| m.model == "seasonal_naive")
        .unwrap();
    assert!(
        report.auto.mase < snaive.mase,
        "auto {} vs seasonal naive {}",
        report.auto.mase,
        snaive.mase
    );
    let mstl = report.models.iter().find(|m| m.model == "mstl").unwrap();
    assert!(mstl.mae < 6.0, "mstl MAE {} with noise sd 3", mstl.mae);
}

#[test]
fn bands_cover_about_their_level_on_fresh_data() {
    let n = 3000;
    let horizon = 10;
    let noise = gaussian(n + 400, 5.0, 3);
    let values: Vec<f64> = noise.iter().map(|e| 50.0 + e).collect();
    let (mut inside, mut total) = (0, 0);
    // Forecast from several later origins with the same fitted model.
    let history = TimeSeries::from_values(0, 60, values[..n].to_vec()).unwrap();
    let fitted = fit(
        &history,
        &FitOptions {
            horizon_steps: horizon,
            model: ModelChoice::Auto,
            folds: 10,
        },
    )
    .unwrap();
    for origin in (n..n + 390).step_by(horizon) {
        let seen = TimeSeries::from_values(0, 60, values[..origin].to_vec()).unwrap();
        let (lower, upper) = fitted.predict(&seen, horizon).unwrap().band(0.9);
        for k in 0..horizon {
            let actual = values[origin + k];
            inside += usize::from(actual >= lower[k] && actual <= upper[k]);
            total += 1;
        }
    }
    let coverage = inside as f64 / total as f64;
    assert!((0.82..=0.97).contains(&coverage), "coverage {coverage}");
}

/// The last `points` values of a shipped trace (its `value` column) on a regular grid of `step` seconds.
fn shipped_tail(name: &str, step: i64, points: usize) -> TimeSeries {
    let path = format!("{}/../data/traces/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let values: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|line| {
            line.rsplit(',')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap_or(f64::NAN)
        })
        .collect();
    TimeSeries::from_values(0, step, values[values.len() - points..].to_vec()).unwrap()
}

#[test]
fn three_days_of_real_traffic_give_the_daily_cycle_alone() {
    // On three days the general search reaches a day at most, and its strongest peak sits just short of
    // it: that is the daily cycle seen again, not a second season.
    assert_eq!(
        detect_seasons(&shipped_tail("nasa-http-jul1995-1min.csv", 60, 3 * 1440)),
        vec![1440]
    );
    assert_eq!(
        detect_seasons(&shipped_tail("nab-twitter-amzn-5min.csv", 300, 3 * 288)),
        vec![288]
    );
}

/// Forecast of `model` fitted on `history` for `horizon` steps (60 folds), applied to `newer`.
fn forecast_with(model: ModelChoice, history: &[f64], newer: &[f64], step: i64, horizon: usize) -> Vec<f64> {
    let fitted = fit(
        &TimeSeries::from_values(0, step, history.to_vec()).unwrap(),
        &FitOptions {
            horizon_steps: horizon,
            model,
            folds: 60,
        },
    )
    .unwrap();
    fitted
        .predict(
            &TimeSeries::from_values(0, step, newer.to_vec()).unwrap(),
            horizon,
        )
        .unwrap()
        .mean
}

#[test]
fn an_outage_to_zero_does_not_drag_the_forecast_down_after_demand_returns() {
    // Ten days of a daily cycle at 5 minutes; demand dropped to zero for two hours (a scrape failure or an
    // outage) ending half an hour before the end, and for two hours a day earlier at the forecast's phase.
    let (n, horizon) = (288 * 10, 24);
    let truth = daily_sine(n + horizon);
    let noise = gaussian(n + horizon, 2.0, 11);
    let mut observed: Vec<f64> = truth.iter().zip(&noise).map(|(t, e)| t + e).collect();
    for v in &mut observed[n - 30..n - 6] {
        *v = 0.0;
    }
    for v in &mut observed[n - 288..n - 288 + horizon] {
        *v = 0.0;
    }
    let history = &observed[..n];
    for model in [
        ModelChoice::Auto,
        ModelChoice::Named(ModelKind::SeasonalNaive),
        ModelChoice::Named(ModelKind::HoltWinters),
        ModelChoice::Named(ModelKind::Mstl),
        ModelChoice::Named(ModelKind::Linear),
    ] {
        let forecast = forecast_with(model, history, history, 300, horizon);
        let error = mae(&forecast, &truth[n..]);
        // The noise alone gives a MAE of about 1.6; a forecast dragged towards zero is off by tens.
        assert!(
            error < 6.0,
            "{model:?}: MAE {error} against the truth, forecast {forecast:?}"
        );
    }
}

#[test]
fn a_level_shift_is_followed_within_a_few_steps() {
    // Steady demand around 100 that doubles: a model fitted before the shift, applied to the history four
    // steps after it, forecasts the new level (not the old one, nor a slow crawl towards the new one).
    let (n, horizon) = (2000, 6);
    let noise = gaussian(n + 4, 3.0, 12);
    let values: Vec<f64> = (0..n + 4)
        .map(|i| if i < n { 100.0 } else { 200.0 } + noise[i])
        .collect();
    for model in [
        ModelChoice::Auto,
        ModelChoice::Named(ModelKind::HoltWinters),
        ModelChoice::Named(ModelKind::Mstl),
    ] {
        let forecast = forecast_with(model, &values[..n], &values, 60, horizon);
        assert!(
            forecast.iter().all(|f| (f - 200.0).abs() < 15.0),
            "{model:?}: forecast {forecast:?} after a shift from 100 to 200"
        );
    }
}

#[test]
fn a_short_burst_does_not_move_the_level() {
    // Two steps at ten times the level (a retry storm, a bot) are outliers: the level stays where it was.
    let (n, horizon) = (2000, 6);
    let noise = gaussian(n, 3.0, 13);
    let mut values: Vec<f64> = noise.iter().map(|e| 100.0 + e).collect();
    values[n - 3] = 1000.0;
    values[n - 2] = 1000.0;
    let forecast = forecast_with(
        ModelChoice::Named(ModelKind::HoltWinters),
        &values[..n - 10],
        &values,
        60,
        horizon,
    );
    assert!(
        forecast.iter().all(|f| (f - 100.0).abs() < 20.0),
        "forecast {forecast:?} after a two-step burst"
    );
}
