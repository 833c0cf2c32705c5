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

/// Resolves on SIGTERM or Ctrl-C: how a terminal, `timeout`, systemd or Kubernetes ask a command to
/// stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
