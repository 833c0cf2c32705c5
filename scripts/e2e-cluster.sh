#!/usr/bin/env bash
# Real-cluster end-to-end test: applies manifests/ (the kustomize overlay manifests/overlays/dev: CRD,
# RBAC, operator, sample app, load generator, example PredictiveAutoscaler) to the cluster of the given
# kubeconfig and checks that the sample app is PRE-scaled: at some point the operator provisions more
# replicas than current demand needs, because of its forecast (decisionReason Predictive), and the
# target Deployment really has them.
#
# Usage: scripts/e2e-cluster.sh [--kubeconfig FILE] [--overlay DIR] [--timeout SECONDS] [--keep]
#        (or set KUBECONFIG). Without a kubeconfig it prints SKIPPED and exits 0.
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
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ -z "$kubeconfig" ]; then
  echo "SKIPPED: no kubeconfig given (set KUBECONFIG or pass --kubeconfig FILE); the real-cluster end-to-end test did not run"
  exit 0
fi
if [ ! -f "$kubeconfig" ]; then
  echo "FAIL: kubeconfig $kubeconfig does not exist" >&2
  exit 1
fi
if ! command -v kubectl >/dev/null; then
  echo "FAIL: kubectl is needed (Debian: apt-get install kubernetes-client)" >&2
  exit 1
fi
if [ ! -d "$overlay" ]; then
  echo "FAIL: overlay $overlay not found" >&2
  exit 1
fi
export KUBECONFIG="$kubeconfig"
k() { kubectl "$@"; }

echo "== cluster: $(k config current-context)"
k version >/dev/null || { echo "FAIL: cannot reach the cluster of $kubeconfig" >&2; exit 1; }

cleanup() {
  if [ "$keep" = 0 ]; then
    echo "== deleting $overlay (pass --keep to leave it running)"
    k delete -k "$overlay" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "== applying $overlay"
# The CRD first, so the example autoscaler in the same overlay finds its kind.
k apply -k manifests/crd
k wait --for=condition=Established crd/predictiveautoscalers.prescient.dev --timeout=60s
k apply -k "$overlay"

echo "== waiting for Deployments to be available"
for ns in $(k kustomize "$overlay" | awk '/^kind: Deployment/{d=1} d&&/^  namespace:/{print $2; d=0}' | sort -u); do
  k -n "$ns" wait --for=condition=Available deployment --all --timeout=300s
done

# The autoscaler under test: the first PredictiveAutoscaler the overlay created.
read -r pa_ns pa_name < <(k get predictiveautoscalers -A -o jsonpath='{range .items[0]}{.metadata.namespace} {.metadata.name}{end}')
if [ -z "${pa_name:-}" ]; then
  echo "FAIL: the overlay created no PredictiveAutoscaler" >&2
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
      echo "PASS: $target_kind/$target_name was pre-scaled to $replicas replicas while current demand needs $needed (forecast asks for $predictive)"
      k -n "$pa_ns" get events --field-selector "involvedObject.name=$pa_name" 2>/dev/null | tail -5 || true
      exit 0
    fi
  fi
  sleep 10
done
echo "FAIL: no pre-scaling of $target_kind/$target_name within ${timeout_s}s (last: $last)" >&2
k -n "$pa_ns" get pa "$pa_name" -o yaml >&2 || true
exit 1
