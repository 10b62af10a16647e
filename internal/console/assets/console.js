// Bulwark console: vanilla JavaScript, no framework, no external request.
// Every figure comes from /console/api/summary (this process's metrics
// registry) and every setting from /console/api/admin/… (the control
// admin API, called by the server with this session's admin key).
"use strict";

const POLL_MS = 1000;
let csrf = "";
let pollTimer = null;
let lastSummary = null;
let lastChangeVersion = 0;
let lastExportJobs = "";

const $ = (id) => document.getElementById(id);

function num(v, digits) {
  if (v === null || v === undefined) return "—";
  if (digits === undefined) digits = Math.abs(v) >= 100 ? 0 : 2;
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return num(s, 1) + " s";
  if (s < 3600) return num(s / 60, 1) + " min";
  return num(s / 3600, 1) + " h";
}

function setText(id, text) { $(id).textContent = text; }

function status(text) { setText("status", text); }

// fillTable replaces a table body with rows of cells; cell: string or
// {text, num: true}; rowAttrs sets data attributes and a class per row.
function fillTable(id, rows, empty) {
  const body = $(id).querySelector("tbody");
  const out = [];
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const [k, v] of Object.entries(r.attrs || {})) tr.dataset[k] = v;
    if (r.cls) tr.className = r.cls;
    for (const c of r.cells) {
      const td = document.createElement("td");
      if (typeof c === "object" && c !== null) {
        td.textContent = c.text;
        if (c.num) td.classList.add("num");
        if (c.cls) td.classList.add(c.cls);
      } else {
        td.textContent = c;
      }
      tr.appendChild(td);
    }
    out.push(tr);
  }
  if (out.length === 0 && empty) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = $(id).querySelectorAll("thead th").length;
    td.textContent = empty;
    tr.appendChild(td);
    out.push(tr);
  }
  body.replaceChildren(...out);
}

async function call(method, path, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    return { ok: false, status: 0, data: { detail: "the server is unreachable: " + e } };
  }
  let data = null;
  const text = await resp.text();
  if (text) { try { data = JSON.parse(text); } catch (e) { data = { detail: text }; } }
  if (resp.status === 401 && path !== "/console/api/signin") {
    showSignIn((data && data.detail) || "Your session ended; sign in again.");
  }
  return { ok: resp.ok, status: resp.status, data };
}

function problemText(r) {
  const d = r.data || {};
  return (d.code ? d.code + ": " : "") + (d.detail || d.title || ("HTTP " + r.status));
}

function showSignIn(message) {
  stopPolling();
  csrf = "";
  $("app").hidden = true;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  setText("signin-error", message || "");
  $("key").focus();
}

async function showApp(session) {
  csrf = session.csrf_token;
  setText("operator", "Signed in as " + session.operator);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("key").value = "";
  status("");
  await Promise.all([loadKeys(), loadPresets()]);
  await loadTenant();
  startPolling();
}

async function signIn(ev) {
  ev.preventDefault();
  const form = new URLSearchParams(new FormData($("signin-form")));
  let resp;
  try {
    resp = await fetch("/console/api/signin", { method: "POST", body: form, credentials: "same-origin",
      headers: { "Accept": "application/json" } });
  } catch (e) {
    setText("signin-error", "The server is unreachable: " + e);
    return;
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    setText("signin-error", (data.detail || "Sign-in refused") + " (" + (data.code || resp.status) + ")");
    $("key").select();
    return;
  }
  await showApp(data);
}

async function signOut() {
  const r = await call("POST", "/console/api/signout");
  if (!r.ok && r.status !== 401) { status("Sign-out failed: " + problemText(r)); return; }
  showSignIn("Signed out.");
}

// ---- overview, streams, exports: polled ----

function startPolling() {
  stopPolling();
  const tick = async () => {
    const r = await call("GET", "/console/api/summary");
    if (r.status === 401) return; // showSignIn stopped polling
    if (r.ok) {
      lastSummary = r.data;
      render(r.data);
      await loadExportJobs();
    } else {
      status("Could not read the metrics: " + problemText(r));
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

function render(s) {
  setText("window", s.window_seconds ? num(s.window_seconds, 1) : "—");
  setText("updated", new Date(s.at).toLocaleTimeString());
  setText("gaps", s.gaps && s.gaps.length ? "Not in this process: " + s.gaps.join("; ") + "." : "");
  const a = s.admission;
  const stageNames = { 1: "1 · normal", 2: "2 · shedding", 3: "3 · collapse" };
  setText("adm-stage", a.stage === null ? "—" : (stageNames[a.stage] || String(a.stage)));
  $("adm-stage").className = a.stage >= 2 ? "stage-" + a.stage : "";
  setText("adm-capacity", num(a.capacity_estimate, 0));
  setText("adm-inflight", num(a.in_flight, 0));
  setText("adm-threshold", num(a.shed_threshold, 2));
  setText("adm-delay", num(a.queue_delay_ms, 2));
  setText("adm-admitted", num(a.admitted_per_sec, 1));
  setText("http-inflight", num(s.http.in_flight, 0));
  const l = s.ledger;
  setText("ledger-queue", num(l.queue_depth, 0));
  setText("ledger-tps", num(l.transactions_per_sec, 1));
  setText("ledger-bps", num(l.batches_per_sec, 1));
  setText("ledger-batch", num(l.batch_size_mean, 1));
  setText("ledger-p99", num(l.commit_p99_ms, 2));
  setText("ledger-mean", num(l.commit_mean_ms, 2));
  setText("ledger-failures", num(l.failures_total, 0));
  setText("ledger-overload", num(l.overload_total, 0));
  fillTable("classes", s.http.classes.map((c) => ({ attrs: { cls: c.class }, cells: [c.class,
    { text: num(c.per_sec, 1), num: true, cls: "rate" }, { text: num(c.shed_per_sec, 1), num: true },
    { text: num(c.errors_per_sec, 1), num: true }, { text: num(c.p99_ms, 2), num: true }] })), "No requests yet.");
  fillTable("rejections", a.rejections.map((x) => ({ cells: [x.priority, x.reason,
    { text: num(x.total, 0), num: true }, { text: num(x.per_sec, 1), num: true }] })), "No rejections since the process started.");
  renderVersion(s);
  renderStreams(s);
  renderExports(s);
  const list = $("tenant-list");
  if (list.childElementCount !== s.tenants.length + 1) {
    const opts = ["*", ...s.tenants].map((t) => { const o = document.createElement("option"); o.value = t; return o; });
    list.replaceChildren(...opts);
  }
}

function renderVersion(s) {
  const v = s.control.applied_version;
  setText("applied-version", num(v, 0));
  if (v === null) { setText("version-reach", "this process runs no control watcher"); return; }
  if (lastChangeVersion === 0) { setText("version-reach", "no change made from this page yet"); return; }
  setText("version-reach", v >= lastChangeVersion
    ? "your last change, version " + lastChangeVersion + ", has reached this process"
    : "waiting for version " + lastChangeVersion + " to reach this process");
}

function etaText(r) {
  if (r.paused) return "paused";
  if (r.eta_seconds === null && r.lag_events > 0 && r.drain_per_sec !== null) return "not draining";
  return duration(r.eta_seconds);
}

function renderStreams(s) {
  const filter = $("tasks-filter").value.trim();
  const c = s.cdc;
  setText("cdc-state", c.state);
  setText("cdc-bytes", num(c.wal_bytes_behind, 0));
  setText("cdc-seconds", num(c.seconds_behind, 2));
  setText("cdc-eps", num(c.events_per_sec, 1));
  setText("cdc-restarts", num(c.restarts_total, 0));
  const t = s.tasks;
  setText("tasks-note", t.reported
    ? (t.truncated ? "Showing the first rows only." : "")
    : "No background tasks yet: no task reports lag in this process. The rates below are the live tasks.<task>.rate_per_partition settings each tenant's tasks will follow (0 pauses)." + (t.truncated ? " Showing the first rows only." : ""));
  fillTable("tasks", t.rows.map((r) => ({
    attrs: { row: r.tenant + "/" + r.task + "/" + r.partition }, cls: r.paused ? "paused" : "",
    cells: [r.tenant, r.task, r.partition, { text: num(r.rate_per_partition, 2), num: true, cls: "rate" },
      { text: r.paused ? "paused" : "no", cls: "paused-cell" }, { text: num(r.lag_events, 0), num: true },
      { text: num(r.lag_seconds, 1), num: true },
      { text: etaText(r), num: true }],
  })).filter((r) => filter === "" || r.attrs.row.startsWith(filter + "/")), filter ? "No rows for tenant " + filter + "." : "No tenants yet.");
}

function renderExports(s) {
  const e = s.exports;
  setText("exports-note", e.reported
    ? "Every bulwark_export* series of this process."
    : "No exports engine in this process (no bulwark_export* metrics).");
  fillTable("export-series", e.series.map((x) => ({ cells: [x.name, x.labels, { text: num(x.value), num: true }] })));
}

// Queued and running exports of every tenant, from the exports admin
// route (the database: every process's jobs), read with each poll.
async function loadExportJobs() {
  const r = await call("GET", "/console/api/admin/exports");
  if (!r.ok) {
    setText("export-jobs-note", r.status === 404 ? "This process serves no exports API." : "Could not list exports: " + problemText(r));
    return;
  }
  const jobs = r.data.exports;
  // Unchanged jobs keep their rows (and a button about to be clicked).
  const sig = JSON.stringify(jobs);
  if (sig === lastExportJobs) return;
  lastExportJobs = sig;
  setText("export-jobs-note", jobs.length >= 100 ? "The 100 oldest queued or running exports." : "");
  const pools = new Map();
  for (const j of jobs) {
    const k = j.queue + "\u0000" + j.tenant;
    const p = pools.get(k) || { queue: j.queue, tenant: j.tenant, running: 0, queued: 0 };
    if (j.state === "running") p.running++; else p.queued++;
    pools.set(k, p);
  }
  fillTable("export-pools", [...pools.values()].map((p) => ({ cells: [p.queue, p.tenant,
    { text: num(p.running, 0), num: true }, { text: num(p.queued, 0), num: true }] })), "No export queued or running.");
  fillTable("export-jobs", jobs.map((j) => ({ attrs: { export: j.id, tenant: j.tenant }, cells: [j.tenant, j.id, j.kind, j.queue, j.state,
    { text: num(j.progress_percent, 1), num: true }, { text: num(j.rows_written, 0), num: true },
    new Date(j.created_at).toLocaleTimeString(), ""] })), "No export queued or running.");
  for (const tr of $("export-jobs").querySelectorAll("tbody tr[data-export]")) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cancel-export";
    b.textContent = "Cancel";
    b.addEventListener("click", () => cancelExport(tr.dataset.tenant, tr.dataset.export, b));
    tr.lastElementChild.appendChild(b);
  }
}

async function cancelExport(tn, id, button) {
  button.disabled = true;
  const r = await call("DELETE", "/console/api/admin/tenants/" + encodeURIComponent(tn) + "/exports/" + encodeURIComponent(id));
  setText("export-result", r.ok ? "Cancelled export " + id + " of " + tn + "." : "Cancel refused: " + problemText(r));
  $("export-result").className = r.ok ? "ok" : "error";
  await loadExportJobs();
}

// ---- levers: on demand ----

let keyDocs = [];
let presets = [];

async function loadKeys() {
  const r = await call("GET", "/console/api/admin/settings/keys");
  if (!r.ok) { status("Could not list setting keys: " + problemText(r)); return; }
  keyDocs = r.data.keys;
  $("change-key").replaceChildren(...keyDocs.map((k) => {
    const o = document.createElement("option");
    o.value = k.name;
    o.textContent = k.name + " (" + k.type + ")";
    o.title = k.doc;
    return o;
  }));
}

async function loadPresets() {
  const r = await call("GET", "/console/api/admin/presets");
  if (!r.ok) { status("Could not list presets: " + problemText(r)); return; }
  presets = r.data.presets || [];
  $("preset").replaceChildren(...presets.map((p) => {
    const o = document.createElement("option");
    o.value = p.name;
    o.textContent = p.name;
    return o;
  }));
  showPresetDoc();
}

function showPresetDoc() {
  const p = presets.find((x) => x.name === $("preset").value);
  setText("preset-doc", p ? p.doc : "");
}

function tenant() { return $("tenant").value.trim() || "*"; }

async function loadTenant(ev) {
  if (ev) ev.preventDefault();
  const t = tenant();
  const r = await call("GET", "/console/api/admin/settings/tenants/" + encodeURIComponent(t));
  if (!r.ok) {
    result(false, "Cannot load " + t + ": " + problemText(r));
    return;
  }
  const s = r.data;
  setText("settings-tenant", t === "*" ? "the global scope (*)" : t);
  setText("settings-version", String(s.version));
  setText("presets-applied", s.presets_applied.length ? s.presets_applied.join(", ") : "none");
  fillTable("settings", s.settings.map((x) => ({ attrs: { key: x.key },
    cells: [x.key, { text: x.value, cls: "value" }, x.source, x.default] })));
  await loadHistory(t);
}

async function loadHistory(t) {
  const q = t === "*" ? "" : "&tenant=" + encodeURIComponent(t);
  const r = await call("GET", "/console/api/admin/settings/history?limit=30" + q);
  setText("history-tenant", t === "*" ? "every tenant" : t);
  if (!r.ok) { fillTable("history", [], "Could not read the history: " + problemText(r)); return; }
  fillTable("history", r.data.entries.map((e) => ({ cells: [new Date(e.at).toLocaleString(), String(e.version),
    e.key, e.old_value ?? "(unset)", e.new_value ?? "(unset)", e.actor + (e.operator ? " / " + e.operator : ""),
    e.reason, e.preset || ""] })), "No changes recorded.");
}

function result(ok, text) {
  const el = $("change-result");
  el.className = ok ? "ok" : "error";
  el.textContent = text;
}

async function change(body, what) {
  const t = tenant();
  const r = await call("PATCH", "/console/api/admin/settings/tenants/" + encodeURIComponent(t), body);
  afterChange(r, what + " for " + t);
}

async function afterChange(r, what) {
  if (!r.ok) { result(false, what + " refused: " + problemText(r)); return; }
  lastChangeVersion = r.data.version || lastChangeVersion;
  result(true, what + ": stored as version " + lastChangeVersion + ".");
  if (lastSummary) renderVersion(lastSummary);
  await loadTenant();
}

function setSetting(ev) {
  ev.preventDefault();
  const key = $("change-key").value;
  change({ set: { [key]: $("change-value").value }, reason: $("change-reason").value }, "Set " + key);
}

function unsetSetting() {
  const key = $("change-key").value;
  change({ unset: [key], reason: $("change-reason").value }, "Unset " + key);
}

async function presetAction(action) {
  const name = $("preset").value;
  const t = tenant();
  const r = await call("POST", "/console/api/admin/presets/" + encodeURIComponent(name) + "/" + action,
    { tenant: t, reason: $("preset-reason").value });
  await afterChange(r, (action === "apply" ? "Applied " : "Reverted ") + name + " for " + t);
}

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("tenant-form").addEventListener("submit", loadTenant);
  $("change-form").addEventListener("submit", setSetting);
  $("unset-button").addEventListener("click", unsetSetting);
  $("preset-form").addEventListener("submit", (ev) => { ev.preventDefault(); presetAction("apply"); });
  $("preset-revert").addEventListener("click", () => presetAction("revert"));
  $("preset").addEventListener("change", showPresetDoc);
  $("tasks-filter-form").addEventListener("submit", (ev) => ev.preventDefault());
  $("tasks-filter").addEventListener("input", () => { if (lastSummary) renderStreams(lastSummary); });
  const r = await call("GET", "/console/api/session");
  if (r.ok) await showApp(r.data);
  else if (r.status === 401) setText("signin-error", ""); // a first visit: nothing went wrong
  else showSignIn("The console is unavailable: " + problemText(r));
}

start();
