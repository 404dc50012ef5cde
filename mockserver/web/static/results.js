// logx-mock inspector, the Results view: the table each experiment would show, and every
// event that did not count, by visitor, each linked to its request (#request-N). Like the
// rest of the page, values from requests go in as text, never as HTML. Shares `el`, `api`,
// `state`, `load` and `select` with inspector.js (classic scripts, one global scope).
"use strict";

const results = { loading: null, again: false };

function showView(name) {
  document.getElementById("requests-view").hidden = name !== "requests";
  document.getElementById("results").hidden = name !== "results";
  for (const tab of document.querySelectorAll("#views a")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  if (name === "results") loadResults();
}

async function loadResults() {
  // One fetch at a time; a commit announced meanwhile makes it fetch once more.
  if (results.loading) { results.again = true; return; }
  results.loading = (async () => {
    do {
      results.again = false;
      renderResults(await api("/results?limit=1000"));
    } while (results.again);
  })();
  try { await results.loading; } finally { results.loading = null; }
}

function named(key, id) {
  return key && key !== id ? `${key} (${id})` : String(id);
}

function experimentTable(experiment) {
  const about = [`experiment ${experiment.experiment_id}`];
  if (experiment.flag_key) about.push(`flag ${experiment.flag_key}`);
  if (experiment.rule_type) about.push(experiment.rule_type);
  const head = ["variation", "visitors", "event", "unique conversions", "conversions", "revenue"];
  const rows = [];
  for (const variation of experiment.variations) {
    const cells = variation.events.length ? variation.events : [null];
    cells.forEach((cell, i) => {
      const lead = i === 0
        ? [el("td", { class: "variation" }, named(variation.variation_key, variation.variation_id)), el("td", { class: "num" }, variation.visitors)]
        : [el("td", {}), el("td", {})];
      const numbers = cell ? [cell.unique_conversions, cell.conversions, cell.revenue] : ["", "", ""];
      rows.push(el("tr", {}, ...lead, el("td", { class: "key" }, cell ? cell.key : ""),
        ...numbers.map((n) => el("td", { class: "num" }, n))));
    });
  }
  return el("section", { class: "experiment", "data-experiment": experiment.experiment_id },
    el("h3", {}, experiment.experiment_key || experiment.experiment_id, " ", el("span", { class: "about" }, about.join(" · "))),
    el("table", { class: "results-table" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
}

function uncountedList(body) {
  const total = Object.values(body.reasons).reduce((a, b) => a + b, 0);
  if (!total) return [el("p", { class: "empty" }, "Every accepted event counted.")];
  const summary = Object.entries(body.reasons).map(([reason, n]) => `${reason} ${n}`).join(", ");
  const nodes = [el("h3", {}, `Did not count: ${total} event(s) (${summary})`)];
  for (const group of body.uncounted) {
    nodes.push(el("div", { class: "uncounted", "data-visitor": String(group.visitor_id) },
      el("strong", {}, `visitor ${group.visitor_id}`),
      el("ul", {}, ...group.events.map((item) => el("li", { class: `reason ${item.reason}` },
        el("span", { class: "badge reason" }, item.reason), " ",
        el("span", { class: "key" }, String(item.key ?? "")), " — ", item.message, " ",
        el("a", { href: `#request-${item.request_id}`, class: "request-link", title: item.path },
          `request #${item.request_id}`))))));
  }
  if (body.left_off) nodes.push(el("p", { class: "empty" }, `… and ${body.left_off} more not listed`));
  return nodes;
}

function renderResults(body) {
  const box = document.getElementById("results");
  const tables = body.experiments.map(experimentTable);
  if (body.experiments_left_off) {
    tables.push(el("p", { class: "empty" }, `… and ${body.experiments_left_off} more experiments past the table's size bound`));
  }
  if (!tables.length) tables.push(el("p", { class: "empty" }, "No experiment has a visitor yet (no accepted impression with ids)."));
  box.replaceChildren(el("h2", {}, "Results"), ...tables, ...uncountedList(body));
  box.dataset.lastId = String(body.last_id);
}

async function showRequest(id) {
  if (!state.requests.has(id)) {
    const record = await api(`/requests/${id}`).catch(() => null);
    if (!record) return;
    state.requests.set(id, record);
  }
  showView("requests");
  select(id);
}

function route() {
  const match = /^#request-(\d+)$/.exec(location.hash);
  if (match) showRequest(Number(match[1]));
  else showView(location.hash === "#results" ? "results" : "requests");
}

document.addEventListener("DOMContentLoaded", () => {
  window.addEventListener("hashchange", route);
  document.addEventListener("logx:journal", () => {
    if (!document.getElementById("results").hidden) loadResults();
  });
  route();
});
