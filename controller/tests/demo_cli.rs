//! `prescient demo` as a user runs it: the built binary, a free port, a bounded duration, its summary.
#![allow(clippy::unwrap_used)]

mod cli_support;

use std::{io::Write as _, process::Command};

fn demo(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// (underprovisioned_minutes, replica_minutes, scale_events) of one summary row.
fn summary_row(stdout: &str, autoscaler: &str) -> (f64, f64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(autoscaler))
        .unwrap_or_else(|| panic!("no summary row for {autoscaler}:\n{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{line}");
    (
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
    )
}

#[test]
fn bundled_demo_runs_for_30s_and_prints_its_summary() {
    let (ok, stdout, stderr) = demo(&["--dashboard-addr", "127.0.0.1:0", "--duration", "30s"]);
    assert!(ok, "demo failed:\n{stdout}\n{stderr}");
    let url_line = stdout.lines().next().unwrap();
    assert!(url_line.starts_with("Dashboard: http://127.0.0.1:"), "{url_line}");
    assert!(!url_line.ends_with(":0/"), "the real port is printed: {url_line}");
    assert!(stdout.contains("Demo stopped: duration reached."), "{stdout}");
    assert!(
        stdout.contains("underprovisioned_minutes") && stdout.contains("replica_minutes"),
        "{stdout}"
    );
    let (under_p, cost_p, _) = summary_row(&stdout, "demo/predictive");
    let (under_r, cost_r, _) = summary_row(&stdout, "demo/reactive");
    assert!(cost_p > 0.0 && cost_r > 0.0, "{stdout}");
    assert!(under_p >= 0.0 && under_r >= 0.0);
    // Virtual time moved on, paced by --speed: the default 300x is a 30 s sync every 0.1 s, so at most
    // 301 syncs in 30 s (the first tick is immediate; a late tick delays the rest, never bursts). How
    // many below that depends on the machine's load (refits run on the same cores), so no lower bound
    // but progress.
    let summary = stdout.lines().find(|l| l.starts_with("Summary:")).unwrap();
    let syncs: u64 = summary
        .split(", ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=301).contains(&syncs), "{syncs} syncs in 30 s: {summary}");
}

#[test]
fn a_given_trace_plays_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-days.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "timestamp,value").unwrap();
    for i in 0..(2 * 288) {
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        writeln!(
            file,
            "{},{:.1}",
            1_600_000_200 + i * 300,
            500.0 + 300.0 * phase.sin()
        )
        .unwrap();
    }
    drop(file);
    let (ok, stdout, stderr) = demo(&[
        "--dashboard-addr",
        "127.0.0.1:0",
        "--trace",
        path.to_str().unwrap(),
        "--speed",
        "100000",
        "--duration",
        "60s",
    ]);
    assert!(ok, "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Demo stopped: end of trace."), "{stdout}");
    // Half of the trace (rounded down to its 5-minute step) is history; the rest, up to the end of the
    // last step, is replayed at 30 s per sync: (172,800 - 86,100) / 30.
    assert!(stdout.contains("2890 syncs per autoscaler"), "{stdout}");
    let (_, cost, _) = summary_row(&stdout, "demo/reactive");
    assert!(cost > 0.0);
}

#[test]
fn rejects_bad_flags_with_a_clear_message() {
    let (ok, _, stderr) = demo(&[
        "--dashboard-addr",
        "127.0.0.1:0",
        "--speed",
        "0",
        "--duration",
        "1s",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--speed must be a positive number"), "{stderr}");
    let (ok, _, stderr) = demo(&["--dashboard-addr", "127.0.0.1:0", "--trace", "/nonexistent.csv"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent.csv"), "{stderr}");
}

/// A closed pipe (`prescient demo | head -c1`) is a quiet exit 0 and a full disk a clear error, never a
/// `println!` panic.
#[test]
fn a_closed_pipe_is_a_quiet_exit_and_a_full_disk_a_clear_error() {
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prescient"));
        command.args(["demo", "--dashboard-addr", "127.0.0.1:0", "--duration", "1s"]);
        command
    };
    cli_support::assert_quiet_into_a_closed_pipe(&mut command(), "demo");
    cli_support::assert_clear_error_on_a_full_disk(&mut command(), "demo");
}

/// SIGTERM (what `timeout`, systemd and Kubernetes send) stops the demo as Ctrl-C does: with its
/// summary, exit 0. It used to kill it silently.
#[test]
fn sigterm_stops_the_demo_with_its_summary() {
    use std::io::{BufRead as _, BufReader, Read as _};
    let mut child = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .args(["demo", "--dashboard-addr", "127.0.0.1:0", "--speed", "3000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut head = String::new();
    while !head.contains("Replaying") {
        assert!(
            stdout.read_line(&mut head).unwrap() > 0,
            "the demo ended early:\n{head}"
        );
    }
    // A few syncs played, then the signal.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}:\n{rest}");
    assert!(rest.contains("Demo stopped: interrupted"), "{rest}");
    let (_, replica_minutes, _) = summary_row(&rest, "demo/predictive");
    assert!(replica_minutes > 0.0, "{rest}");
}
