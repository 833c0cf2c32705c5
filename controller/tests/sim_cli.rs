//! `prescient simulate` end to end: the JSON summary, the `--series` CSV (from which the summary's
//! figures are recomputed) and the self-contained `--report` page; clear errors on bad input.
#![allow(clippy::unwrap_used)]

mod cli_support;

use std::{fmt::Write as _, path::Path, process::Command};

/// Two days of a 1-minute daily cycle with a spike, as a trace file.
fn write_trace(path: &Path) {
    let mut text = String::from("timestamp,value\n");
    for i in 0..2 * 1440 {
        let t = 1_700_000_000 + i * 60;
        let phase = 2.0 * std::f64::consts::PI * (i % 1440) as f64 / 1440.0;
        let spike = if (2000..2030).contains(&i) { 150.0 } else { 0.0 };
        let _ = writeln!(text, "{t},{:.0}", 100.0 + 40.0 * phase.sin() + spike);
    }
    std::fs::write(path, text).unwrap();
}

fn prescient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescient"))
}

#[test]
fn simulate_writes_json_series_and_report_that_agree() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let series = dir.path().join("series.csv");
    let report = dir.path().join("report.html");
    write_trace(&trace);
    let output = prescient()
        .args(["simulate", "--input"])
        .arg(&trace)
        .args([
            "--capacity-per-replica",
            "10",
            "--startup-delay",
            "2m",
            "--model",
            "seasonal_naive",
            "--json",
        ])
        .args([
            "--target-utilization",
            "0.7",
            "--quantile",
            "0.5,0.95",
            "--series",
        ])
        .arg(&series)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let policies = summary["policies"].as_array().unwrap();
    let labels: Vec<&str> = policies.iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["reactive", "predictive@q0.5", "predictive@q0.95", "oracle"]
    );
    for p in policies {
        for key in [
            "underprovisioned_minutes",
            "unserved_fraction",
            "replica_minutes",
            "scale_events",
        ] {
            assert!(p[key].is_number(), "{key} missing in {p}");
        }
    }
    let oracle = policies.iter().find(|p| p["policy"] == "oracle").unwrap();
    assert_eq!(oracle["underprovisioned_minutes"].as_f64().unwrap(), 0.0);

    // Recompute every policy's replica-minutes and under-provisioned minutes from the series.
    let csv = std::fs::read_to_string(&series).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "policy,timestamp,demand,forecast,desired_replicas,provisioned_replicas,ready_replicas"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for p in policies {
        let label = p["label"].as_str().unwrap();
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == label).collect();
        assert!(!mine.is_empty());
        let tick = (mine[1][1].parse::<i64>().unwrap() - mine[0][1].parse::<i64>().unwrap()) as f64 / 60.0;
        let replica_minutes: f64 = mine.iter().map(|r| r[5].parse::<f64>().unwrap() * tick).sum();
        let under: f64 = mine
            .iter()
            .filter(|r| r[2].parse::<f64>().unwrap() > r[6].parse::<f64>().unwrap() * 10.0)
            .map(|_| tick)
            .sum();
        assert!(
            (replica_minutes - p["replica_minutes"].as_f64().unwrap()).abs() < 1e-6,
            "{label}"
        );
        assert!(
            (under - p["underprovisioned_minutes"].as_f64().unwrap()).abs() < 1e-6,
            "{label}"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r[0].starts_with("predictive") && !r[3].is_empty()),
        "forecast column filled"
    );

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg") && html.contains("<polyline") && html.contains("<table>"));
    assert!(html.contains("predictive@q0.95"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );
}

#[test]
fn simulate_reports_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let output = prescient()
        .args(["simulate", "--input"])
        .arg(&missing)
        .args(["--capacity-per-replica", "10", "--startup-delay", "2m"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.csv"));

    let trace = dir.path().join("trace.csv");
    write_trace(&trace);
    let output = prescient()
        .args(["simulate", "--input"])
        .arg(&trace)
        .args(["--capacity-per-replica", "0", "--startup-delay", "2m"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("capacity-per-replica"));
    let output = prescient()
        .args(["simulate", "--input"])
        .arg(&trace)
        .args([
            "--capacity-per-replica",
            "10",
            "--startup-delay",
            "2m",
            "--quantile",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("quantile"));
}

#[test]
fn simulate_into_a_closed_pipe_exits_quietly_and_a_negative_duration_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    write_trace(&trace);
    let simulate = |extra: &[&str]| {
        let mut command = prescient();
        command
            .args(["simulate", "--input"])
            .arg(&trace)
            .args([
                "--capacity-per-replica",
                "10",
                "--model",
                "naive",
                "--policy",
                "reactive",
            ])
            .args(extra);
        command
    };
    for json in [true, false] {
        let mut command = simulate(&["--startup-delay", "2m"]);
        if json {
            command.arg("--json");
        }
        let what = format!("simulate, json {json}");
        cli_support::assert_quiet_into_a_closed_pipe(&mut command, &what);
        let mut command = simulate(&["--startup-delay", "2m"]);
        if json {
            command.arg("--json");
        }
        cli_support::assert_clear_error_on_a_full_disk(&mut command, &what);
    }
    let output = simulate(&["--startup-delay", "-5m"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot be negative"), "{stderr}");
}

#[test]
fn simulate_replays_operator_restarts_and_refuses_one_every_sync() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    write_trace(&trace);
    let run = |extra: &[&str]| {
        let output = prescient()
            .args(["simulate", "--input"])
            .arg(&trace)
            .args(["--capacity-per-replica", "10", "--startup-delay", "2m"])
            .args(["--policy", "predictive", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        summary["policies"][0]["refits"].as_u64().unwrap()
    };
    // Each restart's new core refits at its first sync, off the hourly schedule of the one before.
    let (kept, restarted) = (run(&[]), run(&["--restart-every", "5h30m"]));
    assert!(
        restarted > kept,
        "refits: {restarted} with restarts, {kept} without"
    );

    let output = prescient()
        .args(["simulate", "--input"])
        .arg(&trace)
        .args(["--capacity-per-replica", "10", "--startup-delay", "2m"])
        .args(["--restart-every", "10s"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--restart-every must be at least the sync period"),
        "{stderr}"
    );
}
