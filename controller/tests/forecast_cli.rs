//! `prescient backtest` and `prescient forecast` on the shipped traces: the acceptance bar of the
//! forecasting engine (auto beats seasonal naive; the 0.9 band covers 85–95 % of outcomes), the JSON
//! contracts, and clear errors on bad input.
#![allow(clippy::unwrap_used)]

mod cli_support;

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
    let runs: [&[&str]; 4] = [
        &["backtest", "--horizon", "15m"],
        &["backtest", "--horizon", "15m", "--json"],
        &["forecast", "--horizon", "15m", "--model", "naive"],
        &["forecast", "--horizon", "15m", "--model", "naive", "--json"],
    ];
    for args in runs {
        let command = || {
            let mut command = prescient();
            command
                .args(args)
                .arg("--input")
                .arg(trace("nab-elb-requests-5min.csv"));
            command
        };
        let what = format!("{args:?}");
        let stderr = cli_support::assert_quiet_into_a_closed_pipe(&mut command(), &what);
        assert!(stderr.is_empty(), "{what} into a closed pipe: {stderr}");
        cli_support::assert_clear_error_on_a_full_disk(&mut command(), &what);
    }
}

/// Runs `prescient` on `input` and returns (status success, stdout, stderr).
fn run_on(args: &[&str], input: &std::path::Path) -> (bool, String, String) {
    let output = prescient().args(args).arg("--input").arg(input).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_newest_sample_is_kept_when_the_first_timestamp_is_off_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("off-grid.csv");
    let mut text = String::from("timestamp,value\n1700000007,100\n");
    for i in 1..200 {
        text.push_str(&format!("{},100\n", 1_700_000_000 + 60 * i));
    }
    text.push_str("1700011990,99999\n");
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = run_on(
        &["forecast", "--model", "naive", "--horizon", "5m", "--json"],
        &path,
    );
    assert!(ok, "{stderr}");
    let forecast: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(forecast["forecast"][0]["mean"], 99999.0, "{stdout}");
    let (ok, stdout, stderr) = run_on(
        &[
            "simulate",
            "--json",
            "--policy",
            "reactive",
            "--capacity-per-replica",
            "10",
            "--startup-delay",
            "1m",
        ],
        &path,
    );
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["points"], 201, "{stdout}");
}

#[test]
fn millisecond_timestamps_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ms.csv");
    let text: String = std::iter::once("timestamp,value\n".to_owned())
        .chain((0..300).map(|i| format!("{},5\n", 1_700_000_000_000_i64 + 60_000 * i)))
        .collect();
    std::fs::write(&path, text).unwrap();
    for command in ["forecast", "backtest"] {
        let (ok, _, stderr) = run_on(&[command, "--horizon", "15m"], &path);
        assert!(!ok);
        assert!(
            stderr.contains("line 2") && stderr.contains("milliseconds"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn cleaning_says_how_many_rows_each_rule_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dirty.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..400 {
        let value = match i {
            10 => "NaN".to_owned(),
            20 => "inf".to_owned(),
            30 => String::new(),
            40 | 41 => "-3".to_owned(),
            _ => format!("{}", 50 + i % 7),
        };
        text.push_str(&format!("{},{value}\n", 1_700_000_000 + 60 * i));
    }
    text.push_str("1700000060,51\n");
    std::fs::write(&path, text).unwrap();
    let expected = serde_json::json!({"missing_values": 3, "negative_values": 2, "duplicate_rows": 1});
    for command in ["forecast", "backtest"] {
        let (ok, stdout, stderr) = run_on(&[command, "--horizon", "15m", "--json"], &path);
        assert!(ok, "{command}: {stderr}");
        let json: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(json["cleaning"], expected, "{command}");
        assert!(
            stderr.contains("3 row(s) with an empty, NaN or infinite value")
                && stderr.contains("2 negative value(s) clamped to 0")
                && stderr.contains("1 row(s) with a duplicate timestamp"),
            "{command}: {stderr}"
        );
    }
    let (ok, stdout, stderr) = run_on(
        &["backtest", "--horizon", "15m", "--json"],
        &trace("wc98-1min.csv"),
    );
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("trace cleaning"), "a clean trace: {stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["cleaning"]["duplicate_rows"], 0);
}

#[test]
fn folds_are_capped_to_what_the_trace_holds_and_the_default_is_not_raised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.csv");
    let text: String = std::iter::once("timestamp,value\n".to_owned())
        .chain((0..600).map(|i| format!("{},{}\n", 1_700_000_000 + 60 * i, 40 + i % 11)))
        .collect();
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = run_on(
        &["backtest", "--horizon", "15m", "--folds", "100000", "--json"],
        &path,
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("--folds 100000 capped to"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["folds"].as_u64().unwrap() <= 100, "{}", report["folds"]);

    let (ok, _, stderr) = run_on(&["backtest", "--horizon", "15m", "--json"], &path);
    assert!(ok, "{stderr}");
    assert!(
        !stderr.contains("folds"),
        "the default is used as it is: {stderr}"
    );
    let (ok, _, stderr) = run_on(
        &["backtest", "--horizon", "15m", "--folds", "20", "--json"],
        &path,
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("--folds 20 raised to 60"), "{stderr}");

    for command in ["backtest", "forecast"] {
        let help = prescient().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(!help.contains("prescient_model"), "{command} --help: {help}");
        assert!(help.contains("[default: 60]"), "{command} --help: {help}");
    }
}

#[test]
fn bad_files_and_flags_get_messages_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let empty = write("empty.csv", b"");
    let one_row = write("one-row.csv", b"timestamp,value\n1700000000,4\n");
    let latin1 = write("latin1.csv", b"timestamp,value\n1700000000,4\n1700000060,5\xe9\n");
    let missing = dir.path().join("missing.csv");
    for command in ["forecast", "backtest"] {
        let args = [command, "--horizon", "15m"];
        let (ok, _, stderr) = run_on(&args, &empty);
        assert!(!ok && stderr.contains("is empty"), "{command}: {stderr}");
        let (ok, _, stderr) = run_on(&args, &one_row);
        assert!(!ok && stderr.contains("at least two rows"), "{command}: {stderr}");
        let (ok, _, stderr) = run_on(&args, &latin1);
        assert!(
            !ok && stderr.contains("not UTF-8") && stderr.contains("line 3"),
            "{command}: {stderr}"
        );
        let (ok, _, stderr) = run_on(&args, &missing);
        assert!(!ok);
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{command}: {stderr}"
        );

        let (ok, _, stderr) = run_on(&[command, "--horizon", "-5m"], &one_row);
        assert!(!ok);
        assert!(
            stderr.contains("durations cannot be negative"),
            "{command}: {stderr}"
        );
    }
}
