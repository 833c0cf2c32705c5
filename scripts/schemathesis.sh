#!/usr/bin/env bash
# Schemathesis against the dashboard's own OpenAPI document (`/openapi.json`), served by `prescient demo`
# (the same router as `prescient run`, filled by the real reconcile loop), every check on:
#   1. a dashboard without a token;
#   2. a dashboard with a token, schemathesis sending it (`Authorization: Bearer …`);
#   3. the same dashboard, schemathesis sending none (every answer must be the documented 401).
# A run that fails, errors, or tests no case or no operation is a FAILURE, never a skip.
#
# Usage: scripts/schemathesis.sh   (SCHEMATHESIS_MAX_EXAMPLES, default 100 cases per operation and phase)
# Schemathesis (requirements in scripts/schemathesis-requirements.txt, from PyPI) goes into a virtual
# environment in target/schemathesis-venv; the `prescient` binary is $PRESCIENT_BIN or target/debug/prescient.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
venv=$root/target/schemathesis-venv
work=$root/target/schemathesis
requirements=scripts/schemathesis-requirements.txt
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
rm -rf "$work"
mkdir -p "$work"

# --- the virtual environment, reinstalled only when the requirements or its place changed -------------------
# (a venv's entry points name its own path: one moved along with its target directory no longer runs)
stamp=$venv/.requirements.sha256
want=$( (cat "$requirements"; echo "$venv") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "schemathesis: creating $venv with $requirements"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
echo "schemathesis: $("$venv/bin/schemathesis" --version)"

# --- the prescient binary ---------------------------------------------------------------------------------
bin=${PRESCIENT_BIN:-$target/debug/prescient}
if [ ! -x "$bin" ]; then
  echo "schemathesis: building prescient"
  cargo build -p prescient --locked
fi
[ -x "$bin" ] || { echo "schemathesis: no prescient binary at $bin" >&2; exit 1; }

pids=()
# Stops every demo started; never changes the script's exit status (an EXIT trap's last status would).
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  return 0
}
trap cleanup EXIT

# start_demo NAME [TOKEN]: a demo with its dashboard on a free port; sets demo_url to the dashboard's URL.
# Not called in a command substitution: its subshell would keep the demo's pid from `pids`.
start_demo() {
  local log=$work/demo-$1.log i url
  PRESCIENT_DASHBOARD_TOKEN=${2:-} "$bin" demo --dashboard-addr 127.0.0.1:0 --duration 15m >"$log" 2>&1 &
  pids+=("$!")
  for i in $(seq 1 100); do
    url=$(sed -n 's/^Dashboard: //p' "$log" | head -1)
    if [ -n "$url" ] && curl -sf "${url}healthz" >/dev/null; then
      demo_url=${url%/}
      return 0
    fi
    sleep 0.1
  done
  echo "schemathesis: the demo did not start: $(tail -5 "$log")" >&2
  exit 1
}

failed=0
# run NAME SCHEMA BASE_URL [schemathesis args...]: every check; the JSON report must show cases tested.
run() {
  local name=$1 schema=$2 base=$3 report=$work/$1.json
  shift 3
  echo "== schemathesis: $name"
  # Run from $work: schemathesis keeps its crash cache (.schemathesis/) in the working directory.
  if ! (cd "$work" && "$venv/bin/schemathesis" run "$schema" --url "$base" --checks all \
    --max-examples "$max_examples" --seed 1 --report json --report-json-path "$report" "$@") \
    >"$work/$name.log" 2>&1; then
    sed -n '/FAILURES\|ERRORS/,$p' "$work/$name.log" | head -80
    echo "FAIL: schemathesis $name (full output: $work/$name.log)"
    failed=$((failed + 1))
    return
  fi
  local summary
  if ! summary=$(python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops, cases = r["operations"], r["test_cases"]
problems = []
if not r.get("complete"): problems.append("run not complete")
if ops["tested"] == 0 or ops["tested"] != ops["selected"]: problems.append(f"{ops['tested']} of {ops['selected']} operations tested")
if cases["generated"] == 0: problems.append("no case generated")
if cases["with_failures"] or cases["errored"] or r["failures"] or r["errors"]: problems.append("failures or errors")
print(f"{cases['generated']} cases over {ops['tested']} operations, no failure" if not problems else "; ".join(problems))
sys.exit(1 if problems else 0)
PY
  ); then
    echo "FAIL: schemathesis $name: $summary (full output: $work/$name.log)"
    failed=$((failed + 1))
    return
  fi
  echo "PASS: schemathesis $name: $summary"
}

# 1. No token: the document declares no security and every operation answers without credentials.
start_demo open
open_url=$demo_url
curl -sf "$open_url/openapi.json" >"$work/openapi-open.json"
run without-token "$work/openapi-open.json" "$open_url"

# 2. and 3. A token: the document declares bearer security; with it every operation answers, without it
# every answer must be the documented 401 with the documented JSON error.
token=schemathesis-$RANDOM$RANDOM
start_demo guarded "$token"
guarded_url=$demo_url
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$guarded_url/openapi.json")" != 401 ]; then
  echo "FAIL: /openapi.json of a dashboard with a token answers without it"
  failed=$((failed + 1))
fi
curl -sf -H "Authorization: Bearer $token" "$guarded_url/openapi.json" >"$work/openapi-guarded.json"
run with-token "$work/openapi-guarded.json" "$guarded_url" -H "Authorization: Bearer $token"
run token-not-sent "$work/openapi-guarded.json" "$guarded_url"

[ "$failed" = 0 ] || { echo "schemathesis: $failed run(s) failed"; exit 1; }
echo "schemathesis: all runs passed"
