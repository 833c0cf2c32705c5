//! [`TimeSeries`]: demand on a regular time grid, and the cleaning that puts raw samples on it.
//!
//! Cleaning rules (documented in the crate README):
//! - the step is the median spacing of the distinct timestamps (or given);
//! - samples are sorted; a timestamp off the grid goes to the nearest slot; duplicates in one slot are
//!   averaged (on `append`, a new sample overwrites the slot: it is the fresher value);
//! - NaN and infinities are missing values; negative demand is impossible and clamped to 0;
//! - gaps of at most [`MAX_INTERPOLATED_GAP`] steps are linearly interpolated, longer ones stay missing
//!   (`NaN`) and the forecasters mask them;
//! - a grid longer than [`MAX_POINTS`] is refused (a wrong step or a stray timestamp would otherwise
//!   allocate gigabytes).

use crate::{SeriesError, TimeSeries};

/// Longest gap (in steps) filled by linear interpolation; longer gaps stay missing.
pub const MAX_INTERPOLATED_GAP: usize = 5;

/// Largest grid accepted (10 million points, about 19 years at one minute).
pub const MAX_POINTS: usize = 10_000_000;

/// Missing (non-finite) values become NaN; negative demand is clamped to 0.
fn clean_value(value: f64) -> f64 {
    if value.is_finite() {
        value.max(0.0)
    } else {
        f64::NAN
    }
}

/// Linearly interpolates interior gaps of at most `MAX_INTERPOLATED_GAP` steps, from index `from` on.
fn interpolate_short_gaps(values: &mut [f64], from: usize) {
    let mut previous: Option<usize> = values[..from.min(values.len())]
        .iter()
        .rposition(|v| v.is_finite());
    for i in from..values.len() {
        if !values[i].is_finite() {
            continue;
        }
        if let Some(p) = previous {
            let gap = i - p - 1;
            if gap > 0 && gap <= MAX_INTERPOLATED_GAP {
                let (a, b) = (values[p], values[i]);
                for j in 1..=gap {
                    values[p + j] = a + (b - a) * j as f64 / (gap + 1) as f64;
                }
            }
        }
        previous = Some(i);
    }
}

/// Slot of `t` on the grid starting at `start` (nearest slot).
fn slot(t: i64, start: i64, step: i64) -> i64 {
    let offset = t.saturating_sub(start);
    offset.div_euclid(step) + i64::from(offset.rem_euclid(step) * 2 >= step)
}

impl TimeSeries {
    /// Builds a series from samples; the step is the median spacing of the distinct timestamps.
    pub fn from_pairs(pairs: &[(i64, f64)]) -> Result<Self, SeriesError> {
        if pairs.is_empty() {
            return Err(SeriesError::Empty);
        }
        let mut times: Vec<i64> = pairs.iter().map(|p| p.0).collect();
        times.sort_unstable();
        times.dedup();
        if times.len() < 2 {
            return Err(SeriesError::NoStep(pairs.len()));
        }
        // The spacings in place of the times: no second copy of a long trace's timestamps.
        for i in 0..times.len() - 1 {
            times[i] = times[i + 1] - times[i];
        }
        times.pop();
        let middle = times.len() / 2;
        let (_, median, _) = times.select_nth_unstable(middle);
        let median = *median;
        drop(times);
        Self::from_pairs_with_step(pairs, median)
    }

    /// Builds a series from samples on a grid of `step_seconds`, starting at the earliest timestamp.
    pub fn from_pairs_with_step(pairs: &[(i64, f64)], step_seconds: i64) -> Result<Self, SeriesError> {
        if step_seconds <= 0 {
            return Err(SeriesError::InvalidStep(step_seconds));
        }
        let Some(start) = pairs.iter().map(|p| p.0).min() else {
            return Err(SeriesError::Empty);
        };
        let last = pairs.iter().map(|p| p.0).max().unwrap_or(start);
        let len = grid_len(start, last, step_seconds)?;
        let mut sums = vec![0.0; len];
        let mut counts = vec![0u32; len];
        for &(t, v) in pairs {
            let v = clean_value(v);
            let Ok(i) = usize::try_from(slot(t, start, step_seconds)) else {
                continue;
            };
            if i < len && v.is_finite() {
                sums[i] += v;
                counts[i] += 1;
            }
        }
        // The means in place of the sums: no second grid-long buffer.
        let mut values = sums;
        for (v, &c) in values.iter_mut().zip(&counts) {
            *v = if c > 0 { *v / f64::from(c) } else { f64::NAN };
        }
        drop(counts);
        interpolate_short_gaps(&mut values, 0);
        Ok(Self {
            start,
            step_seconds,
            values,
        })
    }

    /// Builds a series from values already on a grid (`values[i]` at `start + i * step_seconds`).
    /// Cleaning applies as for pairs (NaN/inf missing, negatives to 0, short gaps interpolated).
    pub fn from_values(start: i64, step_seconds: i64, values: Vec<f64>) -> Result<Self, SeriesError> {
        if step_seconds <= 0 {
            return Err(SeriesError::InvalidStep(step_seconds));
        }
        if values.len() > MAX_POINTS {
            return Err(SeriesError::TooLong(values.len(), MAX_POINTS));
        }
        let mut values: Vec<f64> = values.into_iter().map(clean_value).collect();
        interpolate_short_gaps(&mut values, 0);
        Ok(Self {
            start,
            step_seconds,
            values,
        })
    }

    /// Timestamp (unix seconds) of the first grid point.
    pub fn start(&self) -> i64 {
        self.start
    }

    pub fn step_seconds(&self) -> i64 {
        self.step_seconds
    }

    /// Values on the grid; `NaN` = missing.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Timestamp of the last grid point (for an empty series, one step before `start`, so that
    /// `end() + step` is where the next point goes).
    pub fn end(&self) -> i64 {
        self.timestamp(self.values.len()) - self.step_seconds
    }

    /// Timestamp of grid point `index`.
    pub fn timestamp(&self, index: usize) -> i64 {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        self.start.saturating_add(index.saturating_mul(self.step_seconds))
    }

    /// The newest finite value and its timestamp.
    pub fn last_finite(&self) -> Option<(i64, f64)> {
        self.values
            .iter()
            .rposition(|v| v.is_finite())
            .map(|i| (self.timestamp(i), self.values[i]))
    }

    /// Number of usable (finite) points.
    pub fn finite_len(&self) -> usize {
        self.values.iter().filter(|v| v.is_finite()).count()
    }

    /// Adds newer samples onto the grid: slots past the end are created (gaps NaN), a sample on an
    /// existing slot overwrites it, samples before `start` are ignored.
    pub fn append(&mut self, pairs: &[(i64, f64)]) -> Result<(), SeriesError> {
        if pairs.is_empty() {
            return Ok(());
        }
        if self.values.is_empty() {
            let fresh = Self::from_pairs_with_step(pairs, self.step_seconds)?;
            // Keep the grid phase of an empty series created with a start, when samples are on it.
            *self = fresh;
            return Ok(());
        }
        let last = pairs.iter().map(|p| p.0).max().unwrap_or(self.start);
        let needed = grid_len(self.start, last.max(self.end()), self.step_seconds)?;
        if needed > self.values.len() {
            self.values.resize(needed, f64::NAN);
        }
        let mut first_changed = self.values.len();
        for &(t, v) in pairs {
            let Ok(i) = usize::try_from(slot(t, self.start, self.step_seconds)) else {
                continue;
            };
            if i < self.values.len() {
                self.values[i] = clean_value(v);
                first_changed = first_changed.min(i);
            }
        }
        interpolate_short_gaps(&mut self.values, first_changed);
        Ok(())
    }

    /// Drops the points older than `start`.
    pub fn keep_since(&mut self, start: i64) {
        if start <= self.start {
            return;
        }
        let offset = start - self.start;
        let drop =
            usize::try_from((offset + self.step_seconds - 1) / self.step_seconds).unwrap_or(usize::MAX);
        let drop = drop.min(self.values.len());
        self.values.drain(..drop);
        self.start = self.timestamp(drop);
    }

    /// How many points are stamped at or before `end_inclusive` (the length of [`TimeSeries::until`]).
    pub fn points_until(&self, end_inclusive: i64) -> usize {
        let keep = if end_inclusive < self.start {
            0
        } else {
            usize::try_from((end_inclusive - self.start) / self.step_seconds + 1).unwrap_or(usize::MAX)
        };
        keep.min(self.values.len())
    }

    /// The prefix of the series up to `end_inclusive` (the history seen at that time).
    pub fn until(&self, end_inclusive: i64) -> TimeSeries {
        let keep = self.points_until(end_inclusive);
        TimeSeries {
            start: self.start,
            step_seconds: self.step_seconds,
            values: self.values[..keep].to_vec(),
        }
    }

    /// Absolute step index of the first point (`start / step`), used for calendar phases.
    pub(crate) fn start_index(&self) -> i64 {
        self.start.div_euclid(self.step_seconds)
    }
}

/// Number of grid points from `start` up to the slot of `last` inclusive, refusing absurd grids. The
/// slot is the nearest one, as in [`slot`]: with a first timestamp off the grid (`:07`, then `:00` on
/// every minute) the last sample may round up past `start + k * step`, and must not fall off the end.
fn grid_len(start: i64, last: i64, step: i64) -> Result<usize, SeriesError> {
    let (offset, step) = (i128::from(last) - i128::from(start), i128::from(step));
    let span = offset.div_euclid(step) + i128::from(offset.rem_euclid(step) * 2 >= step) + 1;
    let len = usize::try_from(span.max(1)).unwrap_or(usize::MAX);
    if len > MAX_POINTS {
        return Err(SeriesError::TooLong(len, MAX_POINTS));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn detects_step_sorts_and_averages_duplicates() {
        let s = TimeSeries::from_pairs(&[(120, 3.0), (0, 1.0), (60, 2.0), (60, 4.0), (180, 5.0)]).unwrap();
        assert_eq!(s.step_seconds(), 60);
        assert_eq!(s.start(), 0);
        assert_eq!(s.values(), &[1.0, 3.0, 3.0, 5.0]);
        assert_eq!(s.end(), 180);
    }

    #[test]
    fn short_gaps_interpolated_long_gaps_missing_negatives_clamped() {
        let mut pairs = vec![(0, 0.0), (60, f64::INFINITY), (120, 2.0), (180, -5.0)];
        pairs.push((180 + 60 * 20, 7.0));
        let s = TimeSeries::from_pairs_with_step(&pairs, 60).unwrap();
        assert_eq!(s.values()[1], 1.0);
        assert_eq!(s.values()[3], 0.0);
        assert!(s.values()[10].is_nan());
        assert_eq!(s.finite_len(), 5);
        assert_eq!(s.last_finite(), Some((1380, 7.0)));
    }

    #[test]
    fn keeps_the_newest_sample_when_the_first_timestamp_is_off_the_grid() {
        let mut pairs = vec![(7, 100.0)];
        pairs.extend((1..200).map(|i| (60 * i, 100.0)));
        pairs.push((11_990, 99_999.0));
        let s = TimeSeries::from_pairs(&pairs).unwrap();
        assert_eq!(s.len(), 201);
        assert_eq!(s.last_finite(), Some((s.end(), 99_999.0)));

        let mut appended = TimeSeries::from_pairs(&pairs[..200]).unwrap();
        appended.append(&pairs[200..]).unwrap();
        assert_eq!(appended.last_finite(), Some((appended.end(), 99_999.0)));
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        assert_eq!(TimeSeries::from_pairs(&[]), Err(SeriesError::Empty));
        assert_eq!(
            TimeSeries::from_pairs(&[(5, 1.0), (5, 2.0)]),
            Err(SeriesError::NoStep(2))
        );
        assert_eq!(
            TimeSeries::from_values(0, 0, vec![]),
            Err(SeriesError::InvalidStep(0))
        );
        assert!(matches!(
            TimeSeries::from_pairs_with_step(&[(0, 1.0), (i64::MAX / 2, 1.0)], 1),
            Err(SeriesError::TooLong(_, _))
        ));
    }

    #[test]
    fn append_overwrites_extends_and_trims() {
        let mut s = TimeSeries::from_values(0, 60, vec![1.0, 2.0]).unwrap();
        s.append(&[(60, 5.0), (240, 8.0)]).unwrap();
        assert_eq!(s.values(), &[1.0, 5.0, 6.0, 7.0, 8.0]);
        s.keep_since(100);
        assert_eq!(s.start(), 120);
        assert_eq!(s.values(), &[6.0, 7.0, 8.0]);
        let prefix = s.until(180);
        assert_eq!(prefix.values(), &[6.0, 7.0]);
        assert!(s.until(0).is_empty());
    }
}
