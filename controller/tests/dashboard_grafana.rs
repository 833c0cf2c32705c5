//! The Grafana dashboard in `manifests/grafana/` plots only metrics the controller really exposes, and
//! names the gauges the forecast is published as.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, path::Path, time::Duration};

use prescient::{
    crd::{ForecastSpec, MetricSpec, Mode, PredictiveAutoscalerSpec, ScaleTargetRef},
    edges::{
        TargetRef,
        sim::{CompletedSteps, SimTarget},
        trace::TraceSource,
    },
    metrics::Metrics,
    reconcile::{Autoscaler, sync_once},
    sim::{ClusterConfig, SimCluster},
    spec::ScalingSpec,
};
use serde_json::Value;

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/grafana/prescient-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every `prescient_*` metric name in the panels' queries.
fn referenced_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("prescient_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[tokio::test]
async fn dashboard_queries_only_exposed_metrics() {
    let dashboard = dashboard();
    let names = referenced_metrics(&dashboard);
    for required in [
        "prescient_forecast_demand",
        "prescient_desired_replicas",
        "prescient_backtest_mase",
    ] {
        assert!(
            names.contains(required),
            "the dashboard must plot {required}: {names:?}"
        );
    }
    let queries = serde_json::to_string(&dashboard["panels"]).unwrap();
    assert!(
        queries.contains("$demand_query"),
        "the demand query is plotted next to the forecast"
    );

    // Metrics after a real sync of an autoscaler with a forecast.
    let start = 1_700_006_400;
    let points: Vec<(i64, f64)> = (0..3 * 1440)
        .map(|i| {
            (
                start + i * 60,
                100.0 + 50.0 * ((i % 1440) as f64 / 1440.0 * std::f64::consts::TAU).sin(),
            )
        })
        .collect();
    let resource = PredictiveAutoscalerSpec {
        scale_target_ref: ScaleTargetRef {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            name: "web".to_owned(),
        },
        min_replicas: 1,
        max_replicas: 50,
        metric: MetricSpec {
            query: "q".to_owned(),
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
    };
    let spec = ScalingSpec::from_resource(&resource).unwrap();
    let target = TargetRef {
        namespace: "shop".to_owned(),
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: "web".to_owned(),
    };
    let mut autoscaler = Autoscaler::new(spec, "q".to_owned(), target);
    let now = start + 2 * 86_400;
    let source = CompletedSteps {
        source: TraceSource::new(points),
        step_seconds: 60,
    };
    // One replica for a demand of ~100 at 20 per replica: the sync scales up.
    let cluster = SimTarget::new(SimCluster::new(
        ClusterConfig::new(Duration::from_secs(60), 25.0),
        1,
        now,
    ));
    let report = sync_once(&mut autoscaler, &source, &cluster, now).await;
    let metrics = Metrics::new();
    metrics.observe_reconcile(Duration::from_millis(5));
    metrics.observe_error("MetricsUnavailable");
    metrics.observe_sync("shop", "web", &report);
    let text = metrics.encode();

    for name in &names {
        // Histograms and counters appear with their suffixes, gauges as they are.
        let exposed = [name.clone(), format!("{name}_bucket"), format!("{name}_total")]
            .iter()
            .any(|n| text.contains(&format!("\n{n}{{")) || text.contains(&format!("\n{n} ")));
        let family = name.trim_end_matches("_bucket").trim_end_matches("_total");
        assert!(
            exposed || text.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, which /metrics does not expose:\n{text}"
        );
    }
}
