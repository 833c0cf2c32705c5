//! Split-conformal prediction bands: residuals of backtest folds, per horizon step.
//!
//! `Forecast::quantile(q)` at step k is the point forecast plus a residual (actual − forecast) quantile
//! of the backtest folds at step k:
//! - **Normalised.** Residuals are stored relative to the noise scale at their fold's origin
//!   ([`noise_scale`]: mean absolute one-step change over the recent past) and scaled back by the noise
//!   scale where the forecast starts, so bands are wider in busy, noisy hours than in quiet ones, as
//!   demand's noise usually is.
//! - **Pooled.** Few folds give few residuals per step, so each step pools the residuals of its
//!   neighbouring steps (±25 %), whose error distributions are close.
//! - **At least as wide as the symmetric band.** The q-quantile of the signed residuals says which way
//!   the calibration folds erred. Where the level drifts (a rising hour calibrating a falling one), that
//!   direction does not carry over, and the signed band sits on the wrong side. So each side is at least
//!   the classic split-conformal half-width, the (2q − 1)-quantile of |residual|, which does not depend on
//!   the direction of the error. Skewed residuals (spikes above the forecast) still widen the upper side.
//! - **Bounded in memory.** A long horizon (15 minutes at 1-second steps is 900 steps) keeps a
//!   distribution only at up to [`MAX_KNOTS`] steps and interpolates between them, and each distribution
//!   is a grid of [`GRID`] + 1 quantiles, not the samples: the size of a calibration does not grow with
//!   the horizon or the number of folds.
//! - Beyond the calibrated horizon the last step's offsets are widened by √(k / H), the growth of a
//!   random walk.

use serde::Serialize;

use crate::Forecast;

/// Most horizon steps that keep their own residual distribution; the steps between interpolate.
const MAX_KNOTS: usize = 48;
/// Most steps pooled into one knot's sample, evenly spread over its ±25 % neighbourhood.
const MAX_POOLED_STEPS: usize = 32;
/// A distribution is stored as its quantiles at levels i / GRID, i = 0..=GRID.
const GRID: usize = 100;

/// Residual distributions (relative to the noise scale) at some horizon steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Calibration {
    /// Steps (0-based), ascending, first 0 and last H − 1, each with its distributions.
    knots: Vec<Knot>,
    /// H, the number of calibrated steps.
    horizon: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Knot {
    step: usize,
    /// Quantile grid of the signed residuals (empty when the step had no samples).
    signed: Vec<f64>,
    /// Quantile grid of the absolute residuals.
    absolute: Vec<f64>,
}

impl Calibration {
    /// From residuals `by_step[k]` = residuals of step k+1 over the folds (non-finite ones ignored).
    pub(crate) fn from_residuals(by_step: &[Vec<f64>]) -> Self {
        let horizon = by_step.len();
        let mut signed = Vec::new();
        let mut absolute = Vec::new();
        let knots = knot_steps(horizon)
            .into_iter()
            .map(|step| {
                signed.clear();
                for k in pooled_steps(step, horizon) {
                    signed.extend(by_step[k].iter().copied().filter(|v| v.is_finite()));
                }
                absolute.clear();
                absolute.extend(signed.iter().map(|v| v.abs()));
                Knot {
                    step,
                    signed: quantile_grid(&mut signed),
                    absolute: quantile_grid(&mut absolute),
                }
            })
            .collect();
        Self { knots, horizon }
    }

    /// Residual q-quantile at step index `k` (0-based); 0 when uncalibrated.
    pub(crate) fn offset(&self, k: usize, q: f64) -> f64 {
        let q = if q.is_finite() { q.clamp(0.0, 1.0) } else { 0.5 };
        let Some(last) = self.knots.last() else {
            return 0.0;
        };
        if k >= last.step {
            let widen = ((k + 1) as f64 / self.horizon.max(1) as f64).sqrt().max(1.0);
            return last.offset(q) * widen;
        }
        // The first knot is step 0, so some knot at or before k exists, and one after it (k < last).
        let after = self.knots.partition_point(|knot| knot.step <= k);
        let (a, b) = (&self.knots[after - 1], &self.knots[after]);
        let t = (k - a.step) as f64 / (b.step - a.step) as f64;
        a.offset(q) * (1.0 - t) + b.offset(q) * t
    }
}

impl Knot {
    /// A grid at evenly spaced levels is read with the same linear interpolation as the samples.
    fn offset(&self, q: f64) -> f64 {
        let signed = empirical_quantile(&self.signed, q);
        if q > 0.5 {
            signed.max(empirical_quantile(&self.absolute, 2.0 * q - 1.0))
        } else if q < 0.5 {
            signed.min(-empirical_quantile(&self.absolute, 1.0 - 2.0 * q))
        } else {
            signed
        }
    }
}

/// Steps that keep a distribution: all of them for short horizons, else `MAX_KNOTS` spread evenly.
fn knot_steps(horizon: usize) -> Vec<usize> {
    if horizon <= MAX_KNOTS {
        return (0..horizon).collect();
    }
    (0..MAX_KNOTS)
        .map(|i| (i * (horizon - 1) + (MAX_KNOTS - 1) / 2) / (MAX_KNOTS - 1))
        .collect()
}

/// Steps whose residuals are pooled for step `k`: its ±25 % neighbourhood, thinned evenly to at most
/// `MAX_POOLED_STEPS` (always including `k`'s neighbourhood ends).
fn pooled_steps(k: usize, horizon: usize) -> impl Iterator<Item = usize> {
    let reach = k / 4;
    let lo = k.saturating_sub(reach);
    let hi = (k + reach).min(horizon.saturating_sub(1));
    let count = hi - lo + 1;
    let taken = count.min(MAX_POOLED_STEPS);
    (0..taken).map(move |i| {
        if taken == 1 {
            k
        } else {
            lo + i * (count - 1) / (taken - 1)
        }
    })
}

/// Quantiles of `samples` at levels i / GRID; empty for no samples. Sorts `samples` in place.
fn quantile_grid(samples: &mut [f64]) -> Vec<f64> {
    if samples.is_empty() {
        return Vec::new();
    }
    samples.sort_unstable_by(f64::total_cmp);
    (0..=GRID)
        .map(|i| empirical_quantile(samples, i as f64 / GRID as f64))
        .collect()
}

/// Empirical quantile of sorted samples with linear interpolation; 0 for no samples.
pub(crate) fn empirical_quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let q = if q.is_finite() { q.clamp(0.0, 1.0) } else { 0.5 };
            let position = q * (n - 1) as f64;
            let below = position.floor() as usize;
            let above = (below + 1).min(n - 1);
            let t = position - below as f64;
            sorted[below] * (1.0 - t) + sorted[above] * t
        }
    }
}

impl Forecast {
    /// Number of forecast steps.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Timestamps of the forecast steps.
    pub fn timestamps(&self) -> Vec<i64> {
        (0..self.mean.len() as i64)
            .map(|i| self.start + i * self.step_seconds)
            .collect()
    }

    /// One-sided q-quantile per step (`q` in [0, 1]), never negative.
    pub fn quantile(&self, q: f64) -> Vec<f64> {
        self.mean
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let v = m + self.calibration.offset(k, q) * self.noise_scale;
                if v.is_finite() { v.max(0.0) } else { m.max(0.0) }
            })
            .collect()
    }

    /// Central band at `level` (e.g. 0.9): quantiles (1 − level)/2 and (1 + level)/2.
    pub fn band(&self, level: f64) -> (Vec<f64>, Vec<f64>) {
        let level = if level.is_finite() {
            level.clamp(0.0, 1.0)
        } else {
            0.9
        };
        (
            self.quantile((1.0 - level) / 2.0),
            self.quantile((1.0 + level) / 2.0),
        )
    }
}

/// Recent noise scale of filled values ending at `end` (inclusive): the mean absolute one-step change
/// over the last `window` steps, floored so that it never vanishes.
pub(crate) fn noise_scale(values: &[f64], end: usize, window: usize) -> f64 {
    // Clamp to the data, so an empty or short series gets the neutral scale rather than a panic.
    let Some(last) = values.len().checked_sub(1) else {
        return 1.0;
    };
    let end = end.min(last);
    let from = (end + 1).saturating_sub(window.max(2));
    let slice = &values[from..=end];
    let changes: f64 = slice.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    let count = slice.len().saturating_sub(1).max(1) as f64;
    let level = slice.iter().map(|v| v.abs()).sum::<f64>() / slice.len().max(1) as f64;
    let scale = changes / count;
    if scale.is_finite() {
        scale.max(1e-3 * level).max(1e-9)
    } else {
        1.0
    }
}

/// Steps over which the noise scale is measured for a horizon of `h` steps.
pub(crate) fn noise_window(h: usize) -> usize {
    (2 * h).max(60)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};
    use rand_distr::{Distribution, Normal};

    use super::*;

    /// `folds` residual draws per step for `horizon` steps, step k's spread growing with k.
    fn normal_residuals(horizon: usize, folds: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..horizon)
            .map(|k| {
                let spread = Normal::new(0.0, 1.0 + k as f64 / 100.0).unwrap();
                (0..folds).map(|_| spread.sample(&mut rng)).collect()
            })
            .collect()
    }

    #[test]
    fn a_long_horizon_keeps_a_bounded_calibration() {
        let calibration = Calibration::from_residuals(&normal_residuals(900, 60, 1));
        assert_eq!(calibration.knots.len(), MAX_KNOTS);
        assert_eq!(calibration.knots.first().map(|k| k.step), Some(0));
        assert_eq!(calibration.knots.last().map(|k| k.step), Some(899));
        for knot in &calibration.knots {
            assert_eq!(knot.signed.len(), GRID + 1);
            assert_eq!(knot.absolute.len(), GRID + 1);
        }
        // Between knots the offsets interpolate, so the band widens smoothly with the step, like the
        // spread of the residuals it was calibrated on.
        let upper: Vec<f64> = (0..900).map(|k| calibration.offset(k, 0.95)).collect();
        let jumps = upper.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f64::max);
        assert!(jumps < 0.5, "largest step-to-step change {jumps}");
        assert!(upper[899] > upper[0] * 5.0, "{} vs {}", upper[899], upper[0]);
    }

    #[test]
    fn each_side_is_at_least_the_symmetric_half_width() {
        // The calibration folds all erred one way (the level fell while they were forecast). A fold
        // where the level rises must still find room above its forecast.
        let falling: Vec<Vec<f64>> = (0..10)
            .map(|k| (0..60).map(|i| -1.0 - (i + k) as f64 % 60.0 / 60.0).collect())
            .collect();
        let calibration = Calibration::from_residuals(&falling);
        for k in 0..10 {
            let upper = calibration.offset(k, 0.95);
            let lower = calibration.offset(k, 0.05);
            assert!(
                upper > 1.8,
                "step {k}: upper offset {upper} lies below the forecast"
            );
            assert!(lower < -1.9, "step {k}: lower offset {lower}");
        }
    }

    #[test]
    fn bands_cover_their_level_on_exchangeable_residuals() {
        let horizon = 200;
        let calibration = Calibration::from_residuals(&normal_residuals(horizon, 60, 2));
        let fresh = normal_residuals(horizon, 50, 3);
        let (mut inside, mut count) = (0usize, 0usize);
        for (k, draws) in fresh.iter().enumerate() {
            let (lower, upper) = (calibration.offset(k, 0.05), calibration.offset(k, 0.95));
            inside += draws.iter().filter(|r| (lower..=upper).contains(*r)).count();
            count += draws.len();
        }
        let coverage = inside as f64 / count as f64;
        assert!((0.87..=0.93).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn beyond_the_calibrated_horizon_bands_widen_like_a_random_walk() {
        let calibration = Calibration::from_residuals(&normal_residuals(10, 60, 4));
        let at_end = calibration.offset(9, 0.95);
        assert!((calibration.offset(39, 0.95) - 2.0 * at_end).abs() < 1e-9);
        assert_eq!(Calibration::default().offset(3, 0.95), 0.0);
    }

    #[test]
    fn noise_scale_is_neutral_on_empty_data_and_clamps_its_end() {
        assert_eq!(noise_scale(&[], 5, 60), 1.0);
        let values = [1.0, 3.0, 1.0, 3.0];
        assert_eq!(noise_scale(&values, 99, 60), noise_scale(&values, 3, 60));
        assert!((noise_scale(&values, 3, 60) - 2.0).abs() < 1e-12);
    }
}
