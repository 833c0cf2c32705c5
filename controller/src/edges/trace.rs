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
    // The io error is in the message and deliberately not a `source`, so that it is said once.
    #[error("cannot read trace {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("trace {path} is empty: write a `timestamp,value` header and at least two rows")]
    EmptyFile { path: String },
    #[error("trace {path} is not UTF-8 text: line {line} holds an invalid byte")]
    NotUtf8 { path: String, line: usize },
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("trace header must be `timestamp,value`, got `{0}`")]
    Header(String),
    #[error("trace has no data rows")]
    Empty,
    #[error(
        "trace has {rows} data row(s) at {times} distinct time(s): at least two rows at different times \
         are needed to find the step"
    )]
    TooFewRows { rows: usize, times: usize },
    #[error("trace cannot be put on a regular grid: {0}")]
    Grid(prescient_model::SeriesError),
}

impl From<prescient_model::SeriesError> for TraceError {
    fn from(error: prescient_model::SeriesError) -> Self {
        Self::Grid(error)
    }
}

/// Unix seconds beyond this (the year 5138) are taken for milliseconds and refused: read as seconds,
/// a 1-minute trace would have a 16-hour step and every forecast would be silently wrong.
const MAX_UNIX_SECONDS: i64 = 100_000_000_000;

/// Reads a trace file, streamed: memory holds the points, not the file's text as well (a 9-million-row
/// trace is 160 MB of text).
pub fn read_trace(path: &Path) -> Result<Vec<(i64, f64)>, TraceError> {
    let io = |error| TraceError::Io {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    match parse_reader(std::io::BufReader::with_capacity(1 << 16, file)) {
        Ok(points) => Ok(points),
        // The error paths read the file whole, to say exactly what is wrong with it.
        Err(ReadError::Io(error)) => Err(io(error)),
        Err(ReadError::Trace(error)) => {
            let bytes = std::fs::read(path).map_err(io)?;
            let path = path.display().to_string();
            Err(match std::str::from_utf8(&bytes) {
                Err(e) => TraceError::NotUtf8 {
                    path,
                    line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
                },
                Ok(text) if text.trim().is_empty() => TraceError::EmptyFile { path },
                Ok(_) => error,
            })
        }
    }
}

/// Why reading trace rows stopped: the reader failed, or the rows are wrong.
enum ReadError {
    Io(std::io::Error),
    Trace(TraceError),
}

impl From<TraceError> for ReadError {
    fn from(error: TraceError) -> Self {
        Self::Trace(error)
    }
}

/// The csv error of a row: an IO error of the reader is kept apart, so it is not reported as a bad row.
fn row_error(line: u64, error: csv::Error) -> ReadError {
    if !error.is_io_error() {
        return ReadError::Trace(TraceError::Row {
            line,
            message: error.to_string(),
        });
    }
    match error.into_kind() {
        csv::ErrorKind::Io(error) => ReadError::Io(error),
        // `is_io_error` said it is one; should csv disagree, it is still the reader that failed.
        kind => ReadError::Io(std::io::Error::other(format!("{kind:?}"))),
    }
}

/// Parses a unix-seconds or RFC 3339 timestamp.
fn parse_timestamp(field: &str) -> Result<i64, String> {
    let milliseconds = || {
        format!(
            "timestamp {field} looks like milliseconds: timestamps are unix seconds or RFC 3339 \
             (divide by 1000)"
        )
    };
    if let Ok(seconds) = field.parse::<i64>() {
        if seconds.abs() >= MAX_UNIX_SECONDS {
            return Err(milliseconds());
        }
        return Ok(seconds);
    }
    if let Ok(seconds) = field.parse::<f64>()
        && seconds.is_finite()
    {
        if seconds.abs() >= MAX_UNIX_SECONDS as f64 {
            return Err(milliseconds());
        }
        return Ok(seconds.floor() as i64);
    }
    field
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| format!("timestamp {field:?} is neither unix seconds nor RFC 3339"))
}

/// Parses trace CSV text. Rows keep file order; sorting, duplicates and gaps are the time series' job.
pub fn parse_trace(text: &str) -> Result<Vec<(i64, f64)>, TraceError> {
    match parse_reader(text.as_bytes()) {
        Ok(points) => Ok(points),
        Err(ReadError::Trace(error)) => Err(error),
        // Reading a string cannot fail; should it, it is a row error of the first line.
        Err(ReadError::Io(error)) => Err(TraceError::Row {
            line: 1,
            message: error.to_string(),
        }),
    }
}

fn parse_reader(input: impl std::io::Read) -> Result<Vec<(i64, f64)>, ReadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader.headers().map_err(|e| row_error(1, e))?.clone();
    let names: Vec<&str> = header.iter().collect();
    if names != ["timestamp", "value"] {
        return Err(TraceError::Header(names.join(",")).into());
    }
    let mut points = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(row_error(line, e));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let bad_row = |message: String| TraceError::Row { line, message };
        if record.len() != 2 {
            return Err(bad_row(format!("expected 2 fields, got {}", record.len())).into());
        }
        let timestamp = parse_timestamp(&record[0]).map_err(bad_row)?;
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
        return Err(TraceError::Empty.into());
    }
    // Growing by doubling leaves up to half the capacity unused: a third of the memory on a long trace.
    points.shrink_to_fit();
    Ok(points)
}

/// Puts trace points on a regular grid (the step is the median spacing).
pub fn trace_series(points: &[(i64, f64)]) -> Result<TimeSeries, TraceError> {
    match TimeSeries::from_pairs(points) {
        // Counted only here, so a long trace's timestamps are not copied once more.
        Err(prescient_model::SeriesError::NoStep(_) | prescient_model::SeriesError::Empty) => {
            let mut times: Vec<i64> = points.iter().map(|p| p.0).collect();
            times.sort_unstable();
            times.dedup();
            Err(TraceError::TooFewRows {
                rows: points.len(),
                times: times.len(),
            })
        }
        result => Ok(result?),
    }
}

/// How many trace rows each cleaning rule of [`TimeSeries`] touched, so that a repaired trace is
/// never repaired silently (printed on stderr and, with `--json`, as `"cleaning"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cleaning {
    /// Rows whose value was empty, NaN or infinite: kept as missing values.
    pub missing_values: usize,
    /// Rows with negative demand, clamped to 0.
    pub negative_values: usize,
    /// Rows that share a grid slot with an earlier row (duplicate timestamps): averaged with it.
    pub duplicate_rows: usize,
}

impl Cleaning {
    /// Counts the rows of `points` each rule touched when they were put on `series`' grid.
    pub fn of(points: &[(i64, f64)], series: &TimeSeries) -> Self {
        let (start, step) = (series.start(), series.step_seconds().max(1));
        let mut slots: Vec<i64> = points
            .iter()
            .map(|&(t, _)| {
                // The nearest slot, as `TimeSeries` places samples.
                let offset = t.saturating_sub(start);
                offset.div_euclid(step) + i64::from(offset.rem_euclid(step) * 2 >= step)
            })
            .collect();
        slots.sort_unstable();
        slots.dedup();
        Self {
            missing_values: points.iter().filter(|p| !p.1.is_finite()).count(),
            negative_values: points.iter().filter(|p| p.1 < 0.0).count(),
            duplicate_rows: points.len() - slots.len(),
        }
    }

    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// The counts as a note for stderr, when any rule touched a row.
    pub fn note(&self) -> Option<String> {
        (!self.is_clean()).then(|| self.to_string())
    }
}

impl std::fmt::Display for Cleaning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trace cleaning: {} row(s) with an empty, NaN or infinite value kept as missing, {} negative \
             value(s) clamped to 0, {} row(s) with a duplicate timestamp averaged",
            self.missing_values, self.negative_values, self.duplicate_rows
        )
    }
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
    fn refuses_millisecond_timestamps() {
        let err = parse_trace("timestamp,value\n1700000000000,1\n").unwrap_err();
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("milliseconds"),
            "{err}"
        );
        assert!(parse_trace("timestamp,value\n1700000000.5,1\n").is_ok());
    }

    #[test]
    fn counts_the_rows_each_cleaning_rule_touched() {
        let points =
            parse_trace("timestamp,value\n0,1\n60,\n60,3\n120,NaN\n180,-2\n240,inf\n240,5\n").unwrap();
        let series = trace_series(&points).unwrap();
        let cleaning = Cleaning::of(&points, &series);
        assert_eq!(
            cleaning,
            Cleaning {
                missing_values: 3,
                negative_values: 1,
                duplicate_rows: 2
            }
        );
        assert!(Cleaning::of(&points[..1], &series).is_clean());
    }

    #[test]
    fn one_row_is_too_few() {
        let points = parse_trace("timestamp,value\n60,1\n").unwrap();
        let err = trace_series(&points).unwrap_err();
        assert!(err.to_string().contains("at least two rows"), "{err}");
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
