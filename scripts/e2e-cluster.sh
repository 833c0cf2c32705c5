#!/usr/bin/env bash
# Real-cluster end-to-end test. Every kustomize overlay is sent to the API server (server-side dry run:
# admission, the CRD's schema and every built-in schema answer, not an offline copy), then
# manifests/overlays/dev (CRD, RBAC, operator, Prometheus, sample app, example PredictiveAutoscaler) is
# applied and its Deployments must become Available.
#
# With a kubeconfig (--kubeconfig FILE or KUBECONFIG) it runs against that cluster and then checks that
# the sample app is PRE-scaled: at some point the operator provisions more replicas than current demand
# needs, because of its forecast (decisionReason Predictive), and the target Deployment really has them.
# Without one it starts the local control plane (scripts/local-cluster.sh: real API server, kwok nodes)
# and stops it afterwards; kwok runs no containers, so there the operator's pre-scaling is proven by
# scripts/cluster-tests.sh (group `operator`), which runs `prescient run` as a process against it.
#
# Usage: scripts/e2e-cluster.sh [--kubeconfig FILE] [--overlay DIR] [--timeout SECONDS] [--keep]
# The last line is `N passed, N failed`; the exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig="${KUBECONFIG:-}"
overlay="manifests/overlays/dev"
timeout_s="${E2E_TIMEOUT:-900}"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig) kubeconfig="$2"; shift 2 ;;
    --kubeconfig=*) kubeconfig="${1#*=}"; shift ;;
    --overlay) overlay="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
local_cluster=0
finish() {
  local rc=${1:-$?}
  if [ "$local_cluster" = 1 ] && [ "$keep" = 0 ]; then scripts/local-cluster.sh down >/dev/null 2>&1 || true; fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then fail "exited with status $rc"; fi
  echo "$passed passed, $failed failed"
  exit $((failed > 0))
}
trap finish EXIT

if [ -z "$kubeconfig" ]; then
  echo "== no kubeconfig given: starting the local control plane (scripts/local-cluster.sh up)"
  export LOCAL_CLUSTER_DIR="${LOCAL_CLUSTER_DIR:-$PWD/target/e2e-cluster}"
  if ! up_out=$(scripts/local-cluster.sh up); then
    fail "the local control plane did not start (scripts/local-cluster.sh up)"
    exit 1
  fi
  local_cluster=1
  kubeconfig=$(echo "$up_out" | sed -n 's/^KUBECONFIG=//p' | tail -1)
  PATH="$(echo "$up_out" | sed -n 's/^LOCAL_CLUSTER_BIN=//p' | tail -1):$PATH"
fi
if [ ! -f "$kubeconfig" ]; then
  fail "kubeconfig $kubeconfig does not exist"
  exit 1
fi
if ! command -v kubectl >/dev/null; then
  fail "kubectl is needed (Debian: apt-get install kubernetes-client)"
  exit 1
fi
if [ ! -d "$overlay" ]; then
  fail "overlay $overlay not found"
  exit 1
fi
export KUBECONFIG="$kubeconfig"
k() { kubectl "$@"; }

echo "== cluster: $(k config current-context)"
k version >/dev/null || { fail "cannot reach the cluster of $kubeconfig"; exit 1; }

cleanup() {
  local rc=$?
  if [ "$keep" = 0 ] && [ "$local_cluster" = 0 ]; then
    echo "== deleting $overlay (pass --keep to leave it running)"
    k delete -k "$overlay" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  finish "$rc"
}
trap cleanup EXIT

echo "== applying the CRD"
# The CRD first, so the autoscalers in the overlays find their kind (a dry run creates nothing).
if out=$(k apply --server-side -k manifests/crd 2>&1) && k wait --for=condition=Established crd/predictiveautoscalers.prescient.dev --timeout=60s >/dev/null; then
  pass "CRD applied and Established"
else
  fail "CRD: $out"
  exit 1
fi

echo "== server-side dry run of every overlay"
for dir in manifests/overlays/*/; do
  dir=${dir%/}
  # Namespaces must exist for a dry run of the objects in them: create them for real (they are empty).
  for ns in $(k kustomize "$dir" | awk '/^kind: Namespace/{n=1} n&&/^  name:/{print $2; n=0}'); do
    k create namespace "$ns" >/dev/null 2>&1 || true
  done
  if out=$(k apply --dry-run=server --server-side --field-manager=e2e -k "$dir" 2>&1); then
    if echo "$out" | grep -qi warning; then
      fail "server-side dry run of $dir warns: $(echo "$out" | grep -i warning | head -3)"
    else
      pass "server-side dry run of $dir: $(echo "$out" | wc -l) objects accepted"
    fi
  else
    fail "server-side dry run of $dir: $(echo "$out" | grep -iv 'serverside-applied\|(server dry run)$' | head -5)"
  fi
done

echo "== applying $overlay"
if out=$(k apply -k "$overlay" 2>&1); then
  pass "applied $overlay ($(echo "$out" | wc -l) objects)"
else
  fail "kubectl apply -k $overlay: $out"
  exit 1
fi

echo "== waiting for Deployments to be available"
for ns in $(k kustomize "$overlay" | awk '/^kind: Deployment/{d=1} d&&/^  namespace:/{print $2; d=0}' | sort -u); do
  if k -n "$ns" wait --for=condition=Available deployment --all --timeout=300s; then
    pass "Deployments in $ns Available"
  else
    fail "Deployments in $ns not Available"
  fi
done

if [ "$local_cluster" = 1 ]; then
  echo "== the local cluster's kwok nodes run no containers: the in-cluster operator's pre-scaling is not"
  echo "   watched here; scripts/cluster-tests.sh (group operator) runs \`prescient run\` against the real API server"
  exit 0
fi

# The autoscaler under test: the first PredictiveAutoscaler the overlay created.
read -r pa_ns pa_name < <(k get predictiveautoscalers -A -o jsonpath='{range .items[0]}{.metadata.namespace} {.metadata.name}{end}')
if [ -z "${pa_name:-}" ]; then
  fail "the overlay created no PredictiveAutoscaler"
  exit 1
fi
target_kind=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.spec.scaleTargetRef.kind}')
target_name=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.spec.scaleTargetRef.name}')
per_replica=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.spec.metric.targetPerReplica}')
echo "== watching $pa_ns/$pa_name scaling $target_kind/$target_name (target $per_replica per replica) for up to ${timeout_s}s"

deadline=$(( $(date +%s) + timeout_s ))
last=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  reason=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.status.decisionReason}' 2>/dev/null || true)
  demand=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.status.forecast.currentDemand}' 2>/dev/null || true)
  predictive=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{.status.forecast.predictiveReplicas}' 2>/dev/null || true)
  health=$(k -n "$pa_ns" get pa "$pa_name" -o jsonpath='{range .status.conditions[?(@.type=="ForecastHealthy")]}{.status}/{.reason}{end}' 2>/dev/null || true)
  replicas=$(k -n "$pa_ns" get "$target_kind" "$target_name" -o jsonpath='{.spec.replicas}' 2>/dev/null || true)
  line="reason=${reason:-none} forecastHealthy=${health:-?} demand=${demand:-?} predictive=${predictive:-?} replicas=${replicas:-?}"
  [ "$line" != "$last" ] && echo "   $(date -u +%H:%M:%S) $line"
  last="$line"
  if [ "$reason" = "Predictive" ] && [ -n "$demand" ] && [ -n "$replicas" ]; then
    # Replicas current demand alone needs; pre-scaled means the target already has more than that.
    needed=$(awk -v d="$demand" -v c="$per_replica" 'BEGIN { n = d / c; r = int(n); if (r < n) r++; if (r < 1) r = 1; print r }')
    if [ "$replicas" -gt "$needed" ]; then
      pass "$target_kind/$target_name was pre-scaled to $replicas replicas while current demand needs $needed (forecast asks for $predictive)"
      k -n "$pa_ns" get events --field-selector "involvedObject.name=$pa_name" 2>/dev/null | tail -5 || true
      exit 0
    fi
  fi
  sleep 10
done
fail "no pre-scaling of $target_kind/$target_name within ${timeout_s}s (last: $last)"
k -n "$pa_ns" get pa "$pa_name" -o yaml >&2 || true
exit 1
