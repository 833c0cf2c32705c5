//! `prescient crd`: prints the `PredictiveAutoscaler` CRD as YAML, generated from the Rust types in
//! [`crate::crd`]. `manifests/crd/predictiveautoscaler.yaml` is this output, checked by a test.

use std::io::Write;

use anyhow::Context;

/// Arguments of `prescient crd`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    let yaml = crate::crd::crd_yaml().context("serialising the CRD as YAML")?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(yaml.as_bytes())
        .context("writing the CRD to stdout")?;
    stdout.flush().context("writing the CRD to stdout")?;
    Ok(())
}
