//! gocrane/crane's EffectiveHPA (EHPA) with its DSP predictor, replayed in the simulator
//! (`--policy crane-ehpa`).
//!
//! Read from gocrane/crane (snapshot of 2024-12-19, commit 2b0ddae8):
//! - `pkg/prediction/dsp/preprocessing.go` — `fillMissingData` (a gap over an hour drops everything
//!   before it; shorter gaps are filled linearly; the series is cut to a whole number of hours, newest
//!   kept) and `removeExtremeOutliers` (a sample above the P99.9 or below the P0.1, by
//!   montanaflynn/stats' `Percentile`, is replaced by the sample before it).
//! - `pkg/prediction/dsp/prediction.go` — `findPeriod` (cut to whole weeks if there are at least two,
//!   else whole days if at least two), `updateAggregateSignals` (periodic only if the period found is
//!   exactly one day or one week; at least two periods; `bestEstimator` backtests every estimator on
//!   the last period from the ones before it and keeps the lowest prediction error; the chosen one's
//!   estimate of one period is repeated `nPeriods` times from the sample after the last) and
//!   `QueryRealtimePredictedValues`.
//! - `pkg/prediction/dsp/signal.go` — `FindPeriod`: the 99th of the maxima of the periodograms of 100
//!   random permutations is the power threshold; frequencies above it give candidate periods `N/k`;
//!   the candidate whose autocorrelation is a peak (`peak.go`: rising least-squares slope before it,
//!   falling after, over `min(4 h, period/2)`) with the highest value wins.
//! - `pkg/prediction/dsp/auto_correlation.go` — circular ACF of the standardized series via the FFT.
//! - `pkg/prediction/dsp/estimators.go` — the FFT estimator (zero every bin whose amplitude `|X_k|/N`
//!   is below a threshold — the amplitude of the `maxNumOfSpectrumItems`-th largest, at least
//!   `lowAmplitudeThreshold`, at most the `minNumOfSpectrumItems`-th largest — and whose frequency is
//!   above `highFrequencyThreshold`; inverse FFT; the last period, non-positive values set to 0.01;
//!   times `1 + marginFraction`) and the max-value estimator (per slot of the period, the largest value
//!   of all periods, times `1 + marginFraction`); `config.go` — the eight default estimators (FFT with
//!   3 or 50 minimum items, amplitude threshold 1.0 or 0.05, margin 0.01/0.10/0.15/0.20).
//! - `pkg/prediction/accuracy/accuracy.go` — the prediction error (MAPE with under-prediction amplified
//!   by `-ln(1-x)/ln 1.25`, MAE when an actual value is below 1e-3).
//! - `pkg/controller/ehpa/hpa.go` (`GetHPAMetrics`), `pkg/metricprovider/external_metric_provider.go`
//!   and the EHPA tutorial (`site/content/en/docs/Tutorials/using-effective-hpa-to-scaling-with-effectiveness.md`):
//!   EHPA gives the HPA it manages the original metric *and* an external prediction metric with the same
//!   average-value target; the metric adapter serves the largest predicted sample in
//!   `[now, now + predictionWindowSeconds]`; the HPA takes the larger of the two proposals. The
//!   prediction metric is added only while the prediction is ready. Defaults: `predictionWindowSeconds`
//!   3600, `sampleInterval` 60s, `historyLength` 3d (the tutorial's example); craned's
//!   `--model-update-interval` 12h (`cmd/craned/app/options/options.go`).
//!
//! Where the replay must differ:
//! - The metric is the trace's demand (our cluster model has no CPU): the prediction metric's target is
//!   the HPA's target per replica, as EHPA converts `averageUtilization` into an average value. Crane's
//!   absolute `lowAmplitudeThreshold` (1.0 or 0.05 "cores") is applied to demand measured in replicas'
//!   capacity (one replica's request = 1), the unit a CPU metric of pods requesting one core has.
//! - Prometheus' range query is the mean of the history over each `sampleInterval` ending at the sample
//!   time (the history the simulator scraped, never the future).
//! - The random permutations use a seeded RNG (Crane seeds from the clock), so a replay is repeatable.
//! - The HPA around it is our `reactive` (same tolerance, behavior, sync period and observation lag).

use std::time::Duration;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use rustfft::{FftPlanner, num_complex::Complex};

use crate::{
    policy::{self, Decision, DecisionReason, RecentRecommendations},
    sim::{SimDecision, SimPolicy, SimView, secs},
    spec::ScalingSpec,
};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// `MaxAutoCorrelationPeakSearchIntervalSeconds` in `signal.go`.
const MAX_ACF_PEAK_SEARCH_SECONDS: f64 = 4.0 * 3600.0;
/// `defaultFFTMinValue` in `estimators.go`.
const FFT_MIN_VALUE: f64 = 0.01;

/// Why the DSP predictor has no prediction (Crane: the prediction is "not ready").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    #[error("no samples in the history window")]
    Empty,
    #[error("the series is not periodic with a period of one day or one week")]
    NotPeriodic,
    #[error("fewer than two whole periods of {period_seconds} s in the history")]
    TooFewPeriods { period_seconds: i64 },
    #[error("invalid DSP setting {name}: {message}")]
    InvalidSetting { name: &'static str, message: String },
}

/// One of Crane's estimators (`estimators.go`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Low-pass by inverse FFT.
    Fft {
        min_num_of_spectrum_items: usize,
        max_num_of_spectrum_items: usize,
        /// Hz: frequencies at or below it are always kept.
        high_frequency_threshold: f64,
        /// Amplitude (`|X_k| / N`, in the metric's unit) under which a high frequency is dropped.
        low_amplitude_threshold: f64,
        margin_fraction: f64,
    },
    /// The largest value at each slot of the period over all periods.
    MaxValue { margin_fraction: f64 },
}

impl Estimator {
    /// An FFT estimator with Crane's per-field defaults (3 and 100 spectrum items, 1/h, amplitude 1.0).
    pub fn fft(margin_fraction: f64) -> Self {
        Self::Fft {
            min_num_of_spectrum_items: 3,
            max_num_of_spectrum_items: 100,
            high_frequency_threshold: 1.0 / 3600.0,
            low_amplitude_threshold: 1.0,
            margin_fraction,
        }
    }

    /// Crane's `defaultEstimators` (`config.go`), used when an EHPA configures none.
    pub fn defaults() -> Vec<Self> {
        let mut out = Vec::new();
        for (min_items, amplitude) in [(3, 1.0), (50, 0.05)] {
            for margin in [0.01, 0.10, 0.15, 0.20] {
                out.push(Self::Fft {
                    min_num_of_spectrum_items: min_items,
                    max_num_of_spectrum_items: 100,
                    high_frequency_threshold: 1.0 / 3600.0,
                    low_amplitude_threshold: amplitude,
                    margin_fraction: margin,
                });
            }
        }
        out
    }

    /// One period's estimate from `samples` (a whole number of periods of `period` samples).
    pub fn estimate(&self, samples: &[f64], period: usize, sample_rate: f64) -> Vec<f64> {
        match *self {
            Self::MaxValue { margin_fraction } => max_value_estimate(samples, period, margin_fraction),
            Self::Fft {
                min_num_of_spectrum_items,
                max_num_of_spectrum_items,
                high_frequency_threshold,
                low_amplitude_threshold,
                margin_fraction,
            } => fft_estimate(
                samples,
                period,
                sample_rate,
                min_num_of_spectrum_items,
                max_num_of_spectrum_items,
                high_frequency_threshold,
                low_amplitude_threshold,
                margin_fraction,
            ),
        }
    }
}

/// The DSP algorithm's settings (`spec.prediction.predictionAlgorithm.dsp` plus craned's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct DspParams {
    /// `sampleInterval`.
    pub sample_interval: Duration,
    /// `historyLength`.
    pub history_length: Duration,
    /// The estimators tried; Crane's defaults when none are configured.
    pub estimators: Vec<Estimator>,
    /// craned `--model-update-interval`: how often the prediction is recomputed.
    pub model_update_interval: Duration,
    /// Seed of the permutations in the period test.
    pub seed: u64,
}

impl Default for DspParams {
    /// The EHPA tutorial's settings: 60 s samples, 3 days of history, default estimators, 12 h updates.
    fn default() -> Self {
        Self {
            sample_interval: Duration::from_secs(60),
            history_length: Duration::from_secs(3 * DAY as u64),
            estimators: Estimator::defaults(),
            model_update_interval: Duration::from_secs(12 * HOUR as u64),
            seed: 0,
        }
    }
}

impl DspParams {
    /// Crane's own validation (`makeInternalConfig`): sample interval at most an hour, history at least
    /// 48 h; also a whole number of seconds dividing an hour, which `fillMissingData` assumes.
    pub fn check(&self) -> Result<(), DspError> {
        let interval = secs(self.sample_interval);
        if interval <= 0 || interval > HOUR || HOUR % interval != 0 {
            return Err(DspError::InvalidSetting {
                name: "sampleInterval",
                message: format!("must divide an hour, got {interval} s"),
            });
        }
        if secs(self.history_length) < 48 * HOUR {
            return Err(DspError::InvalidSetting {
                name: "historyLength",
                message: format!("must be at least 48h, got {} s", secs(self.history_length)),
            });
        }
        if self.estimators.is_empty() {
            return Err(DspError::InvalidSetting {
                name: "estimators",
                message: "need at least one".to_owned(),
            });
        }
        for e in &self.estimators {
            let margin = match e {
                Estimator::Fft { margin_fraction, .. } | Estimator::MaxValue { margin_fraction } => {
                    *margin_fraction
                }
            };
            if !(margin.is_finite() && margin > -1.0) {
                return Err(DspError::InvalidSetting {
                    name: "marginFraction",
                    message: format!("must be a number above -1, got {margin}"),
                });
            }
        }
        if self.model_update_interval.as_secs() == 0 {
            return Err(DspError::InvalidSetting {
                name: "model-update-interval",
                message: "must be at least 1s".to_owned(),
            });
        }
        Ok(())
    }

    /// Fits on `(timestamp, value)` samples at `sample_interval` (sorted, gaps allowed) and returns the
    /// predicted series, or why there is none.
    pub fn fit(&self, samples: &[(i64, f64)]) -> Result<DspForecast, DspError> {
        self.check()?;
        let interval = secs(self.sample_interval);
        let filled = fill_missing(samples, interval)?;
        let mut values: Vec<f64> = filled.iter().map(|(_, v)| *v).collect();
        remove_extreme_outliers(&mut values);
        let last_timestamp = filled.last().map(|(t, _)| *t).ok_or(DspError::Empty)?;
        let sample_rate = 1.0 / interval as f64;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let period_seconds = find_period(&values, interval, &mut rng).ok_or(DspError::NotPeriodic)?;
        if period_seconds != DAY && period_seconds != WEEK {
            return Err(DspError::NotPeriodic);
        }
        let (signal, periods) = truncate(&values, interval, period_seconds);
        if periods < 2 {
            return Err(DspError::TooFewPeriods { period_seconds });
        }
        let period = usize::try_from(period_seconds / interval).unwrap_or(usize::MAX);
        let estimator = best_estimator(&self.estimators, signal, periods, period, sample_rate);
        let one_period = estimator.estimate(signal, period, sample_rate);
        let values: Vec<f64> = (0..periods).flat_map(|_| one_period.iter().copied()).collect();
        Ok(DspForecast {
            start: last_timestamp + interval,
            interval,
            values,
            period_seconds,
            estimator,
        })
    }
}

/// The predicted series of one fit (Crane's `predictedTimeSeries`).
#[derive(Debug, Clone, PartialEq)]
pub struct DspForecast {
    /// Timestamp of the first predicted sample.
    pub start: i64,
    /// Seconds between samples.
    pub interval: i64,
    pub values: Vec<f64>,
    /// The period found (one day or one week), seconds.
    pub period_seconds: i64,
    /// The estimator the backtest chose.
    pub estimator: Estimator,
}

impl DspForecast {
    /// The predicted sample at or just before `t` (`None` outside the series).
    pub fn at(&self, t: i64) -> Option<f64> {
        if t < self.start {
            return None;
        }
        let i = usize::try_from((t - self.start) / self.interval).ok()?;
        self.values.get(i).copied()
    }

    /// The largest predicted sample whose timestamp is in `[from, to]` (the metric adapter's rule).
    pub fn max_over(&self, from: i64, to: i64) -> Option<f64> {
        let first = if from <= self.start {
            0
        } else {
            usize::try_from((from - self.start + self.interval - 1) / self.interval).ok()?
        };
        if to < self.start {
            return None;
        }
        let last = usize::try_from((to - self.start) / self.interval).ok()?;
        self.values
            .get(first..=last.min(self.values.len().saturating_sub(1)))?
            .iter()
            .copied()
            .reduce(f64::max)
    }
}

/// `fillMissingData`: from the last gap longer than an hour on, gaps filled by linear interpolation,
/// then cut to a whole number of hours (newest kept).
pub fn fill_missing(samples: &[(i64, f64)], interval: i64) -> Result<Vec<(i64, f64)>, DspError> {
    let finite: Vec<(i64, f64)> = samples.iter().copied().filter(|(_, v)| v.is_finite()).collect();
    if finite.is_empty() {
        return Err(DspError::Empty);
    }
    let from = finite
        .windows(2)
        .rposition(|w| w[1].0 - w[0].0 > HOUR)
        .map_or(0, |i| i + 1);
    let kept = &finite[from..];
    let mut out = Vec::with_capacity(kept.len());
    out.push(kept[0]);
    for w in kept.windows(2) {
        let (t0, v0) = w[0];
        let (t1, v1) = w[1];
        let times = (t1 - t0) / interval;
        for j in 1..times {
            out.push((t0 + interval * j, v0 + (v1 - v0) / times as f64 * j as f64));
        }
        out.push((t1, v1));
    }
    let per_hour = usize::try_from(HOUR / interval).unwrap_or(1).max(1);
    let whole = out.len() / per_hour * per_hour;
    if whole == 0 {
        return Err(DspError::Empty);
    }
    Ok(out.split_off(out.len() - whole))
}

/// montanaflynn/stats' `Percentile` (nearest rank, mean of two neighbours at a fractional rank);
/// `None` where it returns an error (rank below 1).
fn percentile(sorted: &[f64], percent: f64) -> Option<f64> {
    match sorted.len() {
        0 => None,
        1 => Some(sorted[0]),
        n => {
            let index = percent / 100.0 * n as f64;
            if index == index.trunc() {
                let i = index as usize;
                sorted.get(i.checked_sub(1)?).copied()
            } else if index > 1.0 {
                let i = index as usize;
                Some((sorted[i - 1] + sorted.get(i)?) / 2.0)
            } else {
                None
            }
        }
    }
}

/// `removeExtremeOutliers`: samples above the P99.9 or below the P0.1 take the value before them.
/// Crane skips the whole step when a percentile cannot be computed (fewer than 1,000 samples).
pub fn remove_extreme_outliers(values: &mut [f64]) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (Some(high), Some(low)) = (percentile(&sorted, 99.9), percentile(&sorted, 0.1)) else {
        return;
    };
    for i in 1..values.len() {
        if values[i] > high || values[i] < low {
            values[i] = values[i - 1];
        }
    }
}

/// `Signal.Truncate`: the newest whole multiple of `period_seconds`, and how many periods it holds.
fn truncate(values: &[f64], interval: i64, period_seconds: i64) -> (&[f64], usize) {
    let n = usize::try_from(period_seconds / interval)
        .unwrap_or(usize::MAX)
        .max(1);
    let periods = values.len() / n;
    (&values[values.len() - periods * n..], periods)
}

fn fft(values: &[f64]) -> Vec<Complex<f64>> {
    let mut buffer: Vec<Complex<f64>> = values.iter().map(|v| Complex::new(*v, 0.0)).collect();
    FftPlanner::new()
        .plan_fft_forward(buffer.len())
        .process(&mut buffer);
    buffer
}

/// The inverse FFT normalized by `1/N`, as go-dsp's `IFFT` is.
fn ifft(spectrum: &[Complex<f64>]) -> Vec<Complex<f64>> {
    let mut buffer = spectrum.to_vec();
    FftPlanner::new()
        .plan_fft_inverse(buffer.len())
        .process(&mut buffer);
    let n = buffer.len().max(1) as f64;
    buffer.iter_mut().for_each(|c| *c /= n);
    buffer
}

/// `findPeriod` + `FindPeriod`: the fundamental period in seconds, if the series has one.
pub fn find_period(values: &[f64], interval: i64, rng: &mut StdRng) -> Option<i64> {
    for span in [WEEK, DAY] {
        let (signal, periods) = truncate(values, interval, span);
        if periods > 1 {
            return period_of(signal, interval, rng);
        }
    }
    None
}

fn period_of(samples: &[f64], interval: i64, rng: &mut StdRng) -> Option<i64> {
    let n = samples.len();
    let half = n / 2;
    let mut shuffled = samples.to_vec();
    let mut max_powers: Vec<f64> = (0..100)
        .map(|_| {
            shuffled.shuffle(rng);
            let spectrum = fft(&shuffled);
            (1..half).map(|k| spectrum[k].norm()).fold(0.0, f64::max)
        })
        .collect();
    max_powers.sort_by(f64::total_cmp);
    let threshold = max_powers[98];
    let spectrum = fft(samples);
    let mut hints: Vec<usize> = Vec::new();
    for (k, x) in spectrum.iter().enumerate().take(half).skip(2) {
        if x.norm() > threshold && hints.last().is_none_or(|last| *last > n / k) {
            hints.push(n / k);
        }
    }
    let acf = auto_correlation(samples)?;
    let sample_rate = 1.0 / interval as f64;
    let max_r = (MAX_ACF_PEAK_SEARCH_SECONDS * sample_rate) as usize;
    let mut best: Option<(usize, f64)> = None;
    for hint in hints {
        let r = max_r.min(hint / 2);
        let value = acf.get(hint).copied().unwrap_or(f64::NAN);
        if is_peak(&acf, hint, r) && best.map_or(0.0, |(_, v)| v) < value {
            best = Some((hint, value));
        }
    }
    best.map(|(hint, _)| (hint as f64 / sample_rate) as i64)
}

/// The circular autocorrelation of the standardized series (`AutoCorrelation`); `None` for a constant.
pub fn auto_correlation(samples: &[f64]) -> Option<Vec<f64>> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    let std = (samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    if std.is_nan() || std <= 0.0 {
        return None;
    }
    let x: Vec<f64> = samples.iter().map(|v| (v - mean) / std).collect();
    let power: Vec<Complex<f64>> = fft(&x).iter().map(|c| Complex::new(c.norm_sqr(), 0.0)).collect();
    Some(ifft(&power).iter().map(|c| c.re / n as f64).collect())
}

/// `isPeak` (`peak.go`): the least-squares slope over `[i-k, i]` rises and over `[i, i+k]` falls.
fn is_peak(x: &[f64], i: usize, k: usize) -> bool {
    let n = x.len();
    if i < 1 || i > n.saturating_sub(1) {
        return false;
    }
    let l = i.saturating_sub(k);
    let r = (n - 1).min(i + k);
    let slope = |from: usize, to: usize| {
        let points = (from..=to).map(|j| (j as f64, x[j]));
        let (mut sx, mut sy, mut sxy, mut sxx, mut count) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (px, py) in points {
            sx += px;
            sy += py;
            sxy += px * py;
            sxx += px * px;
            count += 1.0;
        }
        (count * sxy - sx * sy) / (count * sxx - sx * sx)
    };
    // Written as Crane's negations so that a NaN slope (one point) behaves as it does there.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let rising = !(slope(l, i) <= 0.0);
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let falling = !(slope(i, r) >= 0.0);
    rising && falling
}

fn max_value_estimate(samples: &[f64], period: usize, margin_fraction: f64) -> Vec<f64> {
    let n = samples.len();
    let periods = n / period.max(1);
    (n - period..n)
        .map(|i| {
            let max = (1..periods)
                .map(|j| samples[i - period * j])
                .fold(samples[i], f64::max);
            max * (1.0 + margin_fraction)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn fft_estimate(
    samples: &[f64],
    period: usize,
    sample_rate: f64,
    min_items: usize,
    max_items: usize,
    high_frequency_threshold: f64,
    low_amplitude_threshold: f64,
    margin_fraction: f64,
) -> Vec<f64> {
    let n = samples.len();
    let length = n as f64;
    let mut spectrum = fft(samples);
    let mut amplitudes: Vec<f64> = spectrum
        .iter()
        .take(n / 2)
        .skip(1)
        .map(|c| c.norm() / length)
        .collect();
    amplitudes.sort_by(|a, b| b.total_cmp(a));
    let mut min_amplitude = match amplitudes.len() {
        0 => 0.0,
        len if len >= max_items => amplitudes[max_items.max(1) - 1],
        len => amplitudes[len - 1],
    };
    if min_amplitude < low_amplitude_threshold {
        min_amplitude = low_amplitude_threshold;
    }
    if min_items >= 1 && amplitudes.len() >= min_items && amplitudes[min_items - 1] < min_amplitude {
        min_amplitude = amplitudes[min_items - 1];
    }
    // As in Crane, over all N bins: the mirror image of a kept low frequency has a "frequency"
    // (k * rate / N) above the threshold and may be dropped, so only the real part is used below.
    for (k, x) in spectrum.iter_mut().enumerate() {
        let frequency = k as f64 * sample_rate / length;
        if x.norm() / length < min_amplitude && frequency > high_frequency_threshold {
            *x = Complex::new(0.0, 0.0);
        }
    }
    let filtered = ifft(&spectrum);
    filtered[n - period..]
        .iter()
        .map(|c| {
            let a = if c.re <= 0.0 { FFT_MIN_VALUE } else { c.re };
            a * (1.0 + margin_fraction)
        })
        .collect()
}

/// `amplify` in `accuracy.go`.
fn amplify(x: f64) -> f64 {
    -(1.0 - x).ln() / 1.25f64.ln()
}

/// `PredictionError`: the amplified MAPE, or the MAE when an actual value is below 1e-3.
pub fn prediction_error(actual: &[f64], predicted: &[f64]) -> f64 {
    let n = actual.len().min(predicted.len()).max(1) as f64;
    if actual.iter().any(|a| *a < 1e-3) {
        return actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| (a - p).abs())
            .sum::<f64>()
            / n;
    }
    actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| if p < a { amplify((a - p) / a) } else { (p - a) / a })
        .sum::<f64>()
        / n
}

/// `bestEstimator`: each estimator predicts the last period from the ones before; the lowest
/// prediction error wins (the first on a tie, as Crane's strict `<`).
fn best_estimator(
    estimators: &[Estimator],
    signal: &[f64],
    periods: usize,
    period: usize,
    sample_rate: f64,
) -> Estimator {
    let history = &signal[..(periods - 1) * period];
    let actual = &signal[(periods - 1) * period..];
    let mut best = estimators[0];
    let mut best_error = f64::MAX;
    for e in estimators {
        let error = prediction_error(actual, &e.estimate(history, period, sample_rate));
        if error < best_error {
            best_error = error;
            best = *e;
        }
    }
    best
}

/// The samples a Prometheus range query at `interval` would return over `[from, to]`: at each multiple
/// `t` of `interval`, the mean of the history over `[t - interval, t)` weighted by overlap; samples
/// without data are left out.
pub fn range_query(
    history: &prescient_model::TimeSeries,
    from: i64,
    to: i64,
    interval: i64,
) -> Vec<(i64, f64)> {
    let start = history.start();
    let step = history.step_seconds().max(1);
    let values = history.values();
    let mut out = Vec::new();
    let first = from.div_euclid(interval) * interval;
    let mut t = if first < from { first + interval } else { first };
    while t <= to {
        let (lo, hi) = (t - interval, t);
        let i0 = (lo - start).div_euclid(step).max(0);
        let i1 = (hi - 1 - start).div_euclid(step);
        let (mut sum, mut weight) = (0.0, 0.0);
        let mut i = i0;
        while i <= i1 {
            if let Some(v) = usize::try_from(i).ok().and_then(|i| values.get(i))
                && v.is_finite()
            {
                let a = (start + i * step).max(lo);
                let b = (start + (i + 1) * step).min(hi);
                let w = (b - a).max(0) as f64;
                sum += v * w;
                weight += w;
            }
            i += 1;
        }
        if weight > 0.0 {
            out.push((t, sum / weight));
        }
        t += interval;
    }
    out
}

/// The EHPA settings the replay needs beyond the HPA's.
#[derive(Debug, Clone, PartialEq)]
pub struct EhpaParams {
    /// `spec.prediction.predictionWindowSeconds`.
    pub prediction_window: Duration,
    pub dsp: DspParams,
}

impl Default for EhpaParams {
    fn default() -> Self {
        Self {
            prediction_window: Duration::from_secs(3600),
            dsp: DspParams::default(),
        }
    }
}

/// Crane's EHPA: the HPA (our `reactive`) with a second, predicted metric.
#[derive(Debug)]
pub struct CraneEhpaPolicy {
    spec: ScalingSpec,
    /// Demand one replica serves: the DSP runs on demand in replicas (see the module doc).
    capacity_per_replica: f64,
    params: EhpaParams,
    recent: RecentRecommendations,
    forecast: Option<DspForecast>,
    next_fit: Option<i64>,
    /// Why the last fit gave no prediction.
    pub last_error: Option<DspError>,
    /// Fits done (whether ready or not).
    pub fits: usize,
}

impl CraneEhpaPolicy {
    /// `spec` is the HPA's (target per replica, behavior, bounds).
    pub fn new(spec: ScalingSpec, capacity_per_replica: f64, params: EhpaParams) -> Self {
        Self {
            spec,
            capacity_per_replica,
            params,
            recent: RecentRecommendations::new(),
            forecast: None,
            next_fit: None,
            last_error: None,
            fits: 0,
        }
    }

    /// The prediction in use (`None` while not ready).
    pub fn forecast(&self) -> Option<&DspForecast> {
        self.forecast.as_ref()
    }

    fn refit(&mut self, view: &SimView<'_>) {
        let interval = secs(self.params.dsp.sample_interval).max(1);
        let end = view.now.div_euclid(interval) * interval;
        let start = end - secs(self.params.dsp.history_length) - HOUR;
        let samples = view
            .history
            .map(|h| range_query(h, start, end, interval))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, v)| (t, v / self.capacity_per_replica))
            .collect::<Vec<_>>();
        self.fits += 1;
        match self.params.dsp.fit(&samples) {
            Ok(forecast) => {
                self.forecast = Some(forecast);
                self.last_error = None;
            }
            Err(e) => {
                // A failed update leaves the TimeSeriesPrediction without fresh data: not ready.
                self.forecast = None;
                self.last_error = Some(e);
            }
        }
    }

    /// The prediction metric now, in the trace's unit: the largest predicted value over
    /// `[now, now + window]`.
    pub fn predicted_metric(&self, now: i64) -> Option<f64> {
        self.forecast
            .as_ref()?
            .max_over(now, now + secs(self.params.prediction_window))
            .map(|v| v * self.capacity_per_replica)
    }
}

impl SimPolicy for CraneEhpaPolicy {
    fn decide(&mut self, view: &SimView<'_>) -> SimDecision {
        if self.next_fit.is_none_or(|t| view.now >= t) {
            self.refit(view);
            self.next_fit = Some(view.now + secs(self.params.dsp.model_update_interval).max(1));
        }
        let current = view.replicas.desired;
        let target = self.spec.target_per_replica;
        let observed = view.observed.filter(|d| d.is_finite() && *d >= 0.0);
        let predicted = self.predicted_metric(view.now);
        // Each metric's proposal by the HPA rule (tolerance included), as the HPA computes them.
        let from_metric = observed.map(|d| policy::hpa_replicas(d, current, target, &self.spec.behavior));
        let from_prediction =
            predicted.map(|p| policy::hpa_replicas(p, current, target, &self.spec.behavior));
        let (raw, reason) = match (from_metric, from_prediction) {
            (Some(m), Some(p)) if p > m => (p, DecisionReason::Predictive),
            (Some(m), _) => (m, DecisionReason::ReactiveFloor),
            // The HPA never scales down while a metric it needs is missing.
            (None, Some(p)) => (p.max(current), DecisionReason::HeldOnStaleData),
            (None, None) => (current, DecisionReason::HeldOnStaleData),
        };
        let max = self.spec.max_replicas.max(self.spec.min_replicas);
        let recommendation = raw.clamp(self.spec.min_replicas, max);
        let (desired, _) =
            policy::apply_behavior(recommendation, current, view.now, &self.spec, &self.recent);
        let decision = Decision {
            desired_replicas: desired,
            reason,
            predictive_replicas: from_prediction,
            reactive_replicas: from_metric,
            demand_at_lead_time: None,
            peak_quantile_demand: predicted,
            arrival_peak_demand: None,
            message: String::new(),
            recommendation,
        };
        self.recent
            .record(view.now, &decision, current, true, &self.spec.behavior);
        let lead_at = view.now + secs(self.spec.lead_time);
        let forecast_at_lead = self
            .forecast
            .as_ref()
            .and_then(|f| f.at(lead_at))
            .map(|v| v * self.capacity_per_replica)
            .map(|v| (lead_at, v, v, v));
        SimDecision {
            desired,
            forecast_at_lead,
            outcome: None,
        }
    }
}
