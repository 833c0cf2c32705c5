#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the test suite: etcd, kube-apiserver (own CA, client-
# certificate auth, RBAC, service-account token signing), kube-controller-manager (Deployments get
# ReplicaSets and Pods; service-account tokens), kube-scheduler and kwok with fake nodes, so Pods are
# scheduled and become Running and Ready without a container runtime.
#
# Usage: scripts/local-cluster.sh up      starts it (building the binaries first if needed); the last line
#                                         printed is KUBECONFIG=PATH (an admin kubeconfig, system:masters)
#        scripts/local-cluster.sh down    stops every process `up` started and removes its state
#        scripts/local-cluster.sh build   only finds or builds the binaries; prints their folder
#        scripts/local-cluster.sh status  says whether it is running
#        scripts/local-cluster.sh stop NAME    kills one process of a running cluster (kube-apiserver, etcd,
#                                              kube-controller-manager, kube-scheduler, kwok) with SIGKILL,
#                                              as a crash would; its state (etcd data, certificates) stays
#        scripts/local-cluster.sh start NAME   starts it again with the arguments `up` gave it, and waits
#                                              until it answers (kube-apiserver: /readyz; etcd: /health)
#
# Binaries: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok are taken
# from the build cache, $KUBEBUILDER_ASSETS or PATH (in that order) when their version fits (Kubernetes
# v1.37, kubectl within one minor version); the rest are built once with `go` from the wrapper modules in
# tools/k8s and tools/etcd (versions in tools/k8s/versions.env) and cached in .cache/k8s/VERSION/bin.
# `up` also links the binaries it uses into STATE/bin, printed as LOCAL_CLUSTER_BIN=..., so a caller can
# put that folder first on PATH and use the matching kubectl.
#
# Environment: LOCAL_CLUSTER_DIR (state folder, default .cache/local-cluster), LOCAL_CLUSTER_NODES (fake
# nodes, default 2), PRESCIENT_K8S_CACHE (binary cache root, default .cache/k8s),
# LOCAL_CLUSTER_ANY_VERSION=1 (accept binaries of any version found on PATH), LOCAL_CLUSTER_KUBERNETES
# (`pinned`, the default: tools/k8s/versions.env; `oldest`: the oldest Kubernetes the operator is tested
# against, tools/k8s-oldest/versions.env, built from that wrapper module; etcd and kwok stay the same).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../tools/k8s/versions.env
. "$root/tools/k8s/versions.env"
k8s_module="$root/tools/k8s"
case "${LOCAL_CLUSTER_KUBERNETES:-pinned}" in
  pinned) ;;
  oldest)
    # shellcheck source=../tools/k8s-oldest/versions.env
    . "$root/tools/k8s-oldest/versions.env"
    k8s_module="$root/tools/k8s-oldest" ;;
  *) echo "local-cluster: error: LOCAL_CLUSTER_KUBERNETES is pinned or oldest, not $LOCAL_CLUSTER_KUBERNETES" >&2; exit 2 ;;
esac

state="${LOCAL_CLUSTER_DIR:-$root/.cache/local-cluster}"
cache_root="${PRESCIENT_K8S_CACHE:-$root/.cache/k8s}"
cache_bin="$cache_root/$KUBERNETES_VERSION/bin"
nodes="${LOCAL_CLUSTER_NODES:-2}"
k8s_minor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
lock="${BUILD_LOCK:-/work/.build.lock}"

log() { echo "local-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------- binaries

# The Kubernetes minor version a binary reports, or nothing. (Output is captured whole: with pipefail, a
# reader that stops early, like `head` or `grep -q`, would make the pipeline fail at random.)
minor_of() {
  local out
  case "$(basename "$1")" in
    kubectl) out=$("$1" version --client 2>/dev/null || true) ;;
    *) out=$("$1" --version 2>/dev/null || true) ;;
  esac
  [[ "$out" =~ v1\.([0-9]+)\. ]] && echo "${BASH_REMATCH[1]}"
  return 0
}

# Whether a found binary is of a version the tests can use.
fits() {
  local path="$1" name minor
  name=$(basename "$path")
  [ -x "$path" ] || return 1
  [ "${LOCAL_CLUSTER_ANY_VERSION:-0}" = 1 ] && return 0
  case "$name" in
    etcd) [[ "$("$path" --version 2>/dev/null || true)" =~ etcd\ Version:\ 3\.(6|7|8)\. ]] ;;
    kwok) "$path" --version >/dev/null 2>&1 ;;
    kubectl)
      minor=$(minor_of "$path")
      [ -n "$minor" ] && [ "$minor" -ge $((k8s_minor - 1)) ] && [ "$minor" -le $((k8s_minor + 1)) ] ;;
    *)
      minor=$(minor_of "$path")
      [ "$minor" = "$k8s_minor" ] ;;
  esac
}

# Path of a usable binary: the cache first (it holds exactly the pinned versions), then
# $KUBEBUILDER_ASSETS, then PATH.
find_bin() {
  local name="$1" candidate
  for candidate in "$cache_bin/$name" ${KUBEBUILDER_ASSETS:+"$KUBEBUILDER_ASSETS/$name"} "$(command -v "$name" 2>/dev/null || true)"; do
    [ -n "$candidate" ] && fits "$candidate" && { echo "$candidate"; return 0; }
  done
  return 1
}

ldflags_k8s() {
  local ld="-s -w" major minor p
  major=$(echo "$KUBERNETES_VERSION" | cut -d. -f1 | tr -d v)
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}

with_lock() {
  if command -v flock >/dev/null && [ -n "$lock" ] && touch "$lock" 2>/dev/null; then
    flock "$lock" "$@"
  else
    "$@"
  fi
}

# Builds what is missing into the cache, one `go build` for the Kubernetes binaries (shared compile cache).
build_missing() {
  local missing_k8s=() name start
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    find_bin "$name" >/dev/null || missing_k8s+=("$name")
  done
  local need_etcd=0 need_kwok=0
  find_bin etcd >/dev/null || need_etcd=1
  find_bin kwok >/dev/null || need_kwok=1
  if [ ${#missing_k8s[@]} -eq 0 ] && [ $need_etcd = 0 ] && [ $need_kwok = 0 ]; then
    return 0
  fi
  command -v go >/dev/null || die "go is needed to build ${missing_k8s[*]} (or put the binaries on PATH / in \$KUBEBUILDER_ASSETS)"
  mkdir -p "$cache_bin"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly"
  if [ ${#missing_k8s[@]} -gt 0 ]; then
    local pkgs=()
    for name in "${missing_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
    log "building ${missing_k8s[*]} $KUBERNETES_VERSION with $(go version | awk '{print $3}') (once per machine; cold about 15-25 minutes on 2 cores)"
    start=$(date +%s)
    (cd "$k8s_module" && go mod download && with_lock go build -o "$cache_bin/" -ldflags "$(ldflags_k8s)" "${pkgs[@]}")
    log "built ${missing_k8s[*]} in $(( $(date +%s) - start ))s"
  fi
  if [ $need_etcd = 1 ]; then
    log "building etcd $ETCD_VERSION"
    start=$(date +%s)
    (cd "$root/tools/etcd" && go mod download && with_lock go build -o "$cache_bin/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3)
    log "built etcd in $(( $(date +%s) - start ))s"
  fi
  if [ $need_kwok = 1 ]; then
    log "building kwok $KWOK_VERSION"
    start=$(date +%s)
    (cd "$cache_bin" && GOFLAGS=-buildvcs=false GOBIN="$cache_bin" with_lock go install \
      -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
    log "built kwok in $(( $(date +%s) - start ))s"
  fi
}

# kwok v0.8 ships no default stages: the node and pod stages come from its module's kustomize/stage/.
kwok_stages() {
  local out="$cache_root/$KUBERNETES_VERSION/kwok-$KWOK_VERSION-stages.yaml" dir
  if [ ! -s "$out" ]; then
    command -v go >/dev/null || die "go is needed to fetch kwok's stage definitions"
    dir=$(cd "$cache_root" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir/kustomize/stage" ] || die "no kustomize/stage in sigs.k8s.io/kwok@$KWOK_VERSION"
    mkdir -p "$(dirname "$out")"
    {
      for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        [ -f "$dir/kustomize/stage/$f" ] || die "kwok stage $f missing in $dir"
        echo "---"
        cat "$dir/kustomize/stage/$f"
      done
    } > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

resolve_all() {
  build_missing
  local name path
  mkdir -p "$state/bin"
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
    path=$(find_bin "$name") || die "$name is still missing after the build"
    ln -sf "$path" "$state/bin/$name"
  done
}

# ------------------------------------------------------------------------------------------ processes

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Whether the process of a pid file is alive and one of ours (its command line names the state folder).
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
  [[ "$cmdline" == *"$state"* ]]
}

start_proc() {
  local name="$1"; shift
  # Its arguments, NUL-separated, for `start NAME` after a `stop NAME`.
  mkdir -p "$state/args"
  printf '%s\0' "$@" > "$state/args/$name"
  setsid "$@" >> "$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name.pid"
}

fail_up() {
  log "error: $*"
  local f
  for f in "$state"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "---- $(basename "$f") (last lines)" >&2
    tail -15 "$f" >&2
  done
  stop_all
  exit 1
}

wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail_up "$what not ready within ${timeout}s"
    local name
    for name in "$state"/pids/*.pid; do
      alive "$name" || fail_up "$(basename "$name" .pid) exited while waiting for $what"
    done
    sleep 0.2
  done
}

# ------------------------------------------------------------------------------------------ certificates

sign() { # name CN O extendedKeyUsage [subjectAltName]
  local name="$1" cn="$2" org="$3" eku="$4" san="${5:-}" subj ext
  subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  ext="$state/pki/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$state/pki/$name.key" -subj "$subj" \
    -out "$state/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$state/pki/$name.csr" -CA "$state/pki/ca.crt" -CAkey "$state/pki/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$state/pki/$name.crt" 2>/dev/null
}

kubeconfig() { # file user-cert-name
  local file="$1" user="$2"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 < "$state/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$state/pki/$user.crt")
    client-key-data: $(base64 -w0 < "$state/pki/$user.key")
contexts:
- name: local
  context: { cluster: local, user: $user }
current-context: local
EOF
}

make_pki() {
  mkdir -p "$state/pki"
  command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$state/pki/ca.key" -out "$state/pki/ca.crt" \
    -days 365 -subj "/CN=prescient-local-cluster-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  sign apiserver kube-apiserver "" serverAuth \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  sign admin prescient-local-admin system:masters clientAuth
  sign controller-manager system:kube-controller-manager "" clientAuth
  sign scheduler system:kube-scheduler "" clientAuth
  openssl genrsa -out "$state/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$state/pki/sa.key" -pubout -out "$state/pki/sa.pub" 2>/dev/null
}

# -------------------------------------------------------------------------------------------- commands

stop_all() {
  local name pid i
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    local f="$state/pids/$name.pid"
    if alive "$f"; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do alive "$f" || break; sleep 0.1; done
      alive "$f" && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

cmd_down() {
  if [ ! -d "$state" ]; then
    log "not running ($state does not exist)"
    return 0
  fi
  stop_all
  rm -rf "$state"
  log "stopped; removed $state"
}

cmd_up() {
  local t0 name
  t0=$(date +%s.%N)
  if alive "$state/pids/kube-apiserver.pid" && [ -f "$state/admin.kubeconfig" ]; then
    log "already running"
    echo "LOCAL_CLUSTER_BIN=$state/bin"
    echo "KUBECONFIG=$state/admin.kubeconfig"
    return 0
  fi
  [ -d "$state" ] && cmd_down >/dev/null 2>&1
  mkdir -p "$state/logs" "$state/pids" "$state/etcd"
  resolve_all
  local stages
  stages=$(kwok_stages)
  local b="$state/bin"
  read -r etcd_port etcd_peer_port apiserver_port kcm_port scheduler_port kwok_port <<< "$(free_ports 6)"
  make_pki
  kubeconfig "$state/admin.kubeconfig" admin
  kubeconfig "$state/controller-manager.kubeconfig" controller-manager
  kubeconfig "$state/scheduler.kubeconfig" scheduler

  start_proc etcd "$b/etcd" --name local --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  start_proc kube-apiserver "$b/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$apiserver_port" --cert-dir "$state/pki" \
    --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
    --client-ca-file "$state/pki/ca.crt" --authorization-mode RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/pki/sa.pub" --service-account-signing-key-file "$state/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none \
    --max-requests-inflight 1000 --max-mutating-requests-inflight 500
  wait_for kube-apiserver 60 "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" get --raw /readyz

  start_proc kube-controller-manager "$b/kube-controller-manager" \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$state/pki/kcm" --leader-elect=false \
    --service-account-private-key-file "$state/pki/sa.key" --root-ca-file "$state/pki/ca.crt" \
    --use-service-account-credentials=true --kube-api-qps 200 --kube-api-burst 400 \
    --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 --profiling=false
  start_proc kube-scheduler "$b/kube-scheduler" \
    --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" --cert-dir "$state/pki/scheduler" \
    --leader-elect=false --kube-api-qps 200 --kube-api-burst 400 --profiling=false
  start_proc kwok "$b/kwok" --kubeconfig "$state/admin.kubeconfig" --config "$stages" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
    --server-address "127.0.0.1:$kwok_port"

  local i nodes_yaml=""
  for i in $(seq 0 $((nodes - 1))); do
    nodes_yaml+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: { kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\" }
  labels: { kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok }
status:
  allocatable: { cpu: \"64\", memory: 256Gi, pods: \"2000\" }
  capacity: { cpu: \"64\", memory: 256Gi, pods: \"2000\" }
"
  done
  wait_for "the node API" 30 "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" get nodes
  echo "$nodes_yaml" | "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" apply -f - >/dev/null \
    || fail_up "could not create the kwok nodes"
  wait_for "kwok nodes" 60 "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" wait --for=condition=Ready node --all --timeout=1s
  # The controller-manager is working once the service-account controller has made default/default.
  wait_for kube-controller-manager 60 "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" -n default get serviceaccount default

  cat > "$state/env" <<EOF
export KUBECONFIG=$state/admin.kubeconfig
export PATH=$state/bin:\$PATH
EOF
  log "up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s: Kubernetes $("$b/kube-apiserver" --version | awk '{print $2}'), etcd $("$b/etcd" --version | awk '/etcd Version/ {print $3}'), $nodes kwok nodes; apiserver https://127.0.0.1:$apiserver_port; logs in $state/logs"
  echo "LOCAL_CLUSTER_BIN=$state/bin"
  echo "KUBECONFIG=$state/admin.kubeconfig"
}

cmd_status() {
  if alive "$state/pids/kube-apiserver.pid"; then
    echo "running: KUBECONFIG=$state/admin.kubeconfig"
  else
    echo "not running"
    return 1
  fi
}

# stop NAME: SIGKILL, no graceful shutdown (what a crash or an OOM kill does).
cmd_stop() {
  local name="$1" f="$state/pids/$1.pid" i
  [ -f "$state/args/$name" ] || die "no process $name in $state"
  alive "$f" || { log "$name is not running"; return 0; }
  kill -9 "$(cat "$f")"
  for i in $(seq 1 50); do alive "$f" || break; sleep 0.1; done
  alive "$f" && die "$name did not stop"
  log "stopped $name (SIGKILL)"
}

# start NAME: again with the arguments `up` gave it (same ports, same data).
cmd_start() {
  local name="$1" f="$state/pids/$1.pid" b="$state/bin"
  [ -f "$state/args/$name" ] || die "no process $name in $state"
  alive "$f" && { log "$name is already running"; return 0; }
  local args=()
  mapfile -d '' args < "$state/args/$name"
  start_proc "$name" "${args[@]}"
  case "$name" in
    kube-apiserver) wait_for kube-apiserver 60 "$b/kubectl" --kubeconfig "$state/admin.kubeconfig" get --raw /readyz ;;
    etcd) wait_for etcd 30 curl -sf "$(printf '%s\n' "${args[@]}" | grep -A1 -- '--advertise-client-urls' | tail -1)/health" ;;
    *) sleep 1; alive "$f" || die "$name exited at once: $(tail -3 "$state/logs/$name.log")" ;;
  esac
  log "started $name again"
}

case "${1:-}" in
  up) cmd_up ;;
  stop) [ -n "${2:-}" ] || die "usage: $0 stop NAME"; cmd_stop "$2" ;;
  start) [ -n "${2:-}" ] || die "usage: $0 start NAME"; cmd_start "$2" ;;
  down) cmd_down ;;
  build) build_missing; mkdir -p "$cache_bin"; echo "$cache_bin" ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,30p' "$0" ;;
  *) echo "usage: $0 up|down|build|status|stop NAME|start NAME" >&2; exit 2 ;;
esac
