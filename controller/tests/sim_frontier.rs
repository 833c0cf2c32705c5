//! The product's claim, replayed: predictive scaling against the HPA on the cost/SLO curve, on a window of
//! a shipped real trace, plus the known answers of the mechanisms behind it (an upstream drop-out, an SLO
//! target held online).
#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use prescient::{
    core::SharedFits,
    edges::trace::{read_trace, trace_series},
    sim::{
        ClusterConfig, DemandTrace, PolicyKind, SimRun, SimSettings,
        frontier::{FrontierPoint, VersusHpa, frontier},
        simulate, simulate_sharing_fits,
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn shipped(name: &str, from: i64, until: i64) -> DemandTrace {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/traces")
        .join(name);
    let mut points = read_trace(&path).unwrap();
    points.retain(|(t, _)| (from..=until).contains(t));
    DemandTrace::new(&trace_series(&points).unwrap()).unwrap()
}

fn point(run: &SimRun) -> (String, FrontierPoint) {
    (
        run.policy.name().to_owned(),
        FrontierPoint {
            label: run.policy.label(),
            replica_minutes: run.metrics.replica_minutes,
            underprovisioned_minutes: run.metrics.underprovisioned_minutes,
            unserved_fraction: run.metrics.unserved_fraction,
        },
    )
}

/// Replays predictive at each of `quantiles`, sharing fits; each with its quantile.
fn predictive_points(
    trace: &DemandTrace,
    settings: &SimSettings,
    quantiles: &[f64],
) -> Vec<(f64, (String, FrontierPoint))> {
    let fits = SharedFits::new(quantiles.len());
    quantiles
        .iter()
        .map(|&quantile| {
            let kind = PolicyKind::Predictive {
                quantile,
                utilization: 1.0,
            };
            (
                quantile,
                point(&simulate_sharing_fits(trace, settings, kind, Some(&fits)).unwrap()),
            )
        })
        .collect()
}

/// NASA-HTTP, 9–15 July 1995 (the STS-70 launch flash crowd on the 13th): 3 days grow the history, 3
/// days are evaluated; capacity per replica = the whole trace's median / 10.
fn nasa_days(startup: Duration) -> (DemandTrace, SimSettings) {
    let trace = shipped("nasa-http-jul1995-1min.csv", 805_248_000, 805_766_400);
    let mut settings = SimSettings::new(ClusterConfig::new(startup, 4.1));
    settings.history = Duration::from_secs(3 * 86_400);
    settings.warmup = Duration::from_secs(3 * 86_400);
    (trace, settings)
}

/// Replays the HPA at `utilization` and predictive at `quantiles` (sharing fits), then, as
/// `prescient simulate --frontier` does, 3 more quantiles evenly between the two neighbours whose costs
/// bracket the HPA's (so the comparison at its cost reads a real setting near it, not the cheaper
/// neighbour); returns the frontier comparison at that HPA setting.
fn versus_hpa(trace: &DemandTrace, settings: &SimSettings, utilization: f64, quantiles: &[f64]) -> VersusHpa {
    let hpa = point(&simulate(trace, settings, PolicyKind::Reactive { utilization }).unwrap());
    let hpa_cost = hpa.1.replica_minutes;
    let mut runs = predictive_points(trace, settings, quantiles);
    let bracket = runs
        .windows(2)
        .find(|pair| pair[0].1.1.replica_minutes <= hpa_cost && hpa_cost <= pair[1].1.1.replica_minutes)
        .map(|pair| (pair[0].0, pair[1].0));
    if let Some((low, high)) = bracket {
        let between: Vec<f64> = (1..=3).map(|k| low + (high - low) * f64::from(k) / 4.0).collect();
        runs.extend(predictive_points(trace, settings, &between));
    }
    let mut points = vec![hpa];
    points.extend(runs.into_iter().map(|(_, point)| point));
    let frontier = frontier(points, "predictive");
    frontier.versus_hpa.into_iter().next().unwrap()
}

#[test]
fn predictive_is_short_at_most_0_6_times_the_hpa_at_its_cost_on_nasa_http() {
    // NASA-HTTP's 3 evaluated days ([`nasa_days`]), 2-minute start-up.
    // Measured when written: HPA@0.7 134,910 replica-minutes and 122 minutes short; predictive@q0.9
    // 133,738 and 61 (0.50×). Since scale-ups ask for the arrival window only, q0.9 costs 127,856 and
    // q0.95 more than the HPA, so the sweep is refined between them: q0.925, 60 minutes short (0.49×).
    let (trace, settings) = nasa_days(Duration::from_secs(120));
    let versus = versus_hpa(&trace, &settings, 0.7, &[0.8, 0.85, 0.9, 0.95]);
    assert!(versus.hpa_underprovisioned_minutes > 0.0, "{versus:?}");
    let ratio = versus.shortfall_ratio_at_hpa_cost.unwrap_or(f64::INFINITY);
    assert!(
        ratio <= 0.6,
        "at the HPA@0.7's cost predictive is short {ratio:.2}× its minutes: {versus:?}"
    );
}

#[test]
fn a_lower_quantile_buys_fewer_replicas_and_is_short_more_at_the_cheap_end() {
    // The risk knob must trade cost for shortfall all the way down: a user lowering it to save
    // replicas must save them. NASA-HTTP's 3 evaluated days ([`nasa_days`]), 5-minute start-up.
    // When each baseline was priced at its raw provisioned peak, the ramp's plans below the observed
    // demand (never bought: the reactive floor holds the replicas there) made it look cheap at q0.3,
    // and its noisy rises then cost more than q0.4 did: 114,866 replica-minutes and 737.5 minutes
    // short against 103,560 and 680. Priced as the rule buys it, never below the observed demand, measured
    // when written: q0.2 98,722 / 1,096.5, q0.3 101,262 / 857, q0.4 103,560 / 680, q0.5 105,664 / 562.5.
    let (trace, settings) = nasa_days(Duration::from_secs(300));
    let quantiles = [0.2, 0.3, 0.4, 0.5];
    let points: Vec<FrontierPoint> = predictive_points(&trace, &settings, &quantiles)
        .into_iter()
        .map(|(_, (_, point))| point)
        .collect();
    for (pair, q) in points.windows(2).zip(quantiles.windows(2)) {
        assert!(
            pair[0].replica_minutes < pair[1].replica_minutes
                && pair[0].underprovisioned_minutes >= pair[1].underprovisioned_minutes,
            "q{} against q{}: {points:?}",
            q[0],
            q[1]
        );
    }
}

#[test]
fn on_hourly_steps_predictive_is_cheaper_than_the_hpa_at_0_9_and_short_less() {
    // Saskatchewan-HTTP, September and October 1995 (hourly counts): once an hour's rate is observed,
    // the windows ending within that hour must provision what is observed, not the model's forecast of
    // the hour made before it began. Provisioned to that forecast, predictive cost more than the HPA at
    // 0.9 at q0.9, q0.95 and q0.99 (q0.9: 1,226,068 replica-minutes against 1,214,900). 2-minute
    // start-up, capacity per replica = the whole trace's median / 10, the first week growing the
    // history. Measured when written: HPA@0.9 1,214,900 replica-minutes and 1,169 minutes short;
    // predictive@q0.995 1,151,514 and 566 (0.48×).
    let trace = shipped("usask-http-1995-1h.csv", 809_913_600, 814_752_000);
    let mut settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(120), 38.0));
    settings.warmup = Duration::from_secs(7 * 86_400);
    let versus = versus_hpa(&trace, &settings, 0.9, &[0.95, 0.98, 0.99, 0.995]);
    assert!(versus.hpa_underprovisioned_minutes > 0.0, "{versus:?}");
    let ratio = versus.shortfall_ratio_at_hpa_cost.unwrap_or(f64::INFINITY);
    assert!(
        ratio <= 0.6,
        "at the HPA@0.9's cost predictive is short {ratio:.2}× its minutes: {versus:?}"
    );
}

/// 1-minute demand around 100 (±5), with a drop-out to 2 for `outage` minutes every 127 minutes.
fn with_dropouts(days: usize, outage: usize) -> DemandTrace {
    let values = (0..days * 1440)
        .map(|i| {
            if (60..60 + outage).contains(&(i % 127)) {
                2.0
            } else {
                100.0 + ((i * 7919) % 11) as f64 - 5.0
            }
        })
        .collect();
    DemandTrace::from_values(1_700_000_000, 60, values).unwrap()
}

/// Minutes short within `after` minutes of the end of each drop-out (`outage` minutes from minute 60 of
/// every 127).
fn short_on_recovery(run: &SimRun, outage: i64, after: i64) -> f64 {
    let tick_minutes = run.tick_seconds as f64 / 60.0;
    run.rows
        .iter()
        .filter(|row| {
            let minute = (row.timestamp - 1_700_000_000) / 60 % 127;
            (60 + outage..60 + outage + after).contains(&minute)
                && row.demand > f64::from(row.ready_replicas) * 10.0 + 1e-9
        })
        .count() as f64
        * tick_minutes
}

#[test]
fn an_upstream_dropout_longer_than_the_stabilization_window_is_not_followed_down() {
    // Seven minutes at almost zero, then demand returns at full level: the HPA scales down after its
    // 5-minute window and is short on every recovery; predictive provisions the window's calibrated
    // peak, relative to the level demand returns to, and stays close to it.
    let trace = with_dropouts(3, 7);
    let mut settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(120), 10.0));
    settings.history = Duration::from_secs(86_400);
    settings.warmup = Duration::from_secs(86_400);
    let hpa = simulate(&trace, &settings, PolicyKind::Reactive { utilization: 0.7 }).unwrap();
    let predictive = simulate(
        &trace,
        &settings,
        PolicyKind::Predictive {
            quantile: 0.9,
            utilization: 1.0,
        },
    )
    .unwrap();
    let (hpa_short, predictive_short) = (
        short_on_recovery(&hpa, 7, 10),
        short_on_recovery(&predictive, 7, 10),
    );
    assert!(
        hpa_short >= 20.0,
        "the HPA follows the drop-outs down: {hpa_short} minutes short"
    );
    // Measured when written: HPA 80.5 minutes short on recoveries, predictive 23 (it keeps most of its
    // replicas through each drop-out; the noise of the returning demand is what catches it).
    assert!(
        predictive_short * 3.0 <= hpa_short,
        "predictive {predictive_short} against the HPA's {hpa_short} minutes short on recovery"
    );
}

/// Demand with a daily cycle and lognormal noise (σ = 0.15), 1-minute steps.
fn noisy_daily_cycle(days: usize, seed: u64) -> DemandTrace {
    let mut rng = StdRng::seed_from_u64(seed);
    let values = (0..days * 1440)
        .map(|i| {
            let cycle = 100.0 + 60.0 * (2.0 * std::f64::consts::PI * (i % 1440) as f64 / 1440.0).sin();
            // Box–Muller: a standard normal from two uniforms.
            let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            cycle * (0.15 * z).exp()
        })
        .collect();
    DemandTrace::from_values(1_700_000_000, 60, values).unwrap()
}

#[test]
fn an_slo_target_holds_the_share_of_time_short_near_it() {
    // Four days: two grow the history, two are evaluated. Measured when written (share of evaluated
    // minutes short): target 0.01 → 0.0094, target 0.05 → 0.0521 — each sync judged on the history
    // once it covers the sync. (Judged on the lagged observation at the sync, as before, the share ran
    // at 1.5× the target: that observation sees a rise a scrape and a rate window late.)
    let trace = noisy_daily_cycle(4, 3);
    let mut settings = SimSettings::new(ClusterConfig::new(Duration::from_secs(120), 10.0));
    settings.history = Duration::from_secs(2 * 86_400);
    settings.warmup = Duration::from_secs(2 * 86_400);
    let share_short = |fraction: f64| {
        let run = simulate(
            &trace,
            &settings,
            PolicyKind::PredictiveSlo {
                max_underprovisioned_fraction: fraction,
                utilization: 1.0,
            },
        )
        .unwrap();
        run.metrics.underprovisioned_minutes / run.metrics.evaluated_minutes
    };
    let (tight, loose) = (share_short(0.01), share_short(0.05));
    eprintln!("share of evaluated minutes short: target 0.01 -> {tight:.4}, 0.05 -> {loose:.4}");
    assert!(
        tight < loose,
        "a tighter target is short less often: {tight} vs {loose}"
    );
    for (target, realised) in [(0.01, tight), (0.05, loose)] {
        assert!(
            (0.5 * target..=1.5 * target).contains(&realised),
            "target {target}: short {realised} of the time"
        );
    }
}
