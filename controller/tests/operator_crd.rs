//! The committed CRD manifest is exactly what `prescient crd` prints, and the schema carries the
//! validation that can live there (min <= max, quantile in (0, 1), duration patterns) and the defaults.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kube::CustomResourceExt;
use prescient::crd::{PredictiveAutoscaler, crd_yaml};

const MANIFEST: &str = "../manifests/crd/predictiveautoscaler.yaml";

#[test]
fn committed_crd_matches_the_generated_one() {
    let generated = crd_yaml().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; generate it with: cargo run -p prescient -- crd > manifests/crd/predictiveautoscaler.yaml", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with controller/src/crd.rs; regenerate it with:\n  cargo run -p prescient -- crd > manifests/crd/predictiveautoscaler.yaml",
        path.display()
    );
}

#[test]
fn generated_yaml_parses_back_to_the_same_crd() {
    let yaml = crd_yaml().unwrap();
    let parsed: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(parsed, serde_json::to_value(PredictiveAutoscaler::crd()).unwrap());
}

#[test]
fn schema_validates_what_it_can() {
    let crd = serde_json::to_value(PredictiveAutoscaler::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(
        version["subresources"]["status"].is_object(),
        "status subresource"
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules = spec["x-kubernetes-validations"]
        .as_array()
        .expect("CEL rules on spec");
    assert!(rules.iter().any(|r| {
        r["rule"]
            .as_str()
            .unwrap()
            .contains("self.minReplicas <= self.maxReplicas")
    }));
    let quantile = &spec["properties"]["forecast"]["properties"]["quantile"];
    assert_eq!(quantile["minimum"], 0.0);
    assert_eq!(quantile["maximum"], 1.0);
    assert_eq!(quantile["exclusiveMinimum"], true);
    assert_eq!(quantile["exclusiveMaximum"], true);
    assert_eq!(quantile["default"], 0.9);
    let lead = &spec["properties"]["forecast"]["properties"]["leadTime"];
    assert_eq!(lead["pattern"], prescient::crd::DURATION_PATTERN);
    assert_eq!(lead["default"], "3m");
    assert_eq!(spec["properties"]["minReplicas"]["default"], 1);
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"maxReplicas")
            && required.contains(&"scaleTargetRef")
            && required.contains(&"metric")
    );
    assert!(!required.contains(&"minReplicas"), "defaults can be left out");
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Target", "Current", "Desired", "Model", "Error", "Age"]);
}
