//! The Prometheus edge: [`PrometheusSource`] implements [`MetricsSource`] with a range query
//! (`/api/v1/query_range`) through `prometheus-http-query`.
//!
//! Transient failures (connection refused, timeouts, Prometheus' own `timeout`/`unavailable`/`internal`
//! answers, a proxy's non-JSON error page) are retried with exponential backoff inside one overall
//! deadline, so a slow Prometheus delays a sync by a bounded time instead of stalling it. A PromQL error
//! is not retried: it becomes [`MetricsError::BadQuery`] at once. NaN and infinite samples are passed on
//! as NaN, which the model treats as missing.
//!
//! Each sample is stamped at the start of the step it closes, `t − step` ([`interval_start`]): a
//! demand query's sample at `t` (`rate(x[w])`, `increase`, `avg_over_time`) summarises the time
//! *before* `t`, while the core reads a value as the demand of the step starting at its timestamp, as
//! trace files and the simulator's history do. Read at `t`, every rise would sit a step later than it
//! happened, in the history and so in every forecast and calibration, and each scale-up would come a
//! step late: replayed that way on the Twitter 5-minute trace (2m start-up, `step` 5m), predictive was
//! short 8.8× the HPA@0.7's minutes at its cost instead of 0.38×. For an instantaneous gauge the shift
//! reads its value a step early, which only scales earlier.

use std::time::Duration;

use prometheus_http_query::{Client, Error as PromError, response::Data};

use super::{MetricsError, MetricsSource};

/// Why a [`PrometheusSource`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusConfigError {
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// Timeouts and retries of the Prometheus adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrometheusOptions {
    /// Timeout of one HTTP request (also sent to Prometheus as the query's evaluation timeout).
    pub request_timeout: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Sleep before the first retry; doubled before each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff sleep.
    pub max_backoff: Duration,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Prometheus' HTTP API as a [`MetricsSource`].
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client,
    url: String,
    options: PrometheusOptions,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("url", &self.url)
            .field("options", &self.options)
            .finish()
    }
}

/// One failed attempt: retry it or give up at once.
enum Attempt {
    Transient(MetricsError),
    Permanent(MetricsError),
}

impl PrometheusSource {
    /// A source for the Prometheus at `url` (e.g. `http://prometheus.monitoring:9090`).
    pub fn new(url: &str, options: PrometheusOptions) -> Result<Self, PrometheusConfigError> {
        // prometheus-http-query builds on reqwest 0.13 (the workspace has 0.12), so its own client is used
        // and each request is bounded by `tokio::time::timeout` instead of a reqwest timeout.
        let client = Client::try_from(url).map_err(|e| PrometheusConfigError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            url: url.to_owned(),
            options,
        })
    }

    /// The base URL this source queries.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn attempt(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_seconds: i64,
    ) -> Result<Vec<(i64, f64)>, Attempt> {
        let timeout_ms = i64::try_from(self.options.request_timeout.as_millis()).unwrap_or(i64::MAX);
        // POST keeps long PromQL expressions out of URL length limits.
        let request = self
            .client
            .query_range(query, start, end, step_seconds as f64)
            .timeout(timeout_ms)
            .post();
        let result = tokio::time::timeout(self.options.request_timeout, request)
            .await
            .map_err(|_| Attempt::Transient(MetricsError::Timeout(self.options.request_timeout)))?
            .map_err(|e| self.classify(e))?;
        match result.into_inner().0 {
            Data::Matrix(series) => match series.len() {
                0 => Err(Attempt::Permanent(MetricsError::Empty(format!(
                    "{query} has no samples between {start} and {end}"
                )))),
                1 => Ok(series
                    .into_iter()
                    .flat_map(|s| s.into_inner().1)
                    .map(|sample| (sample.timestamp().round() as i64, finite_or_nan(sample.value())))
                    .collect()),
                n => Err(Attempt::Permanent(MetricsError::MultipleSeries(n))),
            },
            Data::Scalar(sample) => {
                // A range query of a scalar expression answers a matrix in practice; accept a scalar anyway.
                Ok(vec![(
                    sample.timestamp().round() as i64,
                    finite_or_nan(sample.value()),
                )])
            }
            Data::Vector(_) => Err(Attempt::Permanent(MetricsError::BadQuery(
                "range query answered an instant vector".to_owned(),
            ))),
        }
    }

    fn classify(&self, error: PromError) -> Attempt {
        match &error {
            PromError::Prometheus(e) if e.is_bad_data() || e.is_execution() || e.is_not_found() => {
                Attempt::Permanent(MetricsError::BadQuery(e.to_string()))
            }
            PromError::Prometheus(e) if e.is_timeout() => {
                Attempt::Transient(MetricsError::Timeout(self.options.request_timeout))
            }
            PromError::Prometheus(e) => Attempt::Transient(MetricsError::Unavailable(e.to_string())),
            PromError::Client(e) if e.inner().is_some_and(|inner| inner.is_timeout()) => {
                Attempt::Transient(MetricsError::Timeout(self.options.request_timeout))
            }
            PromError::Client(e) => {
                let cause = e.inner().map(|inner| format!(": {inner}")).unwrap_or_default();
                Attempt::Transient(MetricsError::Unavailable(format!("{} ({e}{cause})", self.url)))
            }
            PromError::ParseUrl(e) => {
                Attempt::Permanent(MetricsError::Unavailable(format!("{}: {e}", self.url)))
            }
            other => Attempt::Permanent(MetricsError::Unavailable(other.to_string())),
        }
    }
}

/// NaN and ±Inf carry no usable demand: they become NaN, which the model treats as a missing point.
fn finite_or_nan(value: f64) -> f64 {
    if value.is_finite() { value } else { f64::NAN }
}

/// Stamps each sample at the start of the step that ends at its timestamp (see the module doc).
fn interval_start(points: Vec<(i64, f64)>, step_seconds: i64) -> Vec<(i64, f64)> {
    points
        .into_iter()
        .map(|(at, value)| (at.saturating_sub(step_seconds), value))
        .collect()
}

impl MetricsSource for PrometheusSource {
    async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_seconds: i64,
    ) -> Result<Vec<(i64, f64)>, MetricsError> {
        if step_seconds <= 0 || end < start {
            return Err(MetricsError::BadQuery(format!(
                "invalid range: start {start}, end {end}, step {step_seconds}s"
            )));
        }
        // The steps that start at `start` close with the sample a step later (a range shorter than a
        // step still answers the sample at its end: the demand now).
        let first_sample = start.saturating_add(step_seconds).min(end);
        let attempts = self.options.attempts.max(1);
        let mut backoff = self.options.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.attempt(query, first_sample, end, step_seconds).await {
                Ok(points) => return Ok(interval_start(points, step_seconds)),
                Err(Attempt::Permanent(error)) => return Err(error),
                Err(Attempt::Transient(error)) if attempt >= attempts => return Err(error),
                Err(Attempt::Transient(error)) => {
                    tracing::debug!(%error, attempt, "transient Prometheus error; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.max_backoff);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_malformed_url() {
        assert!(PrometheusSource::new("not a url", PrometheusOptions::default()).is_err());
    }

    #[test]
    fn non_finite_values_become_nan() {
        assert!(finite_or_nan(f64::INFINITY).is_nan());
        assert!(finite_or_nan(f64::NEG_INFINITY).is_nan());
        assert!(finite_or_nan(f64::NAN).is_nan());
        assert_eq!(finite_or_nan(2.5), 2.5);
    }

    #[tokio::test]
    async fn unreachable_prometheus_is_unavailable_after_retries() {
        // Bind then drop a listener: the port is free and nothing answers on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = PrometheusOptions {
            request_timeout: Duration::from_secs(2),
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        };
        let source = PrometheusSource::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
        let error = source.range("up", 0, 60, 15).await.unwrap_err();
        assert!(matches!(error, MetricsError::Unavailable(_)), "{error:?}");
    }
}
