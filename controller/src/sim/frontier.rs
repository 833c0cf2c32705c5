//! Cost/SLO frontiers of policy families, and the headline comparison with the HPA.
//!
//! One replay gives one point: (replica-minutes, under-provisioned minutes, unserved fraction). A
//! family (the HPA over its target utilizations, Prescient over its quantile, …) gives a curve; its
//! Pareto frontier is the set of points no other point of the family beats on both cost and
//! shortfall. The comparison a user needs is read off those curves at each HPA setting:
//! - at the HPA's replica-minutes, the fewest minutes short a predictive setting achieves for no more
//!   cost, and its ratio to the HPA's minutes short;
//! - at the HPA's minutes short, the fewest replica-minutes a predictive setting needs to be short no
//!   more often, and its ratio to the HPA's replica-minutes.
//!
//! The same comparison is made against the peers together (the HPA, Crane's EHPA and the PHPA, see
//! [`PEER_FAMILIES`]): at each point of the peers' joint Pareto frontier — the best any peer achieves
//! at that cost — Prescient's fewest minutes short for no more cost, and its cheapest setting short no
//! more often.
//!
//! Only settings that were replayed count (no interpolation between them): every figure is one a user
//! gets by choosing that setting.

use serde::Serialize;

/// The families Prescient is compared with together: the Kubernetes HPA and the replayed peers.
pub const PEER_FAMILIES: [&str; 3] = ["reactive", "crane-ehpa", "phpa"];

/// One replayed setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    pub label: String,
    pub replica_minutes: f64,
    pub underprovisioned_minutes: f64,
    pub unserved_fraction: f64,
}

/// The points of one family, and which of them are on its Pareto frontier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    /// `reactive`, `predictive`, `perfect`, `oracle`, …
    pub family: String,
    /// Sorted by replica-minutes.
    pub points: Vec<FrontierPoint>,
    /// Labels of the Pareto-optimal points, cheapest first.
    pub pareto: Vec<String>,
}

/// Predictive against one HPA setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersusHpa {
    pub hpa: String,
    pub hpa_replica_minutes: f64,
    pub hpa_underprovisioned_minutes: f64,
    /// The predictive setting short the fewest minutes at no more than the HPA's replica-minutes.
    pub best_at_hpa_cost: Option<String>,
    pub underprovisioned_minutes_at_hpa_cost: Option<f64>,
    /// Its minutes short over the HPA's (`None` when either is missing or the HPA is never short).
    pub shortfall_ratio_at_hpa_cost: Option<f64>,
    /// The cheapest predictive setting short no more minutes than the HPA.
    pub best_at_hpa_shortfall: Option<String>,
    pub replica_minutes_at_hpa_shortfall: Option<f64>,
    /// Its replica-minutes over the HPA's.
    pub cost_ratio_at_hpa_shortfall: Option<f64>,
}

/// Every family's curve and the comparison with the HPA at each of its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frontier {
    pub families: Vec<Family>,
    /// The family compared with the HPA (`predictive`).
    pub challenger: String,
    pub versus_hpa: Vec<VersusHpa>,
    /// The challenger against the best of the peers ([`PEER_FAMILIES`]) at each point of their joint
    /// Pareto frontier (`hpa` names the peer setting there), cheapest first.
    pub versus_peers: Vec<VersusHpa>,
}

/// Builds the frontier from `(family, point)` pairs, comparing `challenger` with the `reactive` family.
pub fn frontier(points: Vec<(String, FrontierPoint)>, challenger: &str) -> Frontier {
    let mut families: Vec<Family> = Vec::new();
    for (family, point) in points {
        match families.iter_mut().find(|f| f.family == family) {
            Some(f) => f.points.push(point),
            None => families.push(Family {
                family,
                points: vec![point],
                pareto: Vec::new(),
            }),
        }
    }
    for family in &mut families {
        family.points.sort_by(|a, b| {
            a.replica_minutes
                .total_cmp(&b.replica_minutes)
                .then(a.underprovisioned_minutes.total_cmp(&b.underprovisioned_minutes))
        });
        family.pareto = pareto(&family.points);
    }
    let challengers: Vec<&FrontierPoint> = families
        .iter()
        .filter(|f| f.family == challenger)
        .flat_map(|f| &f.points)
        .collect();
    let versus_hpa = families
        .iter()
        .filter(|f| f.family == "reactive")
        .flat_map(|f| &f.points)
        .map(|hpa| versus(hpa, &challengers))
        .collect();
    let mut peers: Vec<FrontierPoint> = families
        .iter()
        .filter(|f| PEER_FAMILIES.contains(&f.family.as_str()))
        .flat_map(|f| f.points.iter().cloned())
        .collect();
    peers.sort_by(|a, b| {
        a.replica_minutes
            .total_cmp(&b.replica_minutes)
            .then(a.underprovisioned_minutes.total_cmp(&b.underprovisioned_minutes))
    });
    let best_peers = pareto(&peers);
    let versus_peers = peers
        .iter()
        .filter(|p| best_peers.contains(&p.label))
        .map(|peer| versus(peer, &challengers))
        .collect();
    Frontier {
        families,
        challenger: challenger.to_owned(),
        versus_hpa,
        versus_peers,
    }
}

/// Labels of the points no other point beats on both axes (points sorted by cost).
fn pareto(sorted_by_cost: &[FrontierPoint]) -> Vec<String> {
    let mut best_short = f64::INFINITY;
    let mut out = Vec::new();
    for point in sorted_by_cost {
        if point.underprovisioned_minutes < best_short {
            best_short = point.underprovisioned_minutes;
            out.push(point.label.clone());
        }
    }
    out
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| a / b)
}

fn versus(hpa: &FrontierPoint, challengers: &[&FrontierPoint]) -> VersusHpa {
    // A relative slack so that equal cost up to rounding of the replay counts as "no more".
    let slack = 1e-9 * hpa.replica_minutes.abs().max(1.0);
    let at_cost = challengers
        .iter()
        .filter(|p| p.replica_minutes <= hpa.replica_minutes + slack)
        .min_by(|a, b| {
            a.underprovisioned_minutes
                .total_cmp(&b.underprovisioned_minutes)
                .then(a.replica_minutes.total_cmp(&b.replica_minutes))
        });
    let at_shortfall = challengers
        .iter()
        .filter(|p| p.underprovisioned_minutes <= hpa.underprovisioned_minutes + 1e-9)
        .min_by(|a, b| a.replica_minutes.total_cmp(&b.replica_minutes));
    VersusHpa {
        hpa: hpa.label.clone(),
        hpa_replica_minutes: hpa.replica_minutes,
        hpa_underprovisioned_minutes: hpa.underprovisioned_minutes,
        best_at_hpa_cost: at_cost.map(|p| p.label.clone()),
        underprovisioned_minutes_at_hpa_cost: at_cost.map(|p| p.underprovisioned_minutes),
        shortfall_ratio_at_hpa_cost: at_cost
            .and_then(|p| ratio(p.underprovisioned_minutes, hpa.underprovisioned_minutes)),
        best_at_hpa_shortfall: at_shortfall.map(|p| p.label.clone()),
        replica_minutes_at_hpa_shortfall: at_shortfall.map(|p| p.replica_minutes),
        cost_ratio_at_hpa_shortfall: at_shortfall.and_then(|p| ratio(p.replica_minutes, hpa.replica_minutes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(family: &str, label: &str, cost: f64, short: f64) -> (String, FrontierPoint) {
        (
            family.to_owned(),
            FrontierPoint {
                label: label.to_owned(),
                replica_minutes: cost,
                underprovisioned_minutes: short,
                unserved_fraction: short / 1000.0,
            },
        )
    }

    #[test]
    fn the_pareto_frontier_drops_dominated_points_and_the_headline_reads_off_real_settings() {
        let frontier = frontier(
            vec![
                point("reactive", "reactive@u0.5", 2000.0, 10.0),
                point("reactive", "reactive@u0.7", 1500.0, 40.0),
                point("reactive", "reactive@u0.9", 1200.0, 120.0),
                point("predictive", "predictive@q0.99", 1600.0, 5.0),
                point("predictive", "predictive@q0.9", 1400.0, 15.0),
                point("predictive", "predictive@q0.8", 1450.0, 30.0), // dominated by q0.9
                point("predictive", "predictive@q0.5", 1100.0, 90.0),
            ],
            "predictive",
        );
        let predictive = frontier.families.iter().find(|f| f.family == "predictive");
        assert_eq!(
            predictive.map(|f| f.pareto.clone()),
            Some(vec![
                "predictive@q0.5".to_owned(),
                "predictive@q0.9".to_owned(),
                "predictive@q0.99".to_owned()
            ])
        );
        let at_07 = &frontier.versus_hpa[1];
        assert_eq!(at_07.hpa, "reactive@u0.7");
        assert_eq!(at_07.best_at_hpa_cost.as_deref(), Some("predictive@q0.9"));
        assert_eq!(at_07.shortfall_ratio_at_hpa_cost, Some(15.0 / 40.0));
        assert_eq!(at_07.best_at_hpa_shortfall.as_deref(), Some("predictive@q0.9"));
        assert_eq!(at_07.cost_ratio_at_hpa_shortfall, Some(1400.0 / 1500.0));
        let at_09 = &frontier.versus_hpa[0];
        assert_eq!(
            at_09.hpa, "reactive@u0.9",
            "reactive settings are listed cheapest first"
        );
        assert_eq!(at_09.best_at_hpa_cost.as_deref(), Some("predictive@q0.5"));
        assert_eq!(at_09.shortfall_ratio_at_hpa_cost, Some(0.75));
    }

    #[test]
    fn against_the_peers_prescient_meets_the_best_peer_at_each_cost() {
        let frontier = frontier(
            vec![
                point("reactive", "reactive@u0.5", 2000.0, 10.0),
                point("reactive", "reactive@u0.7", 1500.0, 40.0),
                point("crane-ehpa", "crane-ehpa@u0.7", 1600.0, 8.0), // beats the HPA at 2000
                point("phpa", "phpa@u0.7", 1500.0, 30.0),            // beats the HPA at 1500
                point("predictive", "predictive@q0.9", 1400.0, 15.0),
                point("predictive", "predictive@q0.99", 1550.0, 4.0),
            ],
            "predictive",
        );
        let peers: Vec<&str> = frontier.versus_peers.iter().map(|v| v.hpa.as_str()).collect();
        assert_eq!(
            peers,
            vec!["phpa@u0.7", "crane-ehpa@u0.7"],
            "the dominated HPA points drop out"
        );
        let at_crane = &frontier.versus_peers[1];
        assert_eq!(at_crane.best_at_hpa_cost.as_deref(), Some("predictive@q0.99"));
        assert_eq!(at_crane.shortfall_ratio_at_hpa_cost, Some(4.0 / 8.0));
        assert_eq!(at_crane.cost_ratio_at_hpa_shortfall, Some(1550.0 / 1600.0));
        let at_phpa = &frontier.versus_peers[0];
        assert_eq!(at_phpa.shortfall_ratio_at_hpa_cost, Some(15.0 / 30.0));
    }

    #[test]
    fn an_hpa_never_short_is_compared_by_cost_at_zero_shortfall() {
        let frontier = frontier(
            vec![
                point("reactive", "reactive@u0.5", 2000.0, 0.0),
                point("predictive", "predictive@q0.9", 1500.0, 0.0),
                point("predictive", "predictive@q0.5", 1000.0, 3.0),
            ],
            "predictive",
        );
        let v = &frontier.versus_hpa[0];
        assert_eq!(v.shortfall_ratio_at_hpa_cost, None, "no ratio to zero minutes");
        assert_eq!(v.underprovisioned_minutes_at_hpa_cost, Some(0.0));
        assert_eq!(v.cost_ratio_at_hpa_shortfall, Some(0.75));
    }

    #[test]
    fn no_setting_at_the_hpa_cost_gives_no_figure() {
        let frontier = frontier(
            vec![
                point("reactive", "reactive@u0.9", 1000.0, 50.0),
                point("predictive", "predictive@q0.9", 1500.0, 5.0),
            ],
            "predictive",
        );
        let v = &frontier.versus_hpa[0];
        assert_eq!(v.best_at_hpa_cost, None);
        assert_eq!(v.best_at_hpa_shortfall.as_deref(), Some("predictive@q0.9"));
        assert_eq!(v.cost_ratio_at_hpa_shortfall, Some(1.5));
    }
}
