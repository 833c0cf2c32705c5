//! The operator's command line: `prescient crd` prints the committed manifest, `prescient run --help`
//! documents every flag, and `run` without a cluster fails with a clear message instead of hanging.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn prescient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescient"))
}

#[test]
fn crd_command_prints_the_committed_manifest() {
    let output = prescient().arg("crd").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/crd/predictiveautoscaler.yaml"
    ))
    .unwrap();
    assert!(
        String::from_utf8(output.stdout).unwrap() == committed,
        "regenerate: cargo run -p prescient -- crd > manifests/crd/predictiveautoscaler.yaml"
    );
}

#[test]
fn run_help_lists_every_flag() {
    let output = prescient().args(["run", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--prometheus-url",
        "--dashboard-addr",
        "--dashboard-token",
        "--metrics-addr",
        "--log-format",
        "--leader-election",
        "--lease-namespace",
        "--lease-name",
    ] {
        assert!(
            help.contains(flag),
            "`prescient run --help` lacks {flag}:\n{help}"
        );
    }
    assert!(
        help.contains("PRESCIENT_DASHBOARD_TOKEN"),
        "the token's env var is documented"
    );
}

#[test]
fn run_without_a_cluster_fails_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    let output = prescient()
        .args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--dashboard-addr",
            "127.0.0.1:0",
        ])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("missing-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to Kubernetes"), "{stderr}");
}
