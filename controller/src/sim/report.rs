//! The self-contained HTML report of a replay: inline SVG charts drawn here (no script, no external
//! asset, so it opens offline and can be attached to a ticket) of demand, the ready capacity of each
//! policy and the predictive forecast band, over the whole replay and around its busiest moment, plus
//! the summary table.

use std::fmt::Write as _;

use super::{DemandTrace, SeriesRow, SimRun, frontier::Frontier};

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;
/// One chart column per this many pixels at most.
const COLUMNS: usize = 1100;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#e377c2",
];
/// The forecast band and mean.
const BAND: &str = "#ff7f0e";

/// HTML-escapes text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn time_label(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map_or_else(|_| t.to_string(), |ts| ts.strftime("%m-%d %H:%M").to_string())
}

/// One chart column: peak demand, lowest ready capacity per run, forecast band (min lower, max upper).
struct Column {
    t: i64,
    demand: f64,
    capacity: Vec<f64>,
    band: Option<(f64, f64, f64)>,
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.max(b)
    }
}
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.min(b)
    }
}

/// Buckets rows `range` of every run into at most [`COLUMNS`] columns.
fn columns(
    runs: &[(&str, &SimRun)],
    capacity: f64,
    range: std::ops::Range<usize>,
    band_run: Option<usize>,
) -> Vec<Column> {
    let n = range.len();
    if n == 0 {
        return Vec::new();
    }
    let per = n.div_ceil(COLUMNS).max(1);
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let j = (i + per).min(range.end);
        let first: &[SeriesRow] = &runs[0].1.rows[i..j];
        let demand = first.iter().map(|r| r.demand).fold(f64::NAN, nan_max);
        let capacity = runs
            .iter()
            .map(|(_, run)| {
                run.rows
                    .get(i..j)
                    .unwrap_or(&[])
                    .iter()
                    .map(|r| f64::from(r.ready_replicas) * capacity)
                    .fold(f64::NAN, nan_min)
            })
            .collect();
        let band = band_run.and_then(|b| {
            let rows = runs[b].1.rows.get(i..j)?;
            let lower = rows.iter().map(|r| r.forecast_lower).fold(f64::NAN, nan_min);
            let upper = rows.iter().map(|r| r.forecast_upper).fold(f64::NAN, nan_max);
            let finite: Vec<f64> = rows
                .iter()
                .map(|r| r.forecast)
                .filter(|v| v.is_finite())
                .collect();
            let mean = if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            };
            (lower.is_finite() && upper.is_finite()).then_some((lower, mean, upper))
        });
        out.push(Column {
            t: first[0].timestamp,
            demand,
            capacity,
            band,
        });
        i = j;
    }
    out
}

/// An SVG chart of the columns.
fn chart(title: &str, runs: &[(&str, &SimRun)], cols: &[Column]) -> String {
    let mut svg = String::new();
    if cols.is_empty() {
        return svg;
    }
    let (t0, t1) = (cols[0].t, cols[cols.len() - 1].t.max(cols[0].t + 1));
    let mut y_max = 0.0f64;
    for c in cols {
        y_max = nan_max(y_max, c.demand);
        for v in &c.capacity {
            y_max = nan_max(y_max, *v);
        }
        if let Some((_, _, upper)) = c.band {
            y_max = nan_max(y_max, upper);
        }
    }
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - (v / y_max).clamp(0.0, 1.0) * plot_h;
    let _ = write!(
        svg,
        r##"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img">"##,
        escape(title)
    );
    // Axes and grid.
    for k in 0..=4 {
        let v = y_max / 1.05 * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            format_value(v),
            y = y(v)
        );
    }
    for k in 0..=5 {
        let t = t0 + (t1 - t0) * k / 5;
        let anchor = match k {
            0 => "start",
            5 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="{anchor}">{}</text>"##,
            x(t),
            HEIGHT - 12.0,
            time_label(t)
        );
    }
    // Forecast band.
    let band: Vec<(i64, f64, f64, f64)> = cols
        .iter()
        .filter_map(|c| c.band.map(|(l, m, u)| (c.t, l, m, u)))
        .collect();
    if !band.is_empty() {
        let mut points = String::new();
        for (t, _, _, u) in &band {
            let _ = write!(points, "{:.1},{:.1} ", x(*t), y(*u));
        }
        for (t, l, _, _) in band.iter().rev() {
            let _ = write!(points, "{:.1},{:.1} ", x(*t), y(*l));
        }
        let _ = write!(
            svg,
            r##"<polygon points="{points}" fill="{BAND}" fill-opacity="0.2" stroke="none"/>"##
        );
        let mean: Vec<(i64, f64)> = band.iter().map(|(t, _, m, _)| (*t, *m)).collect();
        svg.push_str(&polyline(&mean, &x, &y, BAND, "1", "4 3"));
    }
    let demand: Vec<(i64, f64)> = cols.iter().map(|c| (c.t, c.demand)).collect();
    svg.push_str(&polyline(&demand, &x, &y, "#333", "1.5", ""));
    for (k, _) in runs.iter().enumerate() {
        let capacity: Vec<(i64, f64)> = cols.iter().map(|c| (c.t, c.capacity[k])).collect();
        svg.push_str(&polyline(&capacity, &x, &y, COLORS[k % COLORS.len()], "1.2", ""));
    }
    svg.push_str("</svg>");
    // Legend.
    svg.push_str(r#"<div class="legend"><span style="color:#333">&#9632; demand (peak per column)</span>"#);
    for (k, (label, _)) in runs.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<span style="color:{}">&#9632; {} ready capacity (lowest per column)</span>"#,
            COLORS[k % COLORS.len()],
            escape(label)
        );
    }
    if !band.is_empty() {
        let _ = write!(
            svg,
            r#"<span style="color:{BAND}">&#9632; forecast mean and 80 % band, made one lead time ahead</span>"#
        );
    }
    svg.push_str("</div></figure>");
    svg
}

fn format_value(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A polyline broken at missing values.
fn polyline(
    points: &[(i64, f64)],
    x: &dyn Fn(i64) -> f64,
    y: &dyn Fn(f64) -> f64,
    color: &str,
    width: &str,
    dash: &str,
) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        if segment.contains(' ') {
            let _ = write!(
                out,
                r#"<polyline points="{segment}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#
            );
        }
        segment.clear();
    };
    for (t, v) in points {
        if v.is_finite() {
            let _ = write!(segment, "{:.1},{:.1} ", x(*t), y(*v));
        } else {
            flush(&mut segment, &mut out);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// The trade-off chart: every family's points (replica-minutes across, minutes short up), joined along
/// the family's settings, so a user sees at a glance which curve lies below which.
fn frontier_chart(frontier: &Frontier) -> String {
    let points = frontier.families.iter().flat_map(|f| &f.points);
    let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, 0.0f64, 0.0f64);
    for p in points {
        x_min = x_min.min(p.replica_minutes);
        x_max = x_max.max(p.replica_minutes);
        y_max = y_max.max(p.underprovisioned_minutes);
    }
    if !(x_min.is_finite() && x_max > 0.0) {
        return String::new();
    }
    let pad = ((x_max - x_min) * 0.05).max(1.0);
    let (x_min, x_max) = ((x_min - pad).max(0.0), x_max + pad);
    let y_max = if y_max > 0.0 { y_max * 1.08 } else { 1.0 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v - x_min) / (x_max - x_min) * plot_w;
    let y = |v: f64| TOP + plot_h - (v / y_max).clamp(0.0, 1.0) * plot_h;
    let mut svg = format!(
        r##"<figure><figcaption>Cost against shortfall: every setting replayed (lower left is better)</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img">"##
    );
    for k in 0..=4 {
        let v = y_max / 1.08 * f64::from(k) / 4.0;
        let h = x_min + (x_max - x_min) * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yv:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text><text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            format_value(v),
            x(h),
            HEIGHT - 12.0,
            format_value(h),
            yv = y(v)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="12" font-size="11">under-provisioned minutes</text><text x="{}" y="{}" font-size="11" text-anchor="end">replica-minutes</text>"##,
        WIDTH - RIGHT,
        HEIGHT - 26.0
    );
    let mut legend = String::from(r#"<div class="legend">"#);
    for (k, family) in frontier.families.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let path: Vec<String> = family
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.replica_minutes), y(p.underprovisioned_minutes)))
            .collect();
        if path.len() > 1 {
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
                path.join(" ")
            );
        }
        for p in &family.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"><title>{}: {:.0} replica-minutes, {:.1} minutes short</title></circle>"#,
                x(p.replica_minutes),
                y(p.underprovisioned_minutes),
                escape(&p.label),
                p.replica_minutes,
                p.underprovisioned_minutes
            );
        }
        let _ = write!(
            legend,
            r#"<span style="color:{color}">&#9679; {}</span>"#,
            escape(&family.family)
        );
    }
    svg.push_str("</svg>");
    svg.push_str(&legend);
    svg.push_str("</div></figure>");
    svg.push_str(&versus_table(frontier));
    svg
}

/// The headline: the challenger against the HPA at each HPA setting's cost and shortfall, then against
/// the best of the peers (HPA, Crane EHPA, PHPA) along their joint frontier when peers were replayed.
fn versus_table(frontier: &Frontier) -> String {
    let mut html = versus_rows("HPA setting", &frontier.challenger, &frontier.versus_hpa);
    if frontier
        .versus_peers
        .iter()
        .any(|v| !v.hpa.starts_with("reactive"))
    {
        html.push_str(
            "<p>Against the best peer (HPA, crane-ehpa, phpa) at each point of their joint frontier:</p>",
        );
        html.push_str(&versus_rows(
            "best peer",
            &frontier.challenger,
            &frontier.versus_peers,
        ));
    }
    html
}

fn versus_rows(peer: &str, challenger: &str, rows: &[crate::sim::frontier::VersusHpa]) -> String {
    let cell = |v: Option<f64>, digits: usize| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"));
    let mut html = format!(
        "<table><tr><th>{p}</th><th>replica-min</th><th>min short</th><th>{c}: min short at that cost</th><th>ratio</th><th>{c}: replica-min at that shortfall</th><th>ratio</th></tr>",
        p = escape(peer),
        c = escape(challenger)
    );
    for v in rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{} ({})</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
            escape(&v.hpa),
            v.hpa_replica_minutes,
            v.hpa_underprovisioned_minutes,
            cell(v.underprovisioned_minutes_at_hpa_cost, 1),
            escape(v.best_at_hpa_cost.as_deref().unwrap_or("none")),
            cell(v.shortfall_ratio_at_hpa_cost, 2),
            cell(v.replica_minutes_at_hpa_shortfall, 0),
            escape(v.best_at_hpa_shortfall.as_deref().unwrap_or("none")),
            cell(v.cost_ratio_at_hpa_shortfall, 2),
        );
    }
    html.push_str("</table>");
    html
}

/// The report page. `table` rows: label, under-provisioned minutes, unserved, replica-minutes, events.
pub fn render(
    title: &str,
    trace: &DemandTrace,
    capacity: f64,
    runs: &[(&str, &SimRun)],
    table: &[[String; 5]],
    frontier: Option<&Frontier>,
) -> String {
    let mut html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Prescient simulation — {t}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-weight:600}}.legend span{{margin-right:1.2em;font-size:13px}}</style>
</head><body><h1>Prescient simulation</h1><p>{t}. Trace: {n} points at {step} s.</p>"#,
        t = escape(title),
        n = trace.len(),
        step = trace.step_seconds()
    );
    html.push_str("<table><tr><th>policy</th><th>under-provisioned minutes</th><th>unserved demand</th><th>replica-minutes</th><th>scale events</th></tr>");
    for row in table {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table><p>Under-provisioned: demand above ready capacity. Replica-minutes count every pod paid for (ready, starting or draining).</p>");
    if let Some(frontier) = frontier {
        html.push_str(&frontier_chart(frontier));
    }
    let rows = runs.first().map_or(0, |(_, r)| r.rows.len());
    let consistent = runs.iter().all(|(_, r)| r.rows.len() == rows);
    if rows > 0 && consistent {
        let band_run = runs.iter().position(|(_, r)| r.policy.name() == "predictive");
        let all = columns(runs, capacity, 0..rows, band_run);
        html.push_str(&chart("Whole replay", runs, &all));
        // The busiest moment at full resolution: 4 hours (or the whole replay) around the peak demand.
        let peak = runs[0]
            .1
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.demand.is_finite())
            .max_by(|a, b| a.1.demand.total_cmp(&b.1.demand))
            .map(|(i, _)| i);
        if let Some(peak) = peak {
            let tick = runs[0].1.tick_seconds.max(1) as usize;
            let half = (2 * 3600 / tick).max(1);
            let range = peak.saturating_sub(half)..(peak + half).min(rows);
            let zoom = columns(runs, capacity, range.clone(), band_run);
            let title = format!(
                "Around the peak demand ({} UTC)",
                time_label(runs[0].1.rows[peak].timestamp)
            );
            html.push_str(&chart(&title, runs, &zoom));
        }
    }
    html.push_str("</body></html>\n");
    html
}
