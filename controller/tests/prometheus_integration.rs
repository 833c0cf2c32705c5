//! The Prometheus adapter against a REAL Prometheus (Debian's `/usr/bin/prometheus`), loaded with four
//! days of the shipped NASA trace through `promtool tsdb create-blocks-from openmetrics`:
//! - the adapter returns exactly the loaded values (and NaN samples as NaN),
//! - PromQL errors, empty results and several series map to their typed errors,
//! - incremental fetches through `reconcile::Autoscaler` add only the new points,
//! - a full sync against it makes the same decision as the pure core on the trace itself.
//!
//! The data is from July 1995, so every query range is in the past and retention is set to 100 years.
#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use prescient::{
    core::{AutoscalerCore, ReplicaState},
    edges::{
        MetricsError, MetricsSource, ScaleError, ScaleTarget, TargetRef,
        prometheus::{PrometheusOptions, PrometheusSource},
        trace::read_trace,
    },
    reconcile::{Autoscaler, sync_once},
    spec::{ScalingBehavior, ScalingSpec, parse_model_choice},
};
use prescient_model::TimeSeries;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const STEP: i64 = 60;
/// Four days of the trace: enough for a daily season and a 3-day history window.
const POINTS: usize = 4 * 1440;

fn require(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: install Debian's `prometheus` package (apt-get install prometheus), \
         which provides /usr/bin/prometheus and /usr/bin/promtool"
    );
}

/// A Prometheus process on a free 127.0.0.1 port over a backfilled data dir; killed on drop.
struct PrometheusServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn trace_points() -> Vec<(i64, f64)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/traces/nasa-http-jul1995-1min.csv");
    let mut points = read_trace(&path).unwrap();
    points.truncate(POINTS);
    points
}

/// Writes the OpenMetrics text promtool backfills from: the trace as `prescient_demand`, two series of
/// `prescient_split` (for the several-series error) and `prescient_gappy` with a NaN sample.
fn openmetrics(points: &[(i64, f64)]) -> String {
    let mut text = String::from(
        "# HELP prescient_demand Requests per minute (NASA trace).\n# TYPE prescient_demand gauge\n",
    );
    for (t, v) in points {
        text.push_str(&format!("prescient_demand{{trace=\"nasa\"}} {v} {t}\n"));
    }
    let t0 = points[0].0;
    text.push_str("# TYPE prescient_split gauge\n");
    for zone in ["a", "b"] {
        for i in 0..3 {
            text.push_str(&format!(
                "prescient_split{{zone=\"{zone}\"}} {i} {}\n",
                t0 + i * STEP
            ));
        }
    }
    text.push_str("# TYPE prescient_gappy gauge\n");
    for (i, v) in ["1", "NaN", "3"].iter().enumerate() {
        text.push_str(&format!("prescient_gappy {v} {}\n", t0 + i as i64 * STEP));
    }
    text.push_str("# EOF\n");
    text
}

fn start_prometheus(points: &[(i64, f64)]) -> PrometheusServer {
    require(PROMETHEUS);
    require(PROMTOOL);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("backfill.om");
    std::fs::File::create(&input)
        .unwrap()
        .write_all(openmetrics(points).as_bytes())
        .unwrap();
    let blocks = dir.path().join("blocks");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Blocks become queryable once they sit in the data dir when Prometheus starts.
    for entry in std::fs::read_dir(&blocks).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = PrometheusServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_ready(&server);
    server
}

fn wait_ready(server: &PrometheusServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = server.url.trim_start_matches("http://").to_owned();
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            use std::io::Read;
            let _ = stream.write_all(format!("GET /-/ready HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes());
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus at {} did not become ready in 30 s",
            server.url
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn source(server: &PrometheusServer) -> PrometheusSource {
    PrometheusSource::new(&server.url, PrometheusOptions::default()).unwrap()
}

/// A target whose replicas only this test changes.
struct FixedTarget(Mutex<ReplicaState>);

impl ScaleTarget for FixedTarget {
    async fn replicas(&self, _target: &TargetRef) -> Result<ReplicaState, ScaleError> {
        Ok(*self.0.lock().unwrap())
    }
    async fn set_replicas(&self, _target: &TargetRef, replicas: u32) -> Result<(), ScaleError> {
        *self.0.lock().unwrap() = ReplicaState {
            desired: replicas,
            ready: replicas,
        };
        Ok(())
    }
}

fn spec() -> ScalingSpec {
    ScalingSpec {
        min_replicas: 1,
        max_replicas: 100,
        target_per_replica: 10.0,
        history: Duration::from_secs(3 * 86_400),
        step: Duration::from_secs(STEP as u64),
        horizon: Duration::from_secs(1800),
        lead_time: Duration::from_secs(300),
        model: parse_model_choice("seasonal_naive").unwrap(),
        quantile: 0.9,
        refit_interval: Duration::from_secs(3600),
        sync_period: Duration::from_secs(60),
        behavior: ScalingBehavior::default(),
        scale_enabled: true,
        forecast_enabled: true,
        max_underprovisioned_fraction: None,
    }
}

fn target() -> TargetRef {
    TargetRef {
        namespace: "shop".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "shop".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_against_real_prometheus() {
    let points = trace_points();
    let server = start_prometheus(&points);
    let prometheus = source(&server);
    let (first, last) = (points[0].0, points[points.len() - 1].0);

    // 1. Exactly the loaded values, over a whole day, each stamped at the start of the step it closes
    // (a sample at t summarises the time before t; the core reads a value as the step after its stamp).
    let day_end = first + 86_400 - STEP;
    let got = prometheus
        .range("prescient_demand", first, day_end, STEP)
        .await
        .unwrap();
    let expected: Vec<(i64, f64)> = points
        .iter()
        .filter(|(t, _)| *t > first && *t <= day_end)
        .map(|&(t, v)| (t - STEP, v))
        .collect();
    assert_eq!(
        got.len(),
        1439,
        "the steps from `first` that have ended by `day_end`"
    );
    assert_eq!(
        got, expected,
        "the adapter must return the backfilled values unchanged, a step earlier"
    );

    // 2. NaN samples arrive as NaN (missing to the model), in place.
    let gappy = prometheus
        .range("prescient_gappy", first - STEP, first + 2 * STEP, STEP)
        .await
        .unwrap();
    assert_eq!(gappy.len(), 3);
    assert_eq!(gappy[0], (first - STEP, 1.0));
    assert!(gappy[1].1.is_nan());
    assert_eq!(gappy[2], (first + STEP, 3.0));

    // 3. Typed errors.
    let bad = prometheus
        .range("sum(prescient_demand", first, day_end, STEP)
        .await
        .unwrap_err();
    assert!(matches!(bad, MetricsError::BadQuery(_)), "{bad:?}");
    let empty = prometheus
        .range("no_such_metric", first, day_end, STEP)
        .await
        .unwrap_err();
    assert!(matches!(empty, MetricsError::Empty(_)), "{empty:?}");
    let split = prometheus
        .range("prescient_split", first, first + 2 * STEP, STEP)
        .await
        .unwrap_err();
    assert_eq!(split, MetricsError::MultipleSeries(2));

    // 4. Incremental fetches through the reconcile loop add only the new points.
    let target_state = FixedTarget(Mutex::new(ReplicaState { desired: 5, ready: 5 }));
    let mut autoscaler = Autoscaler::new(spec(), "prescient_demand".to_owned(), target());
    let now = last - 2 * 3600;
    let report = sync_once(&mut autoscaler, &prometheus, &target_state, now).await;
    assert!(report.metrics_error.is_none(), "{:?}", report.metrics_error);
    let history = autoscaler.history().unwrap().clone();
    assert_eq!(history.end(), now - STEP);
    let window: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t - STEP >= history.start() && *t <= now)
        .map(|p| p.1)
        .collect();
    assert_eq!(
        history.values(),
        window.as_slice(),
        "cached history equals the trace"
    );
    let len_before = history.len();

    let later = now + 10 * STEP;
    let report = sync_once(&mut autoscaler, &prometheus, &target_state, later).await;
    assert!(report.metrics_error.is_none(), "{:?}", report.metrics_error);
    // The fetch re-reads the newest cached point (a late scrape may have changed it) plus 10 new ones.
    assert!(
        report.fetched_points <= 12,
        "incremental fetch returned {} points",
        report.fetched_points
    );
    let history = autoscaler.history().unwrap();
    assert_eq!(history.end(), later - STEP);
    assert_eq!(
        history.len(),
        len_before,
        "the window slid by 10 steps: 10 in, 10 out"
    );
    let tail: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t > now && *t <= later)
        .map(|p| p.1)
        .collect();
    assert_eq!(&history.values()[history.len() - 10..], tail.as_slice());

    // 4b. A range of one instant off the grid (how the reconcile loop reads the demand now when the
    // newest step is old) answers that instant, with the newest sample before it, a step earlier.
    let between = first + 100 * STEP + STEP / 2;
    let instant = prometheus
        .range("prescient_demand", between, between, STEP)
        .await
        .unwrap();
    let sample_before = points.iter().find(|(t, _)| *t == first + 100 * STEP).unwrap().1;
    assert_eq!(instant, vec![(between - STEP, sample_before)]);

    // 5. A full sync makes the decision the pure core makes on the same trace, once warmed on it (an
    // operator's first sync replays the history it fetched).
    let at = last;
    let mut fresh = Autoscaler::new(spec(), "prescient_demand".to_owned(), target());
    let replicas = ReplicaState { desired: 5, ready: 5 };
    let fresh_target = FixedTarget(Mutex::new(replicas));
    let report = sync_once(&mut fresh, &prometheus, &fresh_target, at).await;
    assert!(report.metrics_error.is_none(), "{:?}", report.metrics_error);
    let window_start = at - 3 * 86_400;
    let series_points: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t - STEP >= window_start && *t <= at)
        .map(|(t, v)| (t - STEP, v))
        .collect();
    let series = TimeSeries::from_pairs_with_step(&series_points, STEP).unwrap();
    let mut core = AutoscalerCore::new(spec());
    assert!(core.bootstrap(&series, at) > 0);
    let expected = core.sync(&series, replicas, at);
    assert!(expected.health.is_healthy(), "{:?}", expected.health);
    assert_eq!(
        report.outcome.decision.desired_replicas,
        expected.decision.desired_replicas
    );
    assert_eq!(report.outcome.decision.reason, expected.decision.reason);
    assert_eq!(
        report.outcome.decision.demand_at_lead_time,
        expected.decision.demand_at_lead_time
    );
    assert_eq!(
        report.outcome.model.as_ref().map(|m| m.name.clone()),
        expected.model.map(|m| m.name)
    );
    if expected.decision.desired_replicas != replicas.desired {
        assert_eq!(report.scaled_to, Some(expected.decision.desired_replicas));
        assert_eq!(
            fresh_target.0.lock().unwrap().desired,
            expected.decision.desired_replicas
        );
    }
}
