"""Helpers shared by the Prescient notebooks.

They find the `prescient` binary, run its subcommands and parse their `--json` output, read trace CSVs
into pandas, and start `prescient demo` in the background. Every helper fails loudly: a command that
exits non-zero raises `PrescientError` with its stderr, and empty results raise instead of producing an
empty plot, because a notebook that "passes" with a blank figure hides a broken CLI.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd


class PrescientError(RuntimeError):
    """A `prescient` command failed, or returned nothing usable."""


def repo_root() -> Path:
    """The Cargo workspace root: the nearest folder above this file (or the cwd) with `data/traces`."""
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in [start, *start.parents]:
            if (folder / "Cargo.toml").is_file() and (folder / "data" / "traces").is_dir():
                return folder
    raise PrescientError(f"cannot find the Prescient repository root above {starts[0]} or {starts[1]}")


ROOT = repo_root()
TRACES = ROOT / "data" / "traces"
#: Scratch files (trimmed traces, simulation series); under target/ so git never sees them.
WORK = ROOT / "target" / "notebooks-work"


def _target_dir() -> Path:
    custom = os.environ.get("CARGO_TARGET_DIR")
    if custom:
        path = Path(custom)
        return path if path.is_absolute() else ROOT / path
    return ROOT / "target"


def find_prescient(build: bool = True) -> Path:
    """The `prescient` binary: $PRESCIENT_BIN, else target/debug or target/release, else PATH, else built.

    Building uses `cargo build -p prescient` in the repository (a debug build: a few minutes from clean).
    """
    env = os.environ.get("PRESCIENT_BIN")
    if env:
        path = Path(env).expanduser()
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PrescientError(f"PRESCIENT_BIN={env} is not an executable file")
        return path
    for profile in ("debug", "release"):
        path = _target_dir() / profile / "prescient"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("prescient")
    if on_path:
        return Path(on_path)
    if not build:
        raise PrescientError("prescient not found (set PRESCIENT_BIN, or build it: cargo build -p prescient)")
    cargo = shutil.which("cargo")
    if cargo is None:
        raise PrescientError(
            "prescient is neither built, on PATH nor in PRESCIENT_BIN, and cargo is not installed to build it"
        )
    print("building prescient (cargo build -p prescient) ...", flush=True)
    done = subprocess.run([cargo, "build", "-p", "prescient"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise PrescientError(f"cargo build -p prescient failed:\n{done.stderr[-5000:]}")
    path = _target_dir() / "debug" / "prescient"
    if not path.is_file():
        raise PrescientError(f"cargo build succeeded but {path} does not exist")
    return path


_BIN: Path | None = None


def prescient_bin() -> Path:
    """The binary, found once per kernel."""
    global _BIN
    if _BIN is None:
        _BIN = find_prescient()
    return _BIN


def _text(arg: Any) -> str:
    return str(arg)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # anyhow appends a long stack trace to every error when RUST_BACKTRACE is set; the message is enough.
    env.setdefault("RUST_LIB_BACKTRACE", "0")
    return env


def run(args: Sequence[Any], timeout: float = 900) -> str:
    """Runs `prescient ARGS` from the repository root and returns its stdout; raises with stderr on failure."""
    command = [str(prescient_bin()), *map(_text, args)]
    shown = " ".join(command)
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired as err:
        raise PrescientError(f"`{shown}` did not finish within {timeout:.0f} s") from err
    if done.returncode != 0:
        raise PrescientError(
            f"`{shown}` exited with status {done.returncode}\n--- stderr ---\n{done.stderr.strip()}"
        )
    return done.stdout


def run_json(args: Sequence[Any], timeout: float = 900) -> Any:
    """Runs `prescient ARGS` (which must include `--json`) and parses its stdout."""
    out = run(args, timeout=timeout)
    if not out.strip():
        raise PrescientError(f"`prescient {' '.join(map(_text, args))}` printed nothing")
    try:
        data = json.loads(out)
    except json.JSONDecodeError as err:
        raise PrescientError(
            f"`prescient {' '.join(map(_text, args))}` printed invalid JSON ({err}):\n{out[:2000]}"
        ) from err
    if data in (None, {}, []):
        raise PrescientError(f"`prescient {' '.join(map(_text, args))}` returned empty JSON: {out!r}")
    return data


def show(fig: Any, name: str) -> None:
    """Saves a matplotlib figure as PNG under the scratch folder, displays it, and closes it.

    The notebooks keep matplotlib on the headless Agg backend, so figures are shown as images: the same
    in Jupyter, in nbconvert's output and as files for CI to keep.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    axes = fig.get_axes()
    require(bool(axes) and any(ax.has_data() for ax in axes), f"figure {name!r} has nothing plotted")
    folder = WORK / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(path)))


def require(condition: bool, message: str) -> None:
    """Raises `PrescientError(message)` unless `condition` (asserts that survive `python -O`)."""
    if not condition:
        raise PrescientError(message)


def nonempty(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Returns `frame`, or raises when it has no rows (so nothing plots an empty figure)."""
    require(len(frame) > 0, f"{what}: no data")
    return frame


# ---- traces ---------------------------------------------------------------------------------------


def to_datetime(values: Iterable[Any]) -> pd.Series:
    """Unix seconds or RFC 3339 strings → UTC timestamps."""
    series = pd.Series(list(values))
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return pd.to_datetime(numeric.astype("int64"), unit="s", utc=True)
    return pd.to_datetime(series, utc=True, format="ISO8601")


def read_trace(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A trace CSV (`timestamp,value`) as a frame with columns `time` (UTC), `unix` and `value`."""
    path = Path(path)
    raw = pd.read_csv(path, dtype={"timestamp": str})
    require(list(raw.columns[:2]) == ["timestamp", "value"], f"{path}: header must be timestamp,value")
    require(len(raw) > 0, f"{path}: no rows")
    frame = pd.DataFrame({"time": to_datetime(raw["timestamp"]).to_numpy()})
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["unix"] = (frame["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    frame["value"] = pd.to_numeric(raw["value"], errors="coerce")
    return frame


def write_trace(frame: pd.DataFrame, name: str) -> Path:
    """Writes rows of `frame` (from `read_trace`) as a trace CSV in the scratch folder and returns its path."""
    nonempty(frame, f"trace {name}")
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    out = pd.DataFrame({"timestamp": frame["unix"].astype("int64"), "value": frame["value"]})
    out.to_csv(path, index=False)
    return path


def trim_trace(path: str | os.PathLike[str], days: float | None, name: str | None = None) -> Path:
    """The last `days` of a trace as a scratch CSV (the whole trace when `days` is None)."""
    path = Path(path)
    if days is None:
        return path
    frame = read_trace(path)
    cut = frame["time"].iloc[-1] - pd.Timedelta(days=days)
    return write_trace(frame[frame["time"] > cut], name or f"{path.stem}-last{days:g}d.csv")


def parse_duration(text: str) -> pd.Timedelta:
    """`90s`, `15m`, `2h`, `7d`, `1h30m` → Timedelta (the CLI's duration syntax)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    require(bool(parts) and "".join(a + b for a, b in parts) == text.strip(), f"bad duration {text!r}")
    unit = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}
    return sum((pd.Timedelta(float(n), unit=unit[u]) for n, u in parts), pd.Timedelta(0))


# ---- forecast and backtest --------------------------------------------------------------------------


def forecast(trace: str | os.PathLike[str], horizon: str, *extra: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """`prescient forecast --json`: the JSON's header fields and the forecast as a frame (time, mean, lower, upper)."""
    data = run_json(["forecast", "--input", trace, "--horizon", horizon, *extra, "--json"])
    require(
        isinstance(data, dict) and "forecast" in data, f"forecast JSON has no 'forecast': {str(data)[:500]}"
    )
    frame = pd.DataFrame(data["forecast"])
    nonempty(frame, f"forecast of {trace}")
    for column in ("timestamp", "mean", "lower", "upper"):
        require(column in frame.columns, f"forecast points lack {column!r}: {list(frame.columns)}")
    frame["time"] = to_datetime(frame["timestamp"]).to_numpy()
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    header = {k: v for k, v in data.items() if k != "forecast"}
    return header, frame


def _backtest_reports(data: Any) -> list[dict[str, Any]]:
    """The backtest report(s) in `backtest --json` output, whatever wraps them."""
    if isinstance(data, list):
        return [r for item in data for r in _backtest_reports(item)]
    if isinstance(data, dict):
        if isinstance(data.get("models"), list):
            return [data]
        for key in ("report", "backtest", "reports", "results"):
            if key in data:
                return _backtest_reports(data[key])
    raise PrescientError(f"unrecognised backtest JSON: {str(data)[:500]}")


def backtest(trace: str | os.PathLike[str], horizon: str, *extra: Any) -> dict[str, Any]:
    """`prescient backtest --json` for one trace and horizon: the raw JSON (a dict with a `models` list)."""
    data = run_json(["backtest", "--input", trace, "--horizon", horizon, *extra, "--json"])
    reports = _backtest_reports(data)
    require(len(reports) == 1, f"expected one backtest report, got {len(reports)}")
    report = dict(reports[0])
    if isinstance(data, dict):
        # keep wrapper fields (input, auto pick, ...) next to the report's own
        for key, value in data.items():
            report.setdefault(key, value)
    require(len(report["models"]) > 0, f"backtest of {trace} at {horizon} scored no model")
    return report


def auto_pick(report: dict[str, Any]) -> str | None:
    """The model `auto` picks, as the report names it."""
    auto = report.get("auto")
    if isinstance(auto, dict):
        return auto.get("model") or auto.get("name")
    if isinstance(auto, str):
        return auto
    return None


def backtest_scores(report: dict[str, Any], trace: str, horizon: str) -> pd.DataFrame:
    """One row per model (plus `auto`, with the model it `picked`): trace, horizon, model, MAE, sMAPE, MASE,
    coverage, pinball loss, fit seconds."""
    rows = []
    entries = list(report["models"])
    if isinstance(report.get("auto"), dict):
        entries.append({**report["auto"], "model": "auto"})
    for score in entries:
        row = {"trace": trace, "horizon": horizon, "model": score.get("model") or score.get("name")}
        row["picked"] = auto_pick(report) if row["model"] == "auto" else None
        for key in ("mae", "smape", "mase", "coverage", "pinball", "fit_seconds"):
            row[key] = score.get(key)
        rows.append(row)
    frame = nonempty(pd.DataFrame(rows), f"backtest scores of {trace}")
    for key in ("mae", "smape", "mase", "coverage", "pinball", "fit_seconds"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame


def mae_by_horizon(report: dict[str, Any]) -> pd.DataFrame:
    """MAE per horizon step per model: index = lead time in minutes, one column per model."""
    step = report.get("step_seconds")
    require(isinstance(step, (int, float)) and step > 0, f"backtest report has no step_seconds: {step!r}")
    columns = {}
    for score in report["models"]:
        curve = score.get("mae_by_horizon") or []
        if curve:
            columns[score["model"]] = pd.Series(
                curve, index=[(i + 1) * step / 60 for i in range(len(curve))], dtype="float64"
            )
    require(bool(columns), "backtest report has no mae_by_horizon curves")
    frame = pd.DataFrame(columns)
    frame.index.name = "lead time (minutes)"
    return frame


# ---- simulate -----------------------------------------------------------------------------------------


def simulate(
    trace: str | os.PathLike[str], series: str | os.PathLike[str], *extra: Any, timeout: float = 1800
):
    """`prescient simulate --json --series SERIES`: (summary JSON, per-policy frame, series frame)."""
    summary = run_json(["simulate", "--input", trace, *extra, "--json", "--series", series], timeout=timeout)
    policies = summary.get("policies") if isinstance(summary, dict) else summary
    require(
        isinstance(policies, list) and len(policies) > 0,
        f"simulate JSON lists no policy: {str(summary)[:500]}",
    )
    table = pd.DataFrame(policies)
    for column in ("underprovisioned_minutes", "unserved_fraction", "replica_minutes", "scale_events"):
        require(column in table.columns, f"simulate JSON lacks {column!r}: {list(table.columns)}")
    if "label" not in table.columns:
        table["label"] = table["policy"]
    rows = pd.read_csv(series)
    expected = [
        "policy",
        "timestamp",
        "demand",
        "forecast",
        "desired_replicas",
        "provisioned_replicas",
        "ready_replicas",
    ]
    require(list(rows.columns) == expected, f"{series}: header {list(rows.columns)} is not {expected}")
    nonempty(rows, f"simulation series {series}")
    rows["time"] = pd.to_datetime(rows["timestamp"].astype("int64"), unit="s", utc=True)
    return summary, table, rows


# ---- the demo and its dashboard ----------------------------------------------------------------------------


DASHBOARD_LINE = re.compile(r"Dashboard:\s*(https?://\S+)")


_RUNNING: list["Demo"] = []


@atexit.register
def _stop_all() -> None:
    # A kernel that exits mid-notebook must not leave a demo running.
    for demo in list(_RUNNING):
        demo.stop()


class Demo:
    """`prescient demo` in the background; use as a context manager so it always stops.

    It binds the dashboard to 127.0.0.1:0 (a free port) and waits for the `Dashboard: URL` line.
    """

    def __init__(self, *args: Any, startup_timeout: float = 120):
        self.args = ["demo", "--dashboard-addr", "127.0.0.1:0", *map(_text, args)]
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        #: A bearer token, when the printed URL carries one (`.../#token=...`).
        self.token: str | None = None
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _pump(self, stream: Any, prefix: str) -> None:
        for line in stream:
            self.lines.append(prefix + line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def start(self) -> str:
        command = [str(prescient_bin()), *self.args]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=_env(),
        )
        _RUNNING.append(self)
        threading.Thread(target=self._pump, args=(self.process.stdout, ""), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, "[stderr] "), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        closed = 0
        while time.monotonic() < deadline and closed < 2:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                closed += 1
                continue
            match = DASHBOARD_LINE.search(line)
            if match:
                self.set_url(match.group(1))
                return self.url
        code = self.process.poll()
        self.stop()
        output = "\n".join(self.lines[-40:])
        if code is not None:
            raise PrescientError(
                f"`prescient {' '.join(self.args)}` exited with {code} before printing its URL:\n{output}"
            )
        raise PrescientError(
            f"`prescient {' '.join(self.args)}` printed no 'Dashboard: URL' line in {self.startup_timeout:.0f} s:\n{output}"
        )

    def set_url(self, url: str) -> None:
        """The dashboard's base URL; a `#token=...` fragment becomes the bearer token."""
        base, _, fragment = url.partition("#")
        self.url = base.rstrip("/") + "/"
        token = re.search(r"token=([^&\s]+)", fragment)
        self.token = token.group(1) if token else self.token

    def stop(self, timeout: float = 20) -> int | None:
        """Ctrl-C (SIGINT, which ends the demo with its summary), then SIGKILL if it does not exit."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self in _RUNNING:
            _RUNNING.remove(self)
        return process.returncode

    def __enter__(self) -> "Demo":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def get(self, path: str, timeout: float = 10) -> tuple[str, str]:
        """GET `path` on the dashboard: (content type, body); raises on a non-2xx status or empty body."""
        require(self.url is not None, "the demo is not running")
        url = self.url + path.lstrip("/")
        request = urllib.request.Request(url)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read().decode("utf-8")
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            raise PrescientError(f"GET {url} → HTTP {err.code}: {err.read()[:500]!r}") from err
        except urllib.error.URLError as err:
            raise PrescientError(f"GET {url} failed: {err.reason}") from err
        require(bool(body.strip()), f"GET {url} returned an empty body")
        return kind, body

    def get_json(self, path: str, timeout: float = 10) -> Any:
        """GET `path` and parse it as JSON."""
        _, body = self.get(path, timeout=timeout)
        try:
            return json.loads(body)
        except json.JSONDecodeError as err:
            raise PrescientError(f"GET {path}: invalid JSON ({err}): {body[:500]}") from err
