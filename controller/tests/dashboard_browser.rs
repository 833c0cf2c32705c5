//! The dashboard page in a real browser: headless Chromium (Debian's `/usr/bin/chromium`) loads the page
//! from a running `prescient demo`, and the test checks that the chart drew data points and that the page
//! reported no errors (the page writes script errors and failed requests into the DOM, and Chromium's
//! console log is checked too). A screenshot is written to `target/dashboard.png` for people to look at.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "browser-test-token";
/// 1995-07-13T14:30:00Z: the launch crowd of the bundled trace has come and gone.
const LAUNCH_CROWD_OVER: i64 = 805_645_800;

/// Kills the demo when the test ends, even on a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Runs headless Chromium with the flags that keep it quiet and self-contained; returns (stdout, stderr).
fn chromium(profile: &Path, extra: &[&str], url: &str) -> (String, String) {
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Messages the page wrote to the browser console (Chromium logs them as `CONSOLE(line)` with
/// `--enable-logging=stderr`); the page itself logs nothing, so any is a failure.
fn console_messages(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// `data-points` of the `<path data-series="{series}">` in the dumped DOM.
fn points_of(dom: &str, series: &str) -> usize {
    let marker = format!("data-series=\"{series}\" data-points=\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no {series} series in the page:\n{dom}"))
        + marker.len();
    dom[start..].split('"').next().unwrap().parse().unwrap()
}

fn attribute<'a>(dom: &'a str, element_marker: &str, name: &str) -> &'a str {
    let at = dom
        .find(element_marker)
        .unwrap_or_else(|| panic!("no {element_marker} in the page"));
    let tag = &dom[at..at + dom[at..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let from = tag.find(&key).unwrap_or_else(|| panic!("no {name} on {tag}")) + key.len();
    &tag[from..from + tag[from..].find('"').unwrap()]
}

#[test]
fn page_draws_the_live_chart_without_errors() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium); .ci/run does"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_prescient"))
        // Fast enough to reach the STS-70 launch crowd (about 13:40 UTC, 5.7 virtual hours in) within seconds.
        .args([
            "demo",
            "--dashboard-addr",
            "127.0.0.1:0",
            "--duration",
            "180s",
            "--speed",
            "3000",
        ])
        // With a token, so the page's way of sending it (from its URL fragment) is tested too.
        .env("PRESCIENT_DASHBOARD_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("demo exited before printing its URL")
            .unwrap();
        if let Some(url) = line.strip_prefix("Dashboard: ") {
            break url.trim().to_owned();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Keep draining the demo's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    // Wait until both autoscalers have synced a few times, so the chart has something to draw.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let unauthorized = runtime
        .block_on(client.get(format!("{url}api/v1/autoscalers")).send())
        .unwrap();
    assert_eq!(
        unauthorized.status().as_u16(),
        401,
        "the token guards the demo's API"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let forecast_url = format!("{url}api/v1/autoscalers/demo/predictive/forecast");
    let predictive = loop {
        let body = runtime.block_on(async {
            client
                .get(&forecast_url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        });
        if let Some(body) = body
            && body["replicas"].as_array().is_some_and(|r| r.len() >= 10)
            && body["now"].as_i64().is_some_and(|now| now >= LAUNCH_CROWD_OVER)
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not reach 14:30 virtual time within 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // The same server exposes the forecasts as Prometheus gauges for Grafana.
    let metrics = runtime.block_on(async {
        client
            .get(format!("{url}metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("prescient_desired_replicas{namespace=\"demo\",name=\"predictive\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("prescient_desired_replicas{namespace=\"demo\",name=\"reactive\"}"),
        "{metrics}"
    );
    if predictive["forecast"].is_object() {
        assert!(
            metrics
                .contains("prescient_forecast_demand{namespace=\"demo\",name=\"predictive\",stat=\"upper\"}"),
            "{metrics}"
        );
    }

    let page = format!("{url}#token={TOKEN}");
    let profile = tempfile::tempdir().unwrap();
    let (dom, stderr) = chromium(
        profile.path(),
        &[
            "--dump-dom",
            "--virtual-time-budget=8000",
            "--window-size=1280,900",
        ],
        &page,
    );
    assert!(
        console_messages(&stderr).is_empty(),
        "console messages: {:?}",
        console_messages(&stderr)
    );
    assert_eq!(
        attribute(&dom, "id=\"status\"", "data-errors"),
        "0",
        "page errors:\n{dom}"
    );
    assert_eq!(attribute(&dom, "id=\"status\"", "data-state"), "ok");
    assert!(
        attribute(&dom, "id=\"status\"", "data-updates")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert!(
        dom.contains("data-autoscaler=\"demo/predictive\"")
            && dom.contains("data-autoscaler=\"demo/reactive\"")
    );
    assert!(
        points_of(&dom, "demand") >= 60,
        "demand points: {}",
        points_of(&dom, "demand")
    );
    assert!(points_of(&dom, "capacity") >= 10);
    assert!(points_of(&dom, "desired") >= 10);
    // The reactive autoscaler is drawn below for comparison, with its own series.
    let others = &dom[dom
        .find("<figure data-autoscaler=\"demo/reactive\"")
        .expect("no comparison chart")..];
    assert!(points_of(others, "demand") >= 60 && points_of(others, "capacity") >= 10);
    if predictive["forecast"].is_object() {
        assert!(points_of(&dom, "forecast-band") >= 2);
        assert!(points_of(&dom, "forecast-mean") >= 2);
    }

    // Both lanes' running tallies side by side: a row each, with numbers.
    assert!(!dom.contains("<div id=\"tally\" hidden"), "tally hidden:\n{dom}");
    for lane in ["demo/predictive", "demo/reactive"] {
        let row = tally_row(&dom, lane);
        assert_eq!(row.len(), 5, "{lane}: {row:?}");
        assert_eq!(row[0], lane);
        for cell in &row[1..] {
            assert!(cell.parse::<f64>().is_ok(), "{lane}: {row:?}");
        }
        assert!(row[4].parse::<u64>().unwrap() >= 1, "{lane}: {row:?}");
    }

    let screenshot = target_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--virtual-time-budget=8000",
            "--hide-scrollbars",
            "--window-size=1280,1150",
        ],
        &page,
    );
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} missing or empty ({size} bytes)",
        screenshot.display()
    );
}

/// The cells of the tally table's row of `autoscaler`.
fn tally_row(dom: &str, autoscaler: &str) -> Vec<String> {
    let marker = format!("<tr data-autoscaler=\"{autoscaler}\">");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no tally row for {autoscaler}"));
    let row = &dom[start + marker.len()..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("</td>")
        .filter_map(|cell| cell.rfind('>').map(|at| cell[at + 1..].to_owned()))
        .filter(|cell| !cell.is_empty())
        .collect()
}

/// The console check can fail: a page that throws is caught.
#[test]
fn console_errors_are_detected() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package"
    );
    let profile = tempfile::tempdir().unwrap();
    let (_, stderr) = chromium(
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=1000"],
        "data:text/html,<script>throw new Error('boom-from-test')</script>",
    );
    let messages = console_messages(&stderr);
    assert!(
        messages.iter().any(|m| m.contains("boom-from-test")),
        "not detected; stderr:\n{stderr}"
    );
}
