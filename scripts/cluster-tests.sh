#!/usr/bin/env bash
# Tests against a REAL Kubernetes control plane (scripts/local-cluster.sh: kube-apiserver, etcd,
# controller-manager, scheduler, kwok nodes on 127.0.0.1): the CRD and its validation as the API server
# applies them, and `prescient run` against the real API server (see each group below).
#
# Usage: scripts/cluster-tests.sh [GROUP...]   groups: crd operator leader hpa targets apiserver etcd (default: all)
# Starts its own local cluster (state in target/cluster-tests) and stops it at the end (KEEP_CLUSTER=1
# leaves it running). A control plane that cannot be built or started is a FAILURE, never a skip.
# The last line is `N passed, N failed`; the exit status is non-zero when anything failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# `. scripts/cluster-tests.sh --source-only` (scripts/cluster-bench.sh): start the cluster, define the
# helpers, run no group.
source_only=0
[ "${1:-}" = --source-only ] && { source_only=1; shift; }
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(crd operator leader hpa targets apiserver etcd)
work="${CLUSTER_TESTS_WORK:-$root/target/cluster-tests}"
export LOCAL_CLUSTER_DIR="$work/cluster"
passed=0
failed=0
failures=()

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL: $*"; }
summary() {
  echo
  if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  - %s\n' "${failures[@]}"
  fi
  echo "$passed passed, $failed failed"
}

cleanup() {
  local pid
  for pid in "${started_pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    scripts/local-cluster.sh down >/dev/null 2>&1 || true
  fi
}
started_pids=()
if [ "$source_only" = 1 ]; then trap cleanup EXIT; else trap 'cleanup; summary' EXIT; fi

# A clean slate: state of an earlier run (its cluster, tokens, Prometheus data shifted to its "now") is stale.
scripts/local-cluster.sh down >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
echo "== starting the local control plane (scripts/local-cluster.sh up)"
if ! up_out=$(scripts/local-cluster.sh up 2> "$work/up.log"); then
  cat "$work/up.log" >&2
  fail "local control plane: scripts/local-cluster.sh up failed (see above)"
  exit 1
fi
grep -E 'up in|built' "$work/up.log" || true
KUBECONFIG=$(echo "$up_out" | sed -n 's/^KUBECONFIG=//p' | tail -1)
bin_dir=$(echo "$up_out" | sed -n 's/^LOCAL_CLUSTER_BIN=//p' | tail -1)
export KUBECONFIG PATH="$bin_dir:$PATH"
pass "local control plane up ($(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'))"

prescient="${CARGO_TARGET_DIR:-$root/target}/debug/prescient"
if [ ! -x "$prescient" ]; then
  echo "== building prescient"
  lock="${BUILD_LOCK:-/work/.build.lock}"
  if command -v flock >/dev/null && touch "$lock" 2>/dev/null; then
    flock "$lock" cargo build -p prescient --locked
  else
    cargo build -p prescient --locked
  fi
fi
[ -x "$prescient" ] || { fail "no prescient binary at $prescient"; exit 1; }

# ------------------------------------------------------------------------------------------- helpers

# json FILE-OR-- EXPR: evaluates a Python expression over the JSON document `d`.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# expect_refused NAME YAML PATTERN: the API server refuses YAML with a message matching PATTERN.
expect_refused() {
  local name="$1" yaml="$2" pattern="$3" out
  if out=$(echo "$yaml" | kubectl apply -f - 2>&1); then
    fail "refuses $name: the API server accepted it ($out)"
    kubectl delete -f - --ignore-not-found <<< "$yaml" >/dev/null 2>&1
  elif echo "$out" | grep -Eq "$pattern"; then
    pass "refuses $name: $(echo "$out" | grep -Eo "$pattern" | head -1)"
  else
    fail "refuses $name, but the message does not say /$pattern/: $out"
  fi
}

# A PredictiveAutoscaler in namespace $ns named $1 with spec lines $2 (YAML, indented by 2).
pa_yaml() {
  cat <<EOF
apiVersion: prescient.dev/v1alpha1
kind: PredictiveAutoscaler
metadata: { name: $1, namespace: $ns }
spec:
$2
EOF
}
base_spec='  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  maxReplicas: 5
  metric: { query: "sum(rate(http_requests_total[1m]))", targetPerReplica: 10 }'

# ------------------------------------------------------------------------------------- group: crd
test_crd() {
  echo "== crd: the CRD from manifests/ on the real API server"
  local out
  if cmp -s <("$prescient" crd) manifests/crd/predictiveautoscaler.yaml; then
    pass "manifests/crd is what \`prescient crd\` prints"
  else
    fail "manifests/crd/predictiveautoscaler.yaml differs from \`prescient crd\`"
  fi
  if out=$(kubectl apply --server-side -k manifests/crd 2>&1); then
    if echo "$out" | grep -qi warning; then
      fail "CRD applied, with warnings: $(echo "$out" | grep -i warning | head -3)"
    else
      pass "CRD accepted without warnings"
    fi
  else
    fail "CRD refused: $out"
    return
  fi
  if kubectl wait --for=condition=Established crd/predictiveautoscalers.prescient.dev --timeout=30s >/dev/null; then
    pass "CRD Established"
  else
    fail "CRD not Established: $(kubectl get crd predictiveautoscalers.prescient.dev -o jsonpath='{.status.conditions}')"
  fi
  local nonstructural
  nonstructural=$(kubectl get crd predictiveautoscalers.prescient.dev -o jsonpath='{.status.conditions[?(@.type=="NonStructuralSchema")].message}')
  [ -z "$nonstructural" ] && pass "schema is structural" || fail "NonStructuralSchema: $nonstructural"

  ns=crd-tests
  kubectl create namespace "$ns" >/dev/null 2>&1
  kubectl create namespace shop >/dev/null 2>&1
  if out=$(kubectl apply -k manifests/examples 2>&1) && ! echo "$out" | grep -qi warning; then
    pass "manifests/examples apply ($out)"
  else
    fail "manifests/examples: $out"
  fi
  if out=$(kubectl apply --dry-run=server -f manifests/examples/sample-app-autoscaler.yaml 2>&1); then
    pass "example accepted by server-side dry run"
  else
    fail "example refused by server-side dry run: $out"
  fi

  # Defaults from the schema appear on an object that leaves them out.
  if out=$(pa_yaml defaults "$base_spec" | kubectl apply -f - 2>&1); then
    local got
    got=$(kubectl -n "$ns" get pa defaults -o json | json 'd["spec"]["minReplicas"], d["spec"]["mode"], d["spec"]["syncPeriod"], d["spec"]["forecast"]["quantile"], d["spec"]["forecast"]["leadTime"], d["spec"]["forecast"]["history"], d["spec"]["forecast"]["model"]')
    if [ "$got" = "1 Scale 30s 0.9 3m 7d auto" ]; then
      pass "defaults appear: minReplicas, mode, syncPeriod, forecast.* ($got)"
    else
      fail "defaults: got $got"
    fi
  else
    fail "a minimal autoscaler was refused: $out"
  fi

  # Printer columns. Retried for a few seconds: right after the CRD is established, kubectl's discovery
  # and the server's table conversion can lag (seen once: a failure that a re-run did not repeat).
  local columns_ok=no
  for _ in $(seq 1 10); do
    out=$(kubectl -n "$ns" get pa 2>&1)
    if echo "$out" | head -1 | grep -Eq '^NAME +TARGET +CURRENT +DESIRED +MODEL +ERROR +AGE$' && echo "$out" | grep -Eq '^defaults +web '; then
      columns_ok=yes
      break
    fi
    sleep 1
  done
  if [ "$columns_ok" = yes ]; then
    pass "kubectl get pa shows NAME TARGET CURRENT DESIRED MODEL ERROR AGE"
  else
    fail "kubectl get pa columns: $out"
  fi
  out=$(kubectl get predictiveautoscalers.prescient.dev -A 2>&1)
  echo "$out" | grep -q 'sample-app' && pass "kubectl get predictiveautoscalers -A lists the example" || fail "kubectl get -A: $out"

  # kubectl explain reads as user documentation: no Rust-internal text, every field described.
  out=$(kubectl explain predictiveautoscaler.spec 2>&1)
  if echo "$out" | grep -Eq 'crate::|Auto-generated|derived type|CustomResource|\[`|::'; then
    fail "kubectl explain predictiveautoscaler.spec shows Rust internals: $(echo "$out" | grep -E 'crate::|Auto-generated|derived type|CustomResource|\[`|::' | head -3)"
  else
    pass "kubectl explain predictiveautoscaler.spec has no Rust-internal text"
  fi
  out=$(kubectl explain predictiveautoscaler 2>&1)
  if echo "$out" | grep -Eq 'Auto-generated|derived type|CustomResource'; then
    fail "kubectl explain predictiveautoscaler shows Rust internals: $(echo "$out" | grep -E 'Auto-generated|derived type|CustomResource' | head -2)"
  else
    pass "kubectl explain predictiveautoscaler has no Rust-internal text"
  fi
  local undocumented
  undocumented=$(kubectl get crd predictiveautoscalers.prescient.dev -o json | python3 -c '
import json, sys
crd = json.load(sys.stdin)
missing = []
def walk(path, s):
    for name, sub in (s.get("properties") or {}).items():
        p = f"{path}.{name}"
        if not sub.get("description"):
            missing.append(p)
        walk(p, sub)
    if "items" in s:
        walk(path + "[]", s["items"])
walk("", crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
print(" ".join(missing))')
  [ -z "$undocumented" ] && pass "every field of the schema has a description" || fail "fields without a description: $undocumented"
  local formats
  # An integer needs a format the API server knows (int32/int64, not uint32) and an int32 an explicit
  # maximum, or the server accepts values the operator cannot read.
  formats=$(kubectl get crd predictiveautoscalers.prescient.dev -o json | python3 -c '
import json, sys
bad = []
def walk(path, s):
    if isinstance(s, dict):
        fmt, top = s.get("format"), s.get("maximum")
        if s.get("type") == "integer" and (fmt not in ("int32", "int64") or (fmt == "int32" and (top is None or top > 2**31 - 1))):
            bad.append("%s (format %s, maximum %s)" % (path, fmt, top))
        for k, v in s.items():
            walk(path if k == "properties" else path + "." + k, v)
walk("", json.load(sys.stdin)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
print("; ".join(bad) if bad else "ok")')
  [ "$formats" = ok ] && pass "every integer field is bounded and has a format the API server knows" || fail "integer fields unbounded or with an unknown format: $formats"

  # Invalid autoscalers are refused at apply time with a message a person understands.
  expect_refused "minReplicas > maxReplicas" "$(pa_yaml bad-minmax "$base_spec
  minReplicas: 9")" 'minReplicas must be <= maxReplicas|minReplicas.*maxReplicas'
  expect_refused "quantile 1" "$(pa_yaml bad-q1 "$base_spec
  forecast: { quantile: 1 }")" 'quantile.*(less than|must be)'
  expect_refused "quantile 0" "$(pa_yaml bad-q0 "$base_spec
  forecast: { quantile: 0 }")" 'quantile.*(greater than|must be)'
  expect_refused "a duration in words" "$(pa_yaml bad-duration "$base_spec
  forecast: { leadTime: 5 minutes }")" 'leadTime.*(should match|duration|must be)'
  expect_refused "a 0s horizon" "$(pa_yaml bad-zero "$base_spec
  forecast: { horizon: 0s }")" 'horizon.*(positive|greater than zero|must be|non-zero|should match)'
  expect_refused "a 0s syncPeriod" "$(pa_yaml bad-zero-sync "$base_spec
  syncPeriod: 0s")" 'syncPeriod.*(positive|greater than zero|must be|non-zero|should match)'
  expect_refused "no scaleTargetRef" "$(pa_yaml bad-notarget '  maxReplicas: 5
  metric: { query: "up", targetPerReplica: 10 }')" 'scaleTargetRef.*Required'
  expect_refused "an empty target name" "$(pa_yaml bad-emptyname '  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: "" }
  maxReplicas: 5
  metric: { query: "up", targetPerReplica: 10 }')" 'scaleTargetRef.name.*(at least 1|should be at least|must)'
  expect_refused "maxReplicas beyond 32 bits" "$(pa_yaml bad-huge '  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  maxReplicas: 5000000000
  metric: { query: "up", targetPerReplica: 10 }')" 'maxReplicas.*(less than or equal|must be)'
  expect_refused "targetPerReplica 0" "$(pa_yaml bad-target0 '  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  maxReplicas: 5
  metric: { query: "up", targetPerReplica: 0 }')" 'targetPerReplica.*(greater than|must be)'
  expect_refused "an unknown mode" "$(pa_yaml bad-mode "$base_spec
  mode: Sometimes")" 'mode.*(Unsupported value|supported values)'
  expect_refused "a policy of 0 pods" "$(pa_yaml bad-policy "$base_spec
  behavior: { scaleUp: { policies: [ { type: Pods, value: 0, periodSeconds: 60 } ] } }")" 'value.*(greater than or equal to 1|must be)'
  expect_refused "a stabilization window above an hour" "$(pa_yaml bad-window "$base_spec
  behavior: { scaleDown: { stabilizationWindowSeconds: 7200 } }")" 'stabilizationWindowSeconds.*(less than or equal to 3600|must be)'
  expect_refused "a tolerance above 1" "$(pa_yaml bad-tolerance "$base_spec
  behavior: { scaleUp: { tolerance: 1.5 } }")" 'tolerance.*(less than or equal to 1|must be)'
  expect_refused "an unknown model" "$(pa_yaml bad-model "$base_spec
  forecast: { model: bogus }")" 'model.*(Unsupported value|supported values|must be)'
  expect_refused "leadTime longer than horizon" "$(pa_yaml bad-lead "$base_spec
  forecast: { leadTime: 2h, horizon: 30m }")" 'leadTime.*horizon'
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------- operator helpers

# A real Prometheus loaded (promtool backfill) with the NASA trace, time-shifted so that "now" is the
# morning ramp of its fifth day (index START): 3.5 days of history behind, 2 hours still "to come" in
# front (a query at time t sees only samples <= t, so the series advances in real time, like a scrape).
prom_port=""
prom_pid=""
start_prometheus() {
  local dir="$work/prometheus"
  if [ ! -d "$dir/data" ]; then
    rm -rf "$dir"
    mkdir -p "$dir/data"
    python3 - "$(date +%s)" > "$dir/backfill.om" <<'PY'
import csv, sys, datetime
now = int(sys.argv[1])
rows = list(csv.reader(open("data/traces/nasa-http-jul1995-1min.csv")))[1:]
def ts(text):
    return int(text) if text.isdigit() else int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
START = 4 * 1440 + 7 * 60  # day 5, 11:00 UTC in the trace: demand rises over the next hours
shift = now - ts(rows[START][0])
print("# HELP prescient_demand Requests per minute (NASA-HTTP trace, shifted to now).")
print("# TYPE prescient_demand gauge")
for t, v in rows[START - int(3.5 * 1440):START + 120]:
    print(f'prescient_demand{{trace="nasa"}} {v} {ts(t) + shift}')
print("# EOF")
PY
    promtool tsdb create-blocks-from openmetrics "$dir/backfill.om" "$dir/blocks" >/dev/null || return 1
    mv "$dir"/blocks/* "$dir/data/"
  fi
  [ -n "$prom_port" ] || prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  prometheus --config.file=/dev/null --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=100y \
    --web.listen-address="127.0.0.1:$prom_port" > "$dir/prometheus.log" 2>&1 &
  prom_pid=$!
  started_pids+=("$prom_pid")
  local i
  for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A kubeconfig for the operator's ServiceAccount (TokenRequest), so it has exactly manifests/base/rbac.yaml.
operator_kubeconfig() {
  local token server ca
  token=$(kubectl -n prescient-system create token prescient-operator --duration=2h) || return 1
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  cat > "$work/operator.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{ name: local, cluster: { server: "$server", certificate-authority-data: "$ca" } }]
users: [{ name: prescient-operator, user: { token: "$token" } }]
contexts: [{ name: local, context: { cluster: local, user: prescient-operator, namespace: prescient-system } }]
current-context: local
KUBECONFIG
}

# start_operator NAME [ARG...]: `prescient run` as the ServiceAccount (ARGs appended); sets op_pid[NAME],
# op_metrics[NAME].
declare -A op_pid op_metrics
start_operator() {
  local name="$1" mport dport
  shift
  read -r mport dport <<< "$(python3 -c 'import socket
a=socket.socket(); a.bind(("127.0.0.1",0)); b=socket.socket(); b.bind(("127.0.0.1",0))
print(a.getsockname()[1], b.getsockname()[1])')"
  KUBECONFIG="$work/operator.kubeconfig" POD_NAME="$name" RUST_LOG="${RUST_LOG:-info}" \
    "$prescient" run --prometheus-url "http://127.0.0.1:$prom_port" --metrics-addr "127.0.0.1:$mport" \
    --dashboard-addr "127.0.0.1:$dport" --lease-namespace prescient-system "$@" > "$work/operator-$name.log" 2>&1 &
  op_pid[$name]=$!
  op_metrics[$name]="http://127.0.0.1:$mport"
  started_pids+=("$!")
  local i
  for i in $(seq 1 100); do
    curl -sf "${op_metrics[$name]}/readyz" >/dev/null && return 0
    kill -0 "${op_pid[$name]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# until_true TIMEOUT CMD...: polls CMD every second until it succeeds; false on timeout.
until_true() {
  local timeout="$1"; shift
  local deadline=$(( $(date +%s) + timeout ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

cond() { # NS NAME TYPE -> "status/reason"
  kubectl -n "$1" get pa "$2" -o jsonpath="{range .status.conditions[?(@.type==\"$3\")]}{.status}/{.reason}{end}"
}
cond_is() { [ "$(cond "$1" "$2" "$3")" = "$4" ]; }
spec_replicas() { kubectl -n "$1" get "$2" "$3" -o jsonpath='{.spec.replicas}'; } # NS RESOURCE NAME
replicas() { spec_replicas "$1" deployment "$2"; } # NS DEPLOYMENT
# NS RESOURCE NAME OP N: `[ spec.replicas OP N ]`, for until_true.
spec_replicas_are() { [ "$(spec_replicas "$1" "$2" "$3")" "$4" "$5" ]; }

deployment_yaml() { # NS NAME REPLICAS
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: { name: $2, namespace: $1 }
spec:
  replicas: $3
  selector: { matchLabels: { app: $2 } }
  template:
    metadata: { labels: { app: $2 } }
    spec:
      containers: [{ name: app, image: registry.invalid/fake:1 }]
YAML
}

# The autoscaler used throughout: the NASA demand (requests per minute), 8 per replica.
op_pa() { # NS NAME TARGET MODE
  cat <<YAML
apiVersion: prescient.dev/v1alpha1
kind: PredictiveAutoscaler
metadata: { name: $2, namespace: $1 }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: $3 }
  minReplicas: 1
  maxReplicas: 20
  metric: { query: 'sum(prescient_demand)', targetPerReplica: 8 }
  forecast: { history: 3d, step: 1m, horizon: 30m, leadTime: 15m, model: seasonal_naive, quantile: 0.9 }
  syncPeriod: 5s
  mode: $4
YAML
}

pre_scaled_line=""
pre_scaled() { # NS PA DEPLOYMENT: decisionReason Predictive and more replicas than current demand needs
  local reason demand r needed
  reason=$(kubectl -n "$1" get pa "$2" -o jsonpath='{.status.decisionReason}')
  demand=$(kubectl -n "$1" get pa "$2" -o jsonpath='{.status.forecast.currentDemand}')
  r=$(replicas "$1" "$3")
  [ "$reason" = Predictive ] && [ -n "$demand" ] && [ -n "$r" ] || return 1
  needed=$(awk -v d="$demand" 'BEGIN { n = d / 8; r = int(n); if (r < n) r++; if (r < 1) r = 1; print r }')
  pre_scaled_line="replicas $r while current demand $demand needs $needed (predictive $(kubectl -n "$1" get pa "$2" -o jsonpath='{.status.forecast.predictiveReplicas}'))"
  [ "$r" -gt "$needed" ]
}
all_ready() { # NS DEPLOYMENT
  local spec ready updated
  spec=$(replicas "$1" "$2")
  ready=$(kubectl -n "$1" get deployment "$2" -o jsonpath='{.status.readyReplicas}')
  updated=$(kubectl -n "$1" get deployment "$2" -o jsonpath='{.status.updatedReplicas}')
  [ -n "$spec" ] && [ "$spec" = "$ready" ] && [ "$updated" = "$spec" ]
}

# The controller-manager fills the aggregated ClusterRole asynchronously (manifests/base/rbac.yaml).
rbac_aggregated() {
  until_true 30 sh -c '[ "$(kubectl auth can-i --as=system:serviceaccount:prescient-system:prescient-operator patch deployments --subresource=scale -n any)" = yes ]'
}

setup_operator_env() {
  [ -f "$work/operator.kubeconfig" ] && return 0
  kubectl apply --server-side -k manifests/crd >/dev/null &&
    kubectl wait --for=condition=Established crd/predictiveautoscalers.prescient.dev --timeout=30s >/dev/null || return 1
  kubectl apply -f manifests/base/namespace.yaml -f manifests/base/rbac.yaml >/dev/null || return 1
  rbac_aggregated || return 1
  start_prometheus || { echo "prometheus did not start: $(tail -5 "$work/prometheus/prometheus.log")"; return 1; }
  operator_kubeconfig
}

# group_env WHAT NS: the operator's environment and namespace NS (in $ns); false, with a failure, if not.
group_env() {
  setup_operator_env || { fail "$1 test set-up"; return 1; }
  ns=$2
  kubectl create namespace "$ns" >/dev/null 2>&1
  return 0
}
# A Deployment NAME of REPLICAS kwok pods in NS, and the autoscaler NAME (op_pa, mode Scale) on it.
scaled_deployment() { # NS NAME REPLICAS
  deployment_yaml "$1" "$2" "$3" | kubectl apply -f - >/dev/null
  op_pa "$1" "$2" "$2" Scale | kubectl apply -f - >/dev/null
}
# Operator a, started unless it runs (later groups reuse the one earlier groups leave).
ensure_operator_a() { { [ -n "${op_pid[a]:-}" ] && kill -0 "${op_pid[a]}" 2>/dev/null; } || start_operator a; }

# ------------------------------------------------------------------------------- group: operator
test_operator() {
  echo "== operator: prescient run as the ServiceAccount of manifests/base/rbac.yaml, against the real API server"
  if ! setup_operator_env; then
    fail "operator test set-up (CRD, RBAC, Prometheus, token)"
    return
  fi
  local sa=system:serviceaccount:prescient-system:prescient-operator out before after
  # The RBAC is least privilege: the operator may scale and read workloads, not edit or delete them.
  local check answer wrong=""
  for check in "yes patch deployments --subresource=scale -n any" \
    "yes patch predictiveautoscalers.prescient.dev --subresource=status -n any" \
    "yes get deployments -n any" "yes create leases -n prescient-system" \
    "no patch deployments -n any" "no delete deployments -n any" \
    "no update predictiveautoscalers.prescient.dev -n any" "no create leases -n default" "no get secrets -n any"; do
    read -r want rest <<< "$check"
    # shellcheck disable=SC2086
    answer=$(kubectl auth can-i --as="$sa" $rest 2>/dev/null)
    [ "$answer" = "$want" ] || wrong+=" [$rest: $answer, want $want]"
  done
  if [ -z "$wrong" ]; then
    pass "RBAC: the ServiceAccount can scale, read workloads, write status and its Lease; not edit workloads or autoscalers, nor read secrets"
  else
    fail "RBAC of manifests/base/rbac.yaml:$wrong"
  fi

  ns=shop-e2e
  kubectl create namespace "$ns" >/dev/null 2>&1
  deployment_yaml "$ns" web 1 | kubectl apply -f - >/dev/null
  deployment_yaml "$ns" web-dry 1 | kubectl apply -f - >/dev/null
  deployment_yaml "$ns" doomed 2 | kubectl apply -f - >/dev/null
  if kubectl -n "$ns" wait --for=condition=Available deployment --all --timeout=60s >/dev/null; then
    pass "Deployments become Available (kwok pods Running and Ready)"
  else
    fail "Deployments not Available: $(kubectl -n "$ns" get deploy,pods 2>&1 | head -10)"
  fi
  op_pa "$ns" web web Scale | kubectl apply -f - >/dev/null
  op_pa "$ns" web-dry web-dry ForecastOnly | kubectl apply -f - >/dev/null
  op_pa "$ns" doomed doomed Scale | kubectl apply -f - >/dev/null
  op_pa "$ns" too-short web-dry ForecastOnly | sed 's/history: 3d, step: 1m/history: 1m, step: 1m/' | kubectl apply -f - >/dev/null

  # An object stored before the schema was tightened: through a CRD whose spec has no bounds, a maxReplicas
  # the operator's typed struct cannot read (beyond u32); then the real CRD again (stored objects stay).
  # A typed watch would fail its whole list on it and stall every autoscaler; the operator must skip it.
  kubectl get crd predictiveautoscalers.prescient.dev -o json | python3 -c '
import json, sys
crd = json.load(sys.stdin)
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
    crd["metadata"].pop(k, None)
crd.pop("status", None)
for v in crd["spec"]["versions"]:
    props = v["schema"]["openAPIV3Schema"]
    props.pop("x-kubernetes-validations", None)
    props["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
print(json.dumps(crd))' | kubectl replace -f - >/dev/null
  if op_pa "$ns" unreadable web-dry ForecastOnly | sed 's/maxReplicas: 20/maxReplicas: 5000000000/' | kubectl apply -f - >/dev/null 2>&1; then
    pass "stored an autoscaler the operator cannot read (maxReplicas 5000000000) through a CRD without bounds"
  else
    fail "could not store the unreadable autoscaler through the bound-less CRD"
  fi
  kubectl apply --server-side --force-conflicts -k manifests/crd >/dev/null
  if op_pa "$ns" unreadable-2 web-dry ForecastOnly | sed 's/maxReplicas: 20/maxReplicas: 5000000000/' | kubectl apply -f - >/dev/null 2>&1; then
    fail "the real CRD accepts maxReplicas 5000000000"
  fi

  if ! start_operator a; then
    fail "prescient run did not become ready: $(tail -20 "$work/operator-a.log")"
    return
  fi
  pass "prescient run started as the ServiceAccount (leader election on)"

  if until_true 240 pre_scaled "$ns" web web; then
    pass "pre-scaled a real Deployment through /scale ahead of the forecast: $pre_scaled_line"
  else
    fail "no pre-scaling within 240s: reason $(kubectl -n "$ns" get pa web -o jsonpath='{.status.decisionReason}'), $(kubectl -n "$ns" get pa web -o jsonpath='{.status.conditions}'); $(tail -5 "$work/operator-a.log")"
  fi
  if until_true 60 all_ready "$ns" web; then
    pass "the new pods are Ready ($(kubectl -n "$ns" get deployment web -o jsonpath='{.status.readyReplicas}')/$(replicas "$ns" web))"
  else
    fail "pods not Ready: $(kubectl -n "$ns" get deployment web -o jsonpath='{.status}')"
  fi
  out=$(kubectl -n "$ns" get pa web -o json --show-managed-fields | json '",".join(sorted(m["manager"] + ":" + m["operation"] + ":" + m.get("subresource", "") for m in d["metadata"]["managedFields"]))')
  if echo "$out" | grep -q 'prescient:Apply:status'; then
    pass "status written by server-side apply (managedFields $out)"
  else
    fail "status not owned by a server-side apply of manager prescient: $out"
  fi
  out=$(kubectl -n "$ns" get pa web -o jsonpath='{range .status.conditions[*]}{.type}={.status}/{.reason} {end}')
  if echo "$out" | grep -q 'Ready=True' && echo "$out" | grep -q 'ForecastHealthy=True' &&
     echo "$out" | grep -q 'ScalingActive=True' && echo "$out" | grep -q 'AbleToScale=True'; then
    pass "conditions: $out"
  else
    fail "conditions: $out"
  fi
  out=$(kubectl -n "$ns" get pa web -o jsonpath='{.status.observedGeneration} {.status.model}')
  [ "$out" = "1 seasonal_naive" ] && pass "status.observedGeneration and model: $out" || fail "status.observedGeneration and model: $out"
  out=$(kubectl get pa -n "$ns" web --no-headers 2>&1)
  # The Error column (backtest MASE) reads as a short number, not seventeen digits.
  echo "$out" | grep -Eq '^web +web +[0-9]+ +[0-9]+ +seasonal_naive +[0-9]+(\.[0-9]{1,3})? ' && pass "kubectl get pa: $out" || fail "kubectl get pa: $out"
  if until_true 30 sh -c "kubectl -n $ns get events --field-selector involvedObject.name=web,reason=Scaled -o name | grep -q ."; then
    pass "Events visible: $(kubectl -n "$ns" get events --field-selector involvedObject.name=web,reason=Scaled --no-headers | tail -1 | tr -s ' ' | cut -c1-160)"
  else
    fail "no Scaled event for web: $(kubectl -n "$ns" get events 2>&1 | tail -5)"
  fi

  # ForecastOnly decides and reports, never scales.
  if until_true 60 sh -c "kubectl -n $ns get pa web-dry -o jsonpath='{.status.desiredReplicas}' | grep -q ." &&
     cond_is "$ns" web-dry ScalingActive False/ForecastOnly; then
    if [ "$(replicas "$ns" web-dry)" = 1 ]; then
      pass "ForecastOnly writes status (desired $(kubectl -n "$ns" get pa web-dry -o jsonpath='{.status.desiredReplicas}')) and never scales (replicas 1)"
    else
      fail "ForecastOnly scaled web-dry to $(replicas "$ns" web-dry)"
    fi
  else
    fail "ForecastOnly status: ScalingActive $(cond "$ns" web-dry ScalingActive), desired $(kubectl -n "$ns" get pa web-dry -o jsonpath='{.status.desiredReplicas}')"
  fi

  # An invalid spec the schema cannot refuse (history shorter than two steps) is a condition.
  if until_true 30 cond_is "$ns" too-short Ready False/InvalidSpec; then
    pass "invalid spec (history 1m at step 1m): Ready=False/InvalidSpec: $(kubectl -n "$ns" get pa too-short -o jsonpath='{.status.conditions[0].message}')"
  else
    fail "invalid spec: Ready is $(cond "$ns" too-short Ready)"
  fi

  # The unreadable object is a condition and an event on itself; the others (web above) are reconciled.
  if until_true 30 cond_is "$ns" unreadable Ready False/InvalidSpec; then
    message=$(kubectl -n "$ns" get pa unreadable -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')
    if [[ "$message" == *spec.maxReplicas* ]]; then
      pass "unreadable object: Ready=False/InvalidSpec naming the field ($message), the others reconciled"
    else
      fail "unreadable object: the InvalidSpec message does not name spec.maxReplicas: $message"
    fi
  else
    fail "unreadable object: Ready is $(cond "$ns" unreadable Ready); $(grep -m1 unreadable "$work/operator-a.log")"
  fi
  if until_true 30 sh -c "kubectl -n $ns get events --field-selector involvedObject.name=unreadable,reason=InvalidSpec -o name | grep -q ."; then
    pass "unreadable object: a Warning event InvalidSpec"
  else
    fail "unreadable object: no InvalidSpec event: $(kubectl -n "$ns" get events --field-selector involvedObject.name=unreadable 2>&1 | tail -3)"
  fi
  grep -q 'cannot read PredictiveAutoscaler' "$work/operator-a.log" && pass "unreadable object: a logged skip" ||
    fail "unreadable object: no log line 'cannot read PredictiveAutoscaler'"

  # A deleted target: a condition, and nothing recreated.
  until_true 30 sh -c "kubectl -n $ns get pa doomed -o jsonpath='{.status.currentReplicas}' | grep -q ."
  kubectl -n "$ns" delete deployment doomed --wait=true >/dev/null
  if until_true 30 cond_is "$ns" doomed AbleToScale False/TargetNotFound; then
    pass "deleted target: AbleToScale=False/TargetNotFound ($(kubectl -n "$ns" get pa doomed -o jsonpath='{.status.conditions[?(@.type=="AbleToScale")].message}'))"
  else
    fail "deleted target: AbleToScale is $(cond "$ns" doomed AbleToScale)"
  fi
  if kubectl -n "$ns" get deployment doomed >/dev/null 2>&1; then
    fail "the deleted target came back"
  else
    pass "the deleted target was not recreated"
  fi

  # A Prometheus outage: ForecastHealthy=False, replicas held (no scale-down on missing data).
  before=$(replicas "$ns" web)
  kill "$prom_pid"; wait "$prom_pid" 2>/dev/null
  if until_true 60 cond_is "$ns" web ForecastHealthy False/MetricsUnavailable; then
    sleep 12
    after=$(replicas "$ns" web)
    if [ "$after" -ge "$before" ]; then
      pass "Prometheus outage: ForecastHealthy=False/MetricsUnavailable, replicas held ($before -> $after); ScalingActive $(cond "$ns" web ScalingActive)"
    else
      fail "Prometheus outage scaled down: $before -> $after"
    fi
  else
    fail "Prometheus outage: ForecastHealthy is $(cond "$ns" web ForecastHealthy)"
  fi
  start_prometheus || fail "Prometheus did not restart"
  until_true 60 sh -c "kubectl -n $ns get pa web -o jsonpath='{.status.conditions[?(@.type==\"ForecastHealthy\")].status}' | grep -q True" ||
    fail "ForecastHealthy did not come back after Prometheus restarted: $(cond "$ns" web ForecastHealthy)"

  # A removed RBAC rule (no /scale): AbleToScale=False/ScaleForbidden, replicas untouched; scales once restored.
  # Removed from the aggregated role's source, so the controller-manager's aggregation is exercised too.
  remove_core_rules 'any(x.endswith("/scale") for x in rule.get("resources", []))'
  before=$(replicas "$ns" web)
  kubectl -n "$ns" patch pa web --type merge -p '{"spec":{"minReplicas":18}}' >/dev/null
  if until_true 60 cond_is "$ns" web AbleToScale False/ScaleForbidden; then
    after=$(replicas "$ns" web)
    if [ "$after" = "$before" ]; then
      pass "removed RBAC rule: AbleToScale=False/ScaleForbidden, replicas untouched ($after)"
    else
      fail "removed RBAC rule: replicas changed $before -> $after"
    fi
  else
    fail "removed RBAC rule: AbleToScale is $(cond "$ns" web AbleToScale)"
  fi
  kubectl apply -f manifests/base/rbac.yaml >/dev/null
  if until_true 60 spec_replicas_are "$ns" deployment web = 18; then
    pass "RBAC restored: scaled to minReplicas 18; AbleToScale $(cond "$ns" web AbleToScale)"
  else
    fail "RBAC restored, but replicas are $(replicas "$ns" web), AbleToScale $(cond "$ns" web AbleToScale)"
  fi
  kubectl -n "$ns" patch pa web --type merge -p '{"spec":{"minReplicas":1}}' >/dev/null

  # Without list/watch on the autoscalers (a namespaced install), nothing can be reconciled: that must
  # be logged and counted, so that an alert can see it. A second operator, started after the rule is
  # removed (an established watch outlives it), without leader election.
  remove_core_rules '"watch" in rule.get("verbs", []) and "predictiveautoscalers" in rule.get("resources", [])'
  until_true 30 sh -c '[ "$(kubectl auth can-i --as=system:serviceaccount:prescient-system:prescient-operator watch predictiveautoscalers.prescient.dev -A)" = no ]'
  if start_operator nowatch --leader-election=false &&
    until_true 30 sh -c "grep -q 'watching PredictiveAutoscalers failed' '$work/operator-nowatch.log' &&
      curl -s '${op_metrics[nowatch]}/metrics' | grep -q 'prescient_reconcile_errors_total{reason=\"WatchFailed\"}'"; then
    pass "no list/watch on the autoscalers: a warning ($(sed 's/\x1b\[[0-9;]*m//g' "$work/operator-nowatch.log" | grep -m1 -o 'watching PredictiveAutoscalers failed.*' | cut -c1-150)) and reconcile_errors{reason=WatchFailed}"
  else
    fail "no list/watch on the autoscalers: nothing said ($(tail -3 "$work/operator-nowatch.log"))"
  fi
  kill "${op_pid[nowatch]}" 2>/dev/null; wait "${op_pid[nowatch]}" 2>/dev/null
  kubectl apply -f manifests/base/rbac.yaml >/dev/null
  rbac_aggregated
  no_panic a
}

# remove_core_rules PYTHON_EXPR: replaces the ClusterRole prescient-operator-core without the rules for
# which PYTHON_EXPR (over `rule`) is true; `kubectl apply -f manifests/base/rbac.yaml` restores them.
remove_core_rules() {
  kubectl get clusterrole prescient-operator-core -o json | python3 -c '
import json, sys
role = json.load(sys.stdin)
role["rules"] = [rule for rule in role["rules"] if not ('"$1"')]
for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    role["metadata"].pop(k, None)
print(json.dumps(role))' | kubectl replace -f - >/dev/null
}

# --------------------------------------------------------------------------------- group: leader
# no_panic NAME: fails if operator NAME's log shows a panic.
no_panic() { ! grep -q panicked "$work/operator-$1.log" || fail "operator $1 panicked: $(grep -m1 panicked "$work/operator-$1.log")"; }
role_of() { curl -s "${op_metrics[$1]}/readyz" | sed -n 's/^ready (\(.*\))$/\1/p'; }
role_is() { [ "$(role_of "$1")" = "$2" ]; } # NAME leader|standby (for until_true)
reconciles_of() { curl -s "${op_metrics[$1]}/metrics" | awk '$1 == "prescient_reconcile_total" { print $2 }'; }
leader_gauge_of() { curl -s "${op_metrics[$1]}/metrics" | awk '$1 == "prescient_leader" { print $2 }'; }
# Scaled events of autoscaler $2 in $1 by reporting instance: "instance eventTime" lines.
scaled_events() {
  kubectl -n "$1" get events.events.k8s.io -o json | python3 -c '
import json, sys
for e in json.load(sys.stdin)["items"]:
    if e.get("reason") == "Scaled" and e["regarding"].get("name") == sys.argv[1]:
        last = (e.get("series") or {}).get("lastObservedTime") or e.get("eventTime") or e["metadata"]["creationTimestamp"]
        print(e.get("reportingInstance", "?"), e.get("eventTime") or e["metadata"]["creationTimestamp"], last)' "$2"
}

test_leader() {
  echo "== leader election: two prescient run processes, one Lease"
  group_env leader leader-e2e || return
  scaled_deployment "$ns" app 1
  ensure_operator_a || { fail "operator a did not start"; return; }
  start_operator b || { fail "operator b did not start: $(tail -5 "$work/operator-b.log")"; return; }
  local leader="" standby="" i
  for i in $(seq 1 40); do
    if [ "$(role_of a)" = leader ] && [ "$(role_of b)" = standby ]; then leader=a; standby=b; break; fi
    if [ "$(role_of b)" = leader ] && [ "$(role_of a)" = standby ]; then leader=b; standby=a; break; fi
    sleep 0.5
  done
  if [ -z "$leader" ]; then
    fail "not exactly one leader: a is $(role_of a), b is $(role_of b)"
    return
  fi
  local holder
  holder=$(kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.holderIdentity}')
  [[ "$holder" == "$leader-"* ]] && pass "exactly one leader ($leader, Lease holder $holder); $standby is standby" ||
    fail "Lease holder $holder is not the leader $leader"
  local gauges
  gauges="$(leader_gauge_of "$leader") $(leader_gauge_of "$standby")"
  [ "$gauges" = "1 0" ] && pass "prescient_leader is 1 on the leader, 0 on the standby" ||
    fail "prescient_leader on leader and standby: $gauges"
  if until_true 60 sh -c "kubectl -n $ns get pa app -o jsonpath='{.status.desiredReplicas}' | grep -q ."; then
    pass "the leader reconciles ($(reconciles_of "$leader") reconciles); the standby none ($(reconciles_of "$standby"))"
    [ "$(reconciles_of "$standby")" = 0 ] || fail "the standby reconciled: $(reconciles_of "$standby")"
  else
    fail "no status from the leader"
  fi
  # Each autoscaler syncs once per syncPeriod (5 s here), not again on the watch event of its own status
  # patch (which doubled the syncs before: found against this real API server, where the mock sends none).
  local due r0 r1
  due=$(kubectl get pa -A -o json | python3 -c '
import json, sys
print(sum(1 for pa in json.load(sys.stdin)["items"]
          if not any(c["reason"] == "InvalidSpec" for c in (pa.get("status") or {}).get("conditions", []))))')
  r0=$(reconciles_of "$leader"); sleep 30; r1=$(reconciles_of "$leader")
  if [ $((r1 - r0)) -le $((due * 6 * 3 / 2)) ]; then
    pass "one sync per period: $((r1 - r0)) reconciles in 30 s for $due autoscalers at syncPeriod 5s (at most $((due * 6)) due)"
  else
    fail "too many reconciles: $((r1 - r0)) in 30 s for $due autoscalers at syncPeriod 5s (expected about $((due * 6)))"
  fi
  local by_standby
  by_standby=$(scaled_events "$ns" app | awk -v s="$standby" '$1 == s' | wc -l)
  [ "$by_standby" = 0 ] && pass "only the leader scales (no Scaled event by $standby)" || fail "the standby scaled ($by_standby events)"

  # kill -9 the leader: the Lease is not released; the standby takes over when it expires (15 s).
  local t_kill took
  t_kill=$(date +%s.%N)
  kill -9 "${op_pid[$leader]}"
  wait "${op_pid[$leader]}" 2>/dev/null
  took=""
  for i in $(seq 1 60); do
    if [ "$(role_of "$standby")" = leader ]; then
      took=$(awk -v a="$t_kill" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      break
    fi
    sleep 0.5
  done
  if [ -n "$took" ] && awk -v t="$took" 'BEGIN { exit !(t <= 20) }'; then
    pass "after kill -9 of $leader, $standby took over in ${took}s (Lease 15 s; holder $(kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.holderIdentity}'))"
  else
    fail "takeover after kill -9: ${took:-none within 30}s"
  fi
  local r target
  r=$(replicas "$ns" app)
  target=$(( r < 15 ? r + 3 : r - 3 ))
  kubectl -n "$ns" patch pa app --type merge -p "{\"spec\":{\"minReplicas\":$target,\"maxReplicas\":20}}" >/dev/null
  [ "$target" -lt "$r" ] && kubectl -n "$ns" patch pa app --type merge -p "{\"spec\":{\"minReplicas\":$target,\"maxReplicas\":$target}}" >/dev/null
  if until_true 60 spec_replicas_are "$ns" deployment app = "$target"; then
    pass "the new leader $standby scales ($r -> $target)"
  else
    fail "the new leader did not scale: replicas $(replicas "$ns" app), wanted $target"
  fi
  # No two holders wrote in the same period: every Scaled event of the old leader is before the kill,
  # every one of the new leader after it.
  local overlap
  overlap=$(scaled_events "$ns" app | python3 -c '
import sys, datetime
kill = float(sys.argv[1]); old, new = sys.argv[2], sys.argv[3]
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
bad = []
for line in sys.stdin:
    who, first, last = line.split()
    if who == old and t(last) > kill + 1: bad.append(f"{who} at {last}")
    if who == new and t(first) < kill - 1: bad.append(f"{who} at {first}")
print(" ".join(bad))' "$t_kill" "$leader" "$standby")
  [ -z "$overlap" ] && pass "no two holders scaled in the same period ($(scaled_events "$ns" app | awk '{print $1}' | sort | uniq -c | tr -s ' ' | tr '\n' ';'))" ||
    fail "Scaled events out of their holder's period: $overlap"
  no_panic "$standby"

  # A rollout of the operator: SIGTERM releases the Lease, so a standby leads at once, not 15 s later.
  local current=$standby t_term
  start_operator c || { fail "operator c did not start: $(tail -5 "$work/operator-c.log")"; return; }
  until_true 20 role_is c standby || fail "operator c is not a standby: $(role_of c)"
  t_term=$(date +%s.%N)
  kill -TERM "${op_pid[$current]}"
  took=""
  for i in $(seq 1 100); do
    if [ "$(role_of c)" = leader ]; then
      took=$(awk -v a="$t_term" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      break
    fi
    sleep 0.2
  done
  wait "${op_pid[$current]}" 2>/dev/null
  local code=$?
  if [ -n "$took" ] && awk -v t="$took" 'BEGIN { exit !(t <= 8) }' && [ "$code" = 0 ]; then
    pass "SIGTERM to the leader $current: it released the Lease and exited 0; c leads ${took}s later ($(grep -c 'released the leader Lease' "$work/operator-$current.log") release logged)"
  else
    fail "SIGTERM handover: c leads after ${took:-more than 20}s, $current exited $code; $(grep -a 'Lease' "$work/operator-$current.log" | tail -2)"
  fi
  # The Lease deleted under the leader (an admin's cleanup): it stops leading, then takes a new Lease.
  local t_del
  t_del=$(date +%s)
  kubectl -n prescient-system delete lease prescient-leader >/dev/null
  if until_true 30 sh -c "kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.holderIdentity}' | grep -q '^c-'" &&
    until_true 10 role_is c leader; then
    pass "Lease deleted under the leader: c holds a new Lease and leads $(( $(date +%s) - t_del ))s later"
  else
    fail "Lease deleted: holder $(kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.holderIdentity}' 2>&1), c is $(role_of c)"
  fi
  # Leave one operator running for later groups, under name a.
  op_pid[a]=${op_pid[c]}; op_metrics[a]=${op_metrics[c]}
}

# ------------------------------------------------------------------------------------ group: hpa
test_hpa() {
  echo "== an HPA already scaling the target: the autoscaler refuses with a condition"
  group_env hpa hpa-e2e || return
  deployment_yaml "$ns" contested 2 | kubectl apply -f - >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: { name: contested, namespace: $ns }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: contested }
  minReplicas: 2
  maxReplicas: 4
  metrics: [{ type: Resource, resource: { name: cpu, target: { type: Utilization, averageUtilization: 50 } } }]
YAML
  op_pa "$ns" contested contested Scale | sed 's/minReplicas: 1/minReplicas: 7/' | kubectl apply -f - >/dev/null
  ensure_operator_a || { fail "operator did not start"; return; }
  if until_true 60 cond_is "$ns" contested ScalingActive False/ConflictingAutoscaler; then
    local r
    r=$(replicas "$ns" contested)
    [ "$r" = 2 ] && pass "refused: ScalingActive=False/ConflictingAutoscaler ($(kubectl -n "$ns" get pa contested -o jsonpath='{.status.conditions[?(@.type=="ScalingActive")].message}')); replicas untouched (2)" ||
      fail "conflict reported, but replicas changed to $r"
  else
    fail "HPA conflict: ScalingActive is $(cond "$ns" contested ScalingActive), replicas $(replicas "$ns" contested)"
  fi
  kubectl -n "$ns" delete hpa contested >/dev/null
  if until_true 60 spec_replicas_are "$ns" deployment contested -ge 7; then
    pass "HPA deleted: the autoscaler takes over (scaled to $(replicas "$ns" contested), minReplicas 7; ScalingActive $(cond "$ns" contested ScalingActive))"
  else
    fail "after the HPA was deleted: replicas $(replicas "$ns" contested), ScalingActive $(cond "$ns" contested ScalingActive)"
  fi
}

# ---------------------------------------------------------------------------------- group: targets
# A workload-like custom kind (spec.replicas, status.replicas and readyReplicas) in API group $1, plural
# $2, kind $3, with the subresources named after that: `scale`, `status` (without `status`, the status is
# written with the object and stays as created). cluster-bench.sh uses it too.
custom_kind_crd() {
  local group="$1" plural="$2" kind="$3" sub subresources=""
  shift 3
  for sub in "$@"; do
    case "$sub" in
      scale) subresources+="
        scale: { specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas }" ;;
      status) subresources+="
        status: {}" ;;
    esac
  done
  cat <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: $plural.$group }
spec:
  group: $group
  scope: Namespaced
  names: { kind: $kind, plural: $plural, singular: $(echo "$kind" | tr '[:upper:]' '[:lower:]') }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: { type: object, properties: { replicas: { type: integer, format: int32, minimum: 0, maximum: 100000 } } }
            status:
              type: object
              properties:
                replicas: { type: integer, format: int32, minimum: 0, maximum: 100000 }
                readyReplicas: { type: integer, format: int32, minimum: 0, maximum: 100000 }
      subresources: ${subresources:-"{}"}
YAML
}

test_targets() {
  echo "== scale targets other than a Deployment: a StatefulSet, and custom kinds through /scale"
  group_env targets targets-e2e || return
  ensure_operator_a || { fail "operator did not start"; return; }

  # A StatefulSet: pre-scaled through apps/v1 statefulsets/scale; the controller-manager makes its pods.
  kubectl apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: $ns }
spec:
  replicas: 1
  serviceName: db
  podManagementPolicy: Parallel
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec:
      containers: [{ name: db, image: registry.invalid/fake:1 }]
YAML
  op_pa "$ns" db db Scale | sed 's/kind: Deployment/kind: StatefulSet/' | kubectl apply -f - >/dev/null
  local r demand
  if until_true 120 sh -c "[ \"\$(kubectl -n $ns get pa db -o jsonpath='{.status.decisionReason}')\" = Predictive ] &&
      [ \"\$(kubectl -n $ns get statefulset db -o jsonpath='{.spec.replicas}')\" -gt 1 ]"; then
    r=$(spec_replicas "$ns" statefulset db)
    demand=$(kubectl -n "$ns" get pa db -o jsonpath='{.status.forecast.currentDemand}')
    pass "pre-scaled a StatefulSet through /scale: $r replicas (current demand $demand, 8 per replica)"
  else
    fail "StatefulSet not scaled: replicas $(spec_replicas "$ns" statefulset db), AbleToScale $(cond "$ns" db AbleToScale), reason $(kubectl -n "$ns" get pa db -o jsonpath='{.status.decisionReason}')"
  fi
  if until_true 90 sh -c "[ \"\$(kubectl -n $ns get statefulset db -o jsonpath='{.status.readyReplicas}')\" = \"\$(kubectl -n $ns get statefulset db -o jsonpath='{.spec.replicas}')\" ] &&
      [ \"\$(kubectl -n $ns get pa db -o jsonpath='{.status.currentReplicas}')\" = \"\$(kubectl -n $ns get statefulset db -o jsonpath='{.spec.replicas}')\" ]"; then
    pass "the StatefulSet's pods are Ready ($(kubectl -n "$ns" get statefulset db -o jsonpath='{.status.readyReplicas}')) and status.currentReplicas reads its /scale"
  else
    fail "StatefulSet: ready $(kubectl -n "$ns" get statefulset db -o jsonpath='{.status.readyReplicas}'), spec $(spec_replicas "$ns" statefulset db), status.currentReplicas $(kubectl -n "$ns" get pa db -o jsonpath='{.status.currentReplicas}')"
  fi

  # A custom kind whose CRD is not installed yet (a GitOps sync applies the autoscaler first).
  op_pa "$ns" shop shop Scale | sed 's#apiVersion: apps/v1, kind: Deployment#apiVersion: test.prescient.dev/v1, kind: Canary#' |
    kubectl apply -f - >/dev/null
  if until_true 60 cond_is "$ns" shop AbleToScale False/TargetNotScalable; then
    pass "a kind not served yet: AbleToScale=False/TargetNotScalable ($(kubectl -n "$ns" get pa shop -o jsonpath='{.status.conditions[?(@.type=="AbleToScale")].message}'))"
  else
    fail "a kind not served: AbleToScale is $(cond "$ns" shop AbleToScale)"
  fi
  # Its CRD arrives, with a /scale subresource; the operator has no RBAC rule for it yet.
  custom_kind_crd test.prescient.dev canaries Canary status scale | kubectl apply -f - >/dev/null
  kubectl wait --for=condition=Established crd/canaries.test.prescient.dev --timeout=30s >/dev/null
  printf 'apiVersion: test.prescient.dev/v1\nkind: Canary\nmetadata: { name: shop, namespace: %s }\nspec: { replicas: 1 }\n' "$ns" |
    kubectl apply -f - >/dev/null
  kubectl -n "$ns" patch canary shop --subresource=status --type merge -p '{"status":{"replicas":1,"readyReplicas":1}}' >/dev/null
  if until_true 60 cond_is "$ns" shop AbleToScale False/ScaleForbidden; then
    r=$(spec_replicas "$ns" canary shop)
    [ "$r" = 1 ] && pass "a custom kind without an RBAC rule: AbleToScale=False/ScaleForbidden ($(kubectl -n "$ns" get pa shop -o jsonpath='{.status.conditions[?(@.type=="AbleToScale")].message}' | cut -c1-160)), replicas untouched (1)" ||
      fail "a custom kind without an RBAC rule: replicas changed to $r"
  else
    fail "a custom kind without an RBAC rule: AbleToScale is $(cond "$ns" shop AbleToScale)"
  fi
  # One labelled ClusterRole (as manifests/examples/argo-rollouts-rbac.yaml) and no binding.
  sed -e 's/argo-rollouts/test-canaries/' -e 's/argoproj.io/test.prescient.dev/' -e 's/rollouts/canaries/g' \
    manifests/examples/argo-rollouts-rbac.yaml | kubectl apply -f - >/dev/null
  if until_true 90 spec_replicas_are "$ns" canary shop -gt 1; then
    pass "a labelled ClusterRole (aggregated into prescient-operator): the Canary is scaled through its /scale to $(spec_replicas "$ns" canary shop); AbleToScale $(cond "$ns" shop AbleToScale)"
  else
    fail "after the aggregated rule: Canary replicas $(spec_replicas "$ns" canary shop), AbleToScale $(cond "$ns" shop AbleToScale)"
  fi
  # A custom kind without /scale.
  custom_kind_crd test.prescient.dev widgets Widget status | kubectl apply -f - >/dev/null
  kubectl wait --for=condition=Established crd/widgets.test.prescient.dev --timeout=30s >/dev/null
  printf 'apiVersion: test.prescient.dev/v1\nkind: Widget\nmetadata: { name: w, namespace: %s }\nspec: { replicas: 1 }\n' "$ns" |
    kubectl apply -f - >/dev/null
  op_pa "$ns" w w Scale | sed 's#apiVersion: apps/v1, kind: Deployment#apiVersion: test.prescient.dev/v1, kind: Widget#' |
    kubectl apply -f - >/dev/null
  if until_true 60 cond_is "$ns" w AbleToScale False/TargetNotScalable; then
    pass "a custom kind without /scale: AbleToScale=False/TargetNotScalable ($(kubectl -n "$ns" get pa w -o jsonpath='{.status.conditions[?(@.type=="AbleToScale")].message}')); spec.replicas untouched ($(spec_replicas "$ns" widget w))"
  else
    fail "a custom kind without /scale: AbleToScale is $(cond "$ns" w AbleToScale)"
  fi
  no_panic a
}

# -------------------------------------------------------------------------------- group: apiserver
# steady_before_outage GROUP NS: the autoscaler "steady" in NS with a decision, operator a running.
steady_before_outage() {
  group_env "$1" "$2" || return 1
  scaled_deployment "$ns" steady 1
  ensure_operator_a || { fail "operator did not start"; return 1; }
  until_true 120 sh -c "kubectl -n $ns get pa steady -o jsonpath='{.status.desiredReplicas}' | grep -q ." && return 0
  fail "no decision before the outage: $(kubectl -n "$ns" get pa steady -o jsonpath='{.status.conditions}')"
  return 1
}

test_apiserver() {
  echo "== API server crash: kube-apiserver killed (SIGKILL) for 25 s under a running operator, then started again"
  steady_before_outage apiserver outage-e2e || return
  # A second replica, standby: after the outage the Lease is up for grabs, and the two must never both lead.
  start_operator d || { fail "operator d did not start: $(tail -5 "$work/operator-d.log")"; return; }
  until_true 20 role_is d standby || fail "operator d is not a standby: $(role_of d)"
  local before r0 t0 took
  before=$(replicas "$ns" steady)
  r0=$(reconciles_of a)
  if ! scripts/local-cluster.sh stop kube-apiserver 2>> "$work/up.log"; then
    fail "could not stop kube-apiserver"
    return
  fi
  sleep 25
  # It cannot renew its Lease, which expires for the other replicas at second 15: it must have stopped
  # leading by then (renew deadline 10 s), or a standby taking the Lease would scale beside it.
  if kill -0 "${op_pid[a]}" 2>/dev/null && kill -0 "${op_pid[d]}" 2>/dev/null && [ "$(role_of a)" = standby ] && [ "$(role_of d)" = standby ]; then
    pass "25 s without an API server: both replicas are running, and the leader has stopped leading (/readyz: $(curl -s "${op_metrics[a]}/readyz"); its Lease expired at 15 s)"
  else
    fail "25 s without an API server: a $(kill -0 "${op_pid[a]}" 2>/dev/null && echo "runs as $(role_of a)" || echo "exited"), d $(kill -0 "${op_pid[d]}" 2>/dev/null && echo "runs as $(role_of d)" || echo "exited")"
  fi
  if ! scripts/local-cluster.sh start kube-apiserver 2>> "$work/up.log"; then
    fail "kube-apiserver did not start again: $(tail -5 "$work/cluster/logs/kube-apiserver.log")"
    return
  fi
  t0=$(date +%s)
  # Acted on after the restart: a spec change (the watch is re-established) and a new autoscaler.
  kubectl -n "$ns" patch pa steady --type merge -p '{"spec":{"minReplicas":12}}' >/dev/null
  scaled_deployment "$ns" late 1
  # For 20 s after the restart, every half second: never two leaders; one by the end.
  local both=0 samples=0 ra rd leader_after="" scaled_after=""
  while [ $(( $(date +%s) - t0 )) -lt 20 ]; do
    ra=$(role_of a); rd=$(role_of d)
    samples=$((samples + 1))
    [ -z "$scaled_after" ] && [ "$(replicas "$ns" steady)" -ge 12 ] && scaled_after=$(( $(date +%s) - t0 ))
    [ "$ra" = leader ] && [ "$rd" = leader ] && both=$((both + 1))
    [ -z "$leader_after" ] && { [ "$ra" = leader ] || [ "$rd" = leader ]; } && leader_after=$(( $(date +%s) - t0 ))
    sleep 0.5
  done
  ra=$(role_of a); rd=$(role_of d)
  if [ "$both" = 0 ] && [ -n "$leader_after" ] && { [ "$ra" = leader ] || [ "$rd" = leader ]; }; then
    pass "after the restart, one of two replicas leads within ${leader_after}s and never both ($samples samples; now a $ra, d $rd)"
  else
    fail "after the restart: both led in $both of $samples samples; first leader after ${leader_after:-never}s; now a $ra, d $rd"
  fi
  # The rest of the group follows the one that leads.
  if [ "$rd" = leader ]; then
    kill -TERM "${op_pid[a]}"; wait "${op_pid[a]}" 2>/dev/null
    op_pid[a]=${op_pid[d]}; op_metrics[a]=${op_metrics[d]}
  else
    kill -TERM "${op_pid[d]}"; wait "${op_pid[d]}" 2>/dev/null
  fi
  if [ -n "$scaled_after" ] || until_true 120 spec_replicas_are "$ns" deployment steady -ge 12; then
    took=${scaled_after:-$(( $(date +%s) - t0 ))}
    pass "after the restart a spec change made then is acted on within ${took}s (replicas $before -> $(replicas "$ns" steady), minReplicas 12; $(reconciles_of a) reconciles, $r0 before)"
  else
    fail "after the restart: replicas $(replicas "$ns" steady), not minReplicas 12; /readyz $(curl -s "${op_metrics[a]}/readyz"); last log: $(tail -2 "$work/operator-a.log")"
  fi
  if until_true 60 sh -c "kubectl -n $ns get pa late -o jsonpath='{.status.desiredReplicas}' | grep -q ."; then
    pass "an autoscaler created after the restart is reconciled (desiredReplicas $(kubectl -n "$ns" get pa late -o jsonpath='{.status.desiredReplicas}'))"
  else
    fail "an autoscaler created after the restart has no decision: $(kubectl -n "$ns" get pa late -o jsonpath='{.status}')"
  fi
  local renewed
  renewed=$(kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.renewTime}')
  if [ "$(role_of a)" = leader ] && [ -n "$renewed" ] &&
    [ "$(date -d "$renewed" +%s)" -ge "$t0" ]; then
    pass "the operator leads again, its Lease renewed after the restart ($(kubectl -n prescient-system get lease prescient-leader -o jsonpath='{.spec.holderIdentity}') at $renewed)"
  else
    fail "after the restart: role $(role_of a), Lease renewed at $renewed"
  fi
  no_panic a
  kubectl -n "$ns" patch pa steady --type merge -p '{"spec":{"minReplicas":1}}' >/dev/null
}

# ------------------------------------------------------------------------------------- group: etcd
# etcd down, the API server up: requests are accepted and then fail or hang, unlike a refused connection.
test_etcd() {
  echo "== etcd crash: etcd killed (SIGKILL) for 25 s under a running operator, the API server up, then started again"
  steady_before_outage etcd etcd-e2e || return
  scripts/local-cluster.sh stop etcd 2>> "$work/up.log" || { fail "could not stop etcd"; return; }
  sleep 25
  if kill -0 "${op_pid[a]}" 2>/dev/null && [ "$(role_of a)" = standby ]; then
    pass "25 s without etcd: the operator is running and has stopped leading (/readyz: $(curl -s "${op_metrics[a]}/readyz"))"
  else
    fail "25 s without etcd: $(kill -0 "${op_pid[a]}" 2>/dev/null && echo "runs as $(role_of a)" || echo "exited: $(tail -3 "$work/operator-a.log")")"
  fi
  scripts/local-cluster.sh start etcd 2>> "$work/up.log" || { fail "etcd did not start again"; return; }
  local t0
  t0=$(date +%s)
  if until_true 90 role_is a leader; then
    pass "it leads again $(( $(date +%s) - t0 ))s after etcd is back"
  else
    fail "not leading 90 s after etcd is back: /readyz $(curl -s "${op_metrics[a]}/readyz")"
  fi
  kubectl -n "$ns" patch pa steady --type merge -p '{"spec":{"minReplicas":12}}' >/dev/null
  if until_true 90 spec_replicas_are "$ns" deployment steady -ge 12; then
    pass "a spec change made after etcd is back is acted on within $(( $(date +%s) - t0 ))s of its return (replicas $(replicas "$ns" steady))"
  else
    fail "after etcd is back: replicas $(replicas "$ns" steady), not minReplicas 12; /readyz $(curl -s "${op_metrics[a]}/readyz")"
  fi
  no_panic a
  kubectl -n "$ns" patch pa steady --type merge -p '{"spec":{"minReplicas":1}}' >/dev/null
}

[ "$source_only" = 1 ] && return 0

for group in "${groups[@]}"; do
  case "$group" in
    crd) test_crd ;;
    operator) test_operator ;;
    leader) test_leader ;;
    hpa) test_hpa ;;
    targets) test_targets ;;
    apiserver) test_apiserver ;;
    etcd) test_etcd ;;
    *) fail "unknown test group $group" ;;
  esac
done
[ "$failed" -eq 0 ]
