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

/// Every value the schema's `forecast.model` enum accepts is a model the reconciler knows, and only those.
#[test]
fn model_enum_matches_the_parser() {
    for name in prescient::crd::MODEL_NAMES {
        assert!(
            prescient::spec::parse_model_choice(name).is_ok(),
            "{name} is in the CRD's enum but not parsed"
        );
    }
    let crd = serde_json::to_value(PredictiveAutoscaler::crd()).unwrap();
    let model = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["forecast"]["properties"]["model"];
    assert_eq!(
        model["enum"].as_array().unwrap().len(),
        prescient::crd::MODEL_NAMES.len()
    );
    assert!(prescient::spec::parse_model_choice("bogus").is_err());
}

/// The API server does not know `format: uint32` (it warns and accepts 5000000000, which the operator
/// cannot read): every integer is int32 or int64, and every int32 is bounded. Found by
/// scripts/cluster-tests.sh against a real API server.
#[test]
fn every_integer_is_bounded_with_a_known_format() {
    fn walk(path: &str, schema: &serde_json::Value, bad: &mut Vec<String>) {
        let Some(object) = schema.as_object() else { return };
        if object.get("type").and_then(|t| t.as_str()) == Some("integer") {
            let format = object.get("format").and_then(|f| f.as_str());
            let max = object.get("maximum").and_then(|m| m.as_f64());
            let ok = match format {
                Some("int64") => true,
                Some("int32") => max.is_some_and(|m| m <= f64::from(i32::MAX)),
                _ => false,
            };
            if !ok {
                bad.push(format!("{path} (format {format:?}, maximum {max:?})"));
            }
        }
        for (key, value) in object {
            let next = if key == "properties" {
                path.to_owned()
            } else {
                format!("{path}.{key}")
            };
            walk(&next, value, bad);
        }
    }
    let crd = serde_json::to_value(PredictiveAutoscaler::crd()).unwrap();
    let mut bad = Vec::new();
    walk(
        "",
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        &mut bad,
    );
    assert!(bad.is_empty(), "unbounded or unknown-format integers: {bad:?}");
}

/// `kubectl explain` shows the schema's descriptions: user documentation, no Rust.
#[test]
fn descriptions_read_as_user_documentation() {
    let yaml = crd_yaml().unwrap();
    for rust in ["crate::", "Auto-generated", "derived type", "[`"] {
        assert!(!yaml.contains(rust), "the CRD's descriptions contain {rust:?}");
    }
}
