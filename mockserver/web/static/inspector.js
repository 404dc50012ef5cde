// logx-mock inspector. Every value that came from a request is put on the page with
// textContent or as a text node, never as HTML: payloads are written by whoever calls
// the endpoint. The Content-Security-Policy forbids inline script besides.
"use strict";

const API = "/_mock";
const PAGE = 1000;
const KEEP = 5000;
const state = { requests: new Map(), lastId: 0, generation: null, selected: null, shown: undefined, loading: null, again: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(API + path, options);
  if (!response.ok && response.status !== 204) throw new Error(`${path}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

// --- loading -------------------------------------------------------------

async function load() {
  // One fetch at a time; a change announced meanwhile makes it fetch once more.
  if (state.loading) { state.again = true; return state.loading; }
  state.loading = (async () => {
    do {
      state.again = false;
      await fetchNewer();
    } while (state.again);
    render();
  })();
  try { await state.loading; } finally { state.loading = null; }
}

async function fetchNewer() {
  for (;;) {
    const body = await api(`/requests?after=${state.lastId}&limit=${PAGE}&events=true`);
    if (state.generation !== null && body.generation !== state.generation) forget();
    state.generation = body.generation;
    for (const record of body.requests) {
      state.requests.set(record.id, record);
      state.lastId = Math.max(state.lastId, record.id);
    }
    // A page stops short of PAGE at the end, or at the answer's size bound (then truncated).
    if (body.requests.length < PAGE && !body.truncated) break;
  }
  while (state.requests.size > KEEP) state.requests.delete(state.requests.keys().next().value);
}

function forget() {
  state.requests.clear();
  state.lastId = 0;
  state.selected = null;
}

// A banner line under the header: a title and one item per entry, or nothing when empty.
function banner(id, title, cls, texts) {
  const box = document.getElementById(id);
  box.replaceChildren();
  if (!texts.length) return;
  box.append(el("strong", {}, title));
  texts.forEach((text, i) => box.append(el("span", { class: cls }, `${i ? " · " : ""}${text}`)));
}

async function loadFaults() {
  const body = await api("/faults");
  banner("faults", "Fault plan in force: ", "rule", body.rules.map(({ id, fired, ...options }) => {
    const text = Object.entries(options).map(([k, v]) => (v === true ? k : `${k}=${v}`)).join(",");
    return `#${id} ${text} (fired ${fired})`;
  }));
}

async function loadDatafiles() {
  const body = await api("/datafiles");
  banner("datafiles", "Checked against: ", "datafile",
    body.datafiles.map((d) => `${d.source} (project ${d.project_id}, revision ${d.revision})`));
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource(API + "/stream");
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.classList.remove("on"); });
  source.addEventListener("journal", (message) => {
    const info = JSON.parse(message.data);
    if (state.generation !== null && info.generation !== state.generation) { forget(); render(); }
    load();
    loadFaults();
    loadDatafiles();
    document.dispatchEvent(new Event("logx:journal")); // the Results view follows too
  });
}

// --- the list ------------------------------------------------------------

function rowsOf(record) {
  if (!record.events.length) return [{ record, event: null, index: -1 }];
  return record.events.map((event, index) => ({ record, event, index }));
}

function filters() {
  const value = (id) => document.getElementById(id).value.trim();
  return {
    search: value("search").toLowerCase(), visitor: value("f-visitor"), key: value("f-key"),
    kind: value("f-kind"), verdict: value("f-verdict"), client: value("f-client"),
  };
}

// The download links export what the filters show, as far as the server's filters match
// the page's (exact visitor, key, kind and verdict; the search box and the client prefix
// are the page's own).
function exportHref(format) {
  const f = filters();
  const query = new URLSearchParams({ format });
  for (const [name, value] of [["visitor_id", f.visitor], ["key", f.key], ["kind", f.kind], ["verdict", f.verdict]]) {
    if (value) query.set(name, value);
  }
  return `${API}/export?${query}`;
}

function updateDownloads() {
  for (const link of document.querySelectorAll("a[data-export]")) link.href = exportHref(link.dataset.export);
}

function clientOf(record) {
  const payload = record.payload && typeof record.payload === "object" ? record.payload : {};
  return [payload.client_name, payload.client_version].filter((x) => typeof x === "string").join(" ");
}

function keep(row, f) {
  const { record, event } = row;
  const e = event || {};
  if (f.visitor && String(e.visitor_id) !== f.visitor) return false;
  if (f.key && String(e.key) !== f.key) return false;
  if (f.kind && e.kind !== f.kind) return false;
  if (f.verdict && record.verdict !== f.verdict) return false;
  if (f.client && !clientOf(record).startsWith(f.client)) return false;
  if (f.search) {
    const haystack = [e.visitor_id, e.key, e.entity_key, e.uuid, e.entity_id, e.account_id, clientOf(record), record.id]
      .map((x) => String(x ?? "")).join(" ").toLowerCase();
    if (!haystack.includes(f.search)) return false;
  }
  return true;
}

function time(seconds) {
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

// A not_found request has no event: its row shows where it went instead (`POST /v1/event`).
function routeOf(record) {
  return record.verdict === "not_found" ? `${record.method} ${record.path}` : "";
}

function badge(record) {
  const cell = el("td", { class: "verdict" }, el("span", { class: `badge ${record.verdict}` }, record.verdict));
  if (record.warnings.length) cell.append(el("span", { class: "warn", title: "warnings" }, `⚠ ${record.warnings.length}`));
  return cell;
}

function render() {
  const f = filters();
  const body = document.getElementById("rows");
  const records = [...state.requests.values()].reverse();
  const rows = records.flatMap(rowsOf).filter((row) => keep(row, f));
  body.replaceChildren(...rows.map(({ record, event, index }) => {
    const e = event || {};
    const tr = el("tr", { "data-request": record.id, "data-index": index, on: { click: () => select(record.id) } },
      el("td", {}, record.id),
      el("td", {}, time(record.received_at)),
      el("td", { class: "client" }, clientOf(record)),
      el("td", { class: "visitor" }, e.visitor_id ?? ""),
      el("td", {}, e.kind ?? "—"),
      el("td", { class: "key" }, e.key || e.entity_key || routeOf(record), e.duplicate ? el("span", { class: "dup", title: "duplicate" }, "dup") : null),
      badge(record));
    if (record.id === state.selected) tr.classList.add("selected");
    return tr;
  }));
  document.getElementById("empty").hidden = state.requests.size > 0;
  const events = records.reduce((n, r) => n + r.events.length, 0);
  document.getElementById("counts").textContent =
    `${state.requests.size} request(s), ${events} event(s), ${rows.length} shown`;
  // Rebuilt only when another request is shown: a new batch arriving must not wipe the detail
  // being read (or the assertion just copied from it).
  const shown = state.selected === null ? undefined : state.requests.get(state.selected);
  if (shown !== state.shown) renderDetail(shown);
}

// --- the detail view -----------------------------------------------------

function select(id) {
  state.selected = id;
  render();
}

function table(cls, pairs) {
  return el("table", { class: cls }, ...pairs.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
}

function violationList(record, onPath) {
  const list = el("ul", { class: "violations" });
  const groups = [["error", record.errors], ["warning", record.warnings], ["note", record.unknown_fields]];
  for (const [severity, items] of groups) {
    for (const v of items) {
      list.append(el("li", { class: severity },
        `${severity}: `, el("span", { class: "path", on: { click: () => onPath(v.path) } }, v.path),
        ` — ${v.message} [${v.rule}]`));
    }
  }
  return list.children.length ? list : el("p", {}, "No error, warning or unknown field.");
}

function renderDetail(record) {
  const detail = document.getElementById("detail");
  state.shown = record;
  if (!record) { detail.hidden = true; return; }
  detail.hidden = false;
  const json = jsonView(record);
  const meta = [
    ["request", `#${record.id} ${record.method} ${record.path}`], ["received", time(record.received_at)],
    ["host", record.host ?? ""], ["status", String(record.status)], ["verdict", record.verdict],
    ["strict", `${record.strict} (header: ${record.strict_header ?? "absent"})`],
    ["client IP (stored)", record.client_ip ?? "unknown"],
  ];
  if (record.fault) meta.push(["fault", JSON.stringify(record.fault)]);
  detail.replaceChildren(
    el("h2", {}, `Request #${record.id}`, " ", el("span", { class: `badge ${record.verdict}` }, record.verdict)),
    table("meta", meta),
    el("h3", {}, "Violations"), violationList(record, json.reveal),
    el("h3", {}, `Events (${record.event_count})`), ...record.events.map(eventCard),
    ...(record.events_left_off ? [el("p", { class: "empty" },
      `… and ${record.events_left_off} more past the answer's size bound: ` +
      `${API}/events?after=${record.id - 1}`)] : []),
    el("h3", {}, "Payload"), json.node,
    el("h3", {}, "Headers"), table("kv", record.headers.map(([k, v]) => [k, v])),
  );
}

function eventCard(event) {
  const card = el("div", { class: "event-card", "data-path": event.path });
  card.append(el("strong", {}, `${event.kind} ${event.key ?? ""}`));
  if (event.duplicate) card.append(el("span", { class: "dup" }, " duplicate"));
  const fields = ["visitor_id", "entity_id", "uuid", "timestamp", "revenue", "value", "quantity"]
    .filter((k) => event[k] !== null && event[k] !== undefined).map((k) => [k, JSON.stringify(event[k])]);
  if (event.entity_key) fields[fields.findIndex(([k]) => k === "entity_id")][1] += ` (${event.entity_key})`;
  if (event.tags) fields.push(["tags", JSON.stringify(event.tags)]);
  card.append(table("kv", fields));
  if (event.decisions.length) {
    const head = ["campaign_id", "experiment_id", "variation_id", "flag_key", "rule_key", "variation_key", "enabled"];
    card.append(el("table", { class: "decisions" },
      el("tr", {}, ...head.map((h) => el("th", {}, h))),
      ...event.decisions.map((d, i) => el("tr", {}, ...head.map((h) => {
        const source = h in d ? d : (d.metadata || {});
        const resolved = resolvedKey((event.decision_keys || [])[i], h);
        const cell = el("td", {}, JSON.stringify(source[h] ?? null));
        if (resolved && resolved !== source[h]) cell.append(" ", el("span", { class: "dfkey", title: "the datafile's key" }, `(${resolved})`));
        return cell;
      })))));
  }
  const attrs = Object.entries(event.attributes || {});
  if (attrs.length) card.append(el("table", { class: "attributes" }, el("tr", {}, el("th", {}, "attribute"), el("th", {}, "value")),
    ...attrs.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, JSON.stringify(v))))));
  const output = el("code", { class: "assertion", hidden: "" });
  card.append(el("button", { type: "button", class: "copy", on: { click: () => copyAssertion(event, output) } },
    "Copy as pytest assertion"), output);
  return card;
}

// What a datafile resolved for a decision column: the key next to an id, or the
// metadata key the SDK did not send.
function resolvedKey(keys, column) {
  if (!keys) return null;
  const by = { experiment_id: "experiment_key", variation_id: "variation_key", flag_key: "flag_key",
    rule_key: "experiment_key", variation_key: "variation_key" };
  return by[column] ? keys[by[column]] ?? null : null;
}

// --- JSON with violations at their paths ---------------------------------

function jsonView(record) {
  const marks = new Map();
  const nodes = new Map();
  const add = (severity, list) => list.forEach((v) => {
    if (!marks.has(v.path)) marks.set(v.path, []);
    marks.get(v.path).push({ severity, v });
  });
  add("error", record.errors);
  add("warning", record.warnings);
  const pre = el("pre", { class: "json" });
  if (record.payload === null && record.raw !== null) {
    pre.append(record.raw);
  } else {
    pre.append(value(record.payload, "$", "", nodes));
  }
  // The datafile's keys next to the ids they name (a decision's own path: its flag).
  for (const [path, key] of Object.entries(record.keys || {})) {
    const node = nodes.get(path);
    if (!node) continue;
    const label = path.endsWith("]") ? `flag ${key}` : key;
    node.after(el("span", { class: "dfkey", title: "the datafile's key", "data-key-for": path }, `  ⟵ ${label}`));
  }
  for (const [path, items] of marks) {
    let at = path;
    while (!nodes.has(at) && at !== "$") at = parentPath(at);
    const target = nodes.get(at) || pre;
    target.classList.add("mark", items.some((i) => i.severity === "error") ? "error" : "warning");
    for (const { severity, v } of items) {
      target.after(el("span", { class: `flag ${severity}`, "data-flag": v.path }, `↑ ${v.path}: ${v.message}`));
    }
  }
  const reveal = (path) => {
    let at = path;
    while (!nodes.has(at) && at !== "$") at = parentPath(at);
    (nodes.get(at) || pre).scrollIntoView({ block: "center" });
  };
  return { node: pre, reveal };
}

// Paths look like `visitors[0].snapshots[0].events[0].tags["odd key"]`: the same rule as
// the validator's join_path, so each violation finds its node.
function segments(path) {
  const parts = [];
  const pattern = /\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/gy;
  let match;
  while ((match = pattern.exec(path)) !== null && match[0] !== "") {
    parts.push(match[1] ?? (match[2] !== undefined ? Number(match[2]) : JSON.parse(match[3])));
  }
  return parts;
}

function parentPath(path) {
  const parts = segments(path);
  parts.pop();
  return parts.reduce(childPath, "$");
}

function childPath(parent, key) {
  if (typeof key === "number") return `${parent === "$" ? "" : parent}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) return parent === "$" ? key : `${parent}.${key}`;
  return `${parent === "$" ? "" : parent}[${JSON.stringify(key)}]`;
}

function value(v, path, indent, nodes) {
  const span = el("span", { "data-path": path });
  nodes.set(path, span);
  if (Array.isArray(v) || (v && typeof v === "object")) {
    const isArray = Array.isArray(v);
    const entries = isArray ? v.map((x, i) => [i, x]) : Object.entries(v);
    if (!entries.length) { span.append(isArray ? "[]" : "{}"); return span; }
    span.append(isArray ? "[\n" : "{\n");
    entries.forEach(([key, item], i) => {
      span.append(indent + "  ");
      if (!isArray) span.append(el("span", { class: "key" }, JSON.stringify(key)), ": ");
      span.append(value(item, childPath(path, key), indent + "  ", nodes));
      span.append(i < entries.length - 1 ? ",\n" : "\n");
    });
    span.append(indent + (isArray ? "]" : "}"));
  } else {
    span.append(JSON.stringify(v));
  }
  return span;
}

// --- copy as pytest assertion --------------------------------------------

function py(v) {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(py).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${py(x)}`).join(", ")}}`;
}

function assertion(event) {
  const args = [];
  const add = (name, v) => { if (v !== null && v !== undefined) args.push(`${name}=${py(v)}`); };
  if (event.kind === "conversion") {
    args.push(py(event.key || event.entity_key));
    add("visitor_id", event.visitor_id);
    add("revenue", event.revenue);
    add("value", event.value);
    if (event.tags && Object.keys(event.tags).length) add("tags", event.tags);
    return `logx_server.assert_conversion(${args.join(", ")})`;
  }
  add("visitor_id", event.visitor_id);
  const decision = event.decisions[0];
  if (decision) {
    args.push(`experiment_id=${py(decision.experiment_id)}`, `variation_id=${py(decision.variation_id)}`);
    const meta = decision.metadata || {};
    const keys = (event.decision_keys || [])[0] || {};
    if (meta.flag_key || keys.flag_key) add("flag_key", meta.flag_key || keys.flag_key);
    if (meta.variation_key || keys.variation_key) add("variation_key", meta.variation_key || keys.variation_key);
  }
  return `logx_server.assert_impression(${args.join(", ")})`;
}

async function copyAssertion(event, output) {
  const text = assertion(event);
  output.textContent = text;
  output.hidden = false;
  try { await navigator.clipboard.writeText(text); output.title = "copied"; } catch (_) { output.title = "select and copy"; }
}

// --- start ---------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("events-url").textContent = `${location.origin}/v1/events`;
  document.getElementById("filters").addEventListener("input", render);
  document.getElementById("filters").addEventListener("input", updateDownloads);
  updateDownloads();
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("clear").addEventListener("click", async () => {
    await api("/requests", { method: "DELETE" });
  });
  load().then(listen);
  loadFaults();
  loadDatafiles();
});
