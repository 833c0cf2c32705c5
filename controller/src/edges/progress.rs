//! Progress of long work on stderr: a bar on a terminal ([`indicatif`]), otherwise a line every
//! [`LINE_INTERVAL`] (a log or CI keeps a record, and a short run prints nothing).

use std::{
    io::{IsTerminal, Write},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{duration::format_duration, sim::progress::Progress};

/// How often a line is printed when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// A running progress report; [`Reporter::finish`] ends it (dropping it does too).
#[derive(Debug)]
pub struct Reporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Reports `progress` against `total_seconds` simulated seconds, labelled `what` (e.g. "3 policy
    /// replays"): a bar when stderr is a terminal, a line every [`LINE_INTERVAL`] otherwise.
    pub fn start(what: String, total_seconds: u64, progress: Progress) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::lines(what, total_seconds, progress, LINE_INTERVAL, std::io::stderr());
        }
        Self::spawn(move |stopped| {
            let total = total_seconds.max(1);
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {percent}% (eta {eta})",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(format!("simulating {what}"));
            while stopped.recv_timeout(Duration::from_millis(200)) == Err(mpsc::RecvTimeoutError::Timeout) {
                bar.set_position(progress.simulated_seconds().min(total));
            }
            bar.finish_and_clear();
        })
    }

    /// A line to `out` every `interval` until finished (a run shorter than `interval` prints none).
    pub fn lines(
        what: String,
        total_seconds: u64,
        progress: Progress,
        interval: Duration,
        mut out: impl Write + Send + 'static,
    ) -> Self {
        Self::spawn(move |stopped| {
            let total = total_seconds.max(1);
            let started = Instant::now();
            while stopped.recv_timeout(interval) == Err(mpsc::RecvTimeoutError::Timeout) {
                let done = progress.simulated_seconds().min(total);
                // A closed stderr is no reason to stop the work.
                let _ = writeln!(
                    out,
                    "simulate: {:.1}% of {what} ({} of {} simulated, {} elapsed)",
                    100.0 * done as f64 / total as f64,
                    format_duration(Duration::from_secs(done)),
                    format_duration(Duration::from_secs(total)),
                    format_duration(Duration::from_secs(started.elapsed().as_secs())),
                );
            }
        })
    }

    fn spawn(report: impl FnOnce(mpsc::Receiver<()>) + Send + 'static) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        Self {
            stop: Some(stop),
            thread: Some(std::thread::spawn(move || report(stopped))),
        }
    }

    /// Stops the report (and clears the bar).
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prints_periodic_lines_with_the_share_done() {
        let progress = Progress::default();
        let out = Shared::default();
        let reporter = Reporter::lines(
            "2 policy replay(s)".to_owned(),
            4000,
            progress.clone(),
            Duration::from_millis(30),
            out.clone(),
        );
        progress.add(1000);
        std::thread::sleep(Duration::from_millis(100));
        reporter.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("simulate: 25.0% of 2 policy replay(s) (16m40s of 1h6m40s simulated"),
            "{text}"
        );
    }

    #[test]
    fn a_short_run_prints_nothing() {
        let out = Shared::default();
        let reporter = Reporter::lines(
            "1".to_owned(),
            10,
            Progress::default(),
            LINE_INTERVAL,
            out.clone(),
        );
        reporter.finish();
        assert!(out.0.lock().unwrap().is_empty());
    }
}
