//! One module per `prescient` subcommand: each defines its clap `Args` and an async `run` that parses
//! flags and wires parts together (adapters from [`crate::edges`], the core, the loop, the status
//! builder). No edge implementation or child process lives here (`tests/architecture.rs` checks it).
//! `main.rs` only wires them.

pub mod backtest;
pub mod crd;
pub mod demo;
pub mod forecast;
pub mod local;
pub mod run;
pub mod simulate;

use std::io::Write;

/// Writes a command's output to stdout and flushes it, returning the error instead of panicking as
/// `println!` does: a closed pipe (`prescient backtest … | head -c1`) or a full disk is the reader's or
/// the system's doing, not a bug. `main` turns a broken pipe into a quiet exit 0, as Unix tools do.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| anyhow::Error::new(e).context("cannot write the output to stdout"))
}

/// Whether an error came from writing to a pipe whose reader has gone (`EPIPE`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A future that resolves on SIGTERM or Ctrl-C: how a terminal, `timeout`, systemd or Kubernetes ask a
/// command to stop. The handlers are installed when this is called, not when the future is first
/// polled: a signal arriving in between would otherwise take the default action and kill the process
/// (seen as a flaky non-zero exit after SIGTERM in `tests/operator_cli.rs` on a loaded machine). Call it
/// inside the runtime, before announcing that the command started.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).ok();
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                () = received(&mut terminate) => {},
                () = received(&mut interrupt) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for the signal; never, when its handler could not be installed.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
