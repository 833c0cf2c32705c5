// Prescient dashboard page: polls the JSON API every 2 s and redraws the chart without reloading.
//
// The chart is hand-drawn SVG in vanilla JS rather than a charting library: a few hundred lines need no
// vendored third-party code to keep licensed and updated, and the page works offline from the binary.
// Every series is a <path data-series="..." data-points="N"> so tests can count what was drawn; page
// errors are written into the DOM (#status data-errors, #page-errors) so a headless browser can see them.
"use strict";

const REFRESH_MS = 2000;
const WINDOW_SECONDS = 3 * 3600; // history shown before "now"
const W = 1000, H = 420, M = { left: 56, right: 56, top: 14, bottom: 30 };
const SVG_NS = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token");
let selected = params.get("autoscaler");
let updates = 0;
let pageErrors = 0;

function statusEl() { return document.getElementById("status"); }

function reportError(message) {
  pageErrors += 1;
  const list = document.getElementById("page-errors");
  const li = document.createElement("li");
  li.textContent = String(message);
  list.appendChild(li);
  list.hidden = false;
  const s = statusEl();
  s.dataset.errors = String(pageErrors);
  s.dataset.state = "error";
  s.textContent = "error: " + message;
}

window.addEventListener("error", (e) => reportError(e.message || "script error"));
window.addEventListener("unhandledrejection", (e) => reportError("unhandled: " + (e.reason && e.reason.message || e.reason)));

async function getJson(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (body.error || ""));
  return body;
}

function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function fmtTime(t) {
  return new Date(t * 1000).toISOString().slice(11, 16);
}

function fmtDate(t) {
  return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function fmtNum(v, digits) {
  return v === null || v === undefined ? "—" : Number(v).toFixed(digits === undefined ? 1 : digits);
}

// "Nice" tick step for a range: 1, 2 or 5 times a power of ten.
function niceStep(range, count) {
  const raw = range / Math.max(count, 1);
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

// A path through [t, v] points; null values break the line. Returns [d, count].
function linePath(points, x, y, step) {
  let d = "", pen = false, count = 0, prev = null;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !isFinite(v)) { pen = false; continue; }
    if (step && pen && prev !== null) d += "H" + x(t).toFixed(1);
    d += (pen ? "L" : "M") + x(t).toFixed(1) + "," + y(v).toFixed(1);
    pen = true; prev = v; count += 1;
  }
  return [d, count];
}

function drawChart(svg, data) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const tpr = data.targetPerReplica || 1;
  const now = data.now;
  const fc = data.forecast ? data.forecast.points : [];
  const t0 = now - WINDOW_SECONDS;
  const t1 = Math.max(now + 60, fc.length ? fc[fc.length - 1].timestamp : now);
  const history = data.history.filter((p) => p.timestamp >= t0);
  const replicas = data.replicas.filter((p) => p.timestamp >= t0);

  let ymax = 1;
  for (const p of history) if (p.demand !== null) ymax = Math.max(ymax, p.demand);
  for (const p of fc) for (const v of [p.upper, p.mean]) if (v !== null) ymax = Math.max(ymax, v);
  for (const p of replicas) ymax = Math.max(ymax, p.ready * tpr, p.desired * tpr);
  ymax *= 1.08;

  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / ymax) * (H - M.top - M.bottom);

  // Grid and axes: demand on the left, the same scale in replicas (demand / targetPerReplica) on the right.
  const axis = el("g", { class: "axis" }, svg);
  const ystep = niceStep(ymax, 6);
  for (let v = 0; v <= ymax; v += ystep) {
    el("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }, axis);
    el("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, axis).textContent = fmtNum(v, v < 10 ? 1 : 0);
  }
  const rmax = ymax / tpr;
  const rstep = Math.max(1, niceStep(rmax, 6));
  for (let r = 0; r <= rmax; r += rstep) {
    el("text", { x: W - M.right + 6, y: y(r * tpr) + 4 }, axis).textContent = String(Math.round(r));
  }
  const tstep = niceStep((t1 - t0) / 3600, 8) * 3600;
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
    el("line", { class: "grid", x1: x(t), x2: x(t), y1: M.top, y2: H - M.bottom }, axis);
    el("text", { x: x(t), y: H - 10, "text-anchor": "middle" }, axis).textContent = fmtTime(t);
  }
  el("text", { x: 4, y: 12 }, axis).textContent = "demand";
  el("text", { x: W - 4, y: 12, "text-anchor": "end" }, axis).textContent = "replicas";

  // Forecast band: upper edge forward, lower edge back.
  const band = fc.filter((p) => p.upper !== null && p.lower !== null);
  let bandD = "";
  band.forEach((p, i) => { bandD += (i ? "L" : "M") + x(p.timestamp).toFixed(1) + "," + y(p.upper).toFixed(1); });
  band.slice().reverse().forEach((p) => { bandD += "L" + x(p.timestamp).toFixed(1) + "," + y(p.lower).toFixed(1); });
  if (band.length) bandD += "Z";
  el("path", { "data-series": "forecast-band", "data-points": String(band.length), d: bandD }, svg);

  const series = [
    ["demand", history.map((p) => [p.timestamp, p.demand]), false],
    ["forecast-mean", fc.map((p) => [p.timestamp, p.mean]), false],
    ["capacity", replicas.map((p) => [p.timestamp, p.ready * tpr]), true],
    ["desired", replicas.map((p) => [p.timestamp, p.desired * tpr]), true],
  ];
  for (const [name, points, step] of series) {
    const [d, count] = linePath(points, x, y, step);
    el("path", { "data-series": name, "data-points": String(count), d }, svg);
  }
  el("line", { class: "now", x1: x(now), x2: x(now), y1: M.top, y2: H - M.bottom }, svg);
  const nearRight = x(now) > W - M.right - 90;
  el("text", { x: x(now) + (nearRight ? -4 : 4), y: M.top + 10, "text-anchor": nearRight ? "end" : "start" }, svg)
    .textContent = "now " + fmtTime(now);
}

function renderList(list) {
  const ul = document.getElementById("autoscalers");
  ul.textContent = "";
  for (const a of list.autoscalers) {
    const key = a.namespace + "/" + a.name;
    const li = document.createElement("li");
    li.dataset.autoscaler = key;
    if (key === selected) li.className = "selected";
    const health = a.forecastHealthy ? "forecast ok" : a.healthReason;
    const capacity = a.readyReplicas === null ? null : a.readyReplicas * a.targetPerReplica;
    const under = a.demand !== null && capacity !== null && a.demand > capacity;
    li.innerHTML = "";
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = key;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = a.target + " · ready " + (a.readyReplicas ?? "—") + " / desired " + (a.desiredReplicas ?? "—") +
      " · demand " + fmtNum(a.demand) + " · " + (a.model || "no model") + " · " + health;
    if (under) meta.classList.add("bad");
    li.append(name, meta);
    li.addEventListener("click", () => { selected = key; refresh(); });
    ul.appendChild(li);
  }
}

// Side by side, the running tallies of the autoscalers whose loop measures one (the demo's two lanes):
// minutes short, what the replicas cost and how often they changed. Hidden when none has one.
function renderTally(list) {
  const rows = list.autoscalers.filter((a) => a.tally);
  const wrap = document.getElementById("tally");
  wrap.hidden = rows.length === 0;
  const body = wrap.querySelector("tbody");
  body.textContent = "";
  const fewestShort = Math.min(...rows.map((a) => a.tally.underprovisionedMinutes));
  const cheapest = Math.min(...rows.map((a) => a.tally.replicaMinutes));
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.dataset.autoscaler = a.namespace + "/" + a.name;
    const cells = [
      [a.namespace + "/" + a.name, false],
      [fmtNum(a.tally.underprovisionedMinutes, 1), rows.length > 1 && a.tally.underprovisionedMinutes === fewestShort],
      [fmtNum(a.tally.replicaMinutes, 0), rows.length > 1 && a.tally.replicaMinutes === cheapest],
      [String(a.tally.scaleEvents), false],
      [String(a.tally.syncs), false],
    ];
    for (const [text, best] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (best) td.className = "best";
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function renderDetail(detail) {
  document.getElementById("selected-name").textContent = detail.namespace + "/" + detail.name;
  const spec = detail.spec;
  document.getElementById("selected-info").textContent =
    spec.scaleTargetRef.kind + "/" + spec.scaleTargetRef.name + " · " + spec.minReplicas + "–" + spec.maxReplicas +
    " replicas · " + Number(spec.targetPerReplica.toPrecision(4)) + " per replica · q" + spec.quantile + " · lead " + spec.leadTime;
  const facts = document.getElementById("facts");
  facts.textContent = "";
  const d = detail.decision || {};
  const rows = [
    ["last sync", fmtDate(detail.lastSync)],
    ["decision", (d.desiredReplicas ?? "—") + " replicas (" + (d.reason || "—") + "): " + (d.message || "")],
    ["model", detail.model ? detail.model.name + " · backtest MASE " + fmtNum(detail.model.backtestMase, 2) : "none yet"],
    ["forecast health", detail.health.reason + ": " + detail.health.message],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    facts.append(dt, dd);
  }
  const errors = document.getElementById("api-errors");
  errors.textContent = "";
  for (const e of detail.errors.slice().reverse()) {
    const li = document.createElement("li");
    li.textContent = fmtDate(e.lastSeen) + " " + e.kind + ": " + e.message + (e.count > 1 ? " (×" + e.count + ")" : "");
    errors.appendChild(li);
  }
  if (!detail.errors.length) errors.innerHTML = "<li>none</li>";
}

// With a few autoscalers (the demo's predictive and reactive pair), the others are drawn below the
// selected one on the same kind of chart, so they can be compared at a glance.
const MAX_OTHERS = 3;
async function drawOthers(keys) {
  const box = document.getElementById("others");
  const shown = keys.length <= MAX_OTHERS ? keys : [];
  for (const node of Array.from(box.children)) {
    if (!shown.includes(node.dataset.autoscaler)) box.removeChild(node);
  }
  const data = await Promise.all(shown.map((k) =>
    getJson("/api/v1/autoscalers/" + k.split("/").map(encodeURIComponent).join("/") + "/forecast")));
  shown.forEach((key, i) => {
    let figure = Array.from(box.children).find((n) => n.dataset.autoscaler === key);
    if (!figure) {
      figure = document.createElement("figure");
      figure.dataset.autoscaler = key;
      const caption = document.createElement("figcaption");
      caption.textContent = key;
      figure.appendChild(caption);
      const svg = el("svg", { class: "chart small", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" });
      figure.appendChild(svg);
      figure.addEventListener("click", () => { selected = key; refresh(); });
      box.appendChild(figure);
    }
    drawChart(figure.querySelector("svg"), data[i]);
  });
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const list = await getJson("/api/v1/autoscalers");
    if (!selected || !list.autoscalers.some((a) => a.namespace + "/" + a.name === selected)) {
      selected = list.autoscalers.length ? list.autoscalers[0].namespace + "/" + list.autoscalers[0].name : null;
    }
    renderList(list);
    renderTally(list);
    if (selected) {
      const path = "/api/v1/autoscalers/" + selected.split("/").map(encodeURIComponent).join("/");
      const [detail, forecast] = await Promise.all([getJson(path), getJson(path + "/forecast")]);
      renderDetail(detail);
      drawChart(document.getElementById("chart"), forecast);
    }
    await drawOthers(list.autoscalers.map((a) => a.namespace + "/" + a.name).filter((k) => k !== selected));
    updates += 1;
    const s = statusEl();
    s.dataset.updates = String(updates);
    if (!pageErrors) {
      s.dataset.state = "ok";
      s.textContent = list.autoscalers.length + " autoscaler(s) · updated " + new Date().toLocaleTimeString();
    }
  } catch (e) {
    reportError(e.message || String(e));
  } finally {
    busy = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
