//! Trace files (`timestamp,value` CSV) and the trace-replay [`MetricsSource`].
//!
//! `timestamp` is unix seconds or RFC 3339; `value` is demand in the interval starting at the timestamp.
//! Errors name the file line, so a bad row in a 100,000-line trace is found at once.

use std::path::Path;

use prescient_model::TimeSeries;

use super::{MetricsError, MetricsSource};

/// A trace that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("trace header must be `timestamp,value`, got `{0}`")]
    Header(String),
    #[error("trace has no data rows")]
    Empty,
    #[error("trace cannot be put on a regular grid: {0}")]
    Grid(#[from] prescient_model::SeriesError),
}

/// Reads a trace file.
pub fn read_trace(path: &Path) -> Result<Vec<(i64, f64)>, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_trace(&text)
}

/// Parses a unix-seconds or RFC 3339 timestamp.
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

/// Parses trace CSV text. Rows keep file order; sorting, duplicates and gaps are the time series' job.
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
    let mut points = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| TraceError::Row {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row_error = |message: String| TraceError::Row { line, message };
        if record.len() != 2 {
            return Err(row_error(format!("expected 2 fields, got {}", record.len())));
        }
        let timestamp = parse_timestamp(&record[0]).map_err(row_error)?;
        let value_field = &record[1];
        // An empty value is a recorded gap, kept as missing rather than rejected.
        let value = if value_field.is_empty() {
            f64::NAN
        } else {
            value_field.parse::<f64>().map_err(|_| TraceError::Row {
                line,
                message: format!("value {value_field:?} is not a number"),
            })?
        };
        points.push((timestamp, value));
    }
    if points.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(points)
}

/// Puts trace points on a regular grid (the step is the median spacing).
pub fn trace_series(points: &[(i64, f64)]) -> Result<TimeSeries, TraceError> {
    Ok(TimeSeries::from_pairs(points)?)
}

/// The step of time-sorted trace points: the median of the positive spacings between them (`None` for
/// fewer than two distinct times).
pub fn median_step(sorted_points: &[(i64, f64)]) -> Option<i64> {
    let mut gaps: Vec<i64> = sorted_points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|gap| *gap > 0)
        .collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied()
}

/// Replays a trace as a metrics source: the query is ignored and the points in `[start, end]` returned,
/// so the simulator and the demo run the same loop as the operator. Points are kept sorted by time.
#[derive(Debug, Clone)]
pub struct TraceSource {
    points: Vec<(i64, f64)>,
}

impl TraceSource {
    pub fn new(mut points: Vec<(i64, f64)>) -> Self {
        points.sort_by_key(|&(t, _)| t);
        Self { points }
    }

    pub fn points(&self) -> &[(i64, f64)] {
        &self.points
    }

    /// Points in `[start, end]` (a binary search: the demo asks this every virtual sync).
    pub fn window(&self, start: i64, end: i64) -> &[(i64, f64)] {
        let from = self.points.partition_point(|&(t, _)| t < start);
        let to = self.points.partition_point(|&(t, _)| t <= end);
        &self.points[from..to.max(from)]
    }
}

impl MetricsSource for TraceSource {
    async fn range(
        &self,
        _query: &str,
        start: i64,
        end: i64,
        _step_seconds: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        let window = self.window(start, end);
        if window.is_empty() {
            return Err(MetricsError::Empty(format!(
                "trace has no points in [{start}, {end}]"
            )));
        }
        Ok(window.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_unix_and_rfc3339_timestamps() {
        let unix = parse_trace("timestamp,value\n60,1\n120,2.5\n").unwrap();
        assert_eq!(unix, vec![(60, 1.0), (120, 2.5)]);
        let rfc = parse_trace("timestamp,value\n1970-01-01T00:01:00Z,3\n").unwrap();
        assert_eq!(rfc, vec![(60, 3.0)]);
    }

    #[test]
    fn names_the_line_of_a_malformed_row() {
        let err = parse_trace("timestamp,value\n60,1\n120,abc\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        let err = parse_trace("timestamp,value\n60,1\nyesterday,2\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = parse_trace("timestamp,value\n60,1,9\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn rejects_wrong_header_and_empty_trace() {
        assert!(matches!(
            parse_trace("time,count\n1,2\n"),
            Err(TraceError::Header(_))
        ));
        assert!(matches!(parse_trace("timestamp,value\n"), Err(TraceError::Empty)));
    }

    #[test]
    fn empty_value_is_a_gap() {
        let points = parse_trace("timestamp,value\n60,\n").unwrap();
        assert!(points[0].1.is_nan());
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = read_trace(Path::new("/nonexistent/trace.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/trace.csv"));
    }

    #[test]
    fn source_returns_only_the_requested_window() {
        let source = TraceSource::new(vec![(180, 3.0), (60, 1.0), (120, 2.0)]);
        assert_eq!(source.window(60, 120), &[(60, 1.0), (120, 2.0)]);
        assert_eq!(source.window(121, 179), &[]);
        assert_eq!(source.window(200, 100), &[]);
    }
}
