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

# Schemathesis against the dashboard's own OpenAPI document, without and with a bearer token (its own
# virtual environment under target/; a run that tests no case fails).
scripts/schemathesis.sh

# A real Kubernetes control plane on 127.0.0.1 (scripts/local-cluster.sh: the binaries are built once per
# machine with Go and cached in .cache/k8s): the CRD and its validation on the real API server, and
# `prescient run` as its least-privilege ServiceAccount (pre-scaling through /scale, status by server-side
# apply, events, outages, leader election, a conflicting HPA). A control plane that cannot start fails.
scripts/cluster-tests.sh
# ...and every group again against the oldest Kubernetes the operator is tested against (v1.33,
# tools/k8s-oldest; built once per machine like the pinned one): the CRD's CEL rules, /scale, server-side
# apply, Events and Leases as an older API server answers them.
LOCAL_CLUSTER_KUBERNETES=oldest scripts/cluster-tests.sh

# Kustomize overlays rendered and validated offline against the Kubernetes schemas; the CRD is checked
# against `prescient crd` by a cargo test.
scripts/validate-manifests.sh

# The notebooks, executed headless in their own virtual environment.
notebooks/run.sh

# Prescient beside statsforecast on one trace (the full table: scripts/peer-bench), so the comparison cannot rot.
scripts/peer-bench --quick
# ...and with the origins spread over the last day (the options the spread table in model/README.md uses).
scripts/peer-bench --quick --span 1d --peers SeasonalNaive

# Real-cluster end-to-end: against the cluster of $KUBECONFIG when set, otherwise against the local control
# plane (every overlay through a server-side dry run, the dev overlay applied and Available).
scripts/e2e-cluster.sh
# ...and, on the local control plane, against the oldest Kubernetes tested too: every manifest a user
# applies, through an older API server's schemas and admission.
if [ -z "${KUBECONFIG:-}" ]; then
  LOCAL_CLUSTER_KUBERNETES=oldest scripts/e2e-cluster.sh
fi
