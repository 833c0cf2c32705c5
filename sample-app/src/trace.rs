//! Trace files (`timestamp,value` CSV, unix seconds or RFC 3339) turned into a request-rate curve.
//!
//! `value` is the number of requests in the interval that starts at the row's timestamp, so the rate in
//! that interval is `value / step` requests per second, where `step` is the median row spacing.
//! The sample app knows nothing of the autoscaler, so this small parser is its own.

/// A trace that cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("trace header must be `timestamp,value`, got `{0}`")]
    Header(String),
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("trace needs at least two rows to know its step, got {0}")]
    TooShort(usize),
}

fn parse_timestamp(field: &str) -> Result<i64, String> {
    if let Ok(seconds) = field.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(seconds) = field.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 1e15
    {
        return Ok(seconds.floor() as i64);
    }
    field
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| format!("timestamp {field:?} is neither unix seconds nor RFC 3339"))
}

/// Parses trace CSV text into `(unix seconds, value)` rows, sorted by time.
pub fn parse_trace(text: &str) -> Result<Vec<(i64, f64)>, TraceError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| TraceError::Row {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let names: Vec<&str> = header.iter().collect();
    if names != ["timestamp", "value"] {
        return Err(TraceError::Header(names.join(",")));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| TraceError::Row {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let (Some(ts), Some(value)) = (record.get(0), record.get(1)) else {
            return Err(TraceError::Row {
                line,
                message: "expected two fields".to_owned(),
            });
        };
        let ts = parse_timestamp(ts).map_err(|message| TraceError::Row { line, message })?;
        let value: f64 = if value.is_empty() {
            f64::NAN
        } else {
            value.parse().map_err(|_| TraceError::Row {
                line,
                message: format!("value {value:?} is not a number"),
            })?
        };
        if value.is_finite() && value < 0.0 {
            return Err(TraceError::Row {
                line,
                message: format!("value must be >= 0, got {value}"),
            });
        }
        rows.push((ts, value));
    }
    rows.sort_by_key(|(ts, _)| *ts);
    Ok(rows)
}

/// Reads a trace file.
pub fn read_trace(path: &std::path::Path) -> Result<Vec<(i64, f64)>, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_trace(&text)
}

/// Request rate over trace time: piecewise constant per trace interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    /// Seconds between rows (the median spacing).
    pub step_seconds: i64,
    /// Requests per second in each interval, from the first row; gaps and missing values are 0.
    pub rates: Vec<f64>,
}

impl RateCurve {
    /// The curve of a trace's rows (`value` = requests in the interval).
    pub fn from_rows(rows: &[(i64, f64)]) -> Result<Self, TraceError> {
        if rows.len() < 2 {
            return Err(TraceError::TooShort(rows.len()));
        }
        let mut gaps: Vec<i64> = rows
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|g| *g > 0)
            .collect();
        gaps.sort_unstable();
        let Some(&step) = gaps.get(gaps.len() / 2) else {
            return Err(TraceError::TooShort(1));
        };
        let first = rows[0].0;
        let slots = usize::try_from((rows[rows.len() - 1].0 - first) / step + 1).unwrap_or(0);
        let mut rates = vec![0.0; slots];
        for (ts, value) in rows {
            let slot = usize::try_from((ts - first) / step).unwrap_or(0);
            if let Some(rate) = rates.get_mut(slot)
                && value.is_finite()
            {
                *rate = value / step as f64;
            }
        }
        Ok(Self {
            step_seconds: step,
            rates,
        })
    }

    /// Length of the trace in trace seconds.
    pub fn duration_seconds(&self) -> f64 {
        (self.rates.len() as f64) * self.step_seconds as f64
    }

    /// Requests per second at `offset` trace seconds from the start (0 past the end).
    pub fn rate_at(&self, offset: f64) -> f64 {
        if offset < 0.0 {
            return 0.0;
        }
        let slot = (offset / self.step_seconds as f64).floor() as usize;
        self.rates.get(slot).copied().unwrap_or(0.0)
    }

    /// Trace offset at which the interval containing `offset` ends.
    pub fn slot_end(&self, offset: f64) -> f64 {
        let step = self.step_seconds as f64;
        ((offset / step).floor() + 1.0) * step
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_unix_and_rfc3339_and_computes_rates_per_second() {
        let rows = parse_trace("timestamp,value\n1970-01-01T00:01:00Z,120\n0,60\n120,0\n").unwrap();
        assert_eq!(rows, vec![(0, 60.0), (60, 120.0), (120, 0.0)]);
        let curve = RateCurve::from_rows(&rows).unwrap();
        assert_eq!(curve.step_seconds, 60);
        assert_eq!(curve.rates, vec![1.0, 2.0, 0.0]);
        assert_eq!(curve.rate_at(59.9), 1.0);
        assert_eq!(curve.rate_at(60.0), 2.0);
        assert_eq!(curve.rate_at(500.0), 0.0);
        assert_eq!(curve.slot_end(61.0), 120.0);
    }

    #[test]
    fn rejects_bad_rows_naming_the_line() {
        let err = parse_trace("timestamp,value\n0,1\n60,abc\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(parse_trace("time,v\n0,1\n").is_err());
        assert!(parse_trace("timestamp,value\n0,-1\n").is_err());
        assert!(RateCurve::from_rows(&[(0, 1.0)]).is_err());
    }
}
