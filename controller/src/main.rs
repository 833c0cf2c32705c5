//! The `prescient` binary: parses the command line and hands over to `prescient::commands`.

use std::{io::Write, process::ExitCode};

use clap::{Parser, Subcommand};
use prescient::commands;

/// Prescient: a predictive autoscaler for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "prescient", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant's arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator against a Kubernetes cluster (kubeconfig or in-cluster).
    Run(commands::run::Args),
    /// Print the PredictiveAutoscaler CRD as YAML.
    Crd(commands::crd::Args),
    /// Forecast a trace file.
    Forecast(commands::forecast::Args),
    /// Compare every model on a trace by rolling-origin backtest.
    Backtest(commands::backtest::Args),
    /// Replay a trace through a simulated cluster under predictive, reactive (HPA) and oracle policies.
    Simulate(commands::simulate::Args),
    /// The embedded demo: a real trace drives a simulated cluster in accelerated time, with the dashboard.
    Demo(commands::demo::Args),
    /// A live local run: sample-app processes scaled by the controller, scraped by a real Prometheus.
    Local(commands::local::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): nothing is wrong and nobody is listening.
        Err(error) if commands::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Written without `eprintln!`, which would panic if stderr is gone too.
            let _ = writeln!(std::io::stderr(), "Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => commands::run::run(args).await,
        Command::Crd(args) => commands::crd::run(args).await,
        Command::Forecast(args) => commands::forecast::run(args).await,
        Command::Backtest(args) => commands::backtest::run(args).await,
        Command::Simulate(args) => commands::simulate::run(args).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Local(args) => commands::local::run(args).await,
    }
}
