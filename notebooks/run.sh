#!/usr/bin/env bash
# Executes the notebooks headless; any error in any cell fails the script (non-zero exit).
#
#   notebooks/run.sh                  # all of notebooks/*.ipynb
#   notebooks/run.sh what-if          # only the named ones
#
# Creates (or reuses) a virtual environment in target/notebooks-venv with notebooks/requirements.txt,
# and writes the executed notebooks to target/notebooks-out/ (figures to target/notebooks-work/figures/).
# The `prescient` binary: $PRESCIENT_BIN if set; else target/debug/prescient, rebuilt first with
# `cargo build -p prescient` when it is missing or older than the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
venv=$root/target/notebooks-venv
out=$root/target/notebooks-out
python=${PYTHON:-python3}

# --- the virtual environment, reinstalled only when requirements.txt changed ---------------------------
if [ ! -x "$venv/bin/python" ]; then
  echo "notebooks: creating $venv"
  "$python" -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
want=$(sha256sum notebooks/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "notebooks: installing notebooks/requirements.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r notebooks/requirements.txt
  echo "$want" >"$stamp"
fi

# --- the prescient binary -------------------------------------------------------------------------------
if [ -z "${PRESCIENT_BIN:-}" ]; then
  bin=$target/debug/prescient
  stale=""
  if [ ! -x "$bin" ]; then
    stale="missing"
  elif [ -n "$(find controller model data/traces Cargo.toml Cargo.lock \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name '*.csv' -o -name '*.html' -o -name '*.js' -o -name '*.css' \) -newer "$bin" -print -quit 2>/dev/null)" ]; then
    stale="older than the sources"
  fi
  if [ -n "$stale" ]; then
    echo "notebooks: $bin is $stale: cargo build -p prescient"
    cargo build -p prescient
  fi
  export PRESCIENT_BIN=$bin
fi
[ -x "$PRESCIENT_BIN" ] || { echo "notebooks: PRESCIENT_BIN=$PRESCIENT_BIN is not executable" >&2; exit 1; }
echo "notebooks: prescient = $PRESCIENT_BIN"

# --- execute ----------------------------------------------------------------------------------------------
# Jupyter's and IPython's own files stay under target/ (and the venv's kernel is the one found first).
export JUPYTER_DATA_DIR=$venv/share/jupyter
export JUPYTER_CONFIG_DIR=$venv/etc/jupyter
export JUPYTER_RUNTIME_DIR=$root/target/notebooks-runtime
export IPYTHONDIR=$venv/ipython
export MPLBACKEND=Agg
export MPLCONFIGDIR=$venv/matplotlib
export PYTHONDONTWRITEBYTECODE=1
export JUPYTER_PLATFORM_DIRS=1
mkdir -p "$out" "$JUPYTER_RUNTIME_DIR"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for notebook in notebooks/*.ipynb; do names+=("$(basename "$notebook" .ipynb)"); done
fi
failed=()
total_start=$(date +%s)
# One notebook; its output also goes to $out/$name.log, to tell a kernel that never started from a
# notebook that failed.
execute() {
  "$venv/bin/jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=python3 \
    --output-dir "$out" "notebooks/$1.ipynb" 2>&1 | tee "$out/$1.log"
  return "${PIPESTATUS[0]}"
}
for name in "${names[@]}"; do
  name=${name%.ipynb}
  start=$(date +%s)
  echo "notebooks: executing notebooks/$name.ipynb"
  ok=0
  execute "$name" || ok=$?
  # Jupyter picks the kernel's TCP ports free, then the kernel binds them; a port taken in between (an
  # outgoing connection of the tests around it: the same ephemeral range) kills the kernel before it runs
  # a cell. That, and only that, is retried once; a failing cell fails the run.
  if [ $ok -ne 0 ] && grep -q "ZMQError: Address already in use" "$out/$name.log"; then
    echo "notebooks: $name: the kernel could not bind a port another process had taken; retrying once" >&2
    ok=0
    execute "$name" || ok=$?
  fi
  if [ $ok -eq 0 ]; then
    echo "notebooks: $name passed in $(($(date +%s) - start)) s"
  else
    echo "notebooks: $name FAILED after $(($(date +%s) - start)) s" >&2
    failed+=("$name")
  fi
done
passed=$((${#names[@]} - ${#failed[@]}))
echo "notebooks: executed in $(($(date +%s) - total_start)) s"
echo "notebooks: $passed passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "notebooks: failed: ${failed[*]}" >&2
  exit 1
fi
