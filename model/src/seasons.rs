//! Season detection by autocorrelation.
//!
//! The series is filled (missing values carried forward), linearly detrended, and its autocorrelation
//! examined at the calendar candidates: one day and one week in steps, when the history holds the cycle
//! at least [`MIN_CYCLES`] times, tested on 10-minute bucket means so that noisy counts do not hide the
//! cycle. It is also examined at the strongest peak of a general search on a downsampled copy (so odd
//! cycles such as 12 h are found too, at a cost independent of the history length). Without a calendar
//! prior a peak needs more evidence: three cycles in the history, and a rise above the trough before it
//! larger than sampling noise; within 10 % of a known period it is that period again. A weekly cycle
//! counts only if it remains once the daily profile is removed: a purely daily pattern also correlates at
//! seven days. White noise and aperiodic series give an empty list.

use crate::TimeSeries;

/// A period must be seen this many times in the history to be detected.
pub const MIN_CYCLES: f64 = 2.0;
/// A period found by the general search (no calendar prior) must be seen this many times: a random walk's
/// single rise and fall looks like two cycles of a period near half its length.
const SEARCH_CYCLES: usize = 3;
/// Buckets a day is averaged into for the calendar tests (10 minutes each).
const CALENDAR_BUCKETS_PER_DAY: usize = 144;
/// Autocorrelation a calendar candidate needs.
const CALENDAR_THRESHOLD: f64 = 0.2;
/// Autocorrelation a peak of the general search needs (stricter: it is not a prior).
const PEAK_THRESHOLD: f64 = 0.35;
/// The general search works on at most this many points (bucket means).
const SEARCH_POINTS: usize = 1200;
/// Detection looks at most at this many recent points (8 weeks at 1 minute).
const MAX_POINTS: usize = 80_640;

/// Detected periods in steps, strongest first; empty when the series has no clear cycle.
pub fn detect_seasons(series: &TimeSeries) -> Vec<usize> {
    let values = series.values();
    let values = &values[values.len().saturating_sub(MAX_POINTS)..];
    detect_periods(values, series.step_seconds())
}

/// Detection on raw grid values (NaN = missing).
pub(crate) fn detect_periods(values: &[f64], step_seconds: i64) -> Vec<usize> {
    let Some(x) = prepared(values) else {
        return Vec::new();
    };
    let n = x.len();
    let fits = |p: usize| p >= 2 && (n as f64) >= MIN_CYCLES * p as f64;
    let noise = 3.0 / (n as f64).sqrt();
    let mut found: Vec<(usize, f64)> = Vec::new();

    let step = step_seconds.max(1);
    let calendar = |seconds: i64| {
        (seconds % step == 0)
            .then(|| usize::try_from(seconds / step).ok())
            .flatten()
    };
    let day = calendar(86_400).filter(|&p| fits(p));
    let week = calendar(604_800).filter(|&p| fits(p));
    // The day (or, at a step that divides a week but not a day, the week) sets the bucket.
    if let Some(base) = day.or(week) {
        // Tested on bucket means: at fine steps the per-step noise (counts of a few requests a minute)
        // hides a daily shape that averages of a few minutes show plainly.
        let bucket = calendar_bucket(base);
        let xb: Vec<f64> = x
            .chunks_exact(bucket)
            .map(|c| c.iter().sum::<f64>() / bucket as f64)
            .collect();
        let noise = 3.0 / (xb.len() as f64).sqrt();
        let mut daily = None;
        if let Some(day) = day {
            let day_b = day / bucket;
            let r = acf(&xb, day_b);
            if r > CALENDAR_THRESHOLD.max(noise) && r > acf(&xb, day_b / 2) {
                found.push((day, r));
                daily = Some(day_b);
            }
        }
        if let Some(week) = week {
            // Weekly structure beyond the daily one: remove the daily profile first when there is one.
            let residual = match daily {
                Some(day_b) => remove_profile(&xb, day_b),
                None => xb,
            };
            let r = acf(&residual, week / bucket);
            if r > CALENDAR_THRESHOLD.max(noise) {
                found.push((week, r));
            }
        }
    }
    if let Some((p, r)) = general_peak(&x) {
        // Within 10 % of a known period is that period, seen through noise and a downsampled search.
        let near = |q: usize| (p as f64 - q as f64).abs() <= 0.1 * q as f64;
        // A multiple of a found period (7 days of a daily cycle) or a calendar period adds nothing the
        // calendar tests did not already decide.
        let multiple = |q: usize| near(q * ((p as f64 / q as f64).round() as usize).max(1));
        let known = found.iter().any(|&(q, _)| multiple(q)) || [day, week].into_iter().flatten().any(near);
        if fits(p) && !known && r > PEAK_THRESHOLD.max(noise) {
            found.push((p, r));
        }
    }
    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    found.into_iter().map(|(p, _)| p).collect()
}

/// Steps per bucket for the calendar tests: the largest divisor of `day` that leaves at least
/// [`CALENDAR_BUCKETS_PER_DAY`] buckets a day (1 when the day is already that short).
fn calendar_bucket(day: usize) -> usize {
    let mut bucket = (day / CALENDAR_BUCKETS_PER_DAY).max(1);
    while !day.is_multiple_of(bucket) {
        bucket -= 1;
    }
    bucket
}

/// Missing values carried forward (leading ones from the first value), then a least-squares line removed.
/// `None` when there is nothing to analyse (too short, or constant).
fn prepared(values: &[f64]) -> Option<Vec<f64>> {
    let first = values.iter().copied().find(|v| v.is_finite())?;
    let mut last = first;
    let mut x: Vec<f64> = values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                last = v;
            }
            last
        })
        .collect();
    let n = x.len();
    if n < 8 {
        return None;
    }
    let nf = n as f64;
    let t_mean = (nf - 1.0) / 2.0;
    let y_mean = x.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let dt = i as f64 - t_mean;
        sxy += dt * (v - y_mean);
        sxx += dt * dt;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    for (i, v) in x.iter_mut().enumerate() {
        *v -= y_mean + slope * (i as f64 - t_mean);
    }
    let variance = x.iter().map(|v| v * v).sum::<f64>() / nf;
    (variance > 1e-12 * (1.0 + y_mean * y_mean)).then_some(x)
}

/// Autocorrelation at `lag` of a zero-mean series.
pub(crate) fn acf(x: &[f64], lag: usize) -> f64 {
    if lag == 0 || lag >= x.len() {
        return 0.0;
    }
    let denominator: f64 = x.iter().map(|v| v * v).sum();
    if denominator <= 0.0 {
        return 0.0;
    }
    let numerator: f64 = x.iter().zip(&x[lag..]).map(|(a, b)| a * b).sum();
    numerator / denominator * x.len() as f64 / (x.len() - lag) as f64
}

/// The series minus its mean profile by phase of `period`.
fn remove_profile(x: &[f64], period: usize) -> Vec<f64> {
    let mut sums = vec![0.0; period];
    let mut counts = vec![0.0; period];
    for (i, v) in x.iter().enumerate() {
        sums[i % period] += v;
        counts[i % period] += 1.0;
    }
    x.iter()
        .enumerate()
        .map(|(i, v)| v - sums[i % period] / counts[i % period])
        .collect()
}

/// The strongest local maximum of the autocorrelation of a downsampled copy, as (period in steps, acf).
fn general_peak(x: &[f64]) -> Option<(usize, f64)> {
    let bucket = x.len().div_ceil(SEARCH_POINTS).max(1);
    let small: Vec<f64> = x
        .chunks(bucket)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let m = small.len();
    if m < 16 {
        return None;
    }
    let mean = small.iter().sum::<f64>() / m as f64;
    let small: Vec<f64> = small.iter().map(|v| v - mean).collect();
    let max_lag = m / SEARCH_CYCLES;
    let r: Vec<f64> = (0..=max_lag).map(|lag| acf(&small, lag)).collect();
    // Skip the initial decay: search from the first lag where the acf turns negative or stops falling.
    let mut start = 1;
    while start + 1 < r.len() && r[start + 1] < r[start] && r[start] > 0.0 {
        start += 1;
    }
    // A cycle's autocorrelation falls between its peaks; a slowly drifting level's decays smoothly, with
    // ripples of sampling noise (about 1/√m) on it. So a peak counts only if it rises above the lowest
    // value before it by more than that noise.
    let noise = 3.0 / (m as f64).sqrt();
    let mut trough = f64::MAX;
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    for lag in start.max(2)..max_lag {
        trough = trough.min(r[lag - 1]);
        if r[lag] > r[lag - 1] && r[lag] >= r[lag + 1] && r[lag] - trough > noise {
            peaks.push((lag, r[lag]));
        }
    }
    let strongest = peaks.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    // The fundamental: the first peak nearly as strong as the strongest (its multiples are peaks too).
    let best = peaks.into_iter().find(|p| p.1 >= 0.9 * strongest);
    let (lag, value) = best?;
    // Refine at full resolution around the downsampled peak.
    let centre = lag * bucket;
    let lo = centre.saturating_sub(bucket).max(2);
    let hi = (centre + bucket).min(x.len() / SEARCH_CYCLES);
    if bucket == 1 || lo >= hi {
        return Some((lag, value));
    }
    let mut refined = (centre, f64::MIN);
    let stride = (bucket / 16).max(1);
    let mut p = lo;
    while p <= hi {
        let v = acf(x, p);
        if v > refined.1 {
            refined = (p, v);
        }
        p += stride;
    }
    Some(refined)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn finds_daily_cycle_at_five_minutes() {
        let noise = noise(288 * 10, 1);
        let values: Vec<f64> = (0..288 * 10)
            .map(|i| 50.0 + 20.0 * (2.0 * std::f64::consts::PI * i as f64 / 288.0).sin() + 3.0 * noise[i])
            .collect();
        assert_eq!(detect_periods(&values, 300), vec![288]);
    }

    #[test]
    fn finds_daily_and_weekly_cycles() {
        let n = 24 * 7 * 5;
        let noise = noise(n, 2);
        let values: Vec<f64> = (0..n)
            .map(|i| {
                let day = (i / 24) % 7;
                let weekend = if day >= 5 { -15.0 } else { 0.0 };
                50.0 + 20.0 * (2.0 * std::f64::consts::PI * i as f64 / 24.0).sin() + weekend + 2.0 * noise[i]
            })
            .collect();
        let seasons = detect_periods(&values, 3600);
        assert!(seasons.contains(&24) && seasons.contains(&168), "{seasons:?}");
    }

    #[test]
    fn white_noise_and_trend_have_no_season() {
        assert!(detect_periods(&noise(5000, 3), 60).is_empty());
        let trend: Vec<f64> = (0..3000).map(|i| i as f64 * 0.5).collect();
        assert!(detect_periods(&trend, 60).is_empty());
        assert!(detect_periods(&[1.0; 100], 60).is_empty());
        assert!(detect_periods(&[], 60).is_empty());
    }

    #[test]
    fn finds_the_daily_cycle_of_sparse_counts() {
        // A few requests an hour: each minute's count is mostly Poisson noise, the daily shape is not.
        use rand_distr::{Distribution, Poisson};
        let mut rng = StdRng::seed_from_u64(8);
        let values: Vec<f64> = (0..7 * 1440)
            .map(|i| {
                let daylight = (2.0 * std::f64::consts::PI * i as f64 / 1440.0).sin().max(0.0);
                Poisson::new(0.02 + 0.3 * daylight.powi(3))
                    .unwrap()
                    .sample(&mut rng)
            })
            .collect();
        assert_eq!(detect_periods(&values, 60), vec![1440]);
    }

    #[test]
    fn drifting_levels_have_no_season() {
        // A level that rises and falls once (a busy half hour) under noise: its autocorrelation decays
        // slowly and noise ripples on that decay are not cycles. Nor is a random walk's wandering.
        for seed in 0..40 {
            let n = [351, 1000, 3500][seed as usize % 3];
            let noise = noise(n, seed);
            let hump: Vec<f64> = (0..n)
                .map(|i| {
                    5.0 + 4.0 * (std::f64::consts::PI * i as f64 / n as f64).sin().powi(2) + 2.0 * noise[i]
                })
                .collect();
            assert!(
                detect_periods(&hump, 10).is_empty(),
                "hump of {n}: {:?}",
                detect_periods(&hump, 10)
            );
            let mut level = 0.0;
            let walk: Vec<f64> = noise
                .iter()
                .map(|v| {
                    level += v;
                    level
                })
                .collect();
            assert!(
                detect_periods(&walk, 10).is_empty(),
                "walk of {n}: {:?}",
                detect_periods(&walk, 10)
            );
        }
    }

    #[test]
    fn finds_an_odd_period_by_general_search() {
        let noise = noise(3000, 4);
        let values: Vec<f64> = (0..3000)
            .map(|i| 10.0 + 5.0 * (2.0 * std::f64::consts::PI * i as f64 / 37.0).sin() + noise[i])
            .collect();
        let seasons = detect_periods(&values, 1);
        assert_eq!(seasons.len(), 1);
        assert!((36..=38).contains(&seasons[0]), "{seasons:?}");
    }
}
