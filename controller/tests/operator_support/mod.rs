//! Test doubles for the operator tests: an in-memory Kubernetes API server played through kube-rs's
//! tower-test mock (every request the operator makes is answered here, and recorded so the tests can
//! assert on it; an unexpected request fails the test), and a fake metrics source that can go down.
#![allow(clippy::unwrap_used, dead_code)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::{Client, client::Body, runtime::events::Reporter};
use prescient::{
    crd::{PredictiveAutoscaler, PredictiveAutoscalerSpec},
    dashboard::DashboardStore,
    edges::{ManualClock, MetricsError, MetricsSource},
    metrics::Metrics,
    operator::Context,
};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "shop";

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

/// A Deployment as the fake API server keeps it.
#[derive(Debug, Clone)]
pub struct FakeDeployment {
    pub replicas: i32,
    pub ready: i32,
    pub resource_version: u64,
}

#[derive(Debug, Default)]
pub struct ClusterState {
    pub deployments: HashMap<String, FakeDeployment>,
    pub autoscalers: HashMap<String, Value>,
    /// Answer the next N scale writes with 409 Conflict (someone else wrote first).
    pub conflicts_on_next_put: usize,
    pub requests: Vec<Recorded>,
    /// Do not keep the request log (the benchmark makes millions of requests).
    pub skip_recording: bool,
}

/// The in-memory API server.
#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<ClusterState>>);

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn api_status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

fn scale_json(name: &str, d: &FakeDeployment) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": d.resource_version.to_string()},
        "spec": {"replicas": d.replicas},
        "status": {"replicas": d.replicas, "selector": format!("app={name}")}
    })
}

fn deployment_json(name: &str, d: &FakeDeployment) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": d.resource_version.to_string()},
        "spec": {"replicas": d.replicas},
        "status": {"replicas": d.replicas, "readyReplicas": d.ready}
    })
}

impl FakeApi {
    pub fn add_deployment(&self, name: &str, replicas: i32) {
        self.0.lock().unwrap().deployments.insert(
            name.to_owned(),
            FakeDeployment {
                replicas,
                ready: replicas,
                resource_version: 1,
            },
        );
    }

    pub fn add_autoscaler(&self, pa: &PredictiveAutoscaler) {
        let name = pa.metadata.name.clone().unwrap();
        self.0
            .lock()
            .unwrap()
            .autoscalers
            .insert(name, serde_json::to_value(pa).unwrap());
    }

    pub fn replicas(&self, name: &str) -> Option<i32> {
        self.0.lock().unwrap().deployments.get(name).map(|d| d.replicas)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.0.lock().unwrap().requests.clear();
    }

    /// Scale writes (`PUT .../scale`) made so far.
    pub fn scale_writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::PUT && r.path.ends_with("/scale"))
            .collect()
    }

    /// The last status the operator patched for `name`.
    pub fn last_status(&self, name: &str) -> Value {
        let requests = self.requests();
        let patch = requests
            .iter()
            .rev()
            .find(|r| {
                r.method == Method::PATCH
                    && r.path.ends_with(&format!("/predictiveautoscalers/{name}/status"))
            })
            .unwrap_or_else(|| panic!("no status patch for {name}; requests: {:#?}", paths(&requests)));
        patch.body["status"].clone()
    }

    /// Reasons of the events published so far (created or updated as a series).
    pub fn event_reasons(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path.contains("/events"))
            .filter_map(|r| r.body["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// Answers one request like the API server would.
    fn handle(&self, method: Method, path: &str, query: &str, body: Value) -> Response<Body> {
        let mut state = self.0.lock().unwrap();
        if !state.skip_recording {
            state.requests.push(Recorded {
                method: method.clone(),
                path: path.to_owned(),
                body: body.clone(),
            });
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.clone(), parts.as_slice()) {
            (
                Method::GET,
                [
                    "apis",
                    "apps",
                    "v1",
                    "namespaces",
                    NAMESPACE,
                    "deployments",
                    name,
                    "scale",
                ],
            ) => match state.deployments.get(*name) {
                Some(d) => json_response(StatusCode::OK, scale_json(name, d)),
                None => api_status(404, "NotFound", &format!("deployments.apps \"{name}\" not found")),
            },
            (Method::GET, ["apis", "apps", "v1", "namespaces", NAMESPACE, "deployments", name]) => {
                match state.deployments.get(*name) {
                    Some(d) => json_response(StatusCode::OK, deployment_json(name, d)),
                    None => api_status(404, "NotFound", &format!("deployments.apps \"{name}\" not found")),
                }
            }
            (
                Method::PUT,
                [
                    "apis",
                    "apps",
                    "v1",
                    "namespaces",
                    NAMESPACE,
                    "deployments",
                    name,
                    "scale",
                ],
            ) => {
                let name = (*name).to_owned();
                if state.conflicts_on_next_put > 0 {
                    state.conflicts_on_next_put -= 1;
                    // Someone else scaled in between: their write bumps the resourceVersion.
                    if let Some(d) = state.deployments.get_mut(&name) {
                        d.resource_version += 1;
                    }
                    return api_status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version",
                    );
                }
                let Some(d) = state.deployments.get_mut(&name) else {
                    return api_status(404, "NotFound", "not found");
                };
                let sent_version = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if sent_version != d.resource_version.to_string() {
                    return api_status(409, "Conflict", "stale resourceVersion");
                }
                d.replicas = i32::try_from(body["spec"]["replicas"].as_i64().unwrap()).unwrap();
                // Pods of the fake become ready at once; the tests are about the API calls.
                d.ready = d.replicas;
                d.resource_version += 1;
                let d = d.clone();
                json_response(StatusCode::OK, scale_json(&name, &d))
            }
            (
                Method::PATCH,
                [
                    "apis",
                    "prescient.dev",
                    "v1alpha1",
                    "namespaces",
                    NAMESPACE,
                    "predictiveautoscalers",
                    name,
                    "status",
                ],
            ) => {
                assert!(
                    query.contains("fieldManager=prescient"),
                    "status patch without field manager: {query}"
                );
                assert_eq!(
                    body["apiVersion"], "prescient.dev/v1alpha1",
                    "server-side apply needs apiVersion"
                );
                assert_eq!(
                    body["kind"], "PredictiveAutoscaler",
                    "server-side apply needs kind"
                );
                match state.autoscalers.get_mut(*name) {
                    Some(object) => {
                        object["status"] = body["status"].clone();
                        json_response(StatusCode::OK, object.clone())
                    }
                    None => api_status(404, "NotFound", "no such autoscaler"),
                }
            }
            (Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", NAMESPACE, "events"]) => {
                json_response(StatusCode::CREATED, body)
            }
            (
                Method::PATCH,
                [
                    "apis",
                    "events.k8s.io",
                    "v1",
                    "namespaces",
                    NAMESPACE,
                    "events",
                    _,
                ],
            ) => json_response(StatusCode::OK, body),
            _ => panic!("unexpected request {method} {path}?{query}"),
        }
    }

    /// A kube client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let response = api.handle(
                    parts.method.clone(),
                    parts.uri.path(),
                    parts.uri.query().unwrap_or(""),
                    body,
                );
                send.send_response(response);
            }
        });
        Client::new(service, "default")
    }
}

pub fn paths(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Demand samples served by the fake metrics source; `down` makes it fail like an unreachable Prometheus.
#[derive(Clone, Default)]
pub struct FakeMetrics {
    pub points: Arc<Mutex<Vec<(i64, f64)>>>,
    pub down: Arc<AtomicBool>,
    pub calls: Arc<Mutex<Vec<(i64, i64)>>>,
    /// How long each query takes (milliseconds), so that syncs overlap and take time.
    pub delay_ms: Arc<AtomicU64>,
    /// Queries in flight now, and the most there ever were at once.
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl FakeMetrics {
    pub fn new(mut points: Vec<(i64, f64)>) -> Self {
        points.sort_by_key(|&(t, _)| t);
        Self {
            points: Arc::new(Mutex::new(points)),
            ..Self::default()
        }
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }
    pub fn extend(&self, more: impl IntoIterator<Item = (i64, f64)>) {
        let mut points = self.points.lock().unwrap();
        points.extend(more);
        points.sort_by_key(|&(t, _)| t);
    }
}

impl MetricsSource for FakeMetrics {
    async fn range(
        &self,
        _query: &str,
        start: i64,
        end: i64,
        _step: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        self.calls.lock().unwrap().push((start, end));
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now_in_flight, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(MetricsError::Unavailable("connection refused (test)".to_owned()));
        }
        let points: Vec<_> = {
            let all = self.points.lock().unwrap();
            // Points are kept sorted by time: two binary searches find the window.
            let from = all.partition_point(|&(t, _)| t < start);
            let to = all.partition_point(|&(t, _)| t <= end);
            all[from..to.max(from)].to_vec()
        };
        if points.is_empty() {
            return Err(MetricsError::Empty("no samples (test)".to_owned()));
        }
        Ok(points)
    }
}

/// A `PredictiveAutoscaler` from the YAML-like JSON of its spec.
pub fn autoscaler(name: &str, spec: Value) -> PredictiveAutoscaler {
    let spec: PredictiveAutoscalerSpec = serde_json::from_value(spec).unwrap();
    let mut pa = PredictiveAutoscaler::new(name, spec);
    pa.metadata.namespace = Some(NAMESPACE.to_owned());
    pa.metadata.generation = Some(3);
    pa.metadata.uid = Some(format!("uid-{name}"));
    pa.metadata.resource_version = Some("100".to_owned());
    pa
}

/// Everything a test needs: the fake API, the fake metrics, the clock and the operator's context.
pub struct Harness {
    pub api: FakeApi,
    pub metrics_source: FakeMetrics,
    pub clock: ManualClock,
    pub ctx: Arc<Context<FakeMetrics>>,
}

impl Harness {
    pub fn new(points: Vec<(i64, f64)>, now: i64) -> Self {
        Self::with_max_concurrent_syncs(points, now, prescient::operator::MAX_CONCURRENT_SYNCS)
    }

    /// A harness whose context lets at most `syncs` syncs run at once.
    pub fn with_max_concurrent_syncs(points: Vec<(i64, f64)>, now: i64, syncs: usize) -> Self {
        let api = FakeApi::default();
        let metrics_source = FakeMetrics::new(points);
        let clock = ManualClock::new(now);
        let ctx = Arc::new(
            Context::new(
                api.client(),
                metrics_source.clone(),
                Arc::new(Metrics::new()),
                DashboardStore::default(),
                Arc::new(clock.clone()),
                Reporter {
                    controller: "prescient".to_owned(),
                    instance: Some("test".to_owned()),
                },
            )
            .with_max_concurrent_syncs(syncs),
        );
        Self {
            api,
            metrics_source,
            clock,
            ctx,
        }
    }

    pub async fn reconcile(&self, pa: &PredictiveAutoscaler) -> kube::runtime::controller::Action {
        self.api.add_autoscaler(pa);
        prescient::operator::reconcile(Arc::new(pa.clone()), self.ctx.clone())
            .await
            .unwrap()
    }
}

/// The condition of `type_` in a status JSON.
pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

/// When `action` requeues, in seconds. kube-runtime's `Action` has no accessor and equality needs the
/// exact duration, which now depends on how long the sync took: its `Debug` form (`Action { requeue_after:
/// Some(29.99763126s) }`, a `Duration`'s `Debug`) is the one view of it.
pub fn requeue_secs(action: &kube::runtime::controller::Action) -> Option<f64> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    let (number, scale) = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .iter()
        .find_map(|(unit, scale)| inner.strip_suffix(unit).map(|n| (n, *scale)))?;
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// `action` requeues at the sync period (`period` seconds) less the little the sync took.
pub fn assert_requeued_at_period(action: &kube::runtime::controller::Action, period: u64, what: &str) {
    let after = requeue_secs(action).unwrap_or_else(|| panic!("{what}: not requeued ({action:?})"));
    #[allow(clippy::cast_precision_loss)]
    let period = period as f64;
    assert!(
        after <= period && after > period - 2.0,
        "{what}: requeued after {after} s, not at the {period} s period"
    );
}
