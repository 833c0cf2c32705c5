//! Prescient's hand-written models and season detector beside grafana/augurs' (`augurs-ets` AutoETS,
//! `augurs-mstl` MSTL with an AutoETS trend, `augurs-seasons` periodogram detector) on the shipped traces,
//! on the protocol of `scripts/peer-bench`: the newest 8 origins of `backtest`'s grid (half a horizon
//! apart, the newest ending at the last point), every model refitted at every origin on the history up to
//! it, MASE on `backtest`'s scale (naive's MAE / MASE).
//!
//! `cargo run --release -p prescient-model --example augurs_compare`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use augurs_seasons::{Detector, PeriodogramDetector};
use prescient_model::{
    BacktestOptions, FitOptions, ModelChoice, ModelKind, TimeSeries, backtest, detect_seasons, fit,
};

const ORIGINS: usize = 8;

fn trace_values(name: &str) -> Vec<f64> {
    let path = format!("{}/../data/traces/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("shipped trace is readable");
    text.lines()
        .skip(1)
        .map(|line| {
            line.rsplit(',')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// Missing values carried forward (augurs takes no NaN).
fn filled(x: &[f64]) -> Vec<f64> {
    let mut last = x.iter().copied().find(|v| v.is_finite()).unwrap_or(0.0);
    x.iter()
        .map(|&v| {
            if v.is_finite() {
                last = v;
            }
            last
        })
        .collect()
}

#[derive(Default)]
struct Score {
    abs: f64,
    count: usize,
    seconds: f64,
}

impl Score {
    fn add(&mut self, forecast: &[f64], actual: &[f64], seconds: f64) {
        for (f, a) in forecast.iter().zip(actual) {
            if a.is_finite() {
                self.abs += (a - f.max(0.0)).abs();
                self.count += 1;
            }
        }
        self.seconds += seconds;
    }
}

fn main() {
    let cases: [(&str, i64, [usize; 2]); 6] = [
        ("nasa-http-jul1995-1min.csv", 60, [15, 60]),
        ("wc98-1min.csv", 60, [15, 60]),
        ("nab-twitter-amzn-5min.csv", 300, [3, 12]),
        ("nab-elb-requests-5min.csv", 300, [3, 12]),
        ("nab-nyc-taxi-30min.csv", 1800, [1, 4]),
        ("azure-llm-conv-2023-1s.csv", 1, [60, 300]),
    ];
    println!("| trace | prescient seasons | s | augurs-seasons periods | s |");
    println!("| --- | --- | ---: | --- | ---: |");
    for (name, step, _) in cases {
        let values = trace_values(name);
        let series = TimeSeries::from_values(0, step, values.clone()).unwrap();
        let started = Instant::now();
        let ours = detect_seasons(&series);
        let ours_s = started.elapsed().as_secs_f64();
        let recent = filled(&values[values.len().saturating_sub(80_640)..]);
        let started = Instant::now();
        let theirs = PeriodogramDetector::default().detect(&recent);
        let theirs_s = started.elapsed().as_secs_f64();
        println!("| {name} | {ours:?} | {ours_s:.4} | {theirs:?} | {theirs_s:.4} |");
    }
    println!();
    println!(
        "| trace | h | prescient holt_winters | prescient mstl | prescient auto | augurs AutoETS | augurs MSTL(day)+AutoETS | s/fit hw, mstl, auto, ets, augurs mstl |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (name, step, horizons) in cases {
        let values = trace_values(name);
        let all = TimeSeries::from_values(0, step, values.clone()).unwrap();
        let day = usize::try_from(86_400 / step).unwrap();
        for h in horizons {
            let report = backtest(
                &all,
                &BacktestOptions {
                    horizon_steps: h,
                    folds: 20,
                    level: 0.9,
                },
            )
            .unwrap();
            let naive = report.models.iter().find(|m| m.model == "naive").unwrap();
            let scale = naive.mae / naive.mase;
            let n = values.len();
            let stride = h.div_ceil(2);
            let window = 2000.max(4 * h).max(3 * day);
            let mut scores: Vec<Score> = (0..5).map(|_| Score::default()).collect();
            for j in 0..ORIGINS {
                let origin = n - 1 - h - j * stride;
                let actual = &values[origin + 1..origin + 1 + h];
                let history = TimeSeries::from_values(0, step, values[..=origin].to_vec()).unwrap();
                for (i, choice) in [
                    ModelChoice::Named(ModelKind::HoltWinters),
                    ModelChoice::Named(ModelKind::Mstl),
                    ModelChoice::Auto,
                ]
                .into_iter()
                .enumerate()
                {
                    let started = Instant::now();
                    let fitted = fit(
                        &history,
                        &FitOptions {
                            horizon_steps: h,
                            model: choice,
                            folds: 60,
                        },
                    )
                    .unwrap();
                    let forecast = fitted.predict(&history, h).unwrap();
                    scores[i].add(&forecast.mean, actual, started.elapsed().as_secs_f64());
                }
                let y = filled(&values[(origin + 1).saturating_sub(window)..=origin]);
                let started = Instant::now();
                let ets = AutoETS::non_seasonal().fit(&y).unwrap().predict(h, None).unwrap();
                scores[3].add(&ets.point, actual, started.elapsed().as_secs_f64());
                let started = Instant::now();
                let point = if y.len() >= 2 * day && day >= 2 {
                    let model = MSTLModel::new(vec![day], AutoETS::non_seasonal().into_trend_model());
                    model.fit(&y).unwrap().predict(h, None).unwrap().point
                } else {
                    AutoETS::non_seasonal()
                        .fit(&y)
                        .unwrap()
                        .predict(h, None)
                        .unwrap()
                        .point
                };
                scores[4].add(&point, actual, started.elapsed().as_secs_f64());
            }
            let mase: Vec<String> = scores
                .iter()
                .map(|s| format!("{:.3}", s.abs / s.count as f64 / scale))
                .collect();
            let secs: Vec<String> = scores
                .iter()
                .map(|s| format!("{:.3}", s.seconds / ORIGINS as f64))
                .collect();
            println!("| {name} | {h} | {} | {} |", mase.join(" | "), secs.join(", "));
        }
    }
}
