#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every layer of DESIGN.md's testing plan.
# Usage: scripts/test.sh   (from anywhere; needs root or sudo for apt on a fresh machine)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# Build every binary once (the end-to-end tests start sample-app, loadgen and prescient as processes).
cargo build --workspace --all-targets --locked

# Unit, property, reconcile (in-memory API), Prometheus integration, live local, dashboard and browser tests.
cargo test --workspace --locked --no-fail-fast

# Kustomize overlays rendered and validated offline against the Kubernetes schemas; the CRD is checked
# against `prescient crd` by a cargo test.
scripts/validate-manifests.sh

# The notebooks, executed headless in their own virtual environment.
notebooks/run.sh

# Prescient beside statsforecast on one trace (the full table: scripts/peer-bench), so the comparison cannot rot.
scripts/peer-bench --quick

# Real-cluster end-to-end: runs only with a kubeconfig, and says so when skipped.
scripts/e2e-cluster.sh
