//! Split-conformal prediction bands: residuals of backtest folds, per horizon step.
//!
//! `Forecast::quantile(q)` at step k is the point forecast plus the empirical q-quantile of the
//! backtest residuals (actual − forecast) at step k. Residuals are stored relative to the noise scale at
//! their fold's origin ([`noise_scale`]: mean absolute one-step change over the recent past) and scaled
//! back by the noise scale where the forecast starts (normalised conformal), so bands are wider in busy,
//! noisy hours than in quiet ones, as demand's noise usually is. Few folds give few residuals per step, so each step
//! pools the residuals of its neighbouring steps (±25 %), whose error distributions are close. Beyond the
//! calibrated horizon the last step's residuals are widened by √(k / H), the growth of a random walk.

use serde::Serialize;

use crate::Forecast;

/// Sorted residual samples per horizon step.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Calibration {
    steps: Vec<Vec<f64>>,
}

impl Calibration {
    /// From residuals `by_step[k]` = residuals of step k+1 over the folds (NaN ignored).
    pub(crate) fn from_residuals(by_step: &[Vec<f64>]) -> Self {
        let h = by_step.len();
        let steps = (0..h)
            .map(|k| {
                let reach = k / 4;
                let lo = k.saturating_sub(reach);
                let hi = (k + reach).min(h - 1);
                let mut pooled: Vec<f64> = by_step[lo..=hi]
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect();
                pooled.sort_by(f64::total_cmp);
                pooled
            })
            .collect();
        Self { steps }
    }

    /// Residual q-quantile at step index `k` (0-based); 0 when uncalibrated.
    pub(crate) fn offset(&self, k: usize, q: f64) -> f64 {
        let Some(last) = self.steps.len().checked_sub(1) else {
            return 0.0;
        };
        let samples = &self.steps[k.min(last)];
        let widen = if k > last {
            ((k + 1) as f64 / (last + 1) as f64).sqrt()
        } else {
            1.0
        };
        empirical_quantile(samples, q) * widen
    }
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
mod tests {
    use super::*;

    #[test]
    fn noise_scale_is_neutral_on_empty_data_and_clamps_its_end() {
        assert_eq!(noise_scale(&[], 5, 60), 1.0);
        let values = [1.0, 3.0, 1.0, 3.0];
        assert_eq!(noise_scale(&values, 99, 60), noise_scale(&values, 3, 60));
        assert!((noise_scale(&values, 3, 60) - 2.0).abs() < 1e-12);
    }
}
