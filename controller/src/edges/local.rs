//! The processes of a live local run beside the [`ProcessPool`](super::process_pool::ProcessPool): a real
//! Prometheus that scrapes the pool's replicas (and `loadgen`) through `file_sd_configs` targets files,
//! the backfill of its TSDB from a trace (with `promtool`), and `loadgen` replaying a trace. Each child
//! is spawned with `kill_on_drop` and stopped with SIGTERM, then SIGKILL after a grace period.
//!
//! **Backfill.** The part of the trace before `start_at` is written into Prometheus' TSDB as the
//! `http_requests_total` counter a scrape would have produced, laid out on the same compressed clock as
//! the replay (`speed` trace seconds per wall second) and ending when the run starts, so the forecaster
//! sees past "days" from its first sync, as it would with a service's real Prometheus history.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::trace::median_step;
use crate::duration::format_millis;

/// The targets file through which Prometheus finds `loadgen`'s metrics, in the run's folder.
pub fn loadgen_targets_file(dir: &Path) -> PathBuf {
    dir.join("loadgen-targets.json")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn stop_child(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// A Prometheus started on a free 127.0.0.1 port with its data in the run's folder.
#[derive(Debug)]
pub struct LocalPrometheus {
    child: Child,
    url: String,
}

impl LocalPrometheus {
    /// Starts `binary` scraping every `scrape_interval` the `sample-app` targets in `targets_file` and
    /// `loadgen` through [`loadgen_targets_file`], and waits (at most 10 s) until it is ready.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        scrape_interval: Duration,
        targets_file: &Path,
    ) -> anyhow::Result<Self> {
        if !binary.is_file() {
            bail!(
                "Prometheus not found at {} (Debian: apt-get install prometheus)",
                binary.display()
            );
        }
        let port = free_port()?;
        let interval = format_millis(scrape_interval);
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n  - job_name: sample-app\n    file_sd_configs:\n      - files: [{targets:?}]\n        refresh_interval: 1s\n  - job_name: loadgen\n    file_sd_configs:\n      - files: [{loadgen:?}]\n        refresh_interval: 1s\n",
            targets = targets_file.display().to_string(),
            loadgen = loadgen_targets_file(dir).display().to_string(),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).context("cannot write prometheus.yml")?;
        let log =
            std::fs::File::create(dir.join("prometheus.log")).context("cannot create prometheus.log")?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=30d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("{url}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Self { child, url });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "Prometheus did not become ready within 10 s; see {}",
            dir.join("prometheus.log").display()
        )
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        stop_child(&mut self.child, grace).await;
    }
}

/// How the trace before the live replay is laid out as scraped history.
#[derive(Debug, Clone, Copy)]
pub struct BackfillLayout {
    /// Trace time (from its first row) at which the live replay starts.
    pub start_at: Duration,
    /// Trace seconds per wall second.
    pub speed: f64,
    /// Multiplies the trace's rates.
    pub scale: f64,
    /// Spacing of the backfilled samples (wall), as Prometheus' scrape interval.
    pub scrape_interval: Duration,
    /// How much wall-time history to write, ending at the run's start.
    pub history: Duration,
}

/// Rows of a trace as (offset from the first row in seconds, requests per second) per interval.
fn trace_rates(points: &[(i64, f64)]) -> anyhow::Result<(i64, Vec<f64>)> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    let Some(step) = median_step(&sorted) else {
        bail!("the trace needs at least two rows")
    };
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        bail!("empty trace")
    };
    let slots = usize::try_from((last.0 - first.0) / step + 1).unwrap_or(0);
    let mut rates = vec![0.0; slots];
    for (t, v) in &sorted {
        if let Some(rate) = usize::try_from((t - first.0) / step)
            .ok()
            .and_then(|i| rates.get_mut(i))
            && v.is_finite()
        {
            *rate = v / step as f64;
        }
    }
    Ok((step, rates))
}

/// OpenMetrics text of the `http_requests_total` counter a scrape of the replayed trace before
/// `start_at` would have produced, on the compressed clock ending at `end_unix`.
fn backfill_openmetrics(
    layout: &BackfillLayout,
    points: &[(i64, f64)],
    end_unix: f64,
) -> anyhow::Result<String> {
    let (step, rates) = trace_rates(points)?;
    let start_offset = layout.start_at.as_secs_f64();
    let interval = layout.scrape_interval.as_secs_f64().max(0.1);
    let first_offset = (start_offset - layout.history.as_secs_f64() * layout.speed).max(0.0);
    let mut text = String::from(
        "# HELP http_requests HTTP requests (backfilled from the trace).\n# TYPE http_requests counter\n",
    );
    let mut counter = 0.0;
    let mut wall = end_unix - (start_offset - first_offset) / layout.speed;
    while wall < end_unix {
        let offset = start_offset + (wall - end_unix) * layout.speed;
        let slot = (offset / step as f64).floor();
        let rate = if slot >= 0.0 {
            rates.get(slot as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        counter += rate * layout.scale * interval;
        writeln!(
            text,
            "http_requests_total{{job=\"sample-app\",instance=\"backfill\",route=\"/catalogue\",code=\"200\"}} {counter:.3} {wall:.3}"
        )?;
        wall += interval;
    }
    text.push_str("# EOF\n");
    Ok(text)
}

/// Writes the backfill as OpenMetrics and turns it into TSDB blocks in Prometheus' data folder
/// (`dir/data`), before Prometheus starts so the blocks are loaded at start-up.
pub async fn backfill(
    promtool: &Path,
    layout: &BackfillLayout,
    points: &[(i64, f64)],
    end_unix: f64,
    dir: &Path,
) -> anyhow::Result<()> {
    let text = backfill_openmetrics(layout, points, end_unix)?;
    let input = dir.join("backfill.om");
    std::fs::write(&input, text).context("cannot write backfill.om")?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).context("cannot create Prometheus' data folder")?;
    let output = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .await
        .context("cannot run promtool")?;
    if !output.status.success() {
        bail!("promtool failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// What `loadgen` replays, and where.
#[derive(Debug, Clone)]
pub struct LoadgenConfig {
    pub binary: PathBuf,
    pub trace: PathBuf,
    /// The pool's endpoints file (ready replicas), which `loadgen` round-robins over.
    pub endpoints_file: PathBuf,
    /// Trace seconds per wall second.
    pub speed: f64,
    /// Multiplies the trace's rates.
    pub scale: f64,
    /// Trace offset (seconds from its first row) at which the replay starts.
    pub start_offset_seconds: f64,
    /// Stop after this much wall time.
    pub duration: Option<Duration>,
    /// The run's folder: `loadgen.log`, `loadgen-timeline.csv` and [`loadgen_targets_file`].
    pub dir: PathBuf,
}

/// A running `loadgen`, its stdout collected line by line.
#[derive(Debug)]
pub struct Loadgen {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Loadgen {
    /// Starts `loadgen`; once it prints its metrics address, the address is written to
    /// [`loadgen_targets_file`] so Prometheus scrapes it.
    pub fn start(config: &LoadgenConfig) -> anyhow::Result<Self> {
        let mut command = Command::new(&config.binary);
        command
            .arg("--trace")
            .arg(&config.trace)
            .arg("--endpoints")
            .arg(&config.endpoints_file)
            .args([
                "--speed",
                &config.speed.to_string(),
                "--scale",
                &config.scale.to_string(),
            ])
            .args([
                "--start-at",
                &format!(
                    "{}ms",
                    (config.start_offset_seconds * 1000.0).round().max(0.0) as u64
                ),
            ])
            .args(["--metrics-addr", "127.0.0.1:0", "--json"])
            .args(["--parent-pid", &std::process::id().to_string()])
            .arg("--timeline")
            .arg(config.dir.join("loadgen-timeline.csv"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(
                config.dir.join("loadgen.log"),
            )?))
            .kill_on_drop(true);
        if let Some(duration) = config.duration {
            command.args(["--duration", &format!("{}ms", duration.as_millis())]);
        }
        let mut child = command.spawn().context("cannot start loadgen")?;
        let output: Arc<Mutex<Vec<String>>> = Arc::default();
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            let targets = loadgen_targets_file(&config.dir);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(addr) = line
                        .strip_prefix("metrics on http://")
                        .and_then(|l| l.strip_suffix("/metrics"))
                    {
                        let json = serde_json::json!([{ "targets": [addr], "labels": { "job": "loadgen" } }]);
                        let _ = std::fs::write(&targets, json.to_string());
                    }
                    if let Ok(mut all) = output.lock() {
                        all.push(line);
                    }
                }
            });
        }
        Ok(Self { child, output })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether `loadgen` has exited (the trace is over).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        stop_child(&mut self.child, grace).await;
    }

    /// `loadgen`'s JSON summary: the last line of its output that parses as JSON.
    pub fn summary(&self) -> Option<serde_json::Value> {
        self.output
            .lock()
            .ok()
            .and_then(|lines| lines.iter().rev().find_map(|l| serde_json::from_str(l).ok()))
    }
}
