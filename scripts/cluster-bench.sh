#!/usr/bin/env bash
# Scale benchmark on the real API server (not a timed test: it reports figures, asserts nothing but that
# every autoscaler got a decision). N Deployments (kwok pods) and N PredictiveAutoscalers on the NASA demand
# of a backfilled real Prometheus; one `prescient run` as its ServiceAccount. Reports: time until every
# autoscaler has a decision, reconcile throughput over a steady window, API requests per sync (the API
# server's request counter over the window, less a baseline measured before the operator started), and
# the operator's RSS per autoscaler.
#
# Usage: scripts/cluster-bench.sh [N] [STEADY_SECONDS]   (defaults 1000 and 120; syncPeriod 30s)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n="${1:-1000}"
steady="${2:-120}"
export CLUSTER_TESTS_WORK="$root/target/cluster-bench"
# Reuse the helpers of the cluster tests (cluster start-up, Prometheus, ServiceAccount kubeconfig).
# shellcheck source=cluster-tests.sh
. scripts/cluster-tests.sh --source-only

if ! setup_operator_env; then
  echo "FAIL: set-up"
  exit 1
fi
ns=bench
kubectl create namespace "$ns" >/dev/null 2>&1
echo "== creating $n Deployments and $n PredictiveAutoscalers"
t0=$(date +%s)
for i in $(seq 1 "$n"); do
  deployment_yaml "$ns" "app-$i" 1
  echo "---"
done > "$work/deployments.yaml"
for i in $(seq 1 "$n"); do
  op_pa "$ns" "app-$i" "app-$i" Scale | sed 's/syncPeriod: 5s/syncPeriod: 30s/'
  echo "---"
done > "$work/autoscalers.yaml"
kubectl apply --server-side -f "$work/deployments.yaml" >/dev/null
kubectl apply --server-side -f "$work/autoscalers.yaml" >/dev/null
until [ "$(kubectl -n "$ns" get deployments -o jsonpath='{range .items[*]}{.status.readyReplicas}{"\n"}{end}' | grep -c '^1$')" -ge "$n" ]; do
  sleep 2
  [ $(( $(date +%s) - t0 )) -lt 600 ] || { echo "FAIL: the Deployments did not become ready within 600s"; exit 1; }
done
echo "   $n Deployments ready in $(( $(date +%s) - t0 ))s"

requests() {
  kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ { s += $NF } END { printf "%d\n", s }'
}
b0=$(requests); sleep 30; b1=$(requests)
baseline=$(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.2f", (b - a) / 30 }')
echo "   API server baseline without the operator: $baseline requests/s"

start_operator a || { echo "FAIL: operator did not start"; exit 1; }
pid=${op_pid[a]}
t_start=$(date +%s)
decided=0
while [ "$decided" -lt "$n" ]; do
  sleep 2
  decided=$(kubectl -n "$ns" get pa -o jsonpath='{range .items[*]}{.status.desiredReplicas}{"\n"}{end}' | grep -c '[0-9]')
  [ $(( $(date +%s) - t_start )) -lt 900 ] || break
done
first=$(( $(date +%s) - t_start ))
echo "   first decision for $decided/$n autoscalers within ${first}s"

r0=$(reconciles_of a); q0=$(requests); w0=$(date +%s)
sleep "$steady"
r1=$(reconciles_of a); q1=$(requests); w1=$(date +%s)
window=$((w1 - w0))
rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$pid/stat")
python3 - "$n" "$first" "$decided" "$r0" "$r1" "$q0" "$q1" "$window" "$baseline" "$rss_kb" "$hwm_kb" "$cpu" <<'PY'
import sys
n, first, decided, r0, r1, q0, q1, window = (int(float(x)) for x in sys.argv[1:9])
baseline, rss, hwm, cpu = (float(x) for x in sys.argv[9:13])
syncs = r1 - r0
rate = syncs / window
extra = (q1 - q0) / window - baseline
print(f"RESULT autoscalers={n} decided={decided} first_decision_all_s={first}")
print(f"RESULT reconciles_per_s={rate:.1f} (needed for every autoscaler each 30 s: {n / 30:.1f})")
print(f"RESULT api_requests_per_sync={extra / rate if rate else float('nan'):.2f} (operator-attributed {extra:.1f} req/s over a {window}s window)")
print(f"RESULT rss_mb={rss / 1024:.0f} peak_mb={hwm / 1024:.0f} rss_per_autoscaler_kb={rss / n:.0f} cpu_seconds={cpu:.0f}")
PY
