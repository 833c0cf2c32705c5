//! The sample app as a process: readiness after its start-up delay, a real capacity (no errors below
//! it, 503s and a throughput ceiling above it, measured with `loadgen`), and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

struct Replica {
    child: Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sample-app"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("a `listening on` line")
        .to_owned();
    Replica { child, addr }
}

fn status(url: &str) -> Option<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.ok().map(|r| r.status().as_u16()) })
}

/// Runs loadgen at a constant `rate` for `seconds` against `addr`; returns its JSON report.
fn constant_load(addr: &str, rate: u32, seconds: u32) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("constant.csv");
    // Rows of 60 s at `rate` requests per second (value = requests in the interval).
    std::fs::write(
        &trace,
        format!("timestamp,value\n0,{0}\n60,{0}\n120,{0}\n", rate * 60),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--trace")
        .arg(&trace)
        .args([
            "--target",
            addr,
            "--duration",
            &format!("{seconds}s"),
            "--json",
            "--timeout",
            "2s",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "loadgen failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn turns_ready_after_its_startup_delay_and_stops_on_sigterm() {
    let mut replica = start(&["--startup-delay", "1s", "--shutdown-grace", "2s"]);
    let base = format!("http://{}", replica.addr);
    assert_eq!(status(&format!("{base}/healthz")), Some(200));
    assert_eq!(
        status(&format!("{base}/readyz")),
        Some(503),
        "ready before its start-up delay"
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(status(&format!("{base}/readyz")), Some(200));
    assert_eq!(status(&format!("{base}/catalogue")), Some(200));

    let pid = nix::unistd::Pid::from_raw(i32::try_from(replica.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    loop {
        if let Some(exit) = replica.child.try_wait().unwrap() {
            assert!(exit.success(), "exit after SIGTERM: {exit:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still running 3 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_below_capacity_and_sheds_load_above_it() {
    // 2 slots x 20 ms per request (mostly waiting, so the test is not CPU-bound) = 100 req/s nominal.
    let replica = start(&[
        "--concurrency",
        "2",
        "--work-us",
        "100",
        "--io-wait-us",
        "19900",
        "--queue-timeout",
        "100ms",
    ]);

    let below = constant_load(&replica.addr, 40, 4);
    assert_eq!(below["errors"], 0, "errors below capacity: {below}");
    assert!(below["latency"]["p50_ms"].as_f64().unwrap() < 60.0, "{below}");

    let above = constant_load(&replica.addr, 250, 4);
    let error_rate = above["error_rate"].as_f64().unwrap();
    let achieved = above["achieved_rate"].as_f64().unwrap();
    assert!(error_rate > 0.3, "2.5x capacity must shed load: {above}");
    assert!(
        above["errors_by_kind"]["server_error"].as_u64().unwrap() > 0,
        "{above}"
    );
    assert!(achieved < 110.0, "served more than its capacity: {above}");
    assert!(achieved > 50.0, "served far less than its capacity: {above}");
    // Above capacity, answered requests wait in the queue: latency grows towards the queue timeout.
    assert!(above["latency"]["p95_ms"].as_f64().unwrap() > below["latency"]["p95_ms"].as_f64().unwrap());

    let metrics = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::get(format!("http://{}/metrics", replica.addr))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    assert!(
        metrics.contains("http_requests_total{route=\"/catalogue\",code=\"503\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("http_requests_in_flight"));
}
