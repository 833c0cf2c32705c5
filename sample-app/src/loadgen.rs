//! Open-loop trace replay: the engine behind the `loadgen` binary.
//!
//! Open loop means requests are sent on the trace's schedule whatever the server does, as real users
//! do; a slow server does not slow the load down (no coordinated omission). Arrivals are Poisson:
//! within each trace interval the gaps are exponential with the interval's rate. Time runs `speed`
//! times faster than the trace while each interval keeps its request *rate* (times `scale`), so a day
//! replayed at `speed = 1440` lasts a minute and has the day's shape at the day's rates.
//!
//! The client never blocks: at most `max_in_flight` requests are outstanding (the rest are counted as
//! `dropped`), each has a timeout, and the endpoint list is re-read whenever its file changes.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::trace::RateCurve;

/// Poisson arrivals over a trace, in wall seconds since the replay started.
#[derive(Debug)]
pub struct Arrivals {
    curve: RateCurve,
    speed: f64,
    scale: f64,
    /// Trace offset (trace seconds) the replay starts at.
    start_offset: f64,
    /// Current position, in trace seconds from the trace's start.
    offset: f64,
    rng: StdRng,
}

impl Arrivals {
    /// `speed` trace seconds pass per wall second; rates are multiplied by `scale`.
    pub fn new(curve: RateCurve, speed: f64, scale: f64, start_offset: f64, seed: u64) -> Self {
        Self {
            curve,
            speed,
            scale,
            start_offset,
            offset: start_offset,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Target request rate (requests per wall second) at `wall` seconds into the replay.
    pub fn rate_at_wall(&self, wall: f64) -> f64 {
        self.scale * self.curve.rate_at(self.start_offset + wall * self.speed)
    }

    /// Wall seconds the whole replay lasts.
    pub fn wall_duration(&self) -> f64 {
        ((self.curve.duration_seconds() - self.start_offset) / self.speed).max(0.0)
    }

    /// Trace offset at `wall` seconds into the replay.
    pub fn trace_offset_at(&self, wall: f64) -> f64 {
        self.start_offset + wall * self.speed
    }

    /// The next arrival's wall time, or `None` when the trace is over.
    pub fn next_arrival(&mut self) -> Option<f64> {
        let end = self.curve.duration_seconds();
        while self.offset < end {
            // Rate in requests per trace second: the wall rate divided by the speed.
            let rate = self.scale * self.curve.rate_at(self.offset) / self.speed;
            let slot_end = self.curve.slot_end(self.offset);
            if !(rate.is_finite() && rate > 0.0) {
                self.offset = slot_end;
                continue;
            }
            // Exp::new only fails for a negative or NaN rate, excluded above.
            let gap = Exp::new(rate).map_or(f64::INFINITY, |exp| exp.sample(&mut self.rng));
            if self.offset + gap >= slot_end {
                // Memoryless: restart the draw at the next interval with its own rate.
                self.offset = slot_end;
                continue;
            }
            self.offset += gap;
            return Some((self.offset - self.start_offset) / self.speed);
        }
        None
    }
}

/// The list of `host:port` targets, re-read from its file when the file changes.
#[derive(Debug, Default)]
pub struct Endpoints {
    list: RwLock<Vec<String>>,
    next: AtomicUsize,
}

impl Endpoints {
    pub fn new(list: Vec<String>) -> Self {
        Self {
            list: RwLock::new(list),
            next: AtomicUsize::new(0),
        }
    }

    /// Parses an endpoints file: one `host:port` per line; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    pub fn replace(&self, list: Vec<String>) {
        if let Ok(mut guard) = self.list.write() {
            *guard = list;
        }
    }

    pub fn len(&self) -> usize {
        self.list.read().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next endpoint, round-robin.
    pub fn pick(&self) -> Option<String> {
        let list = self.list.read().ok()?;
        if list.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % list.len();
        Some(list[i].clone())
    }

    /// Polls `path`'s modification time every `interval` and reloads the list when it changes.
    /// A missing or unreadable file keeps the last list (a writer may be replacing it).
    pub async fn watch(self: Arc<Self>, path: PathBuf, interval: Duration) {
        let mut seen: Option<(SystemTime, u64)> = None;
        loop {
            if let Ok(meta) = tokio::fs::metadata(&path).await {
                let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
                if seen != Some(stamp)
                    && let Ok(text) = tokio::fs::read_to_string(&path).await
                {
                    self.replace(Self::parse(&text));
                    seen = Some(stamp);
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// 5xx (a saturated replica answers 503).
    ServerError,
    /// Other non-2xx answers.
    ClientError,
    Timeout,
    /// Connection refused or reset (a replica that went away).
    Connect,
    /// Not sent: `max_in_flight` requests were already outstanding.
    Dropped,
    /// Not sent: the endpoint list was empty.
    NoEndpoint,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dropped => "dropped",
            Self::NoEndpoint => "no_endpoint",
        }
    }

    pub fn is_error(self) -> bool {
        self != Self::Ok
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Counts of one wall second (by scheduled send time).
#[derive(Debug, Clone, Default)]
struct SecondStats {
    target_rate: f64,
    outcomes: BTreeMap<Outcome, u64>,
    latencies_us: Vec<u64>,
}

/// Everything measured so far; shared by the request tasks.
#[derive(Debug)]
pub struct Stats {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    target_rate: Gauge<f64, AtomicU64>,
    in_flight: Gauge,
    endpoints: Gauge,
    seconds: Mutex<Vec<SecondStats>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabels, Counter>::default();
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 13,
        ));
        let target_rate = Gauge::<f64, AtomicU64>::default();
        let in_flight = Gauge::default();
        let endpoints = Gauge::default();
        registry.register("loadgen_requests", "Requests by outcome", requests.clone());
        registry.register(
            "loadgen_request_duration_seconds",
            "Latency of answered requests, from their scheduled send time",
            latency.clone(),
        );
        registry.register(
            "loadgen_target_rate",
            "Requests per second the trace asks for now",
            target_rate.clone(),
        );
        registry.register("loadgen_in_flight", "Requests outstanding", in_flight.clone());
        registry.register(
            "loadgen_endpoints",
            "Endpoints in the round-robin list",
            endpoints.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            target_rate,
            in_flight,
            endpoints,
            seconds: Mutex::new(Vec::new()),
        }
    }

    /// Prometheus text of the load generator's metrics.
    pub fn encode_metrics(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn with_second<F: FnOnce(&mut SecondStats)>(&self, second: usize, f: F) {
        if let Ok(mut seconds) = self.seconds.lock() {
            if seconds.len() <= second {
                seconds.resize_with(second + 1, SecondStats::default);
            }
            f(&mut seconds[second]);
        }
    }

    pub fn set_target_rate(&self, wall: f64, rate: f64) {
        self.target_rate.set(rate);
        self.with_second(wall.max(0.0) as usize, |s| s.target_rate = rate);
    }

    pub fn set_endpoints(&self, count: usize) {
        self.endpoints.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Records one request scheduled at `wall` seconds; `latency` only for answered requests.
    pub fn record(&self, wall: f64, outcome: Outcome, latency: Option<Duration>) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
        if let Some(latency) = latency {
            self.latency.observe(latency.as_secs_f64());
        }
        let micros = latency.map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX));
        self.with_second(wall.max(0.0) as usize, |s| {
            *s.outcomes.entry(outcome).or_default() += 1;
            if let (Outcome::Ok, Some(us)) = (outcome, micros) {
                s.latencies_us.push(us);
            }
        });
    }

    /// The summary over `[from, to)` wall seconds (the whole run: `0..usize::MAX`).
    pub fn summary(&self, from: usize, to: usize, elapsed: f64) -> Summary {
        let Ok(seconds) = self.seconds.lock() else {
            return Summary::default();
        };
        let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
        let mut latencies: Vec<u64> = Vec::new();
        let mut offered = 0.0;
        for s in seconds.iter().take(to).skip(from) {
            for (k, v) in &s.outcomes {
                *outcomes.entry(*k).or_default() += v;
            }
            latencies.extend(&s.latencies_us);
            offered += s.target_rate;
        }
        Summary::from_parts(outcomes, latencies, offered, elapsed)
    }

    /// One row per wall second: `second,target_rate,sent,ok,errors,p50_ms,p95_ms,p99_ms`.
    pub fn timeline_csv(&self) -> String {
        let mut out = String::from("second,target_rate,sent,ok,errors,p50_ms,p95_ms,p99_ms\n");
        let Ok(seconds) = self.seconds.lock() else {
            return out;
        };
        for (i, s) in seconds.iter().enumerate() {
            let total: u64 = s.outcomes.values().sum();
            let ok = s.outcomes.get(&Outcome::Ok).copied().unwrap_or(0);
            let mut lat = s.latencies_us.clone();
            lat.sort_unstable();
            let p = |q: f64| percentile(&lat, q).map_or(String::new(), |v| format!("{v:.2}"));
            out.push_str(&format!(
                "{i},{:.2},{total},{ok},{},{},{},{}\n",
                s.target_rate,
                total - ok,
                p(0.5),
                p(0.95),
                p(0.99)
            ));
        }
        out
    }
}

/// `q`-quantile of sorted microsecond latencies, in milliseconds (nearest rank).
fn percentile(sorted_us: &[u64], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(sorted_us[rank - 1] as f64 / 1000.0)
}

/// Latency percentiles in milliseconds of answered-OK requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// The report printed on exit (`--json` prints it as JSON).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub elapsed_seconds: f64,
    /// Requests scheduled (sent or not).
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Mean requests per second the trace asked for.
    pub offered_rate: f64,
    /// Successful requests per second.
    pub achieved_rate: f64,
    pub latency: Latency,
}

impl Summary {
    fn from_parts(
        outcomes: BTreeMap<Outcome, u64>,
        mut latencies: Vec<u64>,
        offered: f64,
        elapsed: f64,
    ) -> Self {
        latencies.sort_unstable();
        let scheduled: u64 = outcomes.values().sum();
        let ok = outcomes.get(&Outcome::Ok).copied().unwrap_or(0);
        let errors = scheduled - ok;
        let errors_by_kind = outcomes
            .iter()
            .filter(|(k, _)| k.is_error())
            .map(|(k, v)| (k.as_str().to_owned(), *v))
            .collect();
        let per_second = |x: f64| if elapsed > 0.0 { x / elapsed } else { 0.0 };
        Self {
            elapsed_seconds: elapsed,
            scheduled,
            ok,
            errors,
            error_rate: if scheduled > 0 {
                errors as f64 / scheduled as f64
            } else {
                0.0
            },
            errors_by_kind,
            offered_rate: per_second(offered),
            achieved_rate: per_second(ok as f64),
            latency: Latency {
                p50_ms: percentile(&latencies, 0.5),
                p95_ms: percentile(&latencies, 0.95),
                p99_ms: percentile(&latencies, 0.99),
                max_ms: latencies.last().map(|us| *us as f64 / 1000.0),
            },
        }
    }

    /// A few lines a person reads.
    pub fn human(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
        format!(
            "{:.1}s: {} scheduled, {} ok, {} errors ({:.2} %) {:?}\noffered {:.1} req/s, achieved {:.1} req/s\nlatency p50 {}, p95 {}, p99 {}, max {}",
            self.elapsed_seconds,
            self.scheduled,
            self.ok,
            self.errors,
            self.error_rate * 100.0,
            self.errors_by_kind,
            self.offered_rate,
            self.achieved_rate,
            ms(self.latency.p50_ms),
            ms(self.latency.p95_ms),
            ms(self.latency.p99_ms),
            ms(self.latency.max_ms),
        )
    }
}

/// The shop's request mix: mostly browsing, some carts, few checkouts.
#[derive(Debug, Clone, Copy)]
enum Route {
    Catalogue,
    Cart,
    Checkout,
}

fn pick_route(rng: &mut StdRng) -> Route {
    match rng.random_range(0..10u8) {
        0..=6 => Route::Catalogue,
        7 | 8 => Route::Cart,
        _ => Route::Checkout,
    }
}

/// Settings of one replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub timeout: Duration,
    pub max_in_flight: usize,
    /// Stop after this much wall time even if the trace goes on.
    pub duration: Option<Duration>,
    pub seed: u64,
}

/// Sends one request and classifies the answer.
async fn send(client: &reqwest::Client, endpoint: &str, route: Route) -> Outcome {
    let request = match route {
        Route::Catalogue => client.get(format!("http://{endpoint}/catalogue")),
        Route::Cart => client
            .post(format!("http://{endpoint}/cart"))
            .header("content-type", "application/json")
            .body(r#"{"product_id":1,"quantity":2}"#),
        Route::Checkout => client
            .post(format!("http://{endpoint}/checkout"))
            .header("content-type", "application/json")
            .body(r#"{"lines":[{"product_id":2,"quantity":1},{"product_id":4,"quantity":3}]}"#),
    };
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            // Read the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            if status.is_success() {
                Outcome::Ok
            } else if status.is_server_error() {
                Outcome::ServerError
            } else {
                Outcome::ClientError
            }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(_) => Outcome::Connect,
    }
}

/// Replays `arrivals` against `endpoints` until the trace ends, `duration` passes or `stop` resolves.
/// Returns the wall seconds the replay ran.
pub async fn replay(
    mut arrivals: Arrivals,
    endpoints: Arc<Endpoints>,
    stats: Arc<Stats>,
    options: &ReplayOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<f64, reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .pool_idle_timeout(Duration::from_secs(10))
        .build()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1)));
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5EED);
    let limit = options.duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
    let started = Instant::now();
    let start_at = tokio::time::Instant::from_std(started);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    let mut next_rate_update = 0.0;
    while let Some(at) = arrivals.next_arrival() {
        if at >= limit {
            break;
        }
        // Publish the target rate about every 100 ms of schedule, even when no request is due.
        while next_rate_update <= at {
            stats.set_target_rate(next_rate_update, arrivals.rate_at_wall(next_rate_update));
            next_rate_update += 0.1;
        }
        let due = start_at + Duration::from_secs_f64(at);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = &mut stop => break,
        }
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
        stats.set_endpoints(endpoints.len());
        let Some(endpoint) = endpoints.pick() else {
            stats.record(at, Outcome::NoEndpoint, None);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.record(at, Outcome::Dropped, None);
            continue;
        };
        let route = pick_route(&mut rng);
        let client = client.clone();
        let stats = stats.clone();
        stats.in_flight.inc();
        tasks.spawn(async move {
            let outcome = send(&client, &endpoint, route).await;
            // Latency from the scheduled time, so a late send counts against the server's answer.
            let latency = (outcome == Outcome::Ok)
                .then(|| started.elapsed().saturating_sub(Duration::from_secs_f64(at)));
            stats.record(at, outcome, latency);
            stats.in_flight.dec();
            drop(permit);
        });
    }
    // Let outstanding requests finish (each is bounded by the timeout).
    while tasks.join_next().await.is_some() {}
    Ok(started.elapsed().as_secs_f64().min(limit.max(0.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn poisson_arrivals_follow_the_trace_rate_under_time_compression() {
        // Two 60 s intervals at 10 and 40 requests per second, replayed 10x faster: 6 s per interval.
        let curve = RateCurve {
            step_seconds: 60,
            rates: vec![10.0, 40.0],
        };
        let mut arrivals = Arrivals::new(curve, 10.0, 1.0, 0.0, 7);
        assert!((arrivals.wall_duration() - 12.0).abs() < 1e-9);
        let mut times = Vec::new();
        while let Some(t) = arrivals.next_arrival() {
            times.push(t);
        }
        let first = times.iter().filter(|t| **t < 6.0).count() as f64;
        let second = times.iter().filter(|t| **t >= 6.0).count() as f64;
        // Expected 60 and 240; Poisson standard deviations ~8 and ~15.
        assert!((first - 60.0).abs() < 30.0, "{first}");
        assert!((second - 240.0).abs() < 60.0, "{second}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|t| *t < 12.0));
    }

    #[test]
    fn scale_and_start_offset_shift_the_replay() {
        let curve = RateCurve {
            step_seconds: 10,
            rates: vec![0.0, 5.0, 5.0],
        };
        let arrivals = Arrivals::new(curve, 2.0, 3.0, 10.0, 1);
        assert_eq!(arrivals.rate_at_wall(0.0), 15.0);
        assert!((arrivals.wall_duration() - 10.0).abs() < 1e-9);
        assert_eq!(arrivals.trace_offset_at(5.0), 20.0);
    }

    #[test]
    fn endpoints_round_robin_and_parse_comments() {
        let list = Endpoints::parse("# ready replicas\n127.0.0.1:1\n\n 127.0.0.1:2 \n");
        assert_eq!(list, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        let endpoints = Endpoints::new(list);
        let picks: Vec<_> = (0..4).map(|_| endpoints.pick().unwrap()).collect();
        assert_eq!(
            picks,
            vec!["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
        endpoints.replace(Vec::new());
        assert!(endpoints.pick().is_none());
    }

    #[test]
    fn summary_counts_errors_and_percentiles() {
        let stats = Stats::new();
        for i in 1..=100u64 {
            stats.record(0.5, Outcome::Ok, Some(Duration::from_millis(i)));
        }
        stats.record(1.5, Outcome::ServerError, None);
        stats.record(1.5, Outcome::Dropped, None);
        let s = stats.summary(0, usize::MAX, 2.0);
        assert_eq!((s.scheduled, s.ok, s.errors), (102, 100, 2));
        assert_eq!(s.latency.p50_ms, Some(50.0));
        assert_eq!(s.latency.p99_ms, Some(99.0));
        assert_eq!(s.errors_by_kind.get("server_error"), Some(&1));
        assert_eq!(s.achieved_rate, 50.0);
        let later = stats.summary(1, 2, 1.0);
        assert_eq!((later.ok, later.errors), (0, 2));
        assert!(stats.timeline_csv().lines().count() == 3);
        assert!(
            stats
                .encode_metrics()
                .contains("loadgen_requests_total{outcome=\"ok\"} 100")
        );
    }
}
