"""Prescient's forecasts beside statsforecast's, on the shipped traces, on the same rolling origins.

Run through `scripts/peer-bench` (it makes the virtual environment and finds the `prescient` binary).

For every trace and horizon:
- The origins are the newest `--origins` of `prescient backtest`'s own origin grid: the last observed point
  `N - 1 - h - j * ceil(h / 2)` (j = 0, 1, ...), h the horizon in steps, so each origin forecasts the
  `h` steps after it and the newest ends at the trace's last point. With `--span D`, the origins are
  spread evenly over the trace's last `D` instead (at least half a horizon apart), the newest still ending
  at the last point: the newest few origins span an hour or two, a sample of one time of day, and a
  comparison of forecasters (or of two builds) on them alone is mostly noise on bursty traffic.
- The MASE scale is exactly `prescient backtest`'s (the in-sample MAE of seasonal naive at the daily
  period over the history before its earliest fold, see model/src/select.rs): read from the reference
  binary's backtest JSON as naive's MAE / naive's MASE, then applied to every model.
- Every model is refitted at every origin on the history up to it: Prescient by `prescient forecast
  --json` on the trace cut at the origin (it fits, selects `auto` on its own inner backtest and
  calibrates its band, all on data before the origin), the peers on the same history, linearly
  interpolated over gaps (they do not take missing values), its last `window` points: three days, at
  least 2,000 points and four horizons (Prescient windows its history itself, to a similar length); an
  early origin of a short trace may have fewer, never fewer than three seasons and four horizons.
- Peers' season: the daily period in steps (none for the hour of 1-second data, where Prescient's
  detected season, if any, is used). AutoETS is seasonal only for periods up to 24 steps, as R's
  `forecast::ets`: statsforecast would try a 1,440-state seasonal ETS for minutes.
- Scores: MASE over every origin and step (missing actuals skipped), coverage of the central 0.9 band,
  seconds per fit (fit + forecast + band of one origin; for Prescient the whole `forecast` process), and
  the ratio of MASE to the best peer's.

Any error fails the run (non-zero exit); nothing is skipped. A peer that does not apply (MSTL without a
season) is reported `n/a` with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "data" / "traces"
DAY, WEEK = 86_400, 604_800
LEVEL = 0.9
MAX_INTERPOLATED_GAP = 5  # as model/src/series.rs

# Trace, horizons. 15 and 60 minutes; the 30-minute taxi trace at 30 minutes and 2 hours (one and four
# steps); the one-hour, one-second Azure trace at 1 and 5 minutes (15 minutes is 900 steps, and an hour of
# history holds too few origins of it); the 10-minute Alibaba trace at 20 minutes and 1 hour (two and six
# steps: 15 minutes is not a whole number of them); the hourly Saskatchewan trace at 1 and 4 hours (one and
# four steps, as the taxi).
CASES = [
    ("nasa-http-jul1995-1min.csv", ["15m", "60m"]),
    ("wc98-1min.csv", ["15m", "60m"]),
    ("nab-twitter-amzn-5min.csv", ["15m", "60m"]),
    ("nab-elb-requests-5min.csv", ["15m", "60m"]),
    ("nab-nyc-taxi-30min.csv", ["30m", "2h"]),
    ("azure-llm-conv-2023-1s.csv", ["1m", "5m"]),
    ("alibaba-servegen-msmall-10min.csv", ["20m", "1h"]),
    ("usask-http-1995-1h.csv", ["1h", "4h"]),
]
QUICK_CASES = [("nab-elb-requests-5min.csv", ["15m"])]
PEERS = ["SeasonalNaive", "AutoETS", "AutoTheta", "MSTL"]


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    total, number = 0, ""
    for ch in duration:
        if ch.isdigit():
            number += ch
        else:
            total += int(number) * units[ch]
            number = ""
    if number:
        raise ValueError(f"duration {duration!r} lacks a unit")
    return total


@dataclass
class Trace:
    name: str
    lines: list[str]  # data rows of the CSV, as written
    slots: np.ndarray  # grid index of each row
    step: int
    values: np.ndarray  # on the grid, NaN = missing, short gaps interpolated (as the model crate does)

    @staticmethod
    def read(path: Path) -> "Trace":
        text = path.read_text().splitlines()
        if text[0].strip() != "timestamp,value":
            raise ValueError(f"{path}: header is {text[0]!r}, want timestamp,value")
        rows = [line for line in text[1:] if line.strip()]
        times, vals = [], []
        for line in rows:
            t, v = line.rsplit(",", 1)
            t = t.strip()
            if t.lstrip("-").isdigit():
                times.append(int(t))
            else:
                times.append(int(dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()))
            vals.append(float(v) if v.strip() else math.nan)
        times_a = np.array(times, dtype=np.int64)
        distinct = np.unique(times_a)
        spacings = np.diff(distinct)
        step = int(np.sort(spacings)[len(spacings) // 2])
        start = int(distinct[0])
        slots = np.floor((times_a - start) / step + 0.5).astype(np.int64)
        n = int(slots.max()) + 1
        sums, counts = np.zeros(n), np.zeros(n)
        for s, v in zip(slots, vals):
            if math.isfinite(v):
                sums[s] += max(v, 0.0)
                counts[s] += 1
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        interpolate_short_gaps(values)
        return Trace(path.name, rows, slots, step, values)


def interpolate_short_gaps(x: np.ndarray) -> None:
    i, n = 0, len(x)
    while i < n:
        if math.isfinite(x[i]):
            i += 1
            continue
        j = i
        while j < n and not math.isfinite(x[j]):
            j += 1
        if 0 < i and j < n and j - i <= MAX_INTERPOLATED_GAP:
            a, b = x[i - 1], x[j]
            for k in range(i, j):
                x[k] = a + (b - a) * (k - i + 1) / (j - i + 1)
        i = j


def filled(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over every gap (edges take the nearest value), for the peers."""
    ok = np.isfinite(x)
    idx = np.arange(len(x))
    return np.interp(idx, idx[ok], x[ok])


@dataclass
class Score:
    abs_err: float = 0.0
    inside: int = 0
    count: int = 0
    seconds: float = 0.0
    fits: int = 0
    name: str = ""  # what Prescient's `auto` picked (most frequent), or why a peer does not apply
    picks: dict[str, int] = field(default_factory=dict)
    na: str = ""

    def add(self, actual: np.ndarray, mean, lower, upper, secs: float) -> None:
        mean, lower, upper = (np.asarray(a, dtype=float) for a in (mean, lower, upper))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise RuntimeError("a forecast holds a non-finite value")
        ok = np.isfinite(actual)
        a = actual[ok]
        self.abs_err += float(np.abs(a - mean[ok]).sum())
        self.inside += int(((a >= lower[ok]) & (a <= upper[ok])).sum())
        self.count += int(ok.sum())
        self.seconds += secs
        self.fits += 1

    def mase(self, scale: float) -> float:
        return self.abs_err / self.count / scale if self.count else math.nan

    def coverage(self) -> float:
        return self.inside / self.count if self.count else math.nan


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def peer_forecast(name: str, y: np.ndarray, h: int, seasons: list[int]):
    """(mean, lower, upper, seconds) of one statsforecast model fitted on `y`; None when it does not apply."""
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive

    m = seasons[0] if seasons else 1
    if name == "SeasonalNaive":
        model = SeasonalNaive(season_length=m)
    elif name == "AutoETS":
        # ETS keeps one state per phase: statsforecast tries seasonal ETS at any period and takes minutes at
        # a daily period of 288 or 1440 steps; R's forecast::ets refuses periods above 24, and so do we.
        model = AutoETS(season_length=m if m <= 24 else 1)
    elif name == "AutoTheta":
        model = AutoTheta(season_length=m)
    elif name == "MSTL":
        if not seasons:
            return None
        model = MSTL(season_length=seasons)
    else:
        raise ValueError(name)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.forecast(y=y.astype(float), h=h, level=[int(LEVEL * 100)])
    secs = time.perf_counter() - started
    tag = int(LEVEL * 100)
    return out["mean"], out[f"lo-{tag}"], out[f"hi-{tag}"], secs


def bench_case(trace: Trace, horizon: str, binaries: dict[str, str], origins: int, tmp: Path,
               peers: list[str], span_seconds: int | None):
    step = trace.step
    h = -(-seconds(horizon) // step)
    stride = -(-h // 2)
    if span_seconds:
        stride = max(stride, span_seconds // step // origins)
    n = len(trace.values)
    reference = next(iter(binaries.values()))[0]
    path = TRACES / trace.name
    report = json.loads(run([reference, "backtest", "--input", str(path), "--horizon", horizon, "--json"]))
    if report["horizon_steps"] != h:
        raise RuntimeError(f"{trace.name}: backtest horizon {report['horizon_steps']} steps, expected {h}")
    naive = next(m for m in report["models"] if m["model"] == "naive")
    scale = naive["mae"] / naive["mase"]
    if not (math.isfinite(scale) and scale > 0):
        raise RuntimeError(f"{trace.name} {horizon}: no MASE scale from the backtest ({naive})")
    if not span_seconds and origins > report["folds"]:
        raise RuntimeError(f"{trace.name} {horizon}: {origins} origins asked, the backtest has {report['folds']}")
    # The peers' season: the day when the trace holds two, else the strongest Prescient detects (none for
    # the hour of Azure data). Daily only: a weekly MSTL period needs two weeks of 1-minute data per fit
    # (minutes each) and was worse than daily-only in most cases of the measurements.
    daily = [DAY // step] if DAY % step == 0 and 2 * (DAY // step) <= n else []
    seasons = daily or list(report["season_steps"][:1])
    window = max(2000, 4 * h, 3 * max(seasons, default=0))
    scores = {label: Score() for label in binaries} | {p: Score() for p in peers}
    points = [n - 1 - h - j * stride for j in range(origins)]
    # A spread must leave the earliest origin enough history for a seasonal fit (a trace shorter than the
    # window, as the two weeks of 10-minute Alibaba data, gives its early origins less than the window).
    least = max(4 * h, 3 * max(seasons, default=0))
    if span_seconds and points[-1] + 1 < least:
        raise RuntimeError(f"{trace.name} {horizon}: --span of {span_seconds} s puts the earliest origin at point {points[-1]}, "
                           f"before the {least} points of history (three seasons, four horizons) a fit takes")
    for origin in reversed(points):
        actual = trace.values[origin + 1 : origin + 1 + h]
        cut = tmp / f"{trace.name}.{origin}.csv"
        rows = [line for line, s in zip(trace.lines, trace.slots) if s <= origin]
        cut.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
        for label, (binary, model) in binaries.items():
            started = time.perf_counter()
            cmd = [binary, "forecast", "--input", str(cut), "--horizon", horizon, "--quantile", str(LEVEL), "--json"]
            out = json.loads(run(cmd + ["--model", model]))
            secs = time.perf_counter() - started
            fc = out["forecast"]
            if len(fc) != h:
                raise RuntimeError(f"{label}: {len(fc)} forecast steps, expected {h}")
            s = scores[label]
            s.add(actual, [p["mean"] for p in fc], [p["lower"] for p in fc], [p["upper"] for p in fc], secs)
            s.picks[out["model"]] = s.picks.get(out["model"], 0) + 1
        cut.unlink()
        history = filled(trace.values[: origin + 1])[-window:]
        usable = [p for p in seasons if 2 * p <= len(history)]
        for peer in peers:
            result = peer_forecast(peer, history, h, usable)
            if result is None:
                scores[peer].na = "no season"
                continue
            scores[peer].add(actual, *result)
    for label in binaries:
        picks = scores[label].picks
        scores[label].name = ", ".join(f"{k}×{v}" for k, v in sorted(picks.items(), key=lambda kv: -kv[1]))
    return {"h": h, "scale": scale, "origins": origins, "seasons": seasons, "window": window, "scores": scores}


def table(results) -> str:
    lines = [
        "| trace | horizon | model | MASE | coverage 0.9 | s/fit | ratio to best peer | auto picked |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for (trace, horizon), r in results:
        scale, scores = r["scale"], r["scores"]
        peer_mases = [scores[p].mase(scale) for p in PEERS if p in scores and not scores[p].na]
        best = min(peer_mases, default=math.nan)
        for label, s in scores.items():
            if s.na:
                lines.append(f"| {trace} | {horizon} | {label} | n/a | n/a | n/a | n/a | {s.na} |")
                continue
            mase = s.mase(scale)
            ratio = f"{mase / best:.2f}" if peer_mases else "n/a"
            lines.append(
                f"| {trace} | {horizon} | {label} | {mase:.3f} | {s.coverage():.3f} | "
                f"{s.seconds / s.fits:.3f} | {ratio} | {s.name} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prescient", action="append", default=[], metavar="LABEL=PATH",
                        help="a prescient binary to compare (repeatable; the first sets the MASE scale)")
    parser.add_argument("--quick", action="store_true", help="one trace, one horizon, few origins (CI)")
    parser.add_argument("--origins", type=int, help="rolling origins per case (default 8, quick 3)")
    parser.add_argument("--trace", action="append", help="only these trace files (repeatable)")
    parser.add_argument("--models", help="also Prescient's named models, comma-separated (e.g. holt_winters,mstl)")
    parser.add_argument("--span", help="spread the origins over the trace's last SPAN (e.g. 3d) instead of "
                        "the newest ones, half a horizon apart")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"statsforecast models to run, comma-separated, or none (default {','.join(PEERS)})")
    parser.add_argument("--json-out", type=Path, help="also write the scores as JSON here")
    args = parser.parse_args()
    peers = [] if args.peers == "none" else args.peers.split(",")
    if unknown := [p for p in peers if p not in PEERS]:
        raise SystemExit(f"unknown peers {unknown}; expected some of {PEERS} or none")
    try:  # a malformed span fails here, before any run
        span_seconds = seconds(args.span) if args.span else None
    except (KeyError, ValueError):
        span_seconds = 0
    if span_seconds == 0:
        raise SystemExit(f"--span {args.span!r}: expected a duration such as 90m, 3d or 1d12h")
    binaries = {}
    for item in args.prescient or [f"prescient={os.environ.get('PRESCIENT_BIN', 'prescient')}"]:
        label, _, binary = item.partition("=")
        if not binary:
            label, binary = "prescient", label
        binaries[label] = (binary, "auto")
        for model in args.models.split(",") if args.models else []:
            binaries[f"{label}:{model}"] = (binary, model)
    cases = QUICK_CASES if args.quick else CASES
    if args.trace:
        cases = [c for c in CASES if c[0] in args.trace]
        if not cases:
            raise SystemExit(f"no shipped trace among {args.trace}")
    origins = args.origins or (3 if args.quick else 8)
    if not args.quick and origins < 8:
        raise SystemExit("a full run needs at least 8 origins")
    results = []
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        for name, horizons in cases:
            trace = Trace.read(TRACES / name)
            for horizon in horizons:
                started = time.perf_counter()
                r = bench_case(trace, horizon, binaries, origins, Path(tmp), peers, span_seconds)
                took = time.perf_counter() - started
                print(f"peer-bench: {name} {horizon} ({r['h']} steps, {origins} origins, seasons {r['seasons']}, "
                      f"peer window {r['window']}) in {took:.0f} s", file=sys.stderr, flush=True)
                results.append(((name, horizon), r))
    print(table(results))
    if args.json_out:
        out = [
            {"trace": t, "horizon": hz, "horizon_steps": r["h"], "mase_scale": r["scale"], "origins": r["origins"],
             "models": {k: {"mase": s.mase(r["scale"]) if not s.na else None,
                            "coverage": s.coverage() if not s.na else None,
                            "seconds_per_fit": s.seconds / s.fits if s.fits else None,
                            "picked": s.picks, "na": s.na or None} for k, s in r["scores"].items()}}
            for (t, hz), r in results
        ]
        args.json_out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
