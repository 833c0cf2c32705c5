//! Live end-to-end test of the whole loop on this machine, nothing mocked: `prescient local` starts a
//! real Prometheus (Debian's package), a process pool of `sample-app` replicas discovered through
//! `file_sd_configs`, and `loadgen` replaying a compressed trace; the controller queries Prometheus and
//! scales the pool.
//!
//! **The trace.** Synthetic and described here so the assertions can be checked by hand: 1-minute rows;
//! a compressed "day" of 60 rows (one trace hour) with a quiet base of 60 req/s, a ramp from row 30 to
//! row 40 up to 420 req/s, a plateau until row 46 and a ramp down by row 52; ±4 % deterministic noise.
//! Eight such days. At `--speed 30` a row lasts 2 s and a day 120 s of wall time, so the controller
//! (`--step 2s`) sees a season of 60 steps. The first seven days and 18 rows are backfilled into
//! Prometheus as history (`--backfill`), as a service with days of metrics would have; the live replay
//! starts at row 18 of the eighth day, so the ramp starts 24 s and the peak 44 s into the run.
//!
//! **Why the spike overloads the start.** One replica serves about 4 / 20.2 ms ≈ 198 req/s (measured
//! ~190); the peak of 420 req/s needs 3 ready replicas (5 at the 100 req/s target), and a new replica
//! takes 8 s to turn ready. Reacting to the observed rate (scrape 1 s, `rate[10s]`, then 8 s start-up)
//! lags the 18 req/s-per-second ramp by ~15 s, i.e. ~250 req/s of unserved load; scaling on the forecast
//! `leadTime = 12s` ahead has the replicas ready before the ramp reaches them.
//!
//! **Assertions.** (1) replicas rose above the initial one before the peak arrived, and at least 3 were
//! ready when it did; (2) the error rate of requests scheduled during the spike (rows 32 to 46, where
//! the load exceeds one replica) stayed under 5 %; (3) every process started (Prometheus, loadgen, all
//! replicas) is gone after the run.
#![allow(clippy::unwrap_used)]

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const ROW_SECONDS: i64 = 60;
const ROWS_PER_DAY: i64 = 60;
const DAYS: i64 = 8;
const SPEED: f64 = 30.0;
const BASE_RPS: f64 = 60.0;
const PEAK_RPS: f64 = 420.0;
/// Live replay starts at this row of the last day.
const START_ROW: i64 = 18;
/// Requests scheduled in rows [SPIKE_FROM, SPIKE_TO) of the last day count as "during the spike".
const SPIKE_FROM: i64 = 32;
const SPIKE_TO: i64 = 46;
const PEAK_ROW: i64 = 40;
const MAX_SPIKE_ERROR_RATE: f64 = 0.05;

/// Requests per second at row `i` of a day.
fn daily_rate(i: i64) -> f64 {
    let i = i as f64;
    if i < 30.0 {
        BASE_RPS
    } else if i < 40.0 {
        BASE_RPS + (PEAK_RPS - BASE_RPS) * (i - 30.0) / 10.0
    } else if i < 46.0 {
        PEAK_RPS
    } else if i < 52.0 {
        PEAK_RPS - (PEAK_RPS - BASE_RPS) * (i - 46.0) / 6.0
    } else {
        BASE_RPS
    }
}

fn write_trace(path: &Path) {
    let mut text = String::from("timestamp,value\n");
    let mut seed: u64 = 42;
    for row in 0..DAYS * ROWS_PER_DAY {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = 1.0 + 0.08 * (((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5);
        let requests = daily_rate(row % ROWS_PER_DAY) * noise * ROW_SECONDS as f64;
        writeln!(text, "{},{:.0}", 1_700_000_000 + row * ROW_SECONDS, requests).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Trace offset (seconds from the first row) of row `row` of the last day.
fn last_day_offset(row: i64) -> f64 {
    (((DAYS - 1) * ROWS_PER_DAY + row) * ROW_SECONDS) as f64
}

/// The sample-app binaries sit beside `prescient` once the workspace is built; build them if not.
fn sample_app_binaries() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_BIN_EXE_prescient"))
        .parent()
        .unwrap()
        .to_owned();
    let (app, loadgen) = (dir.join("sample-app"), dir.join("loadgen"));
    if !app.is_file() || !loadgen.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "sample-app", "--bins"])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "`cargo build -p sample-app` failed"
        );
    }
    assert!(
        app.is_file() && loadgen.is_file(),
        "sample-app binaries missing in {}",
        dir.display()
    );
    (app, loadgen)
}

fn alive(pid: i64) -> bool {
    // A zombie has exited; only a live process counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn scales_the_process_pool_before_a_forecast_spike_and_cleans_up() {
    for tool in ["/usr/bin/prometheus", "/usr/bin/promtool"] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: install Debian's `prometheus` package"
        );
    }
    let (app, loadgen) = sample_app_binaries();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("daily-spike.csv");
    write_trace(&trace);
    let work = dir.path().join("run");

    let live_rows = 52 - START_ROW;
    let duration_s = (live_rows as f64 * ROW_SECONDS as f64 / SPEED).ceil() as u64;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prescient"))
        .arg("local")
        .arg("--trace")
        .arg(&trace)
        .arg("--sample-app")
        .arg(&app)
        .arg("--loadgen")
        .arg(&loadgen)
        .arg("--dir")
        .arg(&work)
        .args(["--speed", &SPEED.to_string(), "--backfill"])
        .args(["--start-at", &format!("{}s", last_day_offset(START_ROW) as i64)])
        .args(["--duration", &format!("{duration_s}s")])
        .args(["--replicas", "1", "--min-replicas", "1", "--max-replicas", "8"])
        .args([
            "--target-per-replica",
            "100",
            "--step",
            "2s",
            "--sync-period",
            "2s",
        ])
        .args([
            "--history",
            "20m",
            "--horizon",
            "1m",
            "--lead-time",
            "12s",
            "--refit-interval",
            "1m",
        ])
        .args([
            "--startup-delay",
            "8s",
            "--concurrency",
            "4",
            "--work-us",
            "200",
            "--io-wait-us",
            "20000",
        ])
        .args(["--scrape-interval", "1s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Duration::from_secs(duration_s + 90);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("prescient local still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lines = reader.join().unwrap();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for line in &lines {
        eprintln!("{line}");
    }
    assert!(exit.success(), "prescient local failed: {exit:?}");

    let find = |kind: &str| events.iter().find(|e| e["event"] == kind).cloned();
    let started_event = find("started").expect("a `started` event");
    let summary = find("summary").expect("a `summary` event");
    assert!(summary["error"].is_null(), "run error: {}", summary["error"]);
    let syncs: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "sync").collect();
    assert!(syncs.len() >= 10, "too few syncs: {}", syncs.len());

    // (1) Replicas rose before the peak, and enough were ready when it came.
    let peak = last_day_offset(PEAK_ROW);
    let offset = |e: &serde_json::Value| e["trace_offset_seconds"].as_f64().unwrap();
    let first_rise = syncs
        .iter()
        .find(|e| e["running"].as_u64().unwrap() > 1)
        .map(|e| offset(e));
    let first_rise = first_rise.expect("replicas never rose above 1");
    assert!(
        first_rise < peak,
        "replicas rose at trace +{first_rise}s, after the peak at +{peak}s"
    );
    let at_peak = syncs
        .iter()
        .rfind(|e| offset(e) <= peak)
        .expect("no sync before the peak");
    assert!(
        at_peak["ready"].as_u64().unwrap() >= 3,
        "only {} replicas ready when the peak arrived: {at_peak}",
        at_peak["ready"]
    );
    assert!(
        syncs
            .iter()
            .any(|e| e["reason"] == "Predictive" && e["scaled_to"].as_u64().is_some()),
        "no scale-up was driven by the forecast"
    );

    // (2) Errors during the spike, from loadgen's per-second timeline (by scheduled send time).
    let replay_start = started_event["loadgen_start_offset_seconds"].as_f64().unwrap();
    let timeline = std::fs::read_to_string(work.join("loadgen-timeline.csv")).unwrap();
    let (mut sent, mut errors, mut peak_target) = (0u64, 0u64, 0.0f64);
    for row in timeline.lines().skip(1) {
        let fields: Vec<&str> = row.split(',').collect();
        let second: f64 = fields[0].parse().unwrap();
        let at = replay_start + second * SPEED;
        if at >= last_day_offset(SPIKE_FROM) && at < last_day_offset(SPIKE_TO) {
            peak_target = peak_target.max(fields[1].parse().unwrap());
            sent += fields[2].parse::<u64>().unwrap();
            errors += fields[4].parse::<u64>().unwrap();
        }
    }
    assert!(sent > 1000, "too few requests during the spike: {sent}");
    // The spike really would overload the starting replica: twice what one serves (4 / 20.2 ms).
    let one_replica_rps = 4.0 / 0.0202;
    assert!(
        peak_target > 2.0 * one_replica_rps,
        "spike of {peak_target:.0} req/s does not overload one replica ({one_replica_rps:.0} req/s)"
    );
    let spike_error_rate = errors as f64 / sent as f64;
    eprintln!(
        "spike: {sent} requests, {errors} errors ({:.2} %)",
        spike_error_rate * 100.0
    );
    assert!(
        spike_error_rate < MAX_SPIKE_ERROR_RATE,
        "error rate during the spike {spike_error_rate:.3} >= {MAX_SPIKE_ERROR_RATE}"
    );

    // (3) Every process it started is gone.
    let mut pids: Vec<i64> = summary["started_pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_i64())
        .collect();
    pids.extend(started_event["prometheus_pid"].as_i64());
    pids.extend(started_event["loadgen_pid"].as_i64());
    assert!(
        pids.len() >= 4,
        "expected Prometheus, loadgen and replicas: {pids:?}"
    );
    let gone_by = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<i64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn process_pool_routes_only_ready_replicas_and_stops_what_it_started() {
    use prescient::{
        core::ReplicaState,
        edges::{
            ScaleTarget, TargetRef,
            process_pool::{PoolConfig, PoolError, ProcessPool},
        },
    };
    let (app, _) = sample_app_binaries();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let target = TargetRef {
        namespace: "local".into(),
        api_version: "v1".into(),
        kind: "ProcessPool".into(),
        name: "sample-app".into(),
    };

    let missing = ProcessPool::new(PoolConfig::new(dir.path().join("nope"), dir.path().join("x")));
    assert!(matches!(missing, Err(PoolError::MissingBinary(_))));

    let mut config = PoolConfig::new(app.clone(), dir.path().join("pool"));
    config.args = vec!["--startup-delay".into(), "1s".into()];
    config.stop_grace = Duration::from_secs(2);
    let pool = ProcessPool::new(config.clone()).unwrap();
    runtime.block_on(pool.set_replicas(&target, 2)).unwrap();
    // Listening but still starting: scraped (targets file), not routed to (endpoints file).
    let state = runtime.block_on(pool.replicas(&target)).unwrap();
    assert_eq!(state, ReplicaState { desired: 2, ready: 0 });
    let targets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config.targets_file()).unwrap()).unwrap();
    assert_eq!(targets[0]["targets"].as_array().unwrap().len(), 2);
    assert_eq!(targets[0]["labels"]["job"], "sample-app");
    assert_eq!(std::fs::read_to_string(config.endpoints_file()).unwrap(), "");

    wait_until("both replicas are ready", Duration::from_secs(6), || {
        pool.state().ready == 2
    });
    wait_until("the endpoints file lists both", Duration::from_secs(2), || {
        std::fs::read_to_string(config.endpoints_file())
            .unwrap()
            .lines()
            .count()
            == 2
    });
    let pids = pool.pids();
    assert_eq!(pids.len(), 2);

    runtime.block_on(pool.set_replicas(&target, 1)).unwrap();
    assert_eq!(pool.state().desired, 1);
    assert_eq!(
        std::fs::read_to_string(config.endpoints_file())
            .unwrap()
            .lines()
            .count(),
        1
    );
    let stopped: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| !pool.pids().contains(p))
        .collect();
    assert_eq!(stopped.len(), 1);
    wait_until("the stopped replica exits", Duration::from_secs(3), || {
        !alive(i64::from(stopped[0]))
    });

    runtime.block_on(pool.shutdown());
    assert_eq!(pool.state(), ReplicaState::default());
    assert!(
        pids.iter().all(|p| !alive(i64::from(*p))),
        "shutdown left replicas running"
    );

    // Dropping a pool without shutdown still kills its replicas.
    let dropped = ProcessPool::new(PoolConfig::new(app, dir.path().join("dropped"))).unwrap();
    runtime.block_on(dropped.scale_to(2)).unwrap();
    let pids = dropped.pids();
    drop(dropped);
    wait_until("dropped pool's replicas exit", Duration::from_secs(3), || {
        pids.iter().all(|p| !alive(i64::from(*p)))
    });
}
