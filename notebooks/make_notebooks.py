"""Writes the notebooks from the cell sources below, without outputs.

Edit the cells here, then run `target/notebooks-venv/bin/python notebooks/make_notebooks.py` (any Python
with nbformat): the .ipynb files are regenerated with empty outputs, null execution counts and stable cell
ids, so their diffs stay readable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are saved and shown as PNG images by nb.show
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

# prescient_nb.py sits beside this notebook (the kernel's working folder is normally the notebook's).
for folder in (Path.cwd(), Path.cwd() / "notebooks"):
    if (folder / "prescient_nb.py").is_file():
        sys.path.insert(0, str(folder))
        break
import prescient_nb as nb

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
print("repository:", nb.ROOT)
print("prescient: ", nb.prescient_bin())
"""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, parameters: bool = False):
    cell = new_code_cell(text.strip("\n"))
    if parameters:
        cell.metadata["tags"] = ["parameters"]
    return cell


HOW_TO_RUN = """
**How to run it.** `notebooks/run.sh` executes all four notebooks headless (it makes a virtual environment
in `target/notebooks-venv` and writes the executed copies to `target/notebooks-out/`). Interactively, after
one `notebooks/run.sh`: `target/notebooks-venv/bin/pip install notebook`, then
`target/notebooks-venv/bin/jupyter notebook notebooks/`. The `prescient` binary
is taken from `$PRESCIENT_BIN`, else `target/debug/prescient` or `target/release/prescient`, else `PATH`,
else built with `cargo build -p prescient`. Any failing command raises with its stderr.
"""


def forecast_accuracy():
    return [
        md(
            """
# Forecast accuracy on real traffic

What this shows: how well each of Prescient's forecasters predicts the shipped real traces
(`data/traces/`), measured by `prescient backtest --json` (rolling-origin backtest: the model is fitted on
the history up to a cut, forecasts the next horizon, and is scored against what happened; the cut moves
forward fold by fold).

1. A table of **MASE** (the forecast's mean absolute error divided by the in-sample error of "the same
   as one day earlier", or of the trace's main season, or of the previous step: below 1 beats that
   baseline), **sMAPE** and **interval coverage** (share of actual values inside the forecast's central
   band; close to the band's level is well calibrated) per model, trace and horizon, and which model
   `auto` picks (a single model or an ensemble).
2. **Error against horizon**: the mean absolute error at each step ahead, per model.
3. **One forecast with its band** (`prescient forecast --json` on a trace cut at a point in time) against
   what really happened after the cut.
"""
            + HOW_TO_RUN
            + """
**Your own trace.** Put a CSV with header `timestamp,value` (unix seconds or RFC 3339) in the parameter cell
below: `TRACES = [("path/to/your.csv", ["15m", "1h"], None)]` (path, horizons, and how many days at the
trace's end to use, `None` for all), and point `FORECAST_TRACE` / `FORECAST_CUT` at it.
With papermill the cell is tagged `parameters`.
"""
        ),
        code(
            """
# Parameters. Paths are relative to the repository root (or absolute).
# (trace, horizons to backtest, days at the end of the trace to use: None = the whole trace)
# The 1-minute traces are cut to their last days so the notebook runs in a few minutes on 2 cores.
TRACES = [
    ("data/traces/nab-nyc-taxi-30min.csv", ["30m", "2h"], None),
    ("data/traces/nasa-http-jul1995-1min.csv", ["15m", "60m"], 14),
    ("data/traces/wc98-1min.csv", ["15m", "60m"], 14),
    ("data/traces/nab-twitter-amzn-5min.csv", ["15m", "60m"], None),
    ("data/traces/nab-elb-requests-5min.csv", ["15m", "60m"], None),
    # an hour of steady arrivals at 1-second steps: the no-spike control, at horizons that fit in it
    ("data/traces/azure-llm-conv-2023-1s.csv", ["10s", "1m"], None),
]
FOLDS = None  # backtest folds (None: the CLI's default)

# One forecast against what happened: the trace is cut at FORECAST_CUT and forecast FORECAST_HORIZON ahead
# from the FORECAST_HISTORY_DAYS before the cut.
FORECAST_TRACE = "data/traces/nab-nyc-taxi-30min.csv"
FORECAST_CUT = "2015-01-14T00:00:00Z"   # a Wednesday, midnight
FORECAST_HORIZON = "1d"
FORECAST_HISTORY_DAYS = 28
FORECAST_QUANTILE = 0.9
""",
            parameters=True,
        ),
        code(SETUP),
        md(
            """
## Backtest every model on every trace
"""
        ),
        code(
            """
scores, reports = [], {}
started = time.monotonic()
for path, horizons, days in TRACES:
    source = Path(path) if Path(path).is_absolute() else nb.ROOT / path
    trace = nb.trim_trace(source, days)
    for horizon in horizons:
        t0 = time.monotonic()
        extra = ["--folds", FOLDS] if FOLDS else []
        report = nb.backtest(trace, horizon, *extra)
        reports[(source.name, horizon)] = report
        scores.append(nb.backtest_scores(report, source.name, horizon))
        print(
            f"{source.name:34} horizon {horizon:>4}: {len(report['models'])} models, "
            f"auto picks {nb.auto_pick(report)!s:28} ({time.monotonic() - t0:.1f} s)"
        )
scores = pd.concat(scores, ignore_index=True)
nb.nonempty(scores, "backtest scores")
scores["smape_percent"] = 100 * scores["smape"]  # the CLI reports sMAPE as a fraction in [0, 2]
print(f"{len(reports)} backtests in {time.monotonic() - started:.0f} s")
"""
        ),
        md(
            """
### MASE per model (rows: trace and horizon; lower is better, below 1 beats the naive baseline)

The `auto` column is what `auto` model selection (a model or an ensemble) scores; the second table names
its pick beside the best single model.
"""
        ),
        code(
            """
def table(metric):
    pivot = scores.pivot_table(index=["trace", "horizon"], columns="model", values=metric, sort=False)
    nb.require(pivot.notna().any().any(), f"no {metric} values in the backtests")
    return pivot.round(3)

mase = table("mase")
display(mase)
ranked = scores[(scores["model"] != "auto") & scores["mase"].notna()]
best = ranked.sort_values("mase").groupby(["trace", "horizon"], sort=False).head(1).set_index(["trace", "horizon"])
picks = scores[scores["model"] == "auto"].set_index(["trace", "horizon"])
summary = pd.DataFrame({
    "best model": best["model"], "its MASE": best["mase"],
    "auto picks": picks["picked"], "auto's MASE": picks["mase"],
}).reindex(mase.index)
display(summary.round(3))
"""
        ),
        md(
            """
### sMAPE (%) and interval coverage per model

Coverage is the share of actual values inside the forecast's central band of the level below (each fold's
band calibrated on the other folds): close to the level is well calibrated, below it over-confident.
"""
        ),
        code(
            """
display(table("smape_percent"))
display(table("coverage"))
levels = {r.get("level") for r in reports.values()}
print("band level measured:", ", ".join(str(level) for level in levels if level is not None) or "not reported")
"""
        ),
        md(
            """
## Error against horizon

Mean absolute error at each step ahead (`mae_by_horizon`), from each trace's longest horizon. Errors usually
grow with the horizon; a model whose curve stays flat carries its season well.
"""
        ),
        code(
            """
longest = {}
for (name, horizon), report in reports.items():
    if name not in longest or nb.parse_duration(horizon) > nb.parse_duration(longest[name][0]):
        longest[name] = (horizon, report)
n = len(longest)
cols = 2 if n > 1 else 1
rows = (n + cols - 1) // cols
fig, axes = plt.subplots(rows, cols, figsize=(12, 3.6 * rows), squeeze=False)
for ax, (name, (horizon, report)) in zip(axes.flat, longest.items(), strict=False):
    curves = nb.mae_by_horizon(report)
    nb.nonempty(curves, f"mae_by_horizon of {name}")
    seconds = curves.index.max() < 5  # short horizons read better in seconds
    ahead = curves.index * 60 if seconds else curves.index
    for model in curves.columns:
        ax.plot(ahead, curves[model], marker="o" if len(curves) < 12 else None, ms=3, label=model)
    ax.set_title(f"{name} (horizon {horizon})", fontsize=10)
    ax.set_xlabel("seconds ahead" if seconds else "minutes ahead")
    ax.set_ylabel("MAE")
    ax.grid(alpha=0.3)
for ax in list(axes.flat)[n:]:
    ax.remove()
axes.flat[0].legend(fontsize=8)
fig.suptitle("Mean absolute error against forecast horizon")
fig.tight_layout()
nb.show(fig, "mae-by-horizon")
"""
        ),
        md(
            """
## One forecast against what really happened

The trace is cut at `FORECAST_CUT`; `prescient forecast --json` sees only the history before the cut and
forecasts `FORECAST_HORIZON` ahead with its band; the actual values after the cut are drawn on top.
"""
        ),
        code(
            """
source = Path(FORECAST_TRACE) if Path(FORECAST_TRACE).is_absolute() else nb.ROOT / FORECAST_TRACE
full = nb.read_trace(source)
cut = pd.Timestamp(FORECAST_CUT)
cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut
history = full[(full["time"] < cut) & (full["time"] >= cut - pd.Timedelta(days=FORECAST_HISTORY_DAYS))]
nb.nonempty(history, f"history of {source.name} before {cut}")
cut_trace = nb.write_trace(history, f"{source.stem}-until-{cut:%Y%m%dT%H%M}.csv")

header, predicted = nb.forecast(cut_trace, FORECAST_HORIZON, "--quantile", FORECAST_QUANTILE)
print({k: v for k, v in header.items()})
actual = full[(full["time"] >= predicted["time"].iloc[0]) & (full["time"] <= predicted["time"].iloc[-1])]
nb.nonempty(actual, f"actual values of {source.name} after {cut} (cut too close to the trace's end?)")

joined = predicted.merge(actual[["time", "value"]], on="time", how="inner")
nb.nonempty(joined, "forecast and actual on the same timestamps")
inside = ((joined["value"] >= joined["lower"]) & (joined["value"] <= joined["upper"])).mean()
mae = (joined["value"] - joined["mean"]).abs().mean()
smape = (200 * (joined["value"] - joined["mean"]).abs() / (joined["value"].abs() + joined["mean"].abs())).mean()
print(f"model {header.get('model')}: MAE {mae:.1f}, sMAPE {smape:.1f} %, {inside:.0%} of actual values inside the band")

shown = history[history["time"] >= cut - 3 * (predicted["time"].iloc[-1] - cut + pd.Timedelta(seconds=header["step_seconds"]))]
fig, ax = plt.subplots(figsize=(12, 4))
ax.plot(shown["time"], shown["value"], color="0.3", lw=1, label="history (seen by the model)")
ax.plot(actual["time"], actual["value"], color="black", lw=1.5, label="what happened")
ax.plot(predicted["time"], predicted["mean"], color="tab:blue", lw=1.5, label=f"forecast ({header.get('model')})")
ax.fill_between(predicted["time"], predicted["lower"], predicted["upper"], color="tab:blue", alpha=0.2, label=f"{FORECAST_QUANTILE:.0%} band")
ax.axvline(cut, color="tab:red", ls="--", lw=1, label="cut")
ax.set_title(f"{source.name}: forecast from {cut:%Y-%m-%d %H:%M} UTC, {FORECAST_HORIZON} ahead")
ax.set_ylabel("demand per step")
ax.legend(fontsize=8, loc="upper left")
ax.grid(alpha=0.3)
fig.autofmt_xdate()
nb.show(fig, "forecast-vs-actual")
"""
        ),
    ]


def what_if():
    return [
        md(
            """
# What if: reactive (HPA), Crane's EHPA and the Predictive HPA against predictive scaling

What this shows: `prescient simulate` replays a real demand trace through a simulated cluster (pods take
`STARTUP_DELAY` to become ready) under several policies, with the same reconcile core as the operator:

- **reactive** — the Kubernetes HPA algorithm at target utilizations 0.6, 0.7 and 0.8;
- **predictive** — Prescient over its risk knob, the probability that the peak demand of each decision
  window (`[now, now + lead time + sync period]`) is served, calibrated online on the windows already seen
  (never below the reactive floor); a scale-up asks only for the window's last sync period, which the new
  pods serve, and a scale-down never goes below the whole window's peak;
- **crane-ehpa** — gocrane/crane's EffectiveHPA replayed: the HPA fed, beside the observed demand, the
  largest DSP prediction (FFT of the last 3 days, daily or weekly period) over the next hour, at each
  target utilization and `marginFraction` (`default` = Crane's default estimators);
- **phpa** — jthomperoo's Predictive HPA replayed: linear and Holt-Winters models forecast the HPA's own
  replica count (documented example settings, daily season), the maximum wins;
- **perfect** — the same rule fed the true future: what a perfect forecaster would buy;
- **oracle** — knows the future: the cheapest capacity with no under-provisioning (a lower bound).

What each replay follows upstream, and where it must differ, is written in `controller/src/sim/crane.rs`
and `controller/src/sim/phpa.rs` and in the README.

It plots **cost** (replica-minutes: every provisioned replica, ready or starting) against
**under-provisioned minutes** (demand above ready capacity) for each setting — the trade-off curve: a
policy is better when it is lower *and* further left — and the demand and capacity over the biggest spike.
"""
            + HOW_TO_RUN
            + """
**Your own trace.** Set `TRACE` in the parameter cell to your CSV (`timestamp,value`), `CAPACITY_PER_REPLICA`
to the demand one replica serves (in the trace's unit per step), and `FROM` / `UNTIL` to the window to
replay (`None` for the whole trace; the replay grows its history from the start of the window, so longer
windows take longer).
"""
        ),
        code(
            """
# Parameters. Paths are relative to the repository root (or absolute).
TRACE = "data/traces/nasa-http-jul1995-1min.csv"
CAPACITY_PER_REPLICA = 4        # requests per minute one replica serves
STARTUP_DELAY = "2m"            # pod start-up time
TARGET_UTILIZATIONS = [0.5, 0.6, 0.7, 0.8, 0.9]        # reactive (HPA) settings
QUANTILES = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]     # predictive settings: P(window peak served)
CRANE_MARGINS = ["default", 0.1]        # crane-ehpa marginFraction ("default": Crane's default estimators)
# Window replayed (unix seconds or RFC 3339; None = from the start / to the end): 3 days of warm-up, then
# 3 days evaluated, with the STS-70 launch flash crowd on 13 July 1995.
FROM = "1995-07-09T00:00:00Z"
UNTIL = "1995-07-15T00:00:00Z"
EXTRA = ["--history", "3d", "--warmup", "3d"]    # other `prescient simulate` flags
JOBS = 2                                # policies replayed in parallel
SPIKE_WINDOW = "3h"                     # how much to show around the biggest spike
""",
            parameters=True,
        ),
        code(SETUP),
        md(
            """
## Replay every setting
"""
        ),
        code(
            """
source = Path(TRACE) if Path(TRACE).is_absolute() else nb.ROOT / TRACE
nb.WORK.mkdir(parents=True, exist_ok=True)
series_path = nb.WORK / f"{source.stem}-what-if-series.csv"
window = (["--from", FROM] if FROM else []) + (["--until", UNTIL] if UNTIL else [])
t0 = time.monotonic()
summary, policies, series = nb.simulate(
    source,
    series_path,
    "--capacity-per-replica", CAPACITY_PER_REPLICA,
    "--startup-delay", STARTUP_DELAY,
    "--policy", "reactive,predictive,crane-ehpa,phpa,perfect,oracle",
    "--frontier",
    "--target-utilization", ",".join(map(str, TARGET_UTILIZATIONS)),
    "--crane-margin-fraction", ",".join(map(str, CRANE_MARGINS)),
    "--quantile", ",".join(map(str, QUANTILES)),
    "--jobs", JOBS,
    *window,
    *EXTRA,
)
print(f"replayed in {time.monotonic() - t0:.0f} s: {summary.get('points')} points at {summary.get('step_seconds')} s, "
      f"{summary.get('evaluated_minutes', 0):.0f} minutes evaluated, lead time {summary.get('lead_time_seconds')} s")
columns = ["label", "policy", "target_utilization", "quantile", "margin_fraction", "underprovisioned_minutes",
           "unserved_fraction", "replica_minutes", "scale_events", "peak_replicas", "model"]
display(policies[[c for c in columns if c in policies.columns]].round(4))
expected = len(TARGET_UTILIZATIONS) * (2 + len(CRANE_MARGINS)) + len(QUANTILES) + 2
nb.require(len(policies) == expected, f"expected {expected} policy runs, got {len(policies)}")
frontier = summary.get("frontier") or {}
nb.require(len(frontier.get("versus_hpa", [])) == len(TARGET_UTILIZATIONS), f"no HPA comparison in {list(frontier)}")
nb.require((policies["replica_minutes"] > 0).all(), "a policy used no replica-minutes")
"""
        ),
        md(
            """
## The trade-off curve: cost against under-provisioning
"""
        ),
        code(
            """
fig, ax = plt.subplots(figsize=(9, 5.5))
styles = {"reactive": ("tab:orange", "o"), "predictive": ("tab:blue", "s"), "oracle": ("black", "*"),
          "perfect": ("tab:green", "^"), "crane-ehpa": ("tab:purple", "D"), "phpa": ("tab:brown", "v")}
for policy, group in policies.groupby("policy", sort=False):
    color, marker = styles.get(policy, ("tab:gray", "x"))
    key = "quantile" if policy == "predictive" else "target_utilization"
    group = group.sort_values(key if group[key].notna().all() else "underprovisioned_minutes")  # a curve along the setting
    ax.plot(group["underprovisioned_minutes"], group["replica_minutes"], color=color, marker=marker,
            ms=11 if marker == "*" else 7, lw=1.2, label=policy)
    for _, row in group.iterrows():
        text = row["label"].split("@")[-1] if "@" in row["label"] else policy
        ax.annotate(text, (row["underprovisioned_minutes"], row["replica_minutes"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8, color=color)
ax.set_xlabel("under-provisioned minutes (demand above ready capacity)")
ax.set_ylabel("cost: replica-minutes")
ax.set_title(f"{source.name}: cost against under-provisioning (start-up {STARTUP_DELAY}, "
             f"{CAPACITY_PER_REPLICA} per replica)", fontsize=10)
ax.grid(alpha=0.3)
ax.legend()
nb.show(fig, "trade-off")
"""
        ),
        md(
            """
Reading the curve: a setting *dominates* another when it costs fewer replica-minutes and is
under-provisioned for fewer minutes. The oracle shows the least capacity that serves everything.

`--frontier` also reads the headline off the curves at each HPA setting: the fewest minutes short a
predictive setting achieves at no more than the HPA's cost, and the fewest replica-minutes at no more
than the HPA's minutes short (only settings that were replayed count).
"""
        ),
        code(
            """
versus = pd.DataFrame(frontier["versus_hpa"])
display(versus[["hpa", "hpa_replica_minutes", "hpa_underprovisioned_minutes", "best_at_hpa_cost",
                "underprovisioned_minutes_at_hpa_cost", "shortfall_ratio_at_hpa_cost", "best_at_hpa_shortfall",
                "replica_minutes_at_hpa_shortfall", "cost_ratio_at_hpa_shortfall"]].round(3))
pareto = {f["family"]: f["pareto"] for f in frontier["families"]}
print("Pareto frontier per family:", pareto)
# Against the best of the three peers (HPA, Crane EHPA, PHPA) at each point of their joint frontier.
peers = pd.DataFrame(frontier.get("versus_peers", []))
nb.require(len(peers) > 0, "no comparison with the peers")
display(peers.rename(columns={"hpa": "best peer"})[
    ["best peer", "hpa_replica_minutes", "hpa_underprovisioned_minutes", "best_at_hpa_cost",
     "shortfall_ratio_at_hpa_cost", "best_at_hpa_shortfall", "cost_ratio_at_hpa_shortfall"]].round(3))
fig, ax = plt.subplots(figsize=(9, 5.5))
for family in frontier["families"]:
    color, marker = styles.get(family["family"], ("tab:gray", "x"))
    points = pd.DataFrame(family["points"])
    on = points[points["label"].isin(family["pareto"])]
    ax.plot(points["replica_minutes"], points["underprovisioned_minutes"], color=color, marker=marker, ls="none",
            alpha=0.35)
    ax.step(on["replica_minutes"], on["underprovisioned_minutes"], where="post", color=color, marker=marker,
            label=f"{family['family']} frontier")
ax.set_xlabel("cost: replica-minutes")
ax.set_ylabel("under-provisioned minutes")
ax.set_title(f"{source.name}: Pareto frontiers (lower left is better)", fontsize=10)
ax.grid(alpha=0.3)
ax.legend()
nb.show(fig, "frontiers")
"""
        ),
        code(
            """
oracle = policies[policies["policy"] == "oracle"]
oracle_cost = oracle["replica_minutes"].iloc[0] if len(oracle) else None
for _, p in policies[policies["policy"] == "predictive"].iterrows():
    beaten = policies[(policies["policy"] == "reactive")
                      & (policies["replica_minutes"] > p["replica_minutes"])
                      & (policies["underprovisioned_minutes"] > p["underprovisioned_minutes"])]
    extra = f", {p['replica_minutes'] / oracle_cost - 1:+.0%} cost over the oracle" if oracle_cost else ""
    versus = ", ".join(beaten["label"]) if len(beaten) else "no reactive setting"
    print(f"{p['label']}: {p['underprovisioned_minutes']:.0f} under-provisioned minutes, "
          f"{p['replica_minutes']:.0f} replica-minutes{extra}; dominates {versus}")
"""
        ),
        md(
            """
## Demand and capacity over the biggest spike

The biggest spike is the step where demand rises most above the median of the hour before it. Capacity is
ready replicas × capacity per replica: where demand is above it, requests go unserved.
"""
        ),
        code(
            """
first_label = policies["label"].iloc[0]
demand = series[series["policy"] == first_label].set_index("time")["demand"].dropna()
nb.require(len(demand) > 0, "the simulation series has no demand values")
baseline = demand.rolling(pd.Timedelta(hours=1), min_periods=1).median().shift(1)
evaluated = demand.index >= pd.Timestamp(summary["evaluated_from"], unit="s", tz="UTC")
rise = (demand - baseline)[evaluated].dropna()
nb.require(len(rise) > 0, "no evaluated demand to find a spike in")
peak = rise.idxmax()
half = nb.parse_duration(SPIKE_WINDOW) / 2
print(f"biggest spike at {peak}: demand {demand[peak]:.0f}, {rise[peak]:.0f} above the previous hour's median")

# One setting of each policy: the middle reactive and predictive settings, and the oracle.
def middle_label(policy, key, values):
    rows = policies[(policies["policy"] == policy) & (policies[key] == sorted(values)[len(values) // 2])]
    return rows["label"].iloc[0] if len(rows) else None

picked = [middle_label("reactive", "target_utilization", TARGET_UTILIZATIONS),
          middle_label("predictive", "quantile", QUANTILES),
          middle_label("crane-ehpa", "target_utilization", TARGET_UTILIZATIONS),
          middle_label("phpa", "target_utilization", TARGET_UTILIZATIONS), "oracle"]
picked = [label for label in picked if label]
picked = [label for label in picked if label in set(series["policy"])]
nb.require(len(picked) > 0, f"none of the chosen policies is in the series ({sorted(set(series['policy']))})")
window = series[(series["time"] >= peak - half) & (series["time"] <= peak + half)]
nb.nonempty(window, "series around the spike")
fig, ax = plt.subplots(figsize=(12, 4.5))
first = window[window["policy"] == picked[0]]
ax.plot(first["time"], first["demand"], color="black", lw=1.8, label="demand")
colors = {"reactive": "tab:orange", "predictive": "tab:blue", "oracle": "0.5", "perfect": "tab:green",
          "crane-ehpa": "tab:purple", "phpa": "tab:brown"}
for label in picked:
    rows = window[window["policy"] == label]
    color = colors.get(label.split("@")[0], None)
    ax.step(rows["time"], rows["ready_replicas"] * CAPACITY_PER_REPLICA, where="post", color=color, lw=1.4,
            label=f"{label}: ready capacity")
    ax.step(rows["time"], rows["provisioned_replicas"] * CAPACITY_PER_REPLICA, where="post", color=color, lw=0.8,
            ls=":", label=f"{label}: provisioned")
ax.axvline(peak, color="tab:red", ls="--", lw=0.8)
ax.set_ylabel("demand / capacity per step")
ax.set_title(f"{source.name}: the biggest spike ({peak:%Y-%m-%d %H:%M} UTC)", fontsize=10)
ax.legend(fontsize=7, ncol=2, loc="upper left")
ax.grid(alpha=0.3)
fig.autofmt_xdate()
nb.show(fig, "biggest-spike")
"""
        ),
    ]


def dashboard_api():
    return [
        md(
            """
# A tour of the dashboard API

What this shows: `prescient demo` (a real trace driving a simulated cluster in accelerated time through the
real reconcile core, a predictive and a reactive autoscaler side by side) serves the same read-only
dashboard API as the operator (`prescient run`). This notebook starts the demo in the background on a free
port, reads every endpoint, plots a live forecast from the API, and stops the demo (always, even on an
error):

| endpoint | what it returns |
| --- | --- |
| `GET /api/v1/autoscalers` | `{"autoscalers": [...]}`: one line per autoscaler (target, replicas, demand, model, health) |
| `GET /api/v1/autoscalers/{namespace}/{name}` | spec, status and conditions, model, forecast health, last decision, recent errors |
| `GET /api/v1/autoscalers/{namespace}/{name}/forecast` | demand history, the latest forecast with its band and planned replicas, replicas over time |
| `GET /openapi.json` | the OpenAPI document of the three above |
| `GET /metrics` | the controller's Prometheus metrics, forecasts included as gauges |

To read a running operator instead, set `BASE_URL` to its dashboard address (add `#token=...` if it
requires a bearer token); the demo is then not started.
"""
            + HOW_TO_RUN
            + """
**Your own trace.** Set `TRACE` in the parameter cell to your CSV (`timestamp,value`); `None` uses the demo's
bundled trace.
"""
        ),
        code(
            """
# Parameters.
TRACE = None          # a trace CSV for the demo (None: its bundled trace); relative to the repository root
SPEED = None          # demo speed-up factor (None: the demo's default)
DEMO_ARGS = []        # other `prescient demo` flags
BASE_URL = None       # e.g. "http://127.0.0.1:8080/" to read a running operator instead of starting the demo
WAIT_SECONDS = 120    # how long to wait for the first forecast
""",
            parameters=True,
        ),
        code(SETUP + "import json\nimport re\n"),
        md(
            """
## Start the demo
"""
        ),
        code(
            """
args = list(DEMO_ARGS)
if TRACE:
    args += ["--trace", Path(TRACE) if Path(TRACE).is_absolute() else nb.ROOT / TRACE]
if SPEED:
    args += ["--speed", SPEED]
demo = nb.Demo(*args)
if BASE_URL:
    demo.set_url(BASE_URL)
else:
    demo.start()
print("dashboard:", demo.url)
"""
        ),
        md(
            """
## Read every endpoint

All of it runs inside `try/finally`, so the demo is stopped whatever happens.
"""
        ),
        code(
            """
try:
    # --- GET /api/v1/autoscalers: wait until every autoscaler has synced and one has a forecast -----------
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listing = demo.get_json("api/v1/autoscalers")
        items = listing["autoscalers"]
        forecasts = {}
        for item in items:
            body = demo.get_json(f"api/v1/autoscalers/{item['namespace']}/{item['name']}/forecast")
            if body.get("forecast") and body["forecast"]["points"] and body["history"]:
                forecasts[(item["namespace"], item["name"])] = body
        if forecasts or time.monotonic() > deadline:
            break
        time.sleep(2)
    nb.require(len(items) > 0, "/api/v1/autoscalers lists no autoscaler")
    nb.require(len(forecasts) > 0, f"no autoscaler had a forecast and history within {WAIT_SECONDS} s")
    print(f"GET /api/v1/autoscalers: {len(items)} autoscalers")
    display(pd.DataFrame(items).set_index(["namespace", "name"]))

    # --- GET /api/v1/autoscalers/{namespace}/{name}: spec, status, model, health, decision, errors ----------
    details = {}
    for item in items:
        ns, name = item["namespace"], item["name"]
        detail = details[(ns, name)] = demo.get_json(f"api/v1/autoscalers/{ns}/{name}")
        for key in ("spec", "status", "health"):
            nb.require(key in detail, f"/api/v1/autoscalers/{ns}/{name} has no {key!r}: {sorted(detail)}")
        decision = detail.get("decision") or {}
        print(f"\\nGET /api/v1/autoscalers/{ns}/{name}")
        print(f"  target {detail['spec']['scaleTargetRef']['kind']}/{detail['spec']['scaleTargetRef']['name']}, "
              f"replicas {detail['spec']['minReplicas']}..{detail['spec']['maxReplicas']}, "
              f"model {detail['spec']['model']}, quantile {detail['spec']['quantile']}, lead time {detail['spec']['leadTime']}")
        print(f"  model in use: {json.dumps(detail.get('model'))}")
        print(f"  health: {detail['health']['reason']} ({detail['health']['message']})")
        print(f"  last decision: {decision.get('desiredReplicas')} replicas, {decision.get('reason')}: {decision.get('message')}")
        print(f"  errors: {len(detail.get('errors', []))}")
        conditions = pd.DataFrame(detail["status"]["conditions"])
        if len(conditions):
            display(conditions)

    # --- GET /openapi.json: every data endpoint is documented ------------------------------------------------
    openapi = demo.get_json("openapi.json")
    paths = sorted(openapi.get("paths", {}))
    print(f"\\nGET /openapi.json: OpenAPI {openapi.get('openapi')}, {openapi.get('info', {}).get('title')!r}")
    for path in paths:
        print("  ", path, "-", openapi["paths"][path].get("get", {}).get("summary", ""))
    for wanted in ("/api/v1/autoscalers", "/api/v1/autoscalers/{namespace}/{name}", "/api/v1/autoscalers/{namespace}/{name}/forecast"):
        nb.require(wanted in paths, f"/openapi.json does not document {wanted} (it has {paths})")

    # --- GET /metrics: Prometheus / OpenMetrics text ---------------------------------------------------------------
    kind, text = demo.get("metrics")
    samples = []
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[^}]*\\})?\\s+(\\S+)", line)
        if match and not line.startswith("#"):
            samples.append({"metric": match.group(1), "labels": match.group(2) or "", "value": float(match.group(3))})
    metrics = pd.DataFrame(samples)
    nb.nonempty(metrics, "/metrics samples")
    ours = metrics[metrics["metric"].str.startswith("prescient_")]
    nb.nonempty(ours, "prescient_* samples in /metrics")
    print(f"\\nGET /metrics ({kind}): {len(metrics)} samples; prescient metrics:")
    print(", ".join(sorted(ours["metric"].unique())))
    display(ours[ours["metric"].str.contains("forecast_demand|desired_replicas|backtest_mase")].reset_index(drop=True))

    # --- GET /api/v1/autoscalers/{namespace}/{name}/forecast: the newest, for the plot below ----------------------
    predictive = [key for key in forecasts if "predict" in key[1]] or list(forecasts)
    ns, name = predictive[0]
    body = demo.get_json(f"api/v1/autoscalers/{ns}/{name}/forecast")
    print(f"\\nGET /api/v1/autoscalers/{ns}/{name}/forecast: now {body['now']}, step {body['stepSeconds']} s, "
          f"{len(body['history'])} history points, {len(body['forecast']['points']) if body.get('forecast') else 0} forecast points, "
          f"{len(body['replicas'])} replica points")
finally:
    if not BASE_URL:
        status = demo.stop()
        print(f"\\ndemo stopped (exit status {status}); its last lines:")
        print("\\n".join(demo.lines[-15:]))
"""
        ),
        md(
            """
## The live forecast, from the API

Observed demand (history), the latest forecast's mean and band (the `1 - quantile` to `quantile`
quantiles; the autoscaler provisions for the upper edge), and on the right axis the replicas: planned from
the forecast, and provisioned and ready so far. Times are the demo's virtual time.
"""
        ),
        code(
            """
def times(frame):
    return pd.to_datetime(frame["timestamp"].astype("int64"), unit="s", utc=True)

nb.require(body.get("forecast") is not None, f"{ns}/{name} has no forecast any more")
predicted = nb.nonempty(pd.DataFrame(body["forecast"]["points"]), f"forecast points of {ns}/{name}")
history = nb.nonempty(pd.DataFrame(body["history"]), f"history of {ns}/{name}")
replicas = pd.DataFrame(body["replicas"])
for frame in (predicted, history, replicas):
    if len(frame):
        frame["time"] = times(frame)
nb.require(predicted["mean"].notna().any(), "the forecast has no mean values")
# Show the recent history only: a few times the forecast's span (at least 3 hours), so the band is visible.
span = max(predicted["time"].iloc[-1] - predicted["time"].iloc[0], pd.Timedelta(hours=1))
history = nb.nonempty(history[history["time"] >= predicted["time"].iloc[0] - 3 * span], f"recent history of {ns}/{name}")
quantile = body["forecast"]["quantile"]
print(f"model {body['forecast'].get('model')}, quantile {quantile}, made at "
      f"{pd.Timestamp(body['forecast']['madeAt'], unit='s', tz='UTC')}")

fig, ax = plt.subplots(figsize=(12, 4.8))
ax.plot(history["time"], history["demand"], color="black", lw=1.2, label="observed demand")
ax.plot(predicted["time"], predicted["mean"], color="tab:blue", lw=1.6, label=f"forecast mean ({body['forecast'].get('model')})")
ax.fill_between(predicted["time"], predicted["lower"].astype(float), predicted["upper"].astype(float), color="tab:blue",
                alpha=0.2, label=f"band: q{1 - quantile:.2g} to q{quantile:.2g}")
ax.set_ylabel("demand")
twin = ax.twinx()
if "plannedReplicas" in predicted.columns and predicted["plannedReplicas"].notna().any():
    twin.step(predicted["time"], predicted["plannedReplicas"], where="post", color="tab:green", lw=1.4, label="planned replicas")
if len(replicas):
    twin.step(replicas["time"], replicas["provisioned"], where="post", color="tab:orange", lw=1, ls="--", label="provisioned replicas")
    twin.step(replicas["time"], replicas["ready"], where="post", color="tab:red", lw=1, label="ready replicas")
twin.set_ylabel("replicas")
twin.set_ylim(bottom=0)
lines = ax.get_legend_handles_labels()
more = twin.get_legend_handles_labels()
ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
ax.set_title(f"{ns}/{name}: live forecast from /api/v1/autoscalers/{ns}/{name}/forecast (demo time)", fontsize=10)
ax.grid(alpha=0.3)
fig.autofmt_xdate()
nb.show(fig, "live-forecast")
"""
        ),
    ]


def limits():
    return [
        md(
            """
# Limits: what a forecast can buy on your trace, and what it cannot

`what-if.ipynb` shows *whether* predictive scaling beats the HPA on a trace. This notebook shows *where*
it is still short, and how much of that no forecast of demand could remove:

1. **Where the minutes short are.** At the HPA's cost (the HPA setting `HPA`, by default 0.7), the
   predictive setting with the fewest minutes short (read off `prescient simulate --frontier`) is replayed
   beside that HPA and the perfect forecast, and their minutes short are split by the kind of step they
   fall in: an *onset* (a step whose demand is more than `ONSET_RATIO` times the highest of the
   `ONSET_LOOKBACK_STEPS` steps before it), the steps after an onset, other rising steps, and steady or
   falling ones. No forecaster sees an onset a start-up ahead on bursty traffic: what predictive loses
   there it can only buy back with headroom everywhere else. The perfect forecast shows what knowing the
   future would save.
2. **Arrival noise, on traces at steps finer than a minute.** A rate (what Prometheus gives, what any
   forecaster predicts) says nothing of which second of the next minute the next burst of arrivals falls
   in. The *rate oracle* knows the arrival rate in advance — the mean over `INTENSITY_WINDOW` centred on
   each step, future included — and provisions, at each sync, a Poisson quantile of it (no start-up
   delay, any quantile). Swept over its quantile, its fewest minutes short at the HPA's cost say about how
   far a forecast of the rate could take predictive on that trace. It is not a strict lower bound (a
   policy could spread its headroom better than one quantile everywhere), but it knows what no
   forecaster does: the future rate.

Every figure is measured side by side in one run against the HPA replayed on the same trace.
"""
            + HOW_TO_RUN
            + """
**Your own trace.** Set `TRACE`, `CAPACITY_PER_REPLICA` (demand one replica serves, in the trace's unit
per step) and `STARTUP_DELAY` for part 1; `NOISE_TRACE` (a trace at steps finer than a minute, with no
gaps) and `NOISE_CAPACITY_PER_REPLICA` for part 2 (`None` skips it, and says so).
"""
        ),
        code(
            """
# Parameters. Paths are relative to the repository root (or absolute).
# Part 1: Twitter mentions of Amazon at 5-minute steps, a 5-minute start-up (capacity = median / 10).
TRACE = "data/traces/nab-twitter-amzn-5min.csv"
CAPACITY_PER_REPLICA = 5
STARTUP_DELAY = "5m"
HPA = "reactive@u0.7"            # the HPA setting whose cost predictive is compared at
ONSET_RATIO = 1.3                # an onset: a step above 1.3x the highest of the steps before it...
ONSET_LOOKBACK_STEPS = 3         # ...these many steps
FROM = None                      # window replayed (unix seconds or RFC 3339; None = the whole trace)
UNTIL = None
EXTRA = []                       # other `prescient simulate` flags
JOBS = 2
# Part 2: an hour of LLM requests at 1-second steps (capacity = median / 10), at both start-ups.
NOISE_TRACE = "data/traces/azure-llm-conv-2023-1s.csv"
NOISE_CAPACITY_PER_REPLICA = 0.5
NOISE_STARTUP_DELAYS = ["2m", "5m"]
INTENSITY_WINDOW = "5m"          # the rate the oracle knows: the mean over this window around each step
""",
            parameters=True,
        ),
        code(SETUP + "import math\n\nimport numpy as np\n"),
        md(
            """
## 1. Where predictive is short, at the HPA's cost

First the frontier (every HPA setting and the predictive risk knob over its range), to find the predictive
setting with the fewest minutes short at no more than `HPA`'s replica-minutes; then that setting, the HPA
and the perfect forecast again, with their series.
"""
        ),
        code(
            """
source = Path(TRACE) if Path(TRACE).is_absolute() else nb.ROOT / TRACE
window = (["--from", FROM] if FROM else []) + (["--until", UNTIL] if UNTIL else [])
common = ["--capacity-per-replica", CAPACITY_PER_REPLICA, "--startup-delay", STARTUP_DELAY, "--jobs", JOBS,
          *window, *EXTRA]
t0 = time.monotonic()
frontier = nb.run_json(["simulate", "--input", source, "--policy", "reactive,predictive", "--frontier", "--json",
                        *common])
versus = {v["hpa"]: v for v in frontier["frontier"]["versus_hpa"]}
nb.require(HPA in versus, f"{HPA} is not among the HPA settings replayed: {list(versus)}")
match = versus[HPA]
nb.require(match.get("best_at_hpa_cost") is not None,
           f"no predictive setting costs at most {HPA}'s {match['hpa_replica_minutes']:.0f} replica-minutes")
quantile = match["best_at_hpa_cost"].split("@q")[1]
utilization = HPA.split("@u")[1]
print(f"frontier replayed in {time.monotonic() - t0:.0f} s. At {HPA}'s {match['hpa_replica_minutes']:,.0f} "
      f"replica-minutes, the best predictive setting is q{quantile}: "
      f"{match['shortfall_ratio_at_hpa_cost']:.3f}x the HPA's {match['hpa_underprovisioned_minutes']:,.1f} minutes short")

# The three again, with their series: the frontier's own series would hold every setting it replayed
# (450 MB for this trace), where one more replay of three settings takes under a minute.
nb.WORK.mkdir(parents=True, exist_ok=True)
series_path = nb.WORK / f"{source.stem}-limits-series.csv"
summary, policies, series = nb.simulate(source, series_path, "--policy", "reactive,predictive,perfect",
                                        "--target-utilization", utilization, "--quantile", quantile, *common)
display(policies[["label", "replica_minutes", "underprovisioned_minutes", "scale_events"]].round(1))
replayed = policies.set_index("label")
nb.require(abs(replayed.loc["predictive", "underprovisioned_minutes"] - match["underprovisioned_minutes_at_hpa_cost"]) < 1e-6,
           "the predictive setting replayed alone is not short as long as in the frontier")
"""
        ),
        code(
            """
step = int(summary["step_seconds"])
first = series[series["policy"] == policies["label"].iloc[0]]
origin = int(first["timestamp"].iloc[0])

def step_start(timestamps):
    return (timestamps - origin) // step * step + origin

# Each trace step's demand, and its kind.
per_step = first.groupby(step_start(first["timestamp"]))["demand"].first()
before = pd.concat([per_step.shift(j) for j in range(1, ONSET_LOOKBACK_STEPS + 1)], axis=1).max(axis=1)
onset = per_step > ONSET_RATIO * before
kind = pd.Series("steady or falling", index=per_step.index)
kind[per_step > per_step.shift(1)] = "rising"
after = ["onset step"] + [f"{j} step{'s' if j > 1 else ''} after an onset" for j in range(1, ONSET_LOOKBACK_STEPS + 1)]
for j in range(ONSET_LOOKBACK_STEPS, -1, -1):   # the most recent onset names the step
    kind[onset.shift(j, fill_value=False)] = after[j]
order = after + ["rising", "steady or falling"]

rows = []
for label, group in series.groupby("policy", sort=False):
    evaluated = group[group["timestamp"] >= summary["evaluated_from"]]
    tick = int(evaluated["timestamp"].diff().dropna().mode().iloc[0])
    kinds = step_start(evaluated["timestamp"]).map(kind)
    short = evaluated["ready_replicas"] * CAPACITY_PER_REPLICA < evaluated["demand"] - 1e-9
    for name in order:
        at = kinds == name
        rows.append({"policy": label, "kind": name, "minutes": at.sum() * tick / 60,
                     "minutes short": (short & at).sum() * tick / 60,
                     "replica-minutes": evaluated.loc[at, "provisioned_replicas"].sum() * tick / 60})
by_kind = pd.DataFrame(rows)
short_by_kind = by_kind.pivot(index="kind", columns="policy", values="minutes short").loc[order]
cost_by_kind = by_kind.pivot(index="kind", columns="policy", values="replica-minutes").loc[order]
minutes_by_kind = by_kind.pivot(index="kind", columns="policy", values="minutes").loc[order].iloc[:, 0]
for label, row in replayed.iterrows():
    nb.require(abs(short_by_kind[label].sum() - row["underprovisioned_minutes"]) < 0.01,
               f"{label}: {short_by_kind[label].sum()} minutes short by kind, {row['underprovisioned_minutes']} replayed")
table = short_by_kind.copy()
table.insert(0, "minutes of such steps", minutes_by_kind)
table.loc["total"] = table.sum()
print("Minutes short, by the kind of step they fall in:")
display(table.round(1))
print("Replica-minutes, by kind of step:")
display(cost_by_kind.round(0))

onsets = short_by_kind.loc["onset step"]
print(f"Onset steps are {minutes_by_kind['onset step'] / minutes_by_kind.sum():.1%} of the minutes evaluated, "
      f"and hold {onsets['predictive'] / short_by_kind['predictive'].sum():.0%} of predictive's minutes short "
      f"({onsets['reactive'] / short_by_kind['reactive'].sum():.0%} of the HPA's). "
      f"Predictive is short {onsets['predictive'] / minutes_by_kind['onset step']:.0%} of the onset minutes, "
      f"the HPA {onsets['reactive'] / minutes_by_kind['onset step']:.0%}, the perfect forecast "
      f"{onsets['perfect'] / minutes_by_kind['onset step']:.1%}.")
print(f"Predictive's onset minutes short alone are {onsets['predictive'] / replayed.loc['reactive', 'underprovisioned_minutes']:.3f}x "
      f"the HPA's total minutes short.")

fig, ax = plt.subplots(figsize=(10, 4.5))
short_by_kind[["reactive", "predictive", "perfect"]].plot.bar(ax=ax, color=["tab:orange", "tab:blue", "tab:green"])
ax.set_ylabel("minutes short")
ax.set_xlabel("")
ax.set_title(f"{source.name}, start-up {STARTUP_DELAY}: minutes short by kind of step, at {HPA}'s cost "
             f"(predictive q{quantile})", fontsize=10)
ax.grid(alpha=0.3, axis="y")
plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
nb.show(fig, "short-by-kind")
"""
        ),
        md(
            """
Reading it: minutes short in onset steps are bought back only with headroom held at every other step,
which is what the HPA's target utilization does blindly and the predictive risk knob does where its
calibration says surprises come. Minutes short in the steps *after* an onset, or in rising steps, are
where a better forecast or a faster reaction still has something to win.

## 2. Arrival noise: the rate oracle at the HPA's cost
"""
        ),
        code(
            """
def poisson_quantiles(rates, probabilities, largest):
    \"\"\"The smallest k with P(Poisson(rate) <= k) >= p, for each rate (rows) and p (columns).\"\"\"
    k = np.arange(largest + 1)
    rates = np.maximum(np.asarray(rates, float), 1e-12)[:, None]
    log_pmf = k * np.log(rates) - rates - np.array([math.lgamma(i + 1) for i in k])
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    return np.stack([(cdf < p).sum(axis=1) for p in probabilities], axis=1)

if NOISE_TRACE is None:
    print("NOISE_TRACE is None: part 2 skipped")
else:
    noise_source = Path(NOISE_TRACE) if Path(NOISE_TRACE).is_absolute() else nb.ROOT / NOISE_TRACE
    trace = nb.read_trace(noise_source)
    noise_step = int(trace["unix"].diff().mode().iloc[0])
    nb.require(noise_step < 60, f"{noise_source.name} is at {noise_step} s steps: the rate oracle is for steps under a minute")
    nb.require((trace["unix"].diff().dropna() == noise_step).all() and trace["value"].notna().all(),
               f"{noise_source.name} has gaps: the rate oracle needs an unbroken series")
    width = int(nb.parse_duration(INTENSITY_WINDOW).total_seconds() // noise_step) | 1   # odd: centred
    intensity = trace["value"].rolling(width, center=True, min_periods=1).mean().to_numpy()
    probabilities = 1 - np.geomspace(0.5, 1e-5, 300)
    needed = poisson_quantiles(intensity, probabilities, int(trace["value"].max() * 4 + 20))
    replicas = np.ceil(needed / NOISE_CAPACITY_PER_REPLICA - 1e-9)
    demand = trace["value"].to_numpy()
    rows, curves = [], {}
    for startup in NOISE_STARTUP_DELAYS:
        run = nb.run_json(["simulate", "--input", noise_source, "--capacity-per-replica", NOISE_CAPACITY_PER_REPLICA,
                           "--startup-delay", startup, "--policy", "reactive,predictive", "--frontier", "--json"])
        evaluated = ((trace["unix"] >= run["evaluated_from"]) & (trace["unix"] < run["evaluated_until"])).to_numpy()
        # Capacity changes at each sync only, to the most the sync period ahead needs.
        sync = max(1, int(run["sync_period_seconds"]) // noise_step)
        held = pd.DataFrame(replicas).groupby(np.arange(len(trace)) // sync).transform("max").to_numpy()[evaluated]
        cost = held.sum(axis=0) * noise_step / 60
        short = (demand[evaluated, None] > held * NOISE_CAPACITY_PER_REPLICA + 1e-9).sum(axis=0) * noise_step / 60
        hpa = {v["hpa"]: v for v in run["frontier"]["versus_hpa"]}[HPA]
        affordable = cost <= hpa["hpa_replica_minutes"]
        nb.require(affordable.any(), f"start-up {startup}: every rate-oracle setting costs more than {HPA}")
        oracle_short = short[affordable].min()
        nb.require(oracle_short < hpa["hpa_underprovisioned_minutes"],
                   f"start-up {startup}: knowing the rate ({oracle_short:.2f} min short) does not beat {HPA}: check the bound")
        rows.append({"start-up": startup, f"{HPA} replica-minutes": hpa["hpa_replica_minutes"],
                     f"{HPA} minutes short": hpa["hpa_underprovisioned_minutes"],
                     "predictive minutes short": hpa["underprovisioned_minutes_at_hpa_cost"],
                     "predictive / HPA": hpa["shortfall_ratio_at_hpa_cost"],
                     "rate oracle minutes short": oracle_short,
                     "rate oracle / HPA": oracle_short / hpa["hpa_underprovisioned_minutes"]})
        curves[startup] = (run, cost, short)
    display(pd.DataFrame(rows).round(3))

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), squeeze=False)
    for ax, (startup, (run, cost, short)) in zip(axes[0], curves.items()):
        for family in run["frontier"]["families"]:
            points = pd.DataFrame(family["points"])
            color = {"reactive": "tab:orange", "predictive": "tab:blue"}.get(family["family"], "tab:gray")
            ax.plot(points["replica_minutes"], points["underprovisioned_minutes"], "o", ms=4, color=color,
                    label=family["family"])
        ax.plot(cost, short, color="black", lw=1.2, label="rate oracle (Poisson quantile)")
        hpa = {v["hpa"]: v for v in run["frontier"]["versus_hpa"]}[HPA]
        ax.axvline(hpa["hpa_replica_minutes"], color="tab:orange", ls=":", lw=1)
        ax.set_xlim(0.6 * hpa["hpa_replica_minutes"], 1.5 * hpa["hpa_replica_minutes"])
        ax.set_ylim(0, 3 * hpa["hpa_underprovisioned_minutes"])
        ax.set_xlabel("cost: replica-minutes")
        ax.set_ylabel("minutes short")
        ax.set_title(f"{noise_source.name}, start-up {startup}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    nb.show(fig, "rate-oracle")
"""
        ),
        md(
            """
Reading it: where even the rate oracle is short more than half the HPA's minutes at the HPA's cost, the
minutes short are arrival noise inside the rate, which a forecast of the rate cannot place; headroom is
then the only lever. On such traffic the most predictive scaling can gain over the HPA is what the rate's
own movements leave to forecast.
"""
        ),
    ]


NOTEBOOKS = {
    "forecast-accuracy.ipynb": forecast_accuracy,
    "what-if.ipynb": what_if,
    "dashboard-api.ipynb": dashboard_api,
    "limits.ipynb": limits,
}


def build(name: str, cells) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=cells)
    stem = Path(name).stem
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"{stem}-{index:02d}"  # stable ids: regenerating does not churn the diff
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(notebook)
    return notebook


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        notebook = build(name, cells())
        path = HERE / name
        path.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")
        print("wrote", path.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
