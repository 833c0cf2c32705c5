#!/usr/bin/env bash
# Scale benchmark on the real API server (not a timed test: it reports figures, asserts nothing but that
# every autoscaler got a decision). N scale targets and N PredictiveAutoscalers (syncPeriod 30s) on the NASA
# demand of a backfilled real Prometheus; one `prescient run` as its ServiceAccount. Reports: time until
# every autoscaler has a decision, reconcile throughput over a steady window, API requests per sync (the
# API server's request counter over the window, less a baseline measured before the operator started, and
# broken down by resource and verb), the operator's RSS per autoscaler (after the first decisions and at
# the end), and the CPU each process of the machine used over the window.
#
# Usage: scripts/cluster-bench.sh [N] [STEADY_SECONDS]   (defaults 1000 and 120)
# Environment:
#   BENCH_TARGET=deployment  (default) N Deployments of one kwok pod each; waits until all are Ready.
#   BENCH_TARGET=scalable    N objects of a bench-only custom kind (scalables.bench.prescient.dev) with a
#                            /scale subresource, no pods: the operator reads and writes them through the
#                            same `/scale` path as a Deployment (discovery once, then get /scale, get the
#                            object for status.readyReplicas, put /scale), but nothing else in the cluster
#                            reacts to a scale. Their status is the one they were created with (1 replica,
#                            1 ready). Bench-only RBAC (a ClusterRole for that kind, aggregated into the
#                            operator's by its label) is added for it.
#                            On 2 cores 10,000 kwok pods do not become Ready in 10 minutes; this does.
#   PRESCIENT_BIN            the operator binary (default ${CARGO_TARGET_DIR:-target}/debug/prescient).
#   BENCH_PARALLEL           kubectl processes creating the objects in parallel chunks (default 4).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
n="${1:-1000}"
steady="${2:-120}"
kind="${BENCH_TARGET:-deployment}"
parallel="${BENCH_PARALLEL:-4}"
case "$kind" in
  deployment | scalable) ;;
  *) echo "BENCH_TARGET must be deployment or scalable, not $kind" >&2; exit 2 ;;
esac
export CLUSTER_TESTS_WORK="$root/target/cluster-bench"
# Reuse the helpers of the cluster tests (cluster start-up, Prometheus, ServiceAccount kubeconfig).
# shellcheck source-path=SCRIPTDIR source=cluster-tests.sh
. scripts/cluster-tests.sh --source-only
if [ -n "${PRESCIENT_BIN:-}" ]; then
  # shellcheck disable=SC2034 # read by start_operator in cluster-tests.sh
  prescient="$PRESCIENT_BIN"
fi
echo "   operator binary: $prescient; target kind: $kind"

if ! setup_operator_env; then
  echo "FAIL: set-up"
  exit 1
fi
ns=bench
kubectl create namespace "$ns" >/dev/null 2>&1

if [ "$kind" = scalable ]; then
  # Bench only: a workload-like kind with a /scale subresource and no pods. No status subresource, so the
  # status (replicas, readyReplicas) is written with the object and stays as created.
  { custom_kind_crd bench.prescient.dev scalables Scalable scale; cat <<'YAML'; } |
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: prescient-bench-scalables, labels: { rbac.prescient.dev/aggregate-to-operator: "true" } }
rules:
  - apiGroups: ["bench.prescient.dev"]
    resources: ["scalables/scale"]
    verbs: ["get", "patch", "update"]
  - apiGroups: ["bench.prescient.dev"]
    resources: ["scalables"]
    verbs: ["get"]
YAML
    kubectl apply --server-side -f - >/dev/null || { echo "FAIL: bench CRD"; exit 1; }
  kubectl wait --for=condition=Established crd/scalables.bench.prescient.dev --timeout=30s >/dev/null ||
    { echo "FAIL: bench CRD not Established"; exit 1; }
  target_template() {
    cat <<YAML
apiVersion: bench.prescient.dev/v1
kind: Scalable
metadata: { name: NAME, namespace: $ns }
spec: { replicas: 1 }
status: { replicas: 1, readyReplicas: 1 }
YAML
  }
  pa_template() {
    op_pa "$ns" NAME NAME Scale |
      sed -e 's/syncPeriod: 5s/syncPeriod: 30s/' \
        -e 's|scaleTargetRef: .*|scaleTargetRef: { apiVersion: bench.prescient.dev/v1, kind: Scalable, name: NAME }|'
  }
else
  target_template() { deployment_yaml "$ns" NAME 1; }
  pa_template() { op_pa "$ns" NAME NAME Scale | sed 's/syncPeriod: 5s/syncPeriod: 30s/'; }
fi

# N copies of a template (NAME -> app-I), in chunks of at most 500 objects, one file per chunk.
render() { # TEMPLATE-FILE PREFIX
  awk -v n="$n" -v prefix="$2" '
    { tpl = tpl $0 "\n" }
    END {
      for (i = 1; i <= n; i++) {
        f = sprintf("%s-%05d.yaml", prefix, int((i - 1) / 500))
        s = tpl; gsub(/NAME/, "app-" i, s)
        printf "%s---\n", s > f
      }
    }' "$1"
}
# Server-side apply of every chunk, BENCH_PARALLEL kubectl processes at a time.
apply_chunks() { # PREFIX
  local failed
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  failed=$(printf '%s\n' "$1"-*.yaml | xargs -P "$parallel" -I{} sh -c 'kubectl apply --server-side -f "$1" >/dev/null 2>"$1.err" || echo "$1"' _ {})
  [ -z "$failed" ] || { echo "FAIL: applying $failed: $(head -3 "${failed%%$'\n'*}.err")"; exit 1; }
}

echo "== creating $n ${kind}s and $n PredictiveAutoscalers"
t0=$(date +%s)
rm -f "$work"/targets-*.yaml "$work"/autoscalers-*.yaml
target_template > "$work/target.tpl"
pa_template > "$work/autoscaler.tpl"
render "$work/target.tpl" "$work/targets"
render "$work/autoscaler.tpl" "$work/autoscalers"
apply_chunks "$work/targets"
echo "   $n ${kind}s created in $(( $(date +%s) - t0 ))s"
t1=$(date +%s)
apply_chunks "$work/autoscalers"
echo "   $n PredictiveAutoscalers created in $(( $(date +%s) - t1 ))s"
if [ "$kind" = deployment ]; then
  until [ "$(kubectl -n "$ns" get deployments -o jsonpath='{range .items[*]}{.status.readyReplicas}{"\n"}{end}' | grep -c '^1$')" -ge "$n" ]; do
    sleep 2
    [ $(( $(date +%s) - t0 )) -lt 600 ] || { echo "FAIL: the Deployments did not become ready within 600s"; exit 1; }
  done
  echo "   $n Deployments ready in $(( $(date +%s) - t0 ))s"
else
  # What the operator needs: every object exists and the API server serves its /scale.
  count=$(kubectl -n "$ns" get scalables -o name | wc -l)
  [ "$count" -ge "$n" ] || { echo "FAIL: $count of $n scalables exist"; exit 1; }
  kubectl get --raw "/apis/bench.prescient.dev/v1/namespaces/$ns/scalables/app-$n/scale" | grep -q '"replicas":1' ||
    { echo "FAIL: /scale of scalables/app-$n not served"; exit 1; }
  echo "   $n scalables exist and serve /scale, $(( $(date +%s) - t0 ))s after the start"
fi

requests() {
  kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ { s += $NF } END { printf "%d\n", s }'
}
# The API server's request counter per verb, resource and subresource (and code when not 2xx).
requests_by() {
  kubectl get --raw /metrics | awk '
    /^apiserver_request_total\{/ {
      labels = $0; sub(/^[^{]*\{/, "", labels); sub(/\}.*$/, "", labels)
      verb = resource = sub_ = code = ""
      k = split(labels, kv, ",")
      for (j = 1; j <= k; j++) {
        split(kv[j], p, "="); gsub(/"/, "", p[2])
        if (p[1] == "verb") verb = p[2]; else if (p[1] == "resource") resource = p[2]
        else if (p[1] == "subresource") sub_ = p[2]; else if (p[1] == "code") code = p[2]
      }
      key = verb " " resource (sub_ != "" ? "/" sub_ : "") (code !~ /^2/ ? " code=" code : "")
      s[key] += $NF
    }
    END { for (key in s) printf "%s\t%d\n", key, s[key] }' | sort
}
# utime+stime (clock ticks) of every process of the bench: "name ticks" lines.
cpu_ticks() {
  local f name
  for f in "$LOCAL_CLUSTER_DIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    awk -v name="$name" '{ print name, $14 + $15 }' "/proc/$(cat "$f")/stat" 2>/dev/null
  done
  awk '{ print "prometheus", $14 + $15 }' "/proc/$prom_pid/stat" 2>/dev/null
  awk '{ print "operator", $14 + $15 }' "/proc/$pid/stat" 2>/dev/null
  awk '{ print "machine", $2 + $3 + $4 + $7 + $8 }' /proc/stat | head -1
}
b0=$(requests); sleep 30; b1=$(requests)
baseline=$(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.2f", (b - a) / 30 }')
echo "   API server baseline without the operator: $baseline requests/s"

start_operator a || { echo "FAIL: operator did not start"; exit 1; }
pid=${op_pid[a]}
t_start=$(date +%s)
# A list of 10,000 autoscalers is work for the API server too: poll less often when there are many.
poll=$(( n > 2000 ? 10 : 2 ))
decided=0
while [ "$decided" -lt "$n" ]; do
  sleep "$poll"
  decided=$(kubectl -n "$ns" get pa -o jsonpath='{range .items[*]}{.status.desiredReplicas}{"\n"}{end}' | grep -c '[0-9]')
  # Progress: seconds since the start, autoscalers decided, operator RSS (KB).
  echo "$(( $(date +%s) - t_start )) $decided $(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")" >> "$work/first-decisions.txt"
  [ $(( $(date +%s) - t_start )) -lt 1800 ] || break
done
first=$(( $(date +%s) - t_start ))
first_rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
echo "   first decision for $decided/$n autoscalers within ${first}s (polled every ${poll}s); operator RSS then $((first_rss_kb / 1024)) MB"
object_bytes=$(kubectl -n "$ns" get pa -o json | python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(sum(len(json.dumps(i, separators=(",", ":"))) for i in items) // max(len(items), 1))')
echo "   an autoscaler as the watch receives it (JSON, managedFields included): $object_bytes bytes"

r0=$(reconciles_of a); q0=$(requests); w0=$(date +%s)
requests_by > "$work/requests-0.tsv"
cpu_ticks > "$work/cpu-0.txt"
curl -s "${op_metrics[a]}/metrics" > "$work/operator-metrics-0.txt"
sleep "$steady"
r1=$(reconciles_of a); q1=$(requests); w1=$(date +%s)
requests_by > "$work/requests-1.tsv"
cpu_ticks > "$work/cpu-1.txt"
curl -s "${op_metrics[a]}/metrics" > "$work/operator-metrics.txt"
window=$((w1 - w0))
rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$pid/stat")
python3 - "$n" "$first" "$decided" "$r0" "$r1" "$q0" "$q1" "$window" "$baseline" "$rss_kb" "$hwm_kb" "$cpu" \
  "$first_rss_kb" "$work" "$(getconf CLK_TCK)" <<'PY'
import sys
n, first, decided, r0, r1, q0, q1, window = (int(float(x)) for x in sys.argv[1:9])
baseline, rss, hwm, cpu, first_rss = (float(x) for x in sys.argv[9:14])
work, tck = sys.argv[14], int(sys.argv[15])
syncs = r1 - r0
rate = syncs / window
extra = (q1 - q0) / window - baseline
print(f"RESULT autoscalers={n} decided={decided} first_decision_all_s={first}")
print(f"RESULT reconciles_per_s={rate:.1f} (needed for every autoscaler each 30 s: {n / 30:.1f})")
print(f"RESULT api_requests_per_sync={extra / rate if rate else float('nan'):.2f} (operator-attributed {extra:.1f} req/s over a {window}s window)")
print(f"RESULT rss_mb={rss / 1024:.0f} peak_mb={hwm / 1024:.0f} rss_per_autoscaler_kb={rss / n:.0f} cpu_seconds={cpu:.0f}")
print(f"RESULT rss_after_first_decisions_mb={first_rss / 1024:.0f} ({first_rss / n:.0f} KB per autoscaler)")
def table(path):
    out = {}
    for line in open(path):
        key, _, value = line.rstrip("\n").rpartition("\t")
        out[key] = int(value)
    return out
a, b = table(f"{work}/requests-0.tsv"), table(f"{work}/requests-1.tsv")
delta = sorted(((b[k] - a.get(k, 0), k) for k in b if b[k] - a.get(k, 0) > 0), reverse=True)
print("   API requests over the window (all clients), per second and per sync:")
for d, k in delta[:12]:
    print(f"     {d / window:8.1f}/s  {d / syncs if syncs else float('nan'):6.2f}/sync  {k}")
def ticks(path):
    return {name: float(t) for name, t in (line.split() for line in open(path))}
c0, c1 = ticks(f"{work}/cpu-0.txt"), ticks(f"{work}/cpu-1.txt")
parts = ", ".join(f"{k} {(c1[k] - c0.get(k, 0)) / tck / window:.2f}" for k in c1 if k != "machine")
busy = (c1.get("machine", 0) - c0.get("machine", 0)) / tck / window
print(f"RESULT cpu_cores_used over the window: {parts}; whole machine {busy:.2f} of 2")
PY
# Wall time of one reconcile over the window (the operator's histogram, end less start).
python3 - "$work/operator-metrics-0.txt" "$work/operator-metrics.txt" <<'PY'
import sys
def read(path):
    out = {}
    for line in open(path):
        if line.startswith("prescient_reconcile_duration_seconds") or line.startswith("prescient_reconcile_errors_total"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
d = {k: b[k] - a.get(k, 0) for k in b}
count = d.get("prescient_reconcile_duration_seconds_count", 0)
if count:
    mean = d["prescient_reconcile_duration_seconds_sum"] / count
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in d.items() if "_bucket{" in k)
    def q(p):
        return next((le for le, v in buckets if v >= p * count), float("inf"))
    print(f"RESULT reconcile_wall_s over the window: mean {mean:.3f}, p50 <= {q(0.5)}, p90 <= {q(0.9)}, p99 <= {q(0.99)}")
errors = {k: v for k, v in d.items() if k.startswith("prescient_reconcile_errors_total") and v}
print("   reconcile errors over the window:", errors or "none")
PY
