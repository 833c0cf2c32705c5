//! The dashboard API over real HTTP: a store filled by the real reconcile loop (trace source, simulated
//! cluster), served on 127.0.0.1 with a free port, queried with reqwest.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use prescient::{
    crd::{
        ForecastSpec, MetricSpec, Mode, PredictiveAutoscalerSpec, PredictiveAutoscalerStatus, ScaleTargetRef,
    },
    dashboard::{self, DashboardStore, MetricsRenderer, api::TallyView},
    edges::{
        TargetRef,
        sim::{CompletedSteps, SimTarget},
        trace::TraceSource,
    },
    reconcile::{Autoscaler, sync_once},
    sim::{ClusterConfig, SimCluster},
    spec::ScalingSpec,
};
use serde_json::Value;

const STEP: i64 = 60;
const START: i64 = 1_700_006_400; // midnight UTC, on the grid

/// Three days of a daily cycle (requests per minute), with a little deterministic wobble.
fn trace() -> Vec<(i64, f64)> {
    (0..3 * 1440)
        .map(|i| {
            let t = START + i * STEP;
            let day = (i % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            let wobble = ((i * 7919) % 13) as f64;
            (t, 100.0 + 60.0 * day.sin() + wobble)
        })
        .collect()
}

fn resource(name: &str) -> PredictiveAutoscalerSpec {
    PredictiveAutoscalerSpec {
        scale_target_ref: ScaleTargetRef {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            name: name.to_owned(),
        },
        min_replicas: 1,
        max_replicas: 50,
        metric: MetricSpec {
            query: "sum(rate(http_requests_total[1m]))".to_owned(),
            target_per_replica: 20.0,
        },
        forecast: ForecastSpec {
            history: "2d".to_owned(),
            ..ForecastSpec::default()
        },
        behavior: None,
        mode: Mode::Scale,
        sync_period: "30s".to_owned(),
        slo: None,
    }
}

/// Runs `syncs` syncs of `shop/web` two days into the trace and records each one.
async fn filled_store(store: &DashboardStore, syncs: i64) {
    let resource = resource("web");
    let spec = ScalingSpec::from_resource(&resource).unwrap();
    let target = TargetRef {
        namespace: "shop".to_owned(),
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: "web".to_owned(),
    };
    let mut autoscaler = Autoscaler::new(spec, resource.metric.query.clone(), target);
    let source = CompletedSteps {
        source: TraceSource::new(trace()),
        step_seconds: STEP,
    };
    let t0 = START + 2 * 86_400;
    let cluster = SimTarget::new(SimCluster::new(
        ClusterConfig::new(Duration::from_secs(120), 25.0),
        5,
        t0,
    ));
    for i in 0..syncs {
        let now = t0 + i * 30;
        cluster.with(|c| c.advance_to(now));
        let report = sync_once(&mut autoscaler, &source, &cluster, now).await;
        let status = PredictiveAutoscalerStatus {
            current_replicas: report.replicas_before.map(|r| r.desired),
            desired_replicas: Some(report.outcome.decision.desired_replicas),
            ..PredictiveAutoscalerStatus::default()
        };
        store.record("shop", "web", &resource, &status, &autoscaler, &report);
    }
}

async fn start(app: axum::Router) -> String {
    let server = dashboard::serve("127.0.0.1:0".parse().unwrap(), app)
        .await
        .unwrap();
    assert!(server.addr.ip().is_loopback());
    format!("http://{}", server.addr)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String, Option<String>) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), content_type)
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let (status, body, content_type) = get(url, token).await;
    assert!(
        content_type.unwrap_or_default().starts_with("application/json"),
        "{url}: not JSON: {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn serves_list_detail_forecast_openapi_and_page() {
    let store = DashboardStore::default();
    filled_store(&store, 12).await;
    let base = start(dashboard::router(store.clone(), None)).await;

    let (status, list) = get_json(&format!("{base}/api/v1/autoscalers"), None).await;
    assert_eq!(status, 200);
    let all = list["autoscalers"].as_array().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["namespace"], "shop");
    assert_eq!(all[0]["name"], "web");
    assert_eq!(all[0]["target"], "Deployment/web");
    assert!(all[0]["desiredReplicas"].as_u64().unwrap() >= 1);
    // An operator's loop measures no tally: the field is there, empty, until the loop sets one.
    assert!(all[0]["tally"].is_null(), "{}", all[0]);
    let tally = TallyView {
        underprovisioned_minutes: 1.5,
        replica_minutes: 640.0,
        scale_events: 3,
        syncs: 12,
    };
    store.record_tally("shop", "web", tally);
    store.record_tally("shop", "not-recorded", tally);
    let (_, list) = get_json(&format!("{base}/api/v1/autoscalers"), None).await;
    let all = list["autoscalers"].as_array().unwrap();
    assert_eq!(all.len(), 1, "a tally alone adds no autoscaler");
    assert_eq!(all[0]["tally"]["underprovisionedMinutes"], 1.5);
    assert_eq!(all[0]["tally"]["replicaMinutes"], 640.0);
    assert_eq!(all[0]["tally"]["scaleEvents"], 3);
    assert_eq!(all[0]["tally"]["syncs"], 12);

    let (status, detail) = get_json(&format!("{base}/api/v1/autoscalers/shop/web"), None).await;
    assert_eq!(status, 200);
    assert_eq!(detail["spec"]["maxReplicas"], 50);
    assert_eq!(detail["spec"]["targetPerReplica"], 20.0);
    assert_eq!(detail["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert!(detail["status"]["currentReplicas"].as_u64().unwrap() >= 1);
    assert!(detail["health"]["reason"].is_string());
    assert!(detail["decision"]["reason"].is_string());
    assert!(detail["errors"].is_array());
    assert_eq!(detail["lastSync"], START + 2 * 86_400 + 11 * 30);

    let (status, forecast) = get_json(&format!("{base}/api/v1/autoscalers/shop/web/forecast"), None).await;
    assert_eq!(status, 200);
    assert_eq!(forecast["stepSeconds"], 60);
    let history = forecast["history"].as_array().unwrap();
    assert!(
        history.len() > 1000,
        "the first sync brings the cached history's tail: {}",
        history.len()
    );
    // Only completed steps: nothing at or after the last sync's minute.
    let newest = history.last().unwrap()["timestamp"].as_i64().unwrap();
    assert!(newest < forecast["now"].as_i64().unwrap());
    let replicas = forecast["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 12, "one point per sync");
    for point in replicas {
        assert!(point["ready"].as_u64().unwrap() <= point["provisioned"].as_u64().unwrap() + 50);
    }
    if detail["health"]["healthy"] == true {
        let points = forecast["forecast"]["points"].as_array().unwrap();
        assert!(!points.is_empty());
        for p in points {
            let (lower, mean, upper) = (
                p["lower"].as_f64().unwrap(),
                p["mean"].as_f64().unwrap(),
                p["upper"].as_f64().unwrap(),
            );
            assert!(lower <= upper && mean <= upper + 1e-9, "band out of order: {p}");
            assert!(p["plannedReplicas"].as_u64().unwrap() >= 1);
        }
    } else {
        assert!(forecast["forecast"].is_null());
    }

    let (status, doc) = get_json(&format!("{base}/openapi.json"), None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/autoscalers/{namespace}/{name}/forecast"]["get"].is_object());
    assert!(doc["components"]["schemas"]["ForecastPoint"]["properties"]["upper"].is_object());
    assert!(doc["components"]["schemas"]["TallyView"]["properties"]["underprovisionedMinutes"].is_object());

    let (status, html, content_type) = get(&format!("{base}/"), None).await;
    assert_eq!(status, 200);
    assert!(content_type.unwrap().starts_with("text/html"));
    assert!(html.contains("<svg id=\"chart\"") && html.contains("/app.js"));
    let (status, js, _) = get(&format!("{base}/app.js"), None).await;
    assert_eq!(status, 200);
    assert!(js.contains("data-series"));
    let (status, body, _) = get(&format!("{base}/healthz"), None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn unknown_autoscalers_and_bad_paths_are_json_404s() {
    let store = DashboardStore::default();
    filled_store(&store, 1).await;
    let base = start(dashboard::router(store.clone(), None)).await;
    for path in [
        "/api/v1/autoscalers/shop/nope",
        "/api/v1/autoscalers/nope/web/forecast",
        "/api/v1/autoscalers/shop",
        "/api/v2/autoscalers",
        "/no/such/page",
        "/metrics",
    ] {
        let (status, body) = get_json(&format!("{base}{path}"), None).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
    let (_, body) = get_json(&format!("{base}/api/v1/autoscalers/shop/nope"), None).await;
    assert_eq!(body["error"], "no autoscaler shop/nope");

    // A deleted autoscaler disappears.
    store.remove("shop", "web");
    let (status, _) = get_json(&format!("{base}/api/v1/autoscalers/shop/web"), None).await;
    assert_eq!(status, 404);
    let (_, list) = get_json(&format!("{base}/api/v1/autoscalers"), None).await;
    assert_eq!(list["autoscalers"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn token_guards_the_data_but_not_health_or_the_page() {
    let store = DashboardStore::default();
    filled_store(&store, 1).await;
    let renderer: MetricsRenderer =
        Arc::new(|| "# TYPE prescient_desired_replicas gauge\n# EOF\n".to_owned());
    let base = start(dashboard::router_with_metrics(
        store,
        Some("s3cret".to_owned()),
        Some(renderer),
    ))
    .await;
    for path in [
        "/api/v1/autoscalers",
        "/api/v1/autoscalers/shop/web",
        "/api/v1/autoscalers/shop/web/forecast",
        "/openapi.json",
        "/metrics",
    ] {
        let (status, body) = get_json(&format!("{base}{path}"), None).await;
        assert_eq!(status, 401, "{path} without a token");
        assert!(body["error"].as_str().unwrap().contains("missing"), "{body}");
        let (status, body) = get_json(&format!("{base}{path}"), Some("wrong")).await;
        assert_eq!(status, 401, "{path} with a wrong token");
        assert!(body["error"].as_str().unwrap().contains("wrong"), "{body}");
        let (status, _, _) = get(&format!("{base}{path}"), Some("s3cret")).await;
        assert_eq!(status, 200, "{path} with the token");
    }
    let (status, metrics, _) = get(&format!("{base}/metrics"), Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("prescient_desired_replicas"));
    for path in ["/healthz", "/readyz", "/", "/app.js", "/style.css"] {
        let (status, _, _) = get(&format!("{base}{path}"), None).await;
        assert_eq!(status, 200, "{path} stays open");
    }
}

#[tokio::test]
async fn rings_are_bounded() {
    let store = DashboardStore::with_capacity(100, 5);
    filled_store(&store, 20).await;
    let forecast = store.forecast("shop", "web").unwrap();
    assert_eq!(forecast.history.len(), 100);
    assert_eq!(forecast.replicas.len(), 5);
    assert_eq!(
        forecast.replicas.last().unwrap().timestamp,
        START + 2 * 86_400 + 19 * 30
    );
    // Points stay in time order with no duplicates after incremental merges.
    assert!(
        forecast
            .history
            .windows(2)
            .all(|w| w[1].timestamp - w[0].timestamp == STEP)
    );
}

#[tokio::test]
async fn openapi_declares_security_only_with_a_token_and_the_scheme_is_case_insensitive() {
    let store = DashboardStore::default();
    filled_store(&store, 1).await;
    let open = start(dashboard::router(store.clone(), None)).await;
    let (status, doc) = get_json(&format!("{open}/openapi.json"), None).await;
    assert_eq!(status, 200);
    assert!(
        doc.get("security").is_none(),
        "no token, no security: {}",
        doc["security"]
    );
    assert!(
        doc["components"].get("securitySchemes").is_none(),
        "{}",
        doc["components"]
    );

    let guarded = start(dashboard::router(store, Some("s3cret".to_owned()))).await;
    let (status, doc) = get_json(&format!("{guarded}/openapi.json"), Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(doc["security"].is_array(), "{doc}");
    for authorization in ["bearer s3cret", "BEARER s3cret", "Bearer s3cret"] {
        let response = reqwest::Client::new()
            .get(format!("{guarded}/api/v1/autoscalers"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{authorization}");
    }
}

#[tokio::test]
async fn answers_carry_security_headers_and_errors_are_json() {
    let store = DashboardStore::default();
    filled_store(&store, 1).await;
    let base = start(dashboard::router(store, None)).await;
    let client = reqwest::Client::new();
    for path in [
        "/",
        "/app.js",
        "/api/v1/autoscalers",
        "/api/v1/autoscalers/shop/web",
        "/nowhere",
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path.starts_with("/api/") {
            assert_eq!(headers["cache-control"], "no-store", "{path}");
        }
    }
    let response = client
        .post(format!("{base}/api/v1/autoscalers"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("POST"), "{body}");

    for path in [
        "/api/v1/autoscalers/%FF/web",
        "/api/v1/autoscalers/shop/%C3%28/forecast",
    ] {
        let (status, body) = get_json(&format!("{base}{path}"), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

/// Half-open connections (headers never finished) are closed after the header-read timeout, and the
/// server still answers meanwhile.
#[tokio::test]
async fn half_open_connections_are_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = start(dashboard::router(DashboardStore::default(), None)).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    let (status, _, _) = get(&format!("{base}/healthz"), None).await;
    assert_eq!(status, 200, "served beside 100 half-open connections");
    let deadline = dashboard::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5);
    for mut stream in held {
        let mut buffer = Vec::new();
        // Closed by the server: the read ends (with or without a 408) instead of hanging.
        let read = tokio::time::timeout(deadline, stream.read_to_end(&mut buffer)).await;
        assert!(
            read.is_ok(),
            "a half-open connection was still held after {deadline:?}"
        );
    }
}
