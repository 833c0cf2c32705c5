//! Fuzz targets for every parser that takes user input: the trace CSV reader, the duration parser and the
//! custom resource's spec (JSON as the API server stores it → typed spec → validated [`ScalingSpec`]).
//!
//! Each target runs for a bounded time (`PRESCIENT_FUZZ_SECONDS`, default 10 s per target) on the stable
//! toolchain: proptest over arbitrary bytes and strings, and over structure-aware generators that make
//! inputs close to valid (so the checks past the first field are reached too). A panic is a failure
//! (proptest catches it and shrinks the input), and so is a broken contract: an `Ok` value that is not
//! well-formed, or an error that does not say what is wrong. A target that ran no case fails.
#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    time::{Duration, Instant},
};

use prescient::{
    crd::{Mode, PredictiveAutoscalerSpec},
    duration::{format_duration, parse_duration},
    edges::trace::{Cleaning, TraceError, parse_trace, read_trace, trace_series},
    spec::ScalingSpec,
};
use prescient_model::MAX_POINTS;
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{Value, json};

/// Runs `test` over `strategy` until the time budget is spent, in rounds of fresh random cases.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seconds: u64 = std::env::var("PRESCIENT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut cases = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("fuzz target {name}: {failure}");
        }
        cases += 256;
        if Instant::now() >= deadline {
            break;
        }
    }
    assert!(cases > 0, "fuzz target {name} ran no case");
    eprintln!("fuzz target {name}: {cases} cases in {seconds} s, no failure");
}

// ------------------------------------------------------------------------------------------ durations

/// A number (small, large, overflowing) followed by a unit (valid or not), repeated.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{19,40}",
        Just(String::new()),
    ];
    let unit = prop_oneof![
        Just("ms"),
        Just("s"),
        Just("m"),
        Just("h"),
        Just("d"),
        Just("w"),
        Just(""),
        Just("x"),
        Just("M"),
        Just("µs"),
        Just(" "),
    ];
    (
        prop_oneof![Just(""), Just(" "), Just("-"), Just("+")],
        proptest::collection::vec((number, unit), 0..5),
    )
        .prop_map(|(prefix, parts)| {
            let body: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
            format!("{prefix}{body}")
        })
}

fn check_duration(input: &str) -> Result<(), TestCaseError> {
    match parse_duration(input) {
        Ok(duration) => {
            prop_assert!(!input.trim().is_empty(), "Ok for a blank input {input:?}");
            // Well-formed: what it prints parses back to the same duration.
            let printed = format_duration(duration);
            prop_assert_eq!(
                parse_duration(&printed),
                Ok(duration),
                "round trip of {:?} via {:?}",
                input,
                printed
            );
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert_eq!(&error.input, input);
            prop_assert!(
                message.starts_with("invalid duration") && message.contains("e.g. 90s"),
                "unclear message {message:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn fuzz_duration_parser_arbitrary_strings() {
    fuzz("duration (any string)", any::<String>(), |s| check_duration(&s));
}

#[test]
fn fuzz_duration_parser_structured() {
    fuzz("duration (structured)", duration_text(), |s| check_duration(&s));
}

// ------------------------------------------------------------------------------------------ trace CSV

fn timestamp_field() -> impl Strategy<Value = String> {
    prop_oneof![
        (1_700_000_000i64..1_700_100_000).prop_map(|t| t.to_string()),
        any::<i64>().prop_map(|t| t.to_string()),
        (1_700_000_000_000i64..1_800_000_000_000).prop_map(|t| t.to_string()),
        any::<f64>().prop_map(|t| t.to_string()),
        (-62_000_000_000i64..253_000_000_000).prop_map(
            |t| jiff::Timestamp::from_second(t).map_or_else(|_| "bad".to_owned(), |t| t.to_string())
        ),
        "[0-9TZ:+.-]{0,25}",
        Just("NaN".to_owned()),
        Just(String::new()),
    ]
}

fn value_field() -> impl Strategy<Value = String> {
    prop_oneof![
        (0.0f64..1e6).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just("1e400".to_owned()),
        Just("-5".to_owned()),
        "[a-z0-9. ]{0,6}",
    ]
}

/// A trace file's text in parts: header, rows (timestamp, value, an extra field), CRLF line ends.
type TraceParts = (String, Vec<(String, String, Option<String>)>, bool);

/// A header (right or wrong) and rows of one to three fields, with `\n` or `\r\n` line ends.
fn trace_text() -> impl Strategy<Value = TraceParts> {
    (
        prop_oneof![
            4 => Just("timestamp,value".to_owned()),
            1 => Just(" timestamp , value ".to_owned()),
            1 => Just("time,value".to_owned()),
            1 => Just("timestamp,value,extra".to_owned()),
            1 => Just(String::new()),
            1 => "[a-z,]{0,20}",
        ],
        proptest::collection::vec(
            (
                timestamp_field(),
                value_field(),
                proptest::option::weighted(0.05, "[0-9]{0,3}"),
            ),
            0..40,
        ),
        any::<bool>(),
    )
}

fn render((header, rows, crlf): &TraceParts) -> String {
    let end = if *crlf { "\r\n" } else { "\n" };
    let mut text = format!("{header}{end}");
    for (t, v, extra) in rows {
        text.push_str(t);
        text.push(',');
        text.push_str(v);
        if let Some(extra) = extra {
            text.push(',');
            text.push_str(extra);
        }
        text.push_str(end);
    }
    text
}

/// What holds for any text: no panic, `Ok` points are usable, an error names its cause.
fn check_trace_text(text: &str) -> Result<Vec<(i64, f64)>, TestCaseError> {
    match parse_trace(text) {
        Ok(points) => {
            prop_assert!(!points.is_empty(), "Ok with no points");
            check_points(&points)?;
            Ok(points)
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(!message.trim().is_empty(), "empty error message");
            if let TraceError::Row { line, .. } = error {
                prop_assert!(line >= 1, "row error without a line: {message}");
            }
            Ok(Vec::new())
        }
    }
}

/// Parsed points go through the grid and the cleaning counts without a panic, within their bounds.
fn check_points(points: &[(i64, f64)]) -> Result<(), TestCaseError> {
    for &(t, _) in points {
        prop_assert!(
            jiff::Timestamp::from_second(t).is_ok(),
            "timestamp {t} out of any calendar"
        );
    }
    if let Ok(series) = trace_series(points) {
        prop_assert!(series.len() <= MAX_POINTS, "grid of {} points", series.len());
        prop_assert!(series.step_seconds() > 0);
        let cleaning = Cleaning::of(points, &series);
        prop_assert!(cleaning.missing_values <= points.len());
        prop_assert!(cleaning.negative_values <= points.len());
        prop_assert!(cleaning.duplicate_rows < points.len());
    }
    Ok(())
}

#[test]
fn fuzz_trace_reader_arbitrary_text() {
    fuzz("trace CSV (any string)", any::<String>(), |s| {
        check_trace_text(&s).map(drop)
    });
    fuzz("trace CSV (header then any string)", any::<String>(), |s| {
        check_trace_text(&format!("timestamp,value\n{s}")).map(drop)
    });
}

#[test]
fn fuzz_trace_reader_structured() {
    fuzz("trace CSV (structured)", trace_text(), |input| {
        let text = render(&input);
        let points = check_trace_text(&text)?;
        let (header, rows, _) = &input;
        let header_ok = header.split(',').map(str::trim).collect::<Vec<_>>() == ["timestamp", "value"];
        if !points.is_empty() {
            prop_assert!(header_ok, "Ok under header {header:?}");
            // One point per row, in file order, with the value as written (an empty value is a gap).
            prop_assert_eq!(points.len(), rows.len());
            for ((t, v), (t_text, v_text, _)) in points.iter().zip(rows) {
                if let Ok(seconds) = t_text.trim().parse::<i64>() {
                    prop_assert_eq!(*t, seconds);
                }
                let v_text = v_text.trim();
                if v_text.is_empty() {
                    prop_assert!(v.is_nan());
                } else {
                    let want: f64 = v_text.parse().unwrap();
                    prop_assert!(want.to_bits() == v.to_bits() || (want.is_nan() && v.is_nan()));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_trace_file_arbitrary_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    fuzz(
        "trace file (any bytes)",
        proptest::collection::vec(any::<u8>(), 0..256),
        |bytes| {
            let mut file = std::fs::File::create(&path).unwrap();
            file.write_all(b"timestamp,value\n").unwrap();
            file.write_all(&bytes).unwrap();
            drop(file);
            match read_trace(&path) {
                Ok(points) => check_points(&points),
                Err(TraceError::NotUtf8 { line, .. }) => {
                    // The line holding the first invalid byte.
                    let valid = std::str::from_utf8(&bytes).unwrap_err().valid_up_to();
                    let want = 2 + bytes[..valid].iter().filter(|&&b| b == b'\n').count();
                    prop_assert_eq!(line, want);
                    Ok(())
                }
                Err(error) => {
                    prop_assert!(!error.to_string().trim().is_empty());
                    Ok(())
                }
            }
        },
    );
}

// ------------------------------------------------------------------------------ the custom resource

fn json_duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop_oneof![
            Just("0s"), Just("1s"), Just("30s"), Just("500ms"), Just("1500ms"), Just("1m"), Just("5m"),
            Just("15m"), Just("1h"), Just("1h30m"), Just("3d"), Just("7d"), Just("1000w"),
        ]
        .prop_map(|s| json!(s)),
        2 => duration_text().prop_map(|s| json!(s)),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn json_uint() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0u32..40).prop_map(|n| json!(n)),
        1 => any::<u32>().prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
        1 => Just(json!("3")),
    ]
}

fn json_float() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0.0f64..1.0).prop_map(|n| json!(n)),
        2 => (-10.0f64..1000.0).prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
        1 => Just(json!(0)),
        1 => Just(json!(1)),
    ]
}

/// Present or absent (`Value::Null` is taken as absent by [`object`]).
fn maybe(strategy: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    proptest::option::weighted(0.8, strategy).prop_map(|v| v.unwrap_or(Value::Null))
}

fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn json_rules() -> impl Strategy<Value = Value> {
    let policy = (
        prop_oneof![5 => Just("Pods"), 5 => Just("Percent"), 1 => Just("Other")],
        json_uint(),
        json_uint(),
    )
        .prop_map(|(t, value, period)| json!({"type": t, "value": value, "periodSeconds": period}));
    (
        maybe(json_uint()),
        maybe(prop_oneof![
            4 => Just(json!("Max")),
            4 => Just(json!("Min")),
            2 => Just(json!("Disabled")),
            1 => Just(json!("max")),
        ]),
        maybe(proptest::collection::vec(policy, 0..3).prop_map(Value::Array)),
    )
        .prop_map(|(window, select, policies)| {
            object(vec![
                ("stabilizationWindowSeconds", window),
                ("selectPolicy", select),
                ("policies", policies),
            ])
        })
}

/// A valid spec, varied in every field the validation looks at.
fn valid_json_spec() -> impl Strategy<Value = Value> {
    let rules = (
        0u32..=3600,
        prop_oneof![Just("Max"), Just("Min"), Just("Disabled")],
        proptest::collection::vec(
            (
                prop_oneof![Just("Pods"), Just("Percent")],
                1u32..1000,
                1u32..=1800,
            ),
            1..3,
        ),
    )
        .prop_map(|(window, select, policies)| {
            let policies: Vec<Value> = policies
                .into_iter()
                .map(|(t, v, p)| json!({"type": t, "value": v, "periodSeconds": p}))
                .collect();
            json!({"stabilizationWindowSeconds": window, "selectPolicy": select, "policies": policies})
        });
    (
        (0u32..5, 1u32..50, 0.1f64..1000.0),
        (
            prop_oneof![Just(1u64), Just(15), Just(60), Just(300)],
            2u64..5000,
            prop_oneof![Just(900u64), Just(1800), Just(3600)],
            0.0f64..=1.0,
        ),
        (
            prop_oneof![
                Just("auto"),
                Just("seasonal_naive"),
                Just("holt_winters"),
                Just("naive")
            ],
            0.5f64..0.99,
            proptest::option::of(rules.clone()),
            proptest::option::of(rules),
        ),
        (
            prop_oneof![Just("Scale"), Just("ForecastOnly")],
            1u64..600,
            proptest::option::of(0.001f64..0.5),
        ),
    )
        .prop_map(
            |(
                (min, extra, target),
                (step, steps, horizon, lead_share),
                (model, q, up, down),
                (mode, sync, slo),
            )| {
                let lead = ((horizon as f64 * lead_share) as u64).max(1);
                let mut spec = json!({
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": min,
                    "maxReplicas": min + extra,
                    "metric": {"query": "sum(rate(x[1m]))", "targetPerReplica": target},
                    "forecast": {
                        "history": format!("{}s", step * steps), "step": format!("{step}s"),
                        "horizon": format!("{horizon}s"), "leadTime": format!("{lead}s"),
                        "refitInterval": "1h", "model": model, "quantile": q,
                    },
                    "mode": mode,
                    "syncPeriod": format!("{sync}s"),
                });
                if let Some(up) = up {
                    spec["behavior"]["scaleUp"] = up;
                }
                if let Some(down) = down {
                    spec["behavior"]["scaleDown"] = down;
                }
                if let Some(slo) = slo {
                    spec["slo"] = json!({"maxUnderprovisionedFraction": slo});
                }
                spec
            },
        )
}

/// Where [`json_spec`] writes a wild value into a valid spec.
const SPEC_PATHS: &[&str] = &[
    "minReplicas",
    "maxReplicas",
    "metric/targetPerReplica",
    "metric/query",
    "scaleTargetRef/name",
    "scaleTargetRef/kind",
    "forecast/history",
    "forecast/step",
    "forecast/horizon",
    "forecast/leadTime",
    "forecast/refitInterval",
    "forecast/model",
    "forecast/quantile",
    "behavior/scaleUp",
    "behavior/scaleDown",
    "behavior/scaleUp/policies",
    "behavior/scaleDown/stabilizationWindowSeconds",
    "mode",
    "syncPeriod",
    "slo/maxUnderprovisionedFraction",
];

/// Any value a field could hold: durations, integers, floats, strings, rules, or absent (`null`).
fn wild_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_duration(),
        json_uint(),
        json_float(),
        json_rules(),
        proptest::collection::vec(json_rules(), 0..2).prop_map(Value::Array),
        "[a-z_ ]{0,12}".prop_map(Value::String),
        Just(Value::Null),
    ]
}

/// A spec as the API server stores it: a valid one with up to three fields replaced by wild values.
fn json_spec() -> impl Strategy<Value = Value> {
    (
        valid_json_spec(),
        proptest::collection::vec((0..SPEC_PATHS.len(), wild_value()), 0..4),
    )
        .prop_map(|(mut spec, mutations)| {
            for (path, value) in mutations {
                let (parent, leaf) = SPEC_PATHS[path]
                    .rsplit_once('/')
                    .unwrap_or(("", SPEC_PATHS[path]));
                let mut node = &mut spec;
                for key in parent.split('/').filter(|k| !k.is_empty()) {
                    if !node[key].is_object() {
                        node[key] = json!({});
                    }
                    node = &mut node[key];
                }
                match (node.as_object_mut(), value) {
                    (Some(map), Value::Null) => {
                        map.remove(leaf);
                    }
                    (Some(map), value) => {
                        map.insert(leaf.to_owned(), value);
                    }
                    (None, _) => {}
                }
            }
            spec
        })
}

/// What a validated spec guarantees to the policy, the core and the simulator.
fn check_spec(resource: &PredictiveAutoscalerSpec) -> Result<(), TestCaseError> {
    match ScalingSpec::from_resource(resource) {
        Ok(spec) => {
            prop_assert!(spec.max_replicas >= 1 && spec.min_replicas <= spec.max_replicas);
            prop_assert!(spec.target_per_replica.is_finite() && spec.target_per_replica > 0.0);
            prop_assert!(spec.quantile > 0.0 && spec.quantile < 1.0);
            if let Some(f) = spec.max_underprovisioned_fraction {
                prop_assert!(f > 0.0 && f < 1.0);
            }
            for d in [
                spec.history,
                spec.horizon,
                spec.lead_time,
                spec.refit_interval,
                spec.sync_period,
            ] {
                prop_assert!(!d.is_zero());
            }
            // The grid is whole seconds: a sub-second step would silently become another step.
            prop_assert!(
                spec.step.as_secs() >= 1 && spec.step.subsec_nanos() == 0,
                "step {:?} is not whole seconds",
                spec.step
            );
            prop_assert!(spec.history >= spec.step * 2);
            prop_assert!(
                spec.history.as_secs() / spec.step.as_secs() <= MAX_POINTS as u64,
                "history {:?} at step {:?} is more points than a series holds",
                spec.history,
                spec.step
            );
            prop_assert!(spec.lead_time <= spec.horizon);
            prop_assert_eq!(spec.scale_enabled, resource.mode == Mode::Scale);
            for rules in [&spec.behavior.scale_up, &spec.behavior.scale_down] {
                prop_assert!(rules.stabilization_window <= Duration::from_secs(3600));
                prop_assert!(!rules.policies.is_empty());
                for p in &rules.policies {
                    prop_assert!(p.value > 0);
                    prop_assert!(p.period >= Duration::from_secs(1) && p.period <= Duration::from_secs(1800));
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                message.starts_with(&format!("spec.{}: ", error.field)) && !error.field.is_empty(),
                "unclear message {message:?}"
            );
            prop_assert!(
                !error.message.trim().is_empty(),
                "empty message for {}",
                error.field
            );
        }
    }
    Ok(())
}

#[test]
fn fuzz_spec_mapping_structured() {
    fuzz("custom resource spec (structured JSON)", json_spec(), |value| {
        // What the typed struct rejects is the operator's unreadable-object case (a condition); what it
        // reads must map to a valid spec or a clear error.
        if let Ok(resource) = serde_json::from_value::<PredictiveAutoscalerSpec>(value) {
            check_spec(&resource)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_spec_mapping_non_finite_numbers() {
    // JSON carries no NaN or infinity, but the typed spec can (and the demo and the simulator build it).
    let numbers = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<f64>()
    ];
    fuzz(
        "custom resource spec (non-finite numbers)",
        (json_spec(), numbers.clone(), numbers),
        |(value, a, b)| {
            if let Ok(mut resource) = serde_json::from_value::<PredictiveAutoscalerSpec>(value) {
                resource.metric.target_per_replica = a;
                resource.forecast.quantile = b;
                check_spec(&resource)?;
            }
            Ok(())
        },
    );
}

#[test]
fn structured_spec_generator_reaches_valid_specs() {
    // A generator that only ever fails the first check would fuzz nothing past it.
    let mut runner = TestRunner::deterministic();
    let strategy = json_spec();
    let (mut valid, mut unreadable) = (0, 0);
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..2000 {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        match serde_json::from_value::<PredictiveAutoscalerSpec>(value) {
            Err(_) => unreadable += 1,
            Ok(resource) => match ScalingSpec::from_resource(&resource) {
                Ok(_) => valid += 1,
                Err(error) => *errors.entry(error.field.to_owned()).or_default() += 1,
            },
        }
    }
    assert!(
        valid >= 20 && unreadable <= 1800,
        "only {valid} of 2000 generated specs are valid ({unreadable} unreadable; errors by field {errors:?})"
    );
}

// ------------------------------------------------------------------- what the fuzz targets found

fn spec_with_forecast(history: &str, step: &str) -> PredictiveAutoscalerSpec {
    serde_json::from_value(json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 10,
        "metric": {"query": "sum(rate(x[1m]))", "targetPerReplica": 10},
        "forecast": {"history": history, "step": step},
    }))
    .unwrap()
}

#[test]
fn sub_second_step_is_refused_not_rounded() {
    // Found by fuzz_spec_mapping_structured: `step: 1500ms` was accepted and the grid used 1 s.
    let error = ScalingSpec::from_resource(&spec_with_forecast("1h", "1500ms")).unwrap_err();
    assert_eq!(error.field, "forecast.step");
    assert!(error.to_string().contains("whole seconds"), "{error}");
    assert!(ScalingSpec::from_resource(&spec_with_forecast("1h", "2s")).is_ok());
}

#[test]
fn history_of_more_steps_than_a_series_holds_is_refused() {
    // `history: 1000w` at `step: 1s` is 604,800,000 steps; a series keeps at most MAX_POINTS.
    let error = ScalingSpec::from_resource(&spec_with_forecast("1000w", "1s")).unwrap_err();
    assert_eq!(error.field, "forecast.history");
    assert!(error.to_string().contains("604800000 steps"), "{error}");
    assert!(ScalingSpec::from_resource(&spec_with_forecast("1000w", "1h")).is_ok());
}
