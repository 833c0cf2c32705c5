//! `prescient backtest` and `prescient forecast` on the shipped traces: the acceptance bar of the
//! forecasting engine (auto beats seasonal naive; the 0.9 band covers 85–95 % of outcomes), the JSON
//! contracts, and clear errors on bad input.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, process::Command};

use serde_json::Value;

fn prescient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescient"))
}

fn trace(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/traces")
        .join(name)
}

/// Runs `prescient` with `args` and the trace, expects success and parses the JSON it prints.
fn run_json(args: &[&str], trace_name: &str) -> Value {
    let output = prescient()
        .args(args)
        .arg("--input")
        .arg(trace(trace_name))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} on {trace_name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn auto_beats_seasonal_naive_with_calibrated_bands_on_every_shipped_trace() {
    let cases = [
        ("azure-llm-conv-2023-1s.csv", "15m"),
        ("nab-elb-requests-5min.csv", "15m"),
        ("nab-elb-requests-5min.csv", "60m"),
        ("nab-nyc-taxi-30min.csv", "30m"),
        ("nab-nyc-taxi-30min.csv", "2h"),
        ("nab-twitter-amzn-5min.csv", "15m"),
        ("nab-twitter-amzn-5min.csv", "60m"),
        ("nasa-http-jul1995-1min.csv", "15m"),
        ("nasa-http-jul1995-1min.csv", "60m"),
        ("wc98-1min.csv", "15m"),
        ("wc98-1min.csv", "60m"),
    ];
    let mut failures = Vec::new();
    for (name, horizon) in cases {
        let report = run_json(&["backtest", "--json", "--horizon", horizon], name);
        let auto = &report["auto"];
        let seasonal_naive = report["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "seasonal_naive")
            .unwrap();
        let (mase, baseline) = (
            auto["mase"].as_f64().unwrap(),
            seasonal_naive["mase"].as_f64().unwrap(),
        );
        let coverage = auto["coverage"].as_f64().unwrap();
        if mase >= baseline || !(0.85..=0.95).contains(&coverage) {
            failures.push(format!(
                "{name} {horizon}: auto {} MASE {mase:.3} vs seasonal naive {baseline:.3}, coverage {coverage:.3}",
                auto["model"]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_horizon_longer_than_the_trace_supports_says_how_much_history_it_needs() {
    // The Azure trace is 58 minutes of 1-second steps: an hour ahead cannot be backtested on it.
    for command in ["backtest", "forecast"] {
        let output = prescient()
            .args([command, "--horizon", "60m", "--input"])
            .arg(trace("azure-llm-conv-2023-1s.csv"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("the history holds 58m23s (3503 usable points)")
                && stderr.contains("needs at least"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn forecast_json_starts_after_the_trace_with_ordered_bands() {
    let forecast = run_json(
        &["forecast", "--json", "--horizon", "15m"],
        "nasa-http-jul1995-1min.csv",
    );
    assert_eq!(forecast["step_seconds"], 60);
    assert_eq!(forecast["season_steps"], serde_json::json!([1440, 10080]));
    let points = forecast["forecast"].as_array().unwrap();
    assert_eq!(points.len(), 15);
    // The trace ends at 1995-07-28T17:32:00Z; the forecast starts one minute later.
    let first_timestamp = 806_952_780;
    for (i, point) in points.iter().enumerate() {
        assert_eq!(
            point["timestamp"].as_i64().unwrap(),
            first_timestamp + 60 * i as i64
        );
        let (lower, mean, upper) = (
            point["lower"].as_f64().unwrap(),
            point["mean"].as_f64().unwrap(),
            point["upper"].as_f64().unwrap(),
        );
        assert!(
            0.0 <= lower && lower <= mean && mean <= upper,
            "step {i}: {point}"
        );
    }
}

#[test]
fn bad_trace_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let malformed = dir.path().join("malformed.csv");
    std::fs::write(&malformed, "timestamp,value\n1700000000,1\n1700000060,lots\n").unwrap();
    for command in ["backtest", "forecast"] {
        let output = prescient()
            .args([command, "--horizon", "15m", "--input"])
            .arg(&missing)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("missing.csv"));

        let output = prescient()
            .args([command, "--horizon", "15m", "--input"])
            .arg(&malformed)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("line 3"), "{command}: {stderr}");
    }
}

/// A closed pipe (`| head -c1`) is a quiet exit 0 and a full disk a clear error, never a panic.
#[test]
fn a_closed_pipe_is_a_quiet_exit_and_a_full_disk_a_clear_error() {
    use std::process::Stdio;
    let runs: [&[&str]; 4] = [
        &["backtest", "--horizon", "15m"],
        &["backtest", "--horizon", "15m", "--json"],
        &["forecast", "--horizon", "15m", "--model", "naive"],
        &["forecast", "--horizon", "15m", "--model", "naive", "--json"],
    ];
    for args in runs {
        let mut child = prescient()
            .args(args)
            .arg("--input")
            .arg(trace("nab-elb-requests-5min.csv"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first byte is written: every write is EPIPE.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} into a closed pipe: {stderr}");
        assert!(stderr.is_empty(), "{args:?} into a closed pipe: {stderr}");

        let output = prescient()
            .args(args)
            .arg("--input")
            .arg(trace("nab-elb-requests-5min.csv"))
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?} > /dev/full: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} > /dev/full: {stderr}");
        assert!(
            stderr.contains("cannot write the output") && stderr.contains("No space left"),
            "{args:?} > /dev/full: {stderr}"
        );
    }
}
