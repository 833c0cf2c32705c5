//! Online calibration of what the scaling rule consumes: the *peak* demand over the decision window.
//!
//! The forecaster's bands are per-step marginal quantiles, calibrated on backtest folds at the last
//! refit. The rule needs something else: that with probability `q` the peak demand over
//! `[now, now + leadTime + syncPeriod]` is served. The peak of per-step quantiles is not that quantile
//! (steps are neither independent nor moving together), and the folds of the last refit do not see a
//! change of regime until the next refit. So each autoscaler keeps a split-conformal calibration of the
//! window peak itself, updated at every sync from what really happened. It keeps two: one of the whole
//! decision window, which bounds a scale-down (the pods running now serve all of it), and one of the
//! *arrival window* `[now + leadTime, now + leadTime + syncPeriod]`, which sets a scale-up (pods asked
//! for now serve only that part; see [`crate::policy::decide`]). Each is a [`PeakCalibrator`]:
//!
//! - At each sync, [`PeakCalibrator::plan`] records the window and the point forecast of its peak: the
//!   peak of the forecast mean, and never below the demand observed now (the decision window starts
//!   now; the arrival window is floored alike, as measured), so the scores measure only what is not
//!   yet known.
//! - Once the history covers a window, [`PeakCalibrator::observe`] turns it into a score
//!   `(realised peak − forecast peak) / unit`, in each of four units — four normalised conformal
//!   predictors of the same peak, each covering it at the same rate by construction, which differ in
//!   *where* they put the headroom:
//!   - [`Unit::Spread`]: how far the forecaster's own reference band ([`REFERENCE_QUANTILE`]) reaches
//!     above its point forecast over the window (conformalized quantile regression, Romano et al.,
//!     2019): wide where the forecaster is unsure — further ahead, after a volatile hour;
//!   - [`Unit::Poisson`]: `2√x`, an error on the square-root scale, where counts' noise is about the
//!     same at every level;
//!   - [`Unit::Proportional`]: `x`, a relative error, headroom in proportion to the level as the HPA's
//!     target utilization gives it;
//!   - [`Unit::Diurnal`]: the point forecast's typical absolute error at the window's time of day over
//!     the last few days (a quarter hour and its neighbours): headroom where surprises come at a time
//!     of day — a match kick-off, a batch job, the morning's log-in — and not at the calm hours, which
//!     neither the level nor the forecaster's band (calibrated on its recent folds, whatever the hour)
//!     tells apart.
//!
//!   `x` is the larger of the forecast peak and a slow level of realised peaks (a one-hour half-life),
//!   and the spread and the diurnal error are floored by a share of it, so that a forecast or band
//!   collapsing to zero in an upstream drop-out, or a run of calm days, does not make a score explode.
//! - Since all four cover the peak equally often, the cheapest is the best: the plan uses the unit
//!   whose headroom (provisioned − forecast peak), computed for all four at every plan, was smallest
//!   on average over the last day (choosing among conformal predictors by their efficiency). Which
//!   one wins depends on the traffic, so it is learnt online, per autoscaler, rather than fixed.
//! - The same holds for the point forecast the scores are taken from. A window that ends within the
//!   step in progress (most windows with coarse steps: an hour and a 2-minute lead time) is also
//!   scored against *persistence* — the demand observed now as the point forecast of its peak, with
//!   no spread. Once the step's rate is observed it knows the window's demand, while the model's
//!   forecast of that step was made before the step began: provisioned to it, an over-forecast hour
//!   was paid for from the moment its rate was seen until its end. Both are calibrated at the same
//!   level, so they cover a kind of window equally often, and each kind takes the one whose
//!   provisioned peak was lower on average over the last day (its unit chosen as above, per
//!   baseline). A peak is priced as the rule buys it, never below the demand observed now: the
//!   reactive floor holds the replicas there, so a plan below it saves nothing. Priced raw, a
//!   baseline whose plans at a low quantile often fell below the floor looked cheap, won, and its
//!   rises cost more than a higher quantile did (NASA 1-minute, 5-minute start-up: q0.3 518k
//!   replica-minutes and 5,322 minutes short, q0.4 472k and 4,102). A window reaching into a step
//!   not yet begun keeps the model: what is observed says nothing of that step but "no change", and
//!   offered it, persistence won some kinds of such windows on average cost while leaving more
//!   minutes short (Twitter 5-minute steps, 5-minute start-up, at HPA@0.7's cost: 0.57× → 0.61× the
//!   HPA's minutes short). Persistence is scored on those windows all the same, and stands in while
//!   the model has too few scores of their kind.
//! - A third point forecast competes on every kind of window: the *ramp*, the model's forecast never
//!   below the demand observed now plus its rise over the window's length before now — a rise
//!   continued for one more window. Fitted on minutes of history, a model forecasts the typical next
//!   minutes and lags every ramp it cannot time (a match starting, a flash crowd building up): its
//!   scores then hold each ramp's rise, and at a high level every calm window pays for it. Continued,
//!   a ramp is known, and the ramp's scores hold what is left. On bursty traffic the rise is noise and
//!   continuing it widens the scores; each kind takes whichever of the model and the ramp provisioned
//!   less over the last day, as above, so that traffic keeps the model. At HPA@0.7's cost, minutes
//!   short as a share of the HPA's: WC98 1-minute, 5-minute start-up 0.62× → 0.47×; Twitter 5-minute,
//!   2-minute start-up 0.29× → 0.25× (5-minute: 0.54× both); NASA 1-minute, 2-minute 0.47× → 0.50×.
//! - The provisioned peak is `forecast + unit × Q(level)`, `Q` the conformal quantile of the scores of
//!   the last day (or of the last 1,000, for up to a week, for a kind seen less often than that in a
//!   day) *of windows that reach as far beyond the history*: a window that ends within the
//!   step already observed is nearly certain, one that reaches into the next step is not, and with
//!   coarse steps (30 minutes, a 2-minute window) the certain ones are most of them. Pooled, they would
//!   set the quantile and leave every step change unprovisioned (Mondrian conformal prediction: each
//!   kind of window is calibrated on its own kind).
//!   Windows are also told apart by the phase of the step they start in (its first sixteenth, eighth,
//!   quarter, half, or second half): at the start of a step the demand observed now is still a rate
//!   over the step before, so the window's start is not yet known, while later it is. Pooled, the
//!   later windows' near certainty left the start of every rising step short (and, under a scale-down
//!   stabilization window shorter than the step, scaled down right after each step began).
//! - A level finer than the scores of its kind resolve (more than `n/(n + 1)`) is read off an
//!   exponential tail fitted to the excesses over the `⌈√n⌉`-th largest score, rather than capped at
//!   the largest: with coarse steps a kind of window is seen a few hundred times a day, and a cap made
//!   every quantile above 0.99 provision the same. The fit reaches down to a sixteenth of the target
//!   miss rate, not only to a tenth of what the scores resolve, so that a higher quantile still buys
//!   headroom where the HPA at 0.5 or 0.6 costs more than q0.999 (coarse steps, a short trace).
//! - The level is adapted online by adaptive conformal inference (Gibbs & Candès, 2021):
//!   `αₜ₊₁ = αₜ + γ (α* − errₜ)`, so the realised miss rate tracks its target `α*` when the regime
//!   changes. Their `γ = 0.005` is a step ever larger against a smaller target: at q0.99 one miss
//!   moves `α` by half of it, which follows a level shift, but the few windows of a single
//!   unforecastable spike (all missed) drove `α` to 0 and the plan to the largest score, the spike,
//!   for hours. So three levels adapt side by side, with `γ = min(0.005, s α*)` for `s` = 0.5, 0.15
//!   and 0.05 (all 0.005 at q0.9 and below; 0.005, 0.0015 and 0.0005 at q0.99), and the plan follows
//!   the one whose plans had the lowest quantile (pinball) loss at the target over the last day — the
//!   expert selection of Gibbs & Candès' dynamically-tuned ACI (2022), by the loss it minimises. An
//!   SLO target adapts every level on the same short syncs and keeps the first. With a
//!   quantile the error is a window whose peak exceeded what was provisioned; with an SLO target
//!   ([`MissSignal::Shortfall`]) it is a sync at which demand exceeded ready capacity — judged on the
//!   history once it covers the sync ([`PeakCalibrator::record_capacity`]) — so the share of time
//!   short tracks the target.
//!
//! - The miss rate is spent where headroom is cheap. At a given average miss rate, the fewest misses
//!   for the replicas spent come from provisioning each window where its peak's density is the same
//!   (the newsvendor condition for a 0/1 loss), not at the same quantile: for an exponential tail of
//!   scale `s`, that is a miss rate in proportion to `s`. So each window's rate is `α` times a weight,
//!   the square root of its tail scale over a slow mean of the windows' tail scales: a window nearly
//!   certain (the rest of a step already observed, a calm hour) is covered more often, a wild one
//!   less, and the adaptive level keeps the average at target. The tail scale is read where the plan
//!   provisions, at the target rate `α*`: the scores' `(Q(1 − α*) − Q(1 − 5α*)) / ln 5` of its kind
//!   and unit, times its unit — `(q0.9 − q0.5) / ln 5` at q0.9 and below. Read from the body at every
//!   target, a kind of window calm most of the time but with bursts in its tail (Twitter's 5-minute
//!   steps) looked cheap to cover, was given a deep level at a high quantile, and paid the bursts'
//!   tail for it. The square root rather than the exponential tail's linear rule: near the body
//!   tails are lighter than exponential (a Gaussian's rule grows slower than linearly), and the
//!   linear rule cost more than it saved on bursty traffic.
//!
//! - Before a model can be fitted (or when its fit failed), the core still plans every window, with
//!   persistence alone: the same calibration then gives the reactive floor the rise above observed
//!   demand that windows showed, so a new workload is not left at zero headroom. Once the model
//!   arrives, a kind of window keeps persistence until the model has [`MIN_SCORES`] scores of its own.
//!
//! Pure: time and history are arguments.

use std::collections::{BTreeMap, VecDeque};

use prescient_model::{TimeSeries, pinball};

use crate::policy::peak_over;

/// Scores older than this are forgotten (seconds): a day covers a daily cycle.
pub(crate) const SCORE_LOOKBACK_SECONDS: i64 = 86_400;
/// A kind of window keeps scores older than the lookback while it has no more than this many: enough
/// to resolve a q0.999 level without the tail fit. With coarse steps a kind is seen only 48 (30-minute)
/// to 144 (10-minute) times a day, and one day's scores left the high quantiles to the fit.
const MIN_SCORES_KEPT: usize = 1_000;
/// ...but none older than this (seconds): a week, so a regime long gone stops setting the level.
const MAX_SCORE_AGE_SECONDS: i64 = 7 * 86_400;
/// At most this many scores are kept (a day of 30 s syncs), whatever the sync period.
const MAX_SCORES: usize = 2_880;
/// The costs compared over the last day are summed in buckets this long (seconds): a day is 96 of them
/// whatever the sync period, where one entry per sync was 2,880 at 30 s syncs, for each set of sums.
const TOTALS_BUCKET_SECONDS: i64 = 900;
/// Fewer realised windows than this: no calibration yet, the forecaster's own bands decide. Ten is
/// where the largest score already covers 10/11 of windows and the tail above it is fitted on
/// ⌈√10⌉ = 4 excesses; a kind of window on a 1-minute step is seen once a minute, so waiting for more
/// leaves a new workload's floor without headroom for its first half hour.
pub const MIN_SCORES: usize = 10;
/// Half-life of the level the scores are relative to (seconds).
const LEVEL_HALF_LIFE_SECONDS: f64 = 3_600.0;
/// Windows are told apart by how many history steps they reach beyond the history's end, up to this.
const MAX_REACH_STEPS: usize = 8;
/// Step size of the adaptive level (Gibbs & Candès' default), the fastest one.
const ACI_GAMMA: f64 = 0.005;
/// Step sizes of the adaptive levels as shares of the target rate, each at most [`ACI_GAMMA`]: one
/// level per step, the plan follows the one with the lowest quantile loss over the last day (see the
/// module doc). At a target of 0.1 or more all three are [`ACI_GAMMA`]; at 0.01 they are 0.005,
/// 0.0015 and 0.0005. The first is followed until there is a loss to compare.
const ACI_GAMMA_SHARES: [f64; ACI_STEPS] = [0.5, 0.15, 0.05];
/// How many adaptive levels run side by side.
const ACI_STEPS: usize = 3;
/// The forecaster's band whose reach above the point forecast sets the unit of the scores: an upper
/// quantile the folds estimate well (a few residuals per hundred beyond it), whatever the user's
/// quantile, so that changing the quantile does not change the scores already realised.
pub const REFERENCE_QUANTILE: f64 = 0.9;
/// A window's miss rate is the adaptive `α` times a weight within `[this, 1 / this]`: the square root
/// of its peak's tail scale over the typical one (see the module doc).
const MIN_MISS_WEIGHT: f64 = 0.125;
/// A plan's tail probability never falls below this share of the target miss rate: half the rate of
/// the least-weighted window at the target. The adaptive level can reach `α = 0` after a run of
/// misses (and the weights divide it further), where the tail fit would provision without bound.
const DEEPEST_TAIL_OF_TARGET: f64 = MIN_MISS_WEIGHT / 2.0;
/// The spread never falls below this share of the slow level of realised peaks: the floor of a band
/// that collapsed with its forecast.
const SPREAD_FLOOR_OF_LEVEL: f64 = 0.05;

/// The diurnal unit's profile keeps the day in this many buckets (15 minutes each).
const DIURNAL_BUCKETS: usize = 96;
const DAY_SECONDS: i64 = 86_400;
/// Half-life of the diurnal profile (seconds): a few days, so that one surprising day does not set its
/// time of day's unit for a week, and a schedule that changed is followed within a few days.
const DIURNAL_HALF_LIFE_SECONDS: f64 = 3.0 * 86_400.0;

/// What counts as a miss for the adaptive level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MissSignal {
    /// A window whose realised peak exceeded the provisioned peak; target rate `1 − quantile`.
    WindowPeak { quantile: f64 },
    /// A sync at which observed demand exceeded what the ready replicas serve; target rate the share
    /// of time the user accepts being short.
    Shortfall { max_fraction: f64 },
}

impl MissSignal {
    fn target_rate(&self) -> f64 {
        match self {
            Self::WindowPeak { quantile } => 1.0 - quantile,
            Self::Shortfall { max_fraction } => *max_fraction,
        }
    }
}

/// The share of syncs short of capacity over the last day: what the SLO target is compared with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShortfallTally {
    syncs: VecDeque<(i64, bool)>,
    short: usize,
}

impl ShortfallTally {
    /// Records whether demand exceeded ready capacity at the sync at `now`.
    pub fn record(&mut self, now: i64, short: bool) {
        self.syncs.push_back((now, short));
        self.short += usize::from(short);
        while let Some(&(at, was_short)) = self.syncs.front() {
            if now - at < SCORE_LOOKBACK_SECONDS {
                break;
            }
            self.syncs.pop_front();
            self.short -= usize::from(was_short);
        }
    }

    /// Short syncs over syncs in the last day (`None` before the first sync).
    pub fn fraction(&self) -> Option<f64> {
        (!self.syncs.is_empty()).then(|| self.short as f64 / self.syncs.len() as f64)
    }
}

/// The units a window's score is measured in (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Spread,
    Poisson,
    Proportional,
    Diurnal,
}

/// How many [`Unit`]s there are.
const UNITS: usize = 4;

impl Unit {
    const ALL: [Unit; UNITS] = [Unit::Spread, Unit::Poisson, Unit::Proportional, Unit::Diurnal];

    fn index(self) -> usize {
        self as usize
    }

    /// The unit of a window with point peak `forecast_peak`, forecaster's `spread` above it, slow
    /// level of realised peaks `level` and typical error at its time of day `diurnal_error`.
    fn of(self, forecast_peak: f64, spread: f64, level: Option<f64>, diurnal_error: Option<f64>) -> f64 {
        let x = level.map_or(forecast_peak, |level| forecast_peak.max(level));
        let floored = |size: f64| if size.is_finite() { size } else { 0.0 }.max(SPREAD_FLOOR_OF_LEVEL * x);
        let unit = match self {
            Self::Spread => floored(spread),
            Self::Poisson => 2.0 * x.sqrt(),
            Self::Proportional => x,
            Self::Diurnal => floored(diurnal_error.unwrap_or(0.0)),
        };
        unit.max(1e-9)
    }
}

/// The point forecasts of a window's peak the calibration compares (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    /// The model's forecast, never below the demand observed now.
    Model,
    /// The demand observed now.
    Persistence,
    /// The model's forecast, never below the demand observed now plus its rise over the window's
    /// length before it: a ramp continued for one more window.
    Ramp,
}

/// How many [`Baseline`]s there are.
const BASELINES: usize = 3;

impl Baseline {
    const ALL: [Baseline; BASELINES] = [Baseline::Model, Baseline::Persistence, Baseline::Ramp];

    fn index(self) -> usize {
        self as usize
    }
}

/// The model's point forecast of a window's peak and the forecaster's spread above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPeak {
    pub peak: f64,
    pub spread: f64,
}

/// A decision window as the core plans it: `[from, to]`, the model's forecast of its peak (`None`
/// without a model) and the demand observed at its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedWindow {
    /// When the window is planned (the sync), which may be before it starts: where in its step the
    /// history stands then tells how much of that step's demand is observed ([`window_kind`]), and a
    /// ramp is the rise up to then.
    pub planned_at: i64,
    pub from: i64,
    pub to: i64,
    pub model: Option<ModelPeak>,
    pub observed: f64,
}

/// A baseline's point peak of a window and the window's unit in each [`Unit`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct BaselinePeak {
    peak: f64,
    units: [f64; UNITS],
}

/// A window planned for and not yet realised.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PendingWindow {
    from: i64,
    to: i64,
    /// Per [`Baseline`], its point peak and units (`None`: not planned with it).
    baselines: [Option<BaselinePeak>; BASELINES],
    /// The peak each adaptive level would have provisioned (after calibration; the followed one's was),
    /// for the miss signal; `None` before the calibration had enough windows (such a window does not
    /// move the levels).
    provisioned: Option<[f64; ACI_STEPS]>,
    /// Its kind ([`window_kind`]): how far it reaches beyond the history, and where in the step it starts.
    kind: usize,
}

/// Realised scores of one kind of window over the lookback. Held as `f32`, with times as seconds since
/// the first score: an autoscaler keeps a day of scores per kind of window, baseline and unit in each of
/// its two calibrations (about 0.9 MiB each in `f64` with 4 units), and a score's quantile needs no more
/// than `f32`'s seven digits.
#[derive(Debug, Clone, Default, PartialEq)]
struct Scores {
    /// When the first score's window ended.
    epoch: Option<i64>,
    /// Scores with the time their window ended (seconds after `epoch`), oldest first.
    by_time: VecDeque<(u32, f32)>,
    /// The same scores, sorted, for quantiles.
    sorted: Vec<f32>,
}

impl Scores {
    fn push(&mut self, at: i64, score: f64) {
        let score = score as f32;
        if !score.is_finite() {
            return;
        }
        let epoch = *self.epoch.get_or_insert(at);
        let after_epoch = u32::try_from((at - epoch).max(0)).unwrap_or(u32::MAX);
        // A day of scores is a few thousand: grown by an eighth rather than doubled, the buffers keep
        // little room beyond what they hold.
        if self.sorted.len() == self.sorted.capacity() {
            let more = self.sorted.len() / 8 + 16;
            self.sorted.reserve_exact(more);
            self.by_time.reserve_exact(more);
        }
        self.by_time.push_back((after_epoch, score));
        insert_sorted(&mut self.sorted, score);
        let mut forgot = false;
        while let Some(&(oldest_at, oldest)) = self.by_time.front() {
            let len = self.by_time.len();
            let age = i64::from(after_epoch) - i64::from(oldest_at);
            let expired =
                age > MAX_SCORE_AGE_SECONDS || (age > SCORE_LOOKBACK_SECONDS && len > MIN_SCORES_KEPT);
            if len <= MAX_SCORES && !expired {
                break;
            }
            self.by_time.pop_front();
            remove_sorted(&mut self.sorted, oldest);
            forgot = true;
        }
        // Expiry never gives room back: a kind that held twice as many scores earlier in the day would
        // keep twice the room for good.
        let len = self.sorted.len();
        if forgot && self.sorted.capacity() > len + len / 2 + 16 {
            let room = len + len / 8 + 16;
            self.sorted.shrink_to(room);
            self.by_time.shrink_to(room);
        }
    }

    /// The conformal quantile at `level` (with the finite-sample correction), extrapolated beyond the
    /// largest score down to a tail probability of `deepest_tail` (see [`Scores::beyond_largest`]).
    fn quantile(&self, level: f64, deepest_tail: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n < MIN_SCORES {
            return None;
        }
        let rank = ((n as f64 + 1.0) * level).ceil() as usize;
        if rank > n {
            return Some(self.beyond_largest(level, deepest_tail));
        }
        Some(f64::from(self.sorted[rank.max(1) - 1]))
    }

    /// The scale of the scores' upper tail where a plan at tail probability `rate` provisions, read as
    /// exponential: `(Q(1 − rate) − Q(1 − 5 rate)) / ln 5`, so `(q0.9 − q0.5) / ln 5` at a rate of 0.1
    /// or more. Taken at the rate, not always from the body: a kind of window calm in its body but with
    /// bursts in its tail looked cheap to cover, was given a deep level, and paid for it at the fitted
    /// tail. `None` before [`MIN_SCORES`] scores.
    fn tail_scale(&self, rate: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n < MIN_SCORES {
            return None;
        }
        let upper = rate.clamp(f64::MIN_POSITIVE, 0.1);
        let at = |level: f64| f64::from(self.sorted[((n as f64 * level) as usize).min(n - 1)]);
        Some(((at(1.0 - upper) - at(1.0 - 5.0 * upper)) / 5f64.ln()).max(1e-9))
    }

    /// A level the scores cannot resolve (a kind of window seen a few hundred times a day, or a
    /// quantile close to 1): the conformal quantile is infinite there, and capping it at the largest
    /// score made every such level provision the same, so a higher quantile bought nothing. Instead the
    /// tail above the ⌈√n⌉-th largest score is taken as exponential (peaks over a threshold, the
    /// excesses' mean as its scale), never below the largest score, down to a tail probability of
    /// `deepest_tail` or ten times smaller than the scores resolve, whichever is deeper. A bound tied
    /// to the scores alone stopped the knob where they stopped: with a few hundred scores of a kind
    /// (30-minute steps, a week), every quantile above 0.9997 provisioned the same.
    fn beyond_largest(&self, level: f64, deepest_tail: f64) -> f64 {
        let n = self.sorted.len();
        let largest = f64::from(self.sorted[n - 1]);
        let excesses = ((n as f64).sqrt().ceil() as usize).clamp(2, n - 1);
        let threshold = f64::from(self.sorted[n - 1 - excesses]);
        let scale = self.sorted[n - excesses..]
            .iter()
            .map(|&s| f64::from(s) - threshold)
            .sum::<f64>()
            / excesses as f64;
        let resolved = 1.0 / (n as f64 + 1.0);
        let tail = (1.0 - level).max((resolved / 10.0).min(deepest_tail).max(f64::MIN_POSITIVE));
        // `max` also keeps the largest score should the fit be NaN.
        (threshold + scale * (excesses as f64 * resolved / tail).ln()).max(largest)
    }
}

/// What each of `N` alternatives cost over the last day, summed, to tell which is cheapest: the
/// headroom of each [`Unit`] or the provisioned peak of each [`Baseline`] (at equal cover), or the
/// quantile loss of each adaptive level. Kept in [`TOTALS_BUCKET_SECONDS`] buckets, so that its size
/// does not grow with the number of syncs in a day.
#[derive(Debug, Clone, PartialEq)]
struct DayTotals<const N: usize> {
    /// Per bucket (its start), the sums of what was recorded in it, oldest first.
    buckets: VecDeque<(i64, [f64; N])>,
    sums: [f64; N],
}

impl<const N: usize> Default for DayTotals<N> {
    fn default() -> Self {
        Self {
            buckets: VecDeque::new(),
            sums: [0.0; N],
        }
    }
}

impl<const N: usize> DayTotals<N> {
    fn record(&mut self, at: i64, headroom: [f64; N]) {
        if !headroom.iter().all(|h| h.is_finite()) {
            return;
        }
        let bucket = at.div_euclid(TOTALS_BUCKET_SECONDS) * TOTALS_BUCKET_SECONDS;
        match self.buckets.back_mut() {
            Some((start, sums)) if *start >= bucket => add_to(sums, headroom, 1.0),
            _ => self.buckets.push_back((bucket, headroom)),
        }
        add_to(&mut self.sums, headroom, 1.0);
        // A bucket goes once it holds nothing from the last day.
        while let Some(&(start, oldest)) = self.buckets.front() {
            if at - (start + TOTALS_BUCKET_SECONDS) < SCORE_LOOKBACK_SECONDS {
                break;
            }
            self.buckets.pop_front();
            add_to(&mut self.sums, oldest, -1.0);
        }
    }

    /// The alternative that planned least over the last day; the first until there is a record (ties
    /// too).
    fn cheapest(&self) -> usize {
        self.cheapest_among([true; N])
    }

    /// The cheapest of the `allowed` alternatives (the first allowed until there is a record).
    fn cheapest_among(&self, allowed: [bool; N]) -> usize {
        (0..N)
            .filter(|&i| allowed[i])
            .min_by(|&a, &b| self.sums[a].total_cmp(&self.sums[b]))
            .unwrap_or(0)
    }
}

/// Adds `sign` times each of `values` to `sums`.
fn add_to<const N: usize>(sums: &mut [f64; N], values: [f64; N], sign: f64) {
    for (sum, value) in sums.iter_mut().zip(values) {
        *sum += sign * value;
    }
}

/// Per-autoscaler state of the window-peak calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct PeakCalibrator {
    signal: MissSignal,
    pending: VecDeque<PendingWindow>,
    /// Realised scores per kind of window ([`window_kind`]; only the kinds seen), [`Baseline`] and
    /// [`Unit`].
    scores: BTreeMap<usize, [[Scores; UNITS]; BASELINES]>,
    /// Per [`Baseline`], the headroom each unit planned over the last day, to choose the cheapest (the
    /// forecaster's spread first: it is the one that knows this window).
    headroom: [DayTotals<UNITS>; BASELINES],
    /// Per kind of window, the peak each [`Baseline`] provisioned over the last day (never below the
    /// demand observed at its plan), to choose the cheapest (the model first).
    baseline_cost: BTreeMap<usize, DayTotals<BASELINES>>,
    /// Slow level of realised peaks (one-hour half-life).
    level: DecayingMean,
    /// The demand observed at the windows planned over the last window length.
    observed: VecDeque<(i64, f64)>,
    /// The adaptive miss rate `α` of each step size ([`ACI_GAMMA_SHARES`]).
    alphas: [f64; ACI_STEPS],
    /// Quantile loss of each adaptive level's plans over the last day; the plan follows the lowest.
    level_loss: DayTotals<ACI_STEPS>,
    /// Per [`Baseline`] and [`Unit`], a slow mean of the windows' absolute tail scales (one-day
    /// half-life; a plain mean of the first windows).
    typical_scale: [[DecayingMean; UNITS]; BASELINES],
    /// Per [`Baseline`], its typical error by time of day ([`Unit::Diurnal`]).
    diurnal: [DiurnalProfile; BASELINES],
    shortfall: ShortfallTally,
    /// Capacity ready at each sync not yet covered by the history, to be judged against it.
    pending_capacity: VecDeque<(i64, f64)>,
    /// Step of the history last observed, and when the level last adapted to each signal: outcomes
    /// closer together than a step (or a window) are one outcome seen several times, so each adapts
    /// the level by its share of that time only.
    step_seconds: i64,
    last_window_from: Option<i64>,
    last_shortfall_at: Option<i64>,
}

/// What the calibration stands at, for status and dashboards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationState {
    /// The level (probability of serving the window peak) plans provision for on average; each
    /// window's own level is weighted by its tail scale (see the module doc).
    pub level: f64,
    /// Realised windows the calibration rests on (`0..MIN_SCORES`: not calibrated yet).
    pub realised_windows: usize,
    /// Share of syncs in the last day at which demand exceeded ready capacity.
    pub shortfall_fraction_last_day: Option<f64>,
    /// The SLO target (share of time short accepted), when the level holds one.
    pub max_underprovisioned_fraction: Option<f64>,
}

impl PeakCalibrator {
    pub fn new(signal: MissSignal) -> Self {
        Self {
            signal,
            pending: VecDeque::new(),
            scores: BTreeMap::new(),
            headroom: Default::default(),
            baseline_cost: BTreeMap::new(),
            level: DecayingMean::new(LEVEL_HALF_LIFE_SECONDS, false),
            observed: VecDeque::new(),
            alphas: [signal.target_rate(); ACI_STEPS],
            level_loss: DayTotals::default(),
            typical_scale: [[DecayingMean::new(SCORE_LOOKBACK_SECONDS as f64, true); UNITS]; BASELINES],
            diurnal: Default::default(),
            shortfall: ShortfallTally::default(),
            pending_capacity: VecDeque::new(),
            step_seconds: 1,
            last_window_from: None,
            last_shortfall_at: None,
        }
    }

    /// Where the calibration stands.
    pub fn state(&self) -> CalibrationState {
        CalibrationState {
            level: self.level(),
            realised_windows: self.scores(),
            shortfall_fraction_last_day: self.shortfall.fraction(),
            max_underprovisioned_fraction: match self.signal {
                MissSignal::Shortfall { max_fraction } => Some(max_fraction),
                MissSignal::WindowPeak { .. } => None,
            },
        }
    }

    /// Changes what is calibrated for (a new quantile or SLO target); the scores are kept, the level
    /// restarts at the new target.
    pub fn set_signal(&mut self, signal: MissSignal) {
        if signal != self.signal {
            self.signal = signal;
            self.alphas = [signal.target_rate(); ACI_STEPS];
            self.level_loss = DayTotals::default();
        }
    }

    /// Realised windows so far (within the lookback).
    pub fn scores(&self) -> usize {
        self.scores
            .values()
            .map(|kind| kind.iter().map(|s| s[0].sorted.len()).max().unwrap_or(0))
            .sum()
    }

    /// The level the next plan provisions for: `1 − α` of the followed step size, within `[0, 1]`.
    pub fn level(&self) -> f64 {
        (1.0 - self.alphas[self.level_loss.cheapest()]).clamp(0.0, 1.0)
    }

    /// Scores every pending window that `history` now covers (its last point's step reaches the window
    /// end); windows the history no longer holds are dropped.
    pub fn observe(&mut self, history: &TimeSeries) {
        let step = history.step_seconds().max(1);
        self.step_seconds = step;
        let covered_until = history.end() + step;
        self.judge_capacity(history, covered_until);
        while let Some(window) = self.pending.front().copied() {
            if window.to >= covered_until {
                break;
            }
            self.pending.pop_front();
            let Some(realised) = peak_of(history, window.from, window.to) else {
                continue;
            };
            if let (MissSignal::WindowPeak { quantile }, Some(provisioned)) =
                (self.signal, window.provisioned)
            {
                let apart = self.last_window_from.map_or(i64::MAX, |at| window.from - at);
                let weight = share_of(apart, step.max(window.to - window.from));
                self.level_loss.record(
                    window.from,
                    provisioned.map(|p| weight * pinball(realised, p, quantile)),
                );
                self.adapt(provisioned.map(|p| realised > p + 1e-9), weight);
            }
            self.last_window_from = Some(window.from);
            self.level.update(window.to, realised);
            for (b, planned) in window.baselines.iter().enumerate() {
                let Some(BaselinePeak { peak, units }) = planned else {
                    continue;
                };
                self.diurnal[b].record(window.from, realised - peak);
                for unit in Unit::ALL {
                    let score = (realised - peak) / units[unit.index()];
                    if score.is_finite() {
                        self.scores.entry(window.kind).or_default()[b][unit.index()].push(window.to, score);
                    }
                }
            }
        }
    }

    /// How far the demand `observed` at `at` (a plan) rose above the demand observed as long before as
    /// the window reaches ahead, to `to` (at the last plan at or before then; 0 without one, or if it
    /// fell), and records it.
    fn record_rise(&mut self, at: i64, to: i64, observed: f64) -> f64 {
        let back = at - (to - at).max(1);
        while self.observed.len() > 1 && self.observed[1].0 <= back {
            self.observed.pop_front();
        }
        let before = self
            .observed
            .front()
            .filter(|(planned, _)| *planned <= back)
            .map(|(_, v)| *v);
        if self.observed.back().is_some_and(|(planned, _)| *planned >= at) {
            self.observed.pop_back();
        }
        if observed.is_finite() {
            self.observed.push_back((at, observed));
        }
        before.map_or(0.0, |before| (observed - before).max(0.0))
    }

    /// Records the capacity ready at the sync at `now`; [`PeakCalibrator::observe`] judges it against
    /// the demand once the history covers `now`. Judged then rather than on the observation at the
    /// sync: that observation is a scrape and a rate window late, sees a rise late and so counts too
    /// few short syncs — an SLO held on it would be missed by about that lag.
    pub fn record_capacity(&mut self, now: i64, capacity: f64) {
        if self.pending_capacity.back().is_some_and(|&(at, _)| at >= now) {
            self.pending_capacity.pop_back();
        }
        self.pending_capacity.push_back((now, capacity));
        // While the history stalls, keep what one day of syncs needs, not more.
        if self.pending_capacity.len() > MAX_SCORES {
            self.pending_capacity.pop_front();
        }
    }

    /// Judges the recorded capacities the history now covers.
    fn judge_capacity(&mut self, history: &TimeSeries, covered_until: i64) {
        let step = history.step_seconds().max(1);
        while let Some(&(at, capacity)) = self.pending_capacity.front() {
            if at >= covered_until {
                break;
            }
            self.pending_capacity.pop_front();
            if let Some(demand) = peak_over(history.values(), history.start(), step, at, at) {
                self.observe_shortfall(at, demand > capacity + 1e-9);
            }
        }
    }

    /// One sync's outcome: whether demand exceeded the ready capacity (the SLO signal).
    pub fn observe_shortfall(&mut self, now: i64, short: bool) {
        self.shortfall.record(now, short);
        if let MissSignal::Shortfall { .. } = self.signal {
            let apart = self.last_shortfall_at.map_or(i64::MAX, |at| now - at);
            // Every level sees the same syncs: what capacity each would have had is not known.
            self.adapt([short; ACI_STEPS], share_of(apart, self.step_seconds));
        }
        self.last_shortfall_at = Some(now);
    }

    /// The peak to provision for the window `[from, to]` given the model's point peak over it and its
    /// spread (how far the forecaster's [`REFERENCE_QUANTILE`] band reaches above the point peak), if
    /// there is a model, and the demand observed now, with the history's last point at `history_end`
    /// on a grid of `step_seconds`, and records the window for calibration. `None` while fewer than
    /// [`MIN_SCORES`] windows of its kind are realised.
    pub fn plan(&mut self, window: PlannedWindow, history_end: i64, step_seconds: i64) -> Option<f64> {
        let PlannedWindow {
            planned_at,
            from,
            to,
            model,
            observed,
        } = window;
        let ramp = observed + self.record_rise(planned_at, to, observed);
        let kind = window_kind(planned_at, to, history_end, step_seconds);
        // What is observed now is a rate over the step in progress at most: beside a model, persistence
        // competes only for windows that end within that step. Of the others it is scored all the same,
        // so that it can stand in for a model without scores of their kind yet.
        let competes = model.is_none() || reach_of(kind) <= 1;
        let baselines = Baseline::ALL.map(|baseline| {
            let (peak, spread) = match baseline {
                Baseline::Model => model.map(|m| (m.peak, m.spread))?,
                Baseline::Persistence => (observed, 0.0),
                Baseline::Ramp => model.map(|m| (m.peak.max(ramp), m.spread))?,
            };
            peak.is_finite().then_some((peak.max(0.0), spread))
        });
        let level = self.level.mean();
        let followed = self.level_loss.cheapest();
        let mut planned = [None; BASELINES];
        let mut provisioned = [None; BASELINES];
        for baseline in Baseline::ALL {
            let b = baseline.index();
            let Some((peak, spread)) = baselines[b] else {
                continue;
            };
            let diurnal_error = self.diurnal[b].typical_error(from);
            let units = Unit::ALL.map(|unit| unit.of(peak, spread, level, diurnal_error));
            planned[b] = Some(BaselinePeak { peak, units });
            let stands_in = baseline == Baseline::Persistence && !competes;
            if stands_in && provisioned[Baseline::Model.index()].is_some() {
                continue;
            }
            let headroom = self.headroom_of(kind, baseline, from, units);
            if !stands_in && headroom.iter().all(Option::is_some) {
                self.headroom[b].record(from, headroom.map(|h| h.map_or(0.0, |levels| levels[followed])));
            }
            let unit = self.headroom[b].cheapest();
            provisioned[b] = headroom[unit].map(|levels| levels.map(|h| (peak + h).max(0.0)));
        }
        let competing = Baseline::ALL.map(|baseline| baseline != Baseline::Persistence || competes);
        // The model always competes, so this also says there is a model.
        let all_competing = (0..BASELINES).all(|b| !competing[b] || provisioned[b].is_some());
        let provisioned = if all_competing {
            let cost = self.baseline_cost.entry(kind).or_default();
            // Priced as the rule buys it: the reactive floor never lets the replicas below what is
            // observed now.
            cost.record(
                from,
                provisioned.map(|p| p.map_or(0.0, |p| p[followed].max(observed))),
            );
            provisioned[cost.cheapest_among(competing)]
        } else {
            let [model, persistence, ramp] = provisioned;
            model.or(ramp).or(persistence)
        };
        if planned.iter().all(Option::is_none) {
            return None;
        }
        // Windows are planned in time order; a repeated sync at the same time replaces its plan.
        if self.pending.back().is_some_and(|w| w.from >= from) {
            self.pending.pop_back();
        }
        self.pending.push_back(PendingWindow {
            from,
            to,
            baselines: planned,
            provisioned,
            kind,
        });
        provisioned.map(|p| p[followed])
    }

    /// The headroom above `baseline`'s point peak for a window of `kind` starting at `from`, in each
    /// unit (`units`, the window's size of each) at each adaptive level: the calibrated quantile of its
    /// scores at the window's own level (the adaptive level weighted by its tail scale, see the module
    /// doc). `None` for a unit with too few scores of the kind.
    fn headroom_of(
        &mut self,
        kind: usize,
        baseline: Baseline,
        from: i64,
        units: [f64; UNITS],
    ) -> [Option<[f64; ACI_STEPS]>; UNITS] {
        let alphas = self.alphas;
        let target_rate = self.signal.target_rate();
        let deepest_tail = target_rate * DEEPEST_TAIL_OF_TARGET;
        let kind_scores = self.scores.get(&kind).map(|s| &s[baseline.index()]);
        let typical_scale = &mut self.typical_scale[baseline.index()];
        Unit::ALL.map(|unit| {
            let (scores, unit_size) = (&kind_scores?[unit.index()], units[unit.index()]);
            let scale = scores.tail_scale(target_rate)? * unit_size;
            let typical = typical_scale[unit.index()].update(from, scale).max(1e-9);
            let weight = (scale / typical)
                .sqrt()
                .clamp(MIN_MISS_WEIGHT, 1.0 / MIN_MISS_WEIGHT);
            let mut headroom = [0.0; ACI_STEPS];
            for (h, alpha) in headroom.iter_mut().zip(alphas) {
                let level = 1.0 - (alpha * weight).min(alpha.max(0.5)).clamp(0.0, 1.0);
                *h = unit_size * scores.quantile(level, deepest_tail)?;
            }
            Some(headroom)
        })
    }

    /// One outcome per adaptive level: whether its plan missed.
    fn adapt(&mut self, misses: [bool; ACI_STEPS], weight: f64) {
        let target = self.signal.target_rate();
        for ((alpha, share), miss) in self.alphas.iter_mut().zip(ACI_GAMMA_SHARES).zip(misses) {
            let err = if miss { 1.0 } else { 0.0 };
            // Bounded to the levels that mean something (α = 0 provisions for the largest score), so
            // that a long run of misses does not wind the level up beyond recovery.
            let gamma = (share * target).min(ACI_GAMMA);
            *alpha = (*alpha + weight * gamma * (target - err)).clamp(0.0, 1.0);
        }
    }
}

/// A baseline's typical absolute error by time of day: an exponentially weighted mean per quarter hour
/// of the day ([`DIURNAL_HALF_LIFE_SECONDS`]), read over the window's quarter and its two neighbours,
/// or over the whole day while none of them has been seen.
#[derive(Debug, Clone, PartialEq)]
struct DiurnalProfile {
    buckets: [WeightedSum; DIURNAL_BUCKETS],
    whole_day: WeightedSum,
}

impl Default for DiurnalProfile {
    fn default() -> Self {
        Self {
            buckets: [WeightedSum::default(); DIURNAL_BUCKETS],
            whole_day: WeightedSum::default(),
        }
    }
}

impl DiurnalProfile {
    fn bucket(at: i64) -> usize {
        usize::try_from(at.rem_euclid(DAY_SECONDS) * DIURNAL_BUCKETS as i64 / DAY_SECONDS).unwrap_or(0)
    }

    /// Takes in the error of a window starting at `at`.
    fn record(&mut self, at: i64, error: f64) {
        if error.is_finite() {
            self.buckets[Self::bucket(at)].add(at, error.abs());
            self.whole_day.add(at, error.abs());
        }
    }

    /// The typical absolute error of a window starting at `at`'s time of day (`None` before any).
    fn typical_error(&self, at: i64) -> Option<f64> {
        let bucket = Self::bucket(at);
        let (sum, weight) = [DIURNAL_BUCKETS - 1, 0, 1]
            .iter()
            .map(|offset| self.buckets[(bucket + offset) % DIURNAL_BUCKETS].decayed_to(at))
            .fold((0.0, 0.0), |(s, w), (sum, weight)| (s + sum, w + weight));
        let (sum, weight) = if weight > 0.0 {
            (sum, weight)
        } else {
            self.whole_day.decayed_to(at)
        };
        (weight > 0.0).then(|| sum / weight)
    }
}

/// An exponentially weighted sum of values and of their weights, each value's weight halving every
/// [`DIURNAL_HALF_LIFE_SECONDS`]: their ratio is the weighted mean.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct WeightedSum {
    /// When it was last added to, the sum and the total weight then.
    last: Option<(i64, f64, f64)>,
}

impl WeightedSum {
    fn add(&mut self, at: i64, value: f64) {
        let (sum, weight) = self.decayed_to(at);
        let at = self.last.map_or(at, |(last, _, _)| at.max(last));
        self.last = Some((at, sum + value, weight + 1.0));
    }

    /// The sum and the weight as of `at` (zero before the first value).
    fn decayed_to(&self, at: i64) -> (f64, f64) {
        self.last.map_or((0.0, 0.0), |(last, sum, weight)| {
            let decay = 0.5f64.powf((at - last).max(0) as f64 / DIURNAL_HALF_LIFE_SECONDS);
            (sum * decay, weight * decay)
        })
    }
}

/// A time-decayed mean: each value pulls it by `1 − ½^(elapsed / half-life)` of the way, and, if it
/// averages its first values, by at least `1 / count` (a plain mean until the decay weighs more, so
/// the first value alone does not set it for a half-life).
#[derive(Debug, Clone, Copy, PartialEq)]
struct DecayingMean {
    half_life_seconds: f64,
    averages_first_values: bool,
    /// When it was last updated, the mean, and how many values it has seen.
    state: Option<(i64, f64, u32)>,
}

impl DecayingMean {
    fn new(half_life_seconds: f64, averages_first_values: bool) -> Self {
        Self {
            half_life_seconds,
            averages_first_values,
            state: None,
        }
    }

    fn mean(&self) -> Option<f64> {
        self.state.map(|(_, mean, _)| mean)
    }

    /// Takes `value` in at `at`; returns the new mean.
    fn update(&mut self, at: i64, value: f64) -> f64 {
        let next = match self.state {
            None => (at, value, 1),
            Some((last, mean, count)) => {
                let elapsed = (at - last).max(0) as f64;
                let mut weight = 1.0 - 0.5f64.powf(elapsed / self.half_life_seconds);
                if self.averages_first_values {
                    weight = weight.max(1.0 / (f64::from(count) + 1.0));
                }
                (
                    at.max(last),
                    mean + weight * (value - mean),
                    count.saturating_add(1),
                )
            }
        };
        self.state = Some(next);
        next.1
    }
}

/// Where the phases of a step after the first begin, as shares of the step ([`window_kind`]).
const PHASE_STARTS: [f64; 4] = [0.0625, 0.125, 0.25, 0.5];
/// Phases of the step a window can start in, told apart.
const PHASES: usize = PHASE_STARTS.len() + 1;

/// The kind of a window ending at `to`, planned at `planned_at` with the history's last point at
/// `history_end` on a grid of `step_seconds`: how many steps it reaches beyond the history (up to
/// [`MAX_REACH_STEPS`]), and in which phase of the step after the history it was planned. The phases
/// are the step's first sixteenth, the rest of its first eighth, quarter, half, and its second half:
/// early in a step the observed demand is still a rate over the step before (a rate window and a
/// scrape late), so the demand the window starts from is not yet known, while later in the step it
/// is; pooled, the late windows' near certainty set the quantile and left the start of every step
/// short. The phase is the plan's, not the window's start: a window planned to start a lead time
/// later (the arrival window) knows what the step observed at its plan knows. Told apart by their own
/// start (and with the ramp taken over their own 30 s rather than from the plan), arrival windows
/// planned early and late in a step were pooled: at a 2-minute lead on 5-minute steps, Twitter at
/// HPA@0.7's cost went from 0.24x to 0.40x the HPA's minutes short.
fn window_kind(planned_at: i64, to: i64, history_end: i64, step_seconds: i64) -> usize {
    let step = step_seconds.max(1);
    let reach = usize::try_from((to - history_end).div_euclid(step))
        .unwrap_or(0)
        .min(MAX_REACH_STEPS);
    let into_step = (planned_at - (history_end + step)).clamp(0, step - 1) as f64 / step as f64;
    let phase = PHASE_STARTS.iter().filter(|&&start| into_step >= start).count();
    reach * PHASES + phase
}

/// How many steps beyond the history a window of `kind` ([`window_kind`]) reaches: 1 for one that
/// ends within the step in progress.
fn reach_of(kind: usize) -> usize {
    kind / PHASES
}

/// The share of an outcome's own span (`span` seconds) not already covered by the previous outcome
/// `apart` seconds earlier: 1 for outcomes at least a span apart.
fn share_of(apart: i64, span: i64) -> f64 {
    (apart.max(0) as f64 / span.max(1) as f64).min(1.0)
}

/// Peak of the finite values of the history's steps overlapping `[from, to]`.
fn peak_of(history: &TimeSeries, from: i64, to: i64) -> Option<f64> {
    peak_over(
        history.values(),
        history.start(),
        history.step_seconds().max(1),
        from,
        to,
    )
}

fn insert_sorted(sorted: &mut Vec<f32>, value: f32) {
    let at = sorted.partition_point(|v| *v < value);
    sorted.insert(at, value);
}

fn remove_sorted(sorted: &mut Vec<f32>, value: f32) {
    let at = sorted.partition_point(|v| *v < value);
    if sorted.get(at) == Some(&value) {
        sorted.remove(at);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    /// Lognormal draws `exp(σ Z)` (Z standard normal by Box–Muller), for demand with a known distribution.
    struct LogNormal {
        sigma: f64,
    }

    impl LogNormal {
        fn sample(&self, rng: &mut StdRng) -> f64 {
            let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            (self.sigma * z).exp()
        }
    }

    /// `n` steps of demand 100 × lognormal noise, with the first of `sigmas` where `is_wild` is false and
    /// the second where it is true.
    fn calm_and_wild(seed: u64, n: usize, sigmas: (f64, f64), is_wild: impl Fn(usize) -> bool) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (calm, wild) = (LogNormal { sigma: sigmas.0 }, LogNormal { sigma: sigmas.1 });
        (0..n)
            .map(|i| {
                100.0
                    * if is_wild(i) {
                        wild.sample(&mut rng)
                    } else {
                        calm.sample(&mut rng)
                    }
            })
            .collect()
    }

    /// A window planned with the model's point peak and spread only (no observed demand, so no
    /// persistence baseline).
    fn window(from: i64, to: i64, peak: f64, spread: f64) -> PlannedWindow {
        PlannedWindow {
            planned_at: from,
            from,
            to,
            model: Some(ModelPeak { peak, spread }),
            observed: f64::NAN,
        }
    }

    /// Replays a series through the calibrator as the core does: plan a window at each step, observe
    /// as the history grows; `forecast(i)` is the point peak and the spread planned at step `i`. Returns
    /// the share of windows whose peak exceeded the plan (after warm-up).
    fn replay(
        values: &[f64],
        forecast: impl Fn(usize) -> (f64, f64),
        signal: MissSignal,
    ) -> (f64, PeakCalibrator) {
        let (misses, planned, calibrator) = replay_counting(values, forecast, signal, |_| true);
        (misses as f64 / planned.max(1) as f64, calibrator)
    }

    /// Like [`replay`], counting misses and plans only at the steps `counted` selects.
    fn replay_counting(
        values: &[f64],
        forecast: impl Fn(usize) -> (f64, f64),
        signal: MissSignal,
        counted: impl Fn(usize) -> bool,
    ) -> (usize, usize, PeakCalibrator) {
        let (misses, planned, calibrator, _) = replay_windows(
            values,
            |i, from, to| {
                let (peak, spread) = forecast(i);
                window(from, to, peak, spread)
            },
            signal,
            counted,
        );
        (misses, planned, calibrator)
    }

    /// Like [`replay_counting`], with the whole window planned at step `i` (from, to) given; also
    /// returns every plan, with the step it was made at.
    fn replay_windows(
        values: &[f64],
        window_at: impl Fn(usize, i64, i64) -> PlannedWindow,
        signal: MissSignal,
        counted: impl Fn(usize) -> bool,
    ) -> (usize, usize, PeakCalibrator, Vec<(usize, f64)>) {
        let step = 60;
        let mut calibrator = PeakCalibrator::new(signal);
        let mut history = TimeSeries::from_values(0, step, vec![values[0]]).unwrap();
        let (mut misses, mut planned, mut plans) = (0usize, 0usize, Vec::new());
        for i in 1..values.len() - 2 {
            history.append(&[(i as i64 * step, values[i])]).unwrap();
            calibrator.observe(&history);
            let now = i as i64 * step;
            // The window is the next two steps.
            let (from, to) = (now + step, now + 2 * step);
            let provisioned = calibrator.plan(window_at(i, from, to), now, step);
            plans.extend(provisioned.map(|p| (i, p)));
            if let Some(provisioned) = provisioned.filter(|_| counted(i)) {
                planned += 1;
                let realised = values[i + 1].max(values[i + 2]);
                misses += usize::from(realised > provisioned);
            }
        }
        (misses, planned, calibrator, plans)
    }

    #[test]
    fn the_window_peak_is_covered_at_its_quantile_for_a_known_distribution() {
        // Demand = 100 × lognormal noise, i.i.d.: the peak of two steps has the distribution F(x)², so
        // no per-step quantile answers it; the calibration must.
        let mut rng = StdRng::seed_from_u64(7);
        let noise = LogNormal { sigma: 0.3 };
        let values: Vec<f64> = (0..6000).map(|_| 100.0 * noise.sample(&mut rng)).collect();
        let mut peaks: Vec<f64> = (0..200_000)
            .map(|_| 100.0 * noise.sample(&mut rng).max(noise.sample(&mut rng)))
            .collect();
        peaks.sort_by(f64::total_cmp);
        for quantile in [0.8, 0.9, 0.95] {
            let (miss, calibrator) = replay(&values, |_| (100.0, 10.0), MissSignal::WindowPeak { quantile });
            assert!(
                (miss - (1.0 - quantile)).abs() < 0.02,
                "q{quantile}: miss rate {miss}"
            );
            // At its target level, the plan is the known quantile of the peak.
            let exact = peaks[(quantile * peaks.len() as f64) as usize];
            let mut at_target = calibrator.clone();
            at_target.alphas = [1.0 - quantile; ACI_STEPS];
            // A window of the same kind: it ends two steps beyond the history.
            let planned = at_target
                .plan(window(1_000_000, 1_000_060, 100.0, 10.0), 999_940, 60)
                .unwrap();
            assert!(
                (planned - exact).abs() / exact < 0.05,
                "q{quantile}: planned {planned}, exact {exact}"
            );
        }
    }

    #[test]
    fn the_miss_rate_goes_where_headroom_is_dear_and_averages_its_target() {
        // Noise alternates between calm and wild hours and the forecaster knows it (its spread is four
        // times wider in wild hours). Scores in units of the spread put the same score distribution on
        // both kinds of hour, four times wider in replicas in wild ones: the weight (square root of the
        // tail scale over the typical one) makes the wild hours' miss rate about twice the calm hours',
        // and the adaptive level keeps the average at the target.
        let is_wild = |i: usize| (i / 60) % 2 == 1;
        let values = calm_and_wild(5, 20_000, (0.05, 0.2), is_wild);
        // The window of step `i` is steps i+1 and i+2: its kind is that of step i+1.
        let spread = |i: usize| if is_wild(i + 1) { 40.0 } else { 10.0 };
        let signal = MissSignal::WindowPeak { quantile: 0.9 };
        let (misses, planned, _) = replay_counting(&values, |i| (100.0, spread(i)), signal, |i| i > 2000);
        let overall = misses as f64 / planned as f64;
        assert!((overall - 0.1).abs() < 0.02, "overall miss rate {overall}");
        let rate_in = |wild_hours: bool| {
            let (misses, planned, _) = replay_counting(
                &values,
                |i| (100.0, spread(i)),
                signal,
                |i| is_wild(i + 1) == wild_hours && is_wild(i + 2) == wild_hours && i > 2000,
            );
            misses as f64 / planned as f64
        };
        let (calm_rate, wild_rate) = (rate_in(false), rate_in(true));
        assert!(
            calm_rate < 0.1 && wild_rate > 0.1,
            "calm {calm_rate}, wild {wild_rate}"
        );
        // Twice if the spread scaled the two hours' noise exactly; a lognormal's skew grows with its
        // sigma, so the wild hours' scores sit a little further out. Bounded well inside the weight's
        // clamp (up to 64×).
        let ratio = wild_rate / calm_rate;
        assert!((1.4..4.0).contains(&ratio), "calm {calm_rate}, wild {wild_rate}");
    }

    #[test]
    fn surprises_at_one_time_of_day_get_their_headroom_there() {
        // Demand is calm all day but wild for one hour at the same time every day, and the forecaster's
        // spread does not know it. At q0.99 the wild hour's windows (1/24 of them) cannot all be missed,
        // so in every unit that ignores the time of day the quantile is the wild hour's and every calm
        // hour pays for it; in the diurnal unit the wild hour's scores are of the same size as the calm
        // hours', so its headroom is wide there and narrow elsewhere, which costs less at the same
        // cover. Steps of a minute, so a day is 1,440 of them.
        let is_wild = |i: usize| (i % 1440) / 60 == 10;
        let days = 8;
        let values = calm_and_wild(23, days * 1440, (0.03, 0.3), is_wild);
        let signal = MissSignal::WindowPeak { quantile: 0.99 };
        let last_days = |i: usize| i > (days - 3) * 1440;
        // The window of step `i` is steps i+1 and i+2.
        let in_wild = |i: usize| is_wild(i + 1) && is_wild(i + 2);
        let in_calm = |i: usize| !is_wild(i + 1) && !is_wild(i + 2);
        let (_, _, calibrator, plans) = replay_windows(
            &values,
            |_, from, to| window(from, to, 100.0, 10.0),
            signal,
            |_| true,
        );
        assert_eq!(
            calibrator.headroom[Baseline::Model.index()].cheapest(),
            Unit::Diurnal.index(),
            "the diurnal unit plans the least headroom"
        );
        let mean_plan = |selected: &dyn Fn(usize) -> bool| {
            let chosen: Vec<f64> = plans
                .iter()
                .filter(|(i, _)| last_days(*i) && selected(*i))
                .map(|(_, p)| *p)
                .collect();
            chosen.iter().sum::<f64>() / chosen.len() as f64
        };
        // The calm hours' own q0.99 of a two-step peak is about 108. Units blind to the time of day
        // planned 119 there (measured with the diurnal error withheld): the adaptive level follows
        // the wild hour's misses within it and then holds on.
        let (wild_plan, calm_plan) = (mean_plan(&in_wild), mean_plan(&in_calm));
        assert!(calm_plan < 112.0, "calm hours planned {calm_plan}");
        assert!(
            wild_plan > 1.3 * calm_plan,
            "wild hour {wild_plan}, calm hours {calm_plan}"
        );
        let rate = |selected: &dyn Fn(usize) -> bool| {
            let (misses, planned, _) = replay_counting(
                &values,
                |_| (100.0, 10.0),
                signal,
                |i| last_days(i) && selected(i),
            );
            misses as f64 / planned as f64
        };
        let (wild_rate, all_rate) = (rate(&in_wild), rate(&|_| true));
        assert!(wild_rate < 0.2, "wild hour misses {wild_rate}");
        assert!(all_rate < 0.02, "misses {all_rate}");
    }

    #[test]
    fn the_adaptive_level_converges_to_its_target_rate_after_a_regime_change() {
        // The noise doubles halfway: a calibration that only looked at the past regime would miss
        // far more often; the adaptive level brings the miss rate of the second half back to target.
        let mut rng = StdRng::seed_from_u64(11);
        let calm = LogNormal { sigma: 0.1 };
        let wild = LogNormal { sigma: 0.4 };
        let values: Vec<f64> = (0..12_000)
            .map(|i| {
                100.0
                    * if i < 6000 {
                        calm.sample(&mut rng)
                    } else {
                        wild.sample(&mut rng)
                    }
            })
            .collect();
        let (_, _) = replay(
            &values,
            |_| (100.0, 10.0),
            MissSignal::WindowPeak { quantile: 0.9 },
        );
        let second_half: Vec<f64> = values[6000..].to_vec();
        let (miss, _) = replay(
            &second_half,
            |_| (100.0, 10.0),
            MissSignal::WindowPeak { quantile: 0.9 },
        );
        assert!((miss - 0.1).abs() < 0.02, "miss rate {miss}");
        // And across the change, the long-run rate is on target too.
        let (miss_all, _) = replay(
            &values,
            |_| (100.0, 10.0),
            MissSignal::WindowPeak { quantile: 0.9 },
        );
        assert!(
            (miss_all - 0.1).abs() < 0.02,
            "miss rate across the change {miss_all}"
        );
    }

    #[test]
    fn one_unforecastable_spike_does_not_hold_a_high_quantile_at_its_size() {
        // Lognormal demand around 100 at q0.99, one step at 20× the level. Its windows miss whatever
        // was planned; the level must not then sit at the spike's score: over the hour after, the plan
        // stays near what it was before (a fixed ACI step drove α to 0 and planned for the spike,
        // 2,000, for half an hour here, with 2,880 scores of the kind; for hours with fewer).
        let mut rng = StdRng::seed_from_u64(17);
        let noise = LogNormal { sigma: 0.3 };
        let spike_at = 5000;
        let values: Vec<f64> = (0..5400)
            .map(|i| {
                if i == spike_at {
                    2000.0
                } else {
                    100.0 * noise.sample(&mut rng)
                }
            })
            .collect();
        let signal = MissSignal::WindowPeak { quantile: 0.99 };
        let (_, _, _, planned) = replay_windows(
            &values,
            |_, from, to| window(from, to, 100.0, 30.0),
            signal,
            |_| true,
        );
        let mean_over = |from: usize, to: usize| {
            let inside: Vec<f64> = planned
                .iter()
                .filter(|(i, _)| (from..to).contains(i))
                .map(|(_, p)| *p)
                .collect();
            inside.iter().sum::<f64>() / inside.len() as f64
        };
        let before = mean_over(spike_at - 60, spike_at - 1);
        // The spike's windows are realised by step `spike_at + 2`.
        let after = mean_over(spike_at + 3, spike_at + 60);
        assert!(before > 150.0 && before < 400.0, "before the spike {before}");
        assert!(
            after < 1.5 * before,
            "over the hour after the spike {after}, before {before}"
        );
    }

    #[test]
    fn a_ramp_the_model_lags_is_provisioned_by_continuing_it() {
        // Demand is 100 with ±3 of noise, except a 15-step ramp of +10 per step every 100 steps (a match
        // starting, a flash crowd building up); the model only repeats the demand observed, so it lags
        // every ramp by the rise of a window. Calibrated alone at q0.9, its scores hold a ramp's +20 in
        // 13 windows of 100, so every calm window paid a ramp's headroom. Continued for a window, a
        // ramp is known: the ramp baseline covers the ramps and calm windows pay for noise only.
        let mut rng = StdRng::seed_from_u64(29);
        let values: Vec<f64> = (0..6000)
            .map(|i| match i % 100 {
                p @ 0..15 => 100.0 + 10.0 * (p + 1) as f64,
                _ => 100.0 + rng.random_range(-3.0..3.0),
            })
            .collect();
        let step = 60;
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        let mut history = TimeSeries::from_values(0, step, vec![values[0]]).unwrap();
        let (mut ramp, mut ramp_covered, mut calm_headroom) = (0, 0, Vec::new());
        for i in 1..values.len() - 2 {
            history.append(&[(i as i64 * step, values[i])]).unwrap();
            calibrator.observe(&history);
            // The window starts now and reaches two steps ahead.
            let now = i as i64 * step;
            let planned = PlannedWindow {
                planned_at: now,
                from: now,
                to: now + 2 * step,
                model: Some(ModelPeak {
                    peak: values[i],
                    spread: 3.0,
                }),
                observed: values[i],
            };
            let Some(provisioned) = calibrator.plan(planned, now, step).filter(|_| i >= 2000) else {
                continue;
            };
            match i % 100 {
                // The window and the window's length before it on the ramp.
                2..13 => {
                    ramp += 1;
                    ramp_covered += usize::from(provisioned >= values[i + 2]);
                }
                20..98 => calm_headroom.push(provisioned - values[i]),
                _ => {}
            }
        }
        let covered = ramp_covered as f64 / ramp as f64;
        let headroom = calm_headroom.iter().sum::<f64>() / calm_headroom.len() as f64;
        assert!(covered >= 0.9, "ramp windows covered {covered}");
        assert!(headroom < 10.0, "mean headroom of calm windows {headroom}");
    }

    #[test]
    fn after_a_level_shift_the_plan_follows_the_fastest_adaptive_level() {
        // Stationary demand, then three times as much from step 4,000 while the forecast stays: windows
        // miss until the scores catch up. The fastest level wins the quantile loss over the day there.
        let mut rng = StdRng::seed_from_u64(23);
        let noise = LogNormal { sigma: 0.1 };
        let shift_at = 4000;
        let values: Vec<f64> = (0..4300)
            .map(|i| if i < shift_at { 100.0 } else { 300.0 } * noise.sample(&mut rng))
            .collect();
        let signal = MissSignal::WindowPeak { quantile: 0.99 };
        let (_, before) = replay(&values[..shift_at], |_| (100.0, 10.0), signal);
        let (_, after) = replay(&values, |_| (100.0, 10.0), signal);
        // Stationary, the slowest tracks the quantile best (the least noise in `α`).
        let slowest = ACI_STEPS - 1;
        assert_eq!(
            before.level_loss.cheapest(),
            slowest,
            "{:?}",
            before.level_loss.sums
        );
        assert_eq!(after.level_loss.cheapest(), 0, "{:?}", after.level_loss.sums);
    }

    #[test]
    fn a_shortfall_target_moves_the_level_until_the_short_share_matches() {
        let mut calibrator = PeakCalibrator::new(MissSignal::Shortfall { max_fraction: 0.02 });
        let start = calibrator.level();
        for i in 0..200 {
            calibrator.observe_shortfall(i * 30, true);
        }
        assert!(calibrator.level() > start, "short too often: the level rises");
        let high = calibrator.level();
        for i in 200..2200 {
            calibrator.observe_shortfall(i * 30, false);
        }
        assert!(calibrator.level() < high, "never short: the level falls back");
        let tally = calibrator.state().shortfall_fraction_last_day.unwrap();
        assert!((tally - 200.0 / 2200.0).abs() < 1e-12, "{tally}");
    }

    #[test]
    fn capacities_are_judged_against_the_history_once_it_covers_them() {
        // Syncs every 30 s on a 60 s history: demand 10 for two minutes, then 30; capacity 20 all along.
        // Each sync is judged when its step is in the history, whatever was observed at the sync.
        let mut calibrator = PeakCalibrator::new(MissSignal::Shortfall { max_fraction: 0.1 });
        let mut history = TimeSeries::from_values(0, 60, vec![10.0]).unwrap();
        for sync in 0..8i64 {
            calibrator.record_capacity(sync * 30, 20.0);
        }
        calibrator.observe(&history);
        // Only the two syncs within the first step are covered.
        let tally = calibrator.state().shortfall_fraction_last_day.unwrap();
        assert_eq!(tally, 0.0);
        history.append(&[(60, 10.0), (120, 30.0), (180, 30.0)]).unwrap();
        calibrator.observe(&history);
        // Eight syncs judged: the last four (from 120 s) short.
        let tally = calibrator.state().shortfall_fraction_last_day.unwrap();
        assert!((tally - 0.5).abs() < 1e-12, "{tally}");
    }

    #[test]
    fn a_collapse_of_the_forecast_does_not_make_scores_explode() {
        // Demand steady at 100; the forecast and its band fall to 0 for a while (an upstream drop-out
        // seen as demand): the recovery's score is relative to the floor (a share of the level of
        // realised peaks, 5), not to a zero spread.
        let values = vec![100.0; 400];
        let (_, calibrator) = replay(
            &values,
            |i| {
                if (200..205).contains(&i) {
                    (0.0, 0.0)
                } else {
                    (100.0, 10.0)
                }
            },
            MissSignal::WindowPeak { quantile: 0.9 },
        );
        let worst = calibrator
            .scores
            .values()
            .filter_map(|kind| {
                kind[Baseline::Model.index()][Unit::Spread.index()]
                    .sorted
                    .last()
                    .map(|&s| f64::from(s))
            })
            .reduce(f64::max)
            .unwrap();
        assert!(
            worst <= 100.0 / (SPREAD_FLOOR_OF_LEVEL * 100.0) + 1e-9,
            "largest score {worst}"
        );
    }

    #[test]
    fn windows_reaching_an_unobserved_step_are_calibrated_apart_from_nearly_certain_ones() {
        // Coarse steps: most windows end in a step already seen (score ~0), a few reach the next step,
        // whose change is unknown (score ~1). Pooled, the 0.9 quantile would be ~0 and every change
        // unprovisioned; apart, the far-reaching windows get their own quantile.
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        let step = 1800;
        let mut history = TimeSeries::from_values(0, step, vec![100.0]).unwrap();
        for i in 1..400i64 {
            history
                .append(&[(i * step, 100.0 + 20.0 * (i % 2) as f64)])
                .unwrap();
            calibrator.observe(&history);
            let end = i * step;
            // Nine windows within the last step observed (reach 0: its value is known), one reaching
            // the step after (reach 1: it may change by 20).
            let known = history.values()[i as usize];
            for k in 0..9 {
                calibrator.plan(window(end + k * 100, end + k * 100 + 60, known, 10.0), end, step);
            }
            calibrator.plan(window(end + step - 30, end + step + 30, known, 10.0), end, step);
        }
        let model = Baseline::Model.index();
        let near = calibrator.scores[&window_kind(0, 60, 0, step)][model][Unit::Spread.index()]
            .quantile(0.9, 1.0)
            .unwrap();
        let far = calibrator.scores[&window_kind(step - 30, step + 30, 0, step)][model][Unit::Spread.index()]
            .quantile(0.9, 1.0)
            .unwrap();
        assert!(far > near + 0.5, "near {near}, far {far}");
    }

    #[test]
    fn each_kind_of_window_takes_the_cheaper_of_the_model_and_the_observed_demand() {
        // Hourly steps. Within a step its value is already observed, and the model's forecast of it
        // (made before the step) is 20 % off either way; the window reaching the next step is
        // forecast exactly by the model, while the observed demand there is the step before's. Each
        // kind must take the baseline that knows it: the observation within the step (provisioning
        // what is observed, not the model's over-forecast), the model across the step change.
        let step = 3600;
        let value = |i: i64| 100.0 + 50.0 * ((i * 7919) % 5) as f64;
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        let mut history = TimeSeries::from_values(0, step, vec![value(0)]).unwrap();
        let planned = |from: i64, to: i64, model: f64, observed: f64| PlannedWindow {
            planned_at: from,
            from,
            to,
            model: Some(ModelPeak {
                peak: model.max(observed),
                spread: 10.0,
            }),
            observed,
        };
        let (mut within, mut across) = (Vec::new(), Vec::new());
        for i in 2..300i64 {
            history.append(&[((i - 1) * step, value(i - 1))]).unwrap();
            calibrator.observe(&history);
            // The history ends with step i - 1; windows start later in step i (its value observed) ...
            let (end, known) = ((i - 1) * step, value(i));
            let off = if i % 2 == 0 { 1.2 } else { 0.8 };
            for k in 1..9 {
                let from = i * step + k * 300;
                within.push((
                    known,
                    calibrator.plan(planned(from, from + 150, known * off, known), end, step),
                ));
            }
            // ... and one reaches step i + 1, known to the model only.
            let from = (i + 1) * step - 60;
            across.push((
                value(i + 1).max(known),
                calibrator.plan(planned(from, from + 150, value(i + 1), known), end, step),
            ));
        }
        let last_day = |plans: &[(f64, Option<f64>)], per_step: usize| {
            plans[plans.len() - 24 * per_step..]
                .iter()
                .map(|&(peak, provisioned)| (peak, provisioned.unwrap()))
                .collect::<Vec<_>>()
        };
        for (known, provisioned) in last_day(&within, 8) {
            assert!(
                (provisioned - known).abs() < 1e-9,
                "within a step: {provisioned} for {known}"
            );
        }
        for (peak, provisioned) in last_day(&across, 1) {
            assert!(
                (provisioned - peak).abs() < 1e-9,
                "across a step: {provisioned} for {peak}"
            );
        }
    }

    #[test]
    fn windows_starting_before_the_observation_catches_up_are_calibrated_apart() {
        // 5-minute steps, a window planned every 30 s. At the first sync of a step the demand observed
        // is still the step before's (a rate window and a scrape late), so its forecast misses the
        // step's change; at the other nine it is the step's own value. A quarter of the steps rise by
        // 20: pooled, under 3 % of the windows rise and the 0.9 quantile is ~0, leaving the start of
        // every rising step short; apart, the first sync's windows are calibrated on their own misses.
        let step = 300;
        let value = |i: i64| if (i * 7919) % 13 < 6 { 120.0 } else { 100.0 };
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        let mut history = TimeSeries::from_values(0, step, vec![value(0)]).unwrap();
        let mut pooled = Scores::default();
        for i in 1..400i64 {
            // Step i - 1 is in the history; the windows start in step i.
            let history_end = (i - 1) * step;
            for k in 0..10 {
                let from = i * step + k * 30;
                let seen = if k == 0 { value(i - 1) } else { value(i) };
                calibrator.plan(window(from, from + 20, seen, 10.0), history_end, step);
                pooled.push(from, (value(i) - seen) / 10.0);
            }
            history.append(&[(i * step, value(i))]).unwrap();
            calibrator.observe(&history);
        }
        let quantile = |k: i64| {
            let kind = window_kind(step + k * 30, step + k * 30 + 20, 0, step);
            calibrator.scores[&kind][Baseline::Model.index()][Unit::Spread.index()]
                .quantile(0.9, 1.0)
                .unwrap()
        };
        assert!(pooled.quantile(0.9, 1.0).unwrap().abs() < 1e-9);
        // Windows whose start the observation did not know yet get the rise (20 over a spread of 10)
        // ...
        assert!(quantile(0) >= 2.0 - 1e-9, "first sync of a step: {}", quantile(0));
        // ... and those that knew it pay nothing for the others' uncertainty.
        for k in 1..10 {
            assert!(quantile(k).abs() < 1e-9, "sync {k} of a step: {}", quantile(k));
        }
    }

    #[test]
    fn beyond_the_largest_score_a_higher_level_still_buys_more_headroom() {
        // 2,000 scores from a unit exponential: its 0.9999 quantile is ln 10⁴ ≈ 9.21, beyond what 2,000
        // scores resolve (1/2001). Capped at the largest score, every level past 0.9995 was the same.
        let mut rng = StdRng::seed_from_u64(3);
        let mut scores = Scores::default();
        for i in 0..2000 {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            scores.push(i, -u.ln());
        }
        let largest = f64::from(*scores.sorted.last().unwrap());
        let at = |level: f64| scores.quantile(level, 1.0).unwrap();
        let exact = 10_000f64.ln();
        assert!(
            (at(0.9999) - exact).abs() / exact < 0.2,
            "q0.9999 {} vs {exact} (largest score {largest})",
            at(0.9999)
        );
        assert!(at(0.99999) > at(0.9999) && at(0.9999) >= largest);
        // Within what the scores resolve, the conformal quantile as before.
        assert_eq!(
            at(0.9),
            f64::from(scores.sorted[(2001.0f64 * 0.9).ceil() as usize - 1])
        );
        // Bounded: at level 1, a tail ten times smaller than the scores resolve...
        assert!(at(1.0).is_finite() && (at(1.0) - at(1.0 - 1.0 / 20_010.0)).abs() < 1e-9);
        // ... or the deepest tail asked for, if that is deeper.
        let deeper = |level: f64| scores.quantile(level, 1e-7).unwrap();
        assert!(deeper(0.999_999) > deeper(0.99999) && deeper(0.99999) > at(1.0));
        assert!(deeper(1.0).is_finite() && (deeper(1.0) - deeper(1.0 - 1e-7)).abs() < 1e-9);
    }

    #[test]
    fn the_tail_scale_is_read_where_the_target_rate_provisions() {
        // 990 calm scores and 10 bursts fifty times their size: the body says the kind is cheap to
        // cover, its tail that covering it beyond the 99th percentile is not.
        let mut scores = Scores::default();
        for i in 0..1000 {
            let score = if i % 100 == 99 {
                50.0
            } else {
                (i % 100) as f64 / 100.0
            };
            scores.push(i, score);
        }
        let body = scores.tail_scale(0.1).unwrap();
        let at = |level: f64| f64::from(scores.sorted[(1000.0 * level) as usize]);
        assert!((body - (at(0.9) - at(0.5)) / 5f64.ln()).abs() < 1e-6, "{body}");
        assert_eq!(scores.tail_scale(0.5), scores.tail_scale(0.1));
        let tail = scores.tail_scale(0.01).unwrap();
        assert!((tail - (50.0 - at(0.95)) / 5f64.ln()).abs() < 1e-6, "{tail}");
        assert!(tail > 50.0 * body, "tail {tail}, body {body}");
    }

    #[test]
    fn with_few_scores_a_higher_quantile_still_buys_more_headroom() {
        // A kind of window seen 48 times a day (30-minute steps) holds about 336 scores after a week:
        // bounded by what they resolve, every quantile above 1 − 1/3370 provisioned the same.
        let mut rng = StdRng::seed_from_u64(5);
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        let scores = &mut calibrator.scores.entry(0).or_default()[Baseline::Model.index()];
        for i in 0..336 {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            for unit in scores.iter_mut() {
                unit.push(i, -u.ln());
            }
        }
        let headroom = |quantile: f64| {
            calibrator.set_signal(MissSignal::WindowPeak { quantile });
            calibrator.headroom_of(0, Baseline::Model, 400, [1.0; UNITS])[0].unwrap()[0]
        };
        let levels = [0.999, 0.9997, 0.9999, 0.99999];
        let headrooms = levels.map(headroom);
        for (pair, levels) in headrooms.windows(2).zip(levels.windows(2)) {
            assert!(
                pair[1] > pair[0] + 0.5,
                "q{} {} vs q{} {}",
                levels[1],
                pair[1],
                levels[0],
                pair[0]
            );
        }
        // An exponential tail: each tenfold smaller miss rate is about ln 10 more (within the fit's
        // error on 19 excesses).
        let per_decade = headrooms[3] - headrooms[2];
        assert!((per_decade - 10f64.ln()).abs() < 1.2, "{per_decade}");
    }

    #[test]
    fn a_new_workload_gets_calibrated_headroom_within_its_first_windows() {
        // No model yet: the plan has only the demand observed now. Windows are planned once a step (a
        // kind seen once a minute), on i.i.d. lognormal demand.
        let mut rng = StdRng::seed_from_u64(11);
        let noise = LogNormal { sigma: 0.3 };
        let values: Vec<f64> = (0..103).map(|_| 100.0 * noise.sample(&mut rng)).collect();
        let (misses, planned, _, _) = replay_windows(
            &values,
            |i, from, to| PlannedWindow {
                planned_at: from,
                from,
                to,
                model: None,
                observed: values[i],
            },
            MissSignal::WindowPeak { quantile: 0.9 },
            |_| true,
        );
        // Plans at steps 1..=100; the window planned at step i is realised by step i + 2, so from step
        // `MIN_SCORES + 2` on the calibration has its `MIN_SCORES` windows.
        assert_eq!(planned, 100 - MIN_SCORES - 1);
        // And already near its level: the observed demand alone misses about two thirds of two-step
        // peaks here (each of two fresh draws beats the current one half the time).
        let rate = misses as f64 / planned as f64;
        assert!(
            rate < 0.2,
            "miss rate {rate} over the first {planned} calibrated windows"
        );
    }

    #[test]
    fn the_day_totals_hold_a_day_in_a_bounded_number_of_buckets() {
        // Two days of 1 s records (the busiest a sync could be), each recording 1: the totals hold the
        // last day, to within one bucket, in at most a day's buckets plus the one in progress.
        let mut totals = DayTotals::<2>::default();
        let start = 1_000_000;
        let end = start + 2 * 86_400;
        for at in start..end {
            totals.record(at, [1.0, 2.0]);
        }
        let per_day = (SCORE_LOOKBACK_SECONDS / TOTALS_BUCKET_SECONDS) as usize;
        assert!(
            totals.buckets.len() <= per_day + 1,
            "{} buckets",
            totals.buckets.len()
        );
        let day = SCORE_LOOKBACK_SECONDS as f64;
        let bucket = TOTALS_BUCKET_SECONDS as f64;
        assert!(
            totals.sums[0] >= day - bucket && totals.sums[0] <= day + bucket,
            "{:?}",
            totals.sums
        );
        assert_eq!(totals.sums[1], 2.0 * totals.sums[0]);
        assert_eq!(totals.cheapest(), 0);
        // A record that is not finite changes nothing.
        let before = totals.clone();
        totals.record(end, [f64::NAN, 1.0]);
        assert_eq!(totals, before);
    }

    #[test]
    fn scores_give_back_the_room_of_the_scores_they_forget() {
        // A day with 2,000 windows of a kind, then a week in which it is seen once an hour: the
        // buffers shrink with what they hold instead of keeping the busy day's room.
        let mut scores = Scores::default();
        for i in 0..2_000 {
            scores.push(i * 40, (i % 97) as f64);
        }
        let busy = scores.sorted.capacity();
        assert!(busy >= 2_000);
        let mut at = 2_000 * 40;
        for i in 0..(7 * 24) {
            at += 3_600;
            scores.push(at, i as f64);
        }
        let held = scores.sorted.len();
        assert!(held <= MIN_SCORES_KEPT, "{held} scores held");
        for capacity in [scores.sorted.capacity(), scores.by_time.capacity()] {
            assert!(
                capacity <= held + held / 2 + 16,
                "room for {capacity} with {held} held"
            );
        }
        assert_eq!(scores.by_time.len(), held);
    }

    #[test]
    fn a_kind_seen_rarely_keeps_enough_scores_for_a_high_level_for_up_to_a_week() {
        const DAY: i64 = SCORE_LOOKBACK_SECONDS;
        // A kind seen every 30 minutes: 48 scores a day, each day's score at the day's number.
        let mut rare = Scores::default();
        for i in 0..=(10 * 48) {
            rare.push(i * 1_800, (i / 48) as f64);
        }
        // Beyond the day, but kept: at 48 a day, a week holds fewer than `MIN_SCORES_KEPT`.
        let oldest_at =
            |scores: &Scores| scores.epoch.unwrap() + i64::from(scores.by_time.front().unwrap().0);
        let oldest_kept = oldest_at(&rare);
        assert_eq!(oldest_kept, 10 * DAY - MAX_SCORE_AGE_SECONDS);
        assert_eq!(rare.sorted.len(), 7 * 48 + 1);
        assert_eq!(rare.sorted[0], 3.0, "days 0-2 are older than a week");

        // A kind seen every minute: 1,440 scores a day; one day's are enough, so only the day stays.
        let mut frequent = Scores::default();
        for i in 0..=(3 * 1_440) {
            frequent.push(i * 60, (i / 1_440) as f64);
        }
        assert_eq!(oldest_at(&frequent), 2 * DAY);
        assert_eq!(frequent.sorted.len(), 1_441);

        // Between the two: past the day, the oldest go only while more than `MIN_SCORES_KEPT` remain.
        let mut between = Scores::default();
        for i in 0..=(3 * 500) {
            between.push(i * (DAY / 500), 0.0);
        }
        assert_eq!(between.sorted.len(), MIN_SCORES_KEPT);
        assert_eq!(between.by_time.len(), between.sorted.len());
    }

    #[test]
    fn no_calibration_before_enough_windows_and_none_for_a_non_finite_forecast() {
        let mut calibrator = PeakCalibrator::new(MissSignal::WindowPeak { quantile: 0.9 });
        assert_eq!(calibrator.plan(window(0, 60, 10.0, 1.0), 0, 60), None);
        assert_eq!(calibrator.plan(window(60, 120, f64::NAN, 1.0), 0, 60), None);
        let (_, calibrator) = replay(
            &[5.0; 100],
            |_| (5.0, 1.0),
            MissSignal::WindowPeak { quantile: 0.9 },
        );
        assert!(calibrator.scores() >= MIN_SCORES);
    }
}
