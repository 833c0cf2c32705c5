//! The shop backend: routes, the per-replica capacity model, readiness and metrics.
//!
//! Capacity is real, not simulated: at most `concurrency` requests are served at once, each burning
//! `work` of CPU on a blocking thread and then waiting `io_wait` (a database call, say). Requests beyond
//! that wait in a bounded queue for at most `queue_timeout`; a full queue or an expired wait answers
//! 503 at once. So a replica serves about `concurrency / (work + io_wait)` requests per second, and
//! above that its latency grows by the queueing delay and the excess is shed as 503s, which is what an
//! autoscaler must prevent.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// How one replica serves requests.
#[derive(Debug, Clone)]
pub struct Capacity {
    /// Requests served at the same time; more wait in the queue.
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; beyond that a request is refused with 503 at once.
    pub max_queue: usize,
    /// Longest wait for a slot before a request is refused with 503.
    pub queue_timeout: Duration,
    /// CPU time burnt per request (busy loop on a blocking thread).
    pub work: Duration,
    /// Time per request spent waiting, not computing (a downstream call).
    pub io_wait: Duration,
}

impl Capacity {
    /// Requests per second one replica serves at full concurrency, if CPU is not the bottleneck.
    pub fn nominal_rps(&self) -> f64 {
        let per_request = (self.work + self.io_wait).as_secs_f64();
        if per_request <= 0.0 {
            f64::INFINITY
        } else {
            self.concurrency as f64 / per_request
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The replica's Prometheus metrics.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    queued: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // Buckets from 1 ms to ~4 s: below capacity a request takes milliseconds, above it the queue
        // timeout dominates.
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 13,
            ))
        });
        let in_flight = Gauge::default();
        let queued = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency including queueing, by route",
            duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served or queued",
            in_flight.clone(),
        );
        registry.register(
            "sample_app_queued_requests",
            "Requests waiting for a free slot",
            queued.clone(),
        );
        // Series exist from the start at 0, so `rate()` sees an idle replica as 0 req/s (not as missing)
        // and counts its very first requests.
        for route in ["/catalogue", "/cart", "/checkout"] {
            let _ = requests.get_or_create(&RequestLabels {
                route: route.to_owned(),
                code: "200".to_owned(),
            });
        }
        Self {
            registry,
            requests,
            duration,
            in_flight,
            queued,
        }
    }
}

/// Shared state of one replica.
#[derive(Debug)]
pub struct AppState {
    capacity: Capacity,
    slots: Semaphore,
    waiting: AtomicI64,
    ready: AtomicBool,
    metrics: Metrics,
    next_order: AtomicU64,
}

impl AppState {
    /// A replica that is not ready yet; call [`AppState::set_ready`] after its start-up delay.
    pub fn new(capacity: Capacity) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(capacity.concurrency.max(1)),
            capacity,
            waiting: AtomicI64::new(0),
            ready: AtomicBool::new(false),
            metrics: Metrics::new(),
            next_order: AtomicU64::new(1),
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The metrics in Prometheus text format.
    pub fn encode_metrics(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.metrics.registry);
        text
    }
}

/// One item of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: u32,
    pub name: &'static str,
    pub price_cents: u64,
}

const CATALOGUE: [Product; 5] = [
    Product {
        id: 1,
        name: "espresso beans 1kg",
        price_cents: 2490,
    },
    Product {
        id: 2,
        name: "pour-over kettle",
        price_cents: 5900,
    },
    Product {
        id: 3,
        name: "burr grinder",
        price_cents: 12900,
    },
    Product {
        id: 4,
        name: "paper filters (100)",
        price_cents: 650,
    },
    Product {
        id: 5,
        name: "ceramic mug",
        price_cents: 1500,
    },
];

/// A line of a cart or an order.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Line {
    pub product_id: u32,
    pub quantity: u32,
}

#[derive(Debug, Deserialize)]
struct CheckoutRequest {
    lines: Vec<Line>,
}

#[derive(Debug, Serialize)]
struct Priced {
    lines: Vec<Line>,
    total_cents: u64,
}

#[derive(Debug, Serialize)]
struct Order {
    order_id: u64,
    total_cents: u64,
}

fn price(lines: &[Line]) -> Result<u64, (StatusCode, String)> {
    let mut total: u64 = 0;
    for line in lines {
        let product = CATALOGUE
            .iter()
            .find(|p| p.id == line.product_id)
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("no product with id {}", line.product_id),
                )
            })?;
        if line.quantity == 0 || line.quantity > 100 {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("quantity must be in 1..=100, got {}", line.quantity),
            ));
        }
        total = total.saturating_add(product.price_cents.saturating_mul(u64::from(line.quantity)));
    }
    Ok(total)
}

async fn catalogue() -> Json<&'static [Product]> {
    Json(&CATALOGUE)
}

async fn cart(Json(line): Json<Line>) -> Result<Json<Priced>, (StatusCode, String)> {
    let total_cents = price(std::slice::from_ref(&line))?;
    Ok(Json(Priced {
        lines: vec![line],
        total_cents,
    }))
}

async fn checkout(
    State(state): State<Arc<AppState>>,
    Json(request): Json<CheckoutRequest>,
) -> Result<Json<Order>, (StatusCode, String)> {
    if request.lines.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "an order needs at least one line".to_owned(),
        ));
    }
    let total_cents = price(&request.lines)?;
    let order_id = state.next_order.fetch_add(1, Ordering::Relaxed);
    Ok(Json(Order {
        order_id,
        total_cents,
    }))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.encode_metrics(),
    )
}

/// Burns `work` of CPU; runs on a blocking thread so the async workers keep accepting connections.
fn busy_loop(work: Duration) {
    let started = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while started.elapsed() < work {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
    }
}

fn overloaded(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], why).into_response()
}

/// Admission (bounded queue with timeout), the request's work, and its metrics.
async fn serve_with_capacity(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    state.metrics.in_flight.inc();
    let response = admit_and_run(&state, request, next).await;
    state.metrics.in_flight.dec();
    let code = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            code,
        })
        .inc();
    state
        .metrics
        .duration
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn admit_and_run(state: &AppState, request: Request, next: Next) -> Response {
    let capacity = &state.capacity;
    let permit = match state.slots.try_acquire() {
        Ok(permit) => permit,
        Err(_) => {
            // All slots busy: queue if there is room, for at most the queue timeout.
            let waiting = state.waiting.fetch_add(1, Ordering::SeqCst);
            if waiting >= capacity.max_queue as i64 {
                state.waiting.fetch_sub(1, Ordering::SeqCst);
                return overloaded("queue full");
            }
            state.metrics.queued.inc();
            let acquired = tokio::time::timeout(capacity.queue_timeout, state.slots.acquire()).await;
            state.metrics.queued.dec();
            state.waiting.fetch_sub(1, Ordering::SeqCst);
            match acquired {
                Ok(Ok(permit)) => permit,
                // Timed out, or the semaphore closed (never closed; treat as overload).
                _ => return overloaded("timed out waiting for a free slot"),
            }
        }
    };
    if !capacity.work.is_zero() {
        let work = capacity.work;
        if tokio::task::spawn_blocking(move || busy_loop(work))
            .await
            .is_err()
        {
            return (StatusCode::INTERNAL_SERVER_ERROR, "work task failed").into_response();
        }
    }
    if !capacity.io_wait.is_zero() {
        tokio::time::sleep(capacity.io_wait).await;
    }
    let response = next.run(request).await;
    drop(permit);
    response
}

/// The replica's router: shop routes behind the capacity model; probes and metrics outside it, so a
/// saturated replica still answers its probes and its scrape.
pub fn router(state: Arc<AppState>) -> Router {
    let shop = Router::new()
        .route("/catalogue", get(catalogue))
        .route("/cart", post(cart))
        .route("/checkout", post(checkout))
        .route_layer(middleware::from_fn_with_state(state.clone(), serve_with_capacity));
    Router::new()
        .merge(shop)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}
