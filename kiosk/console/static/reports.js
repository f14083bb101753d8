// The reports page: fetches /api/report for the chosen range and draws it (Chart.js, vendored in
// /static/vendor). Every text comes from the strings in the page; kiosk data is inserted as text only.
"use strict";
(function () {
  const S = JSON.parse(document.getElementById("strings").textContent);
  const t = (key, params) => (S[key] || key).replace(/\{(\w+)\}/g, (_, k) => (params && k in params ? params[k] : ""));
  const $ = (id) => document.getElementById(id);
  const charts = {};
  const COLOURS = ["#1b5e20", "#2e7d32", "#43a047", "#1565c0", "#ef6c00", "#c62828", "#6a1b9a", "#ad1457"];

  function query() {
    const params = new URLSearchParams();
    for (const name of ["from", "to", "site"]) {
      if ($(name).value) params.set(name, $(name).value);
    }
    return params.toString();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function fillTable(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) rows = [[t("reports.none"), ""]];
    for (const values of rows) {
      const tr = document.createElement("tr");
      values.forEach((v) => cell(tr, String(v)));
      body.appendChild(tr);
    }
  }

  function seconds(value) {  // a duration: seconds up to 2 min, minutes up to 2 h, then hours
    if (value === null) return "—";
    if (value < 120) return t("reports.seconds", { n: Math.round(value) });
    if (value < 7200) return t("reports.minutes", { n: Math.round(value / 60) });
    return t("reports.hours", { n: (value / 3600).toFixed(1) });
  }

  function summary(total) {
    const items = [
      [t("reports.prechecks"), total.prechecks],
      [t("reports.calls"), total.calls + " (" + t("reports.unanswered") + " " + total.unanswered + ")"],
      [t("reports.response") + " · " + t("reports.acknowledged"),
        t("reports.median") + " " + seconds(total.acknowledged.median_seconds) + " / " + t("reports.p90") + " " + seconds(total.acknowledged.p90_seconds)],
      [t("reports.response") + " · " + t("reports.resolved"),
        t("reports.median") + " " + seconds(total.resolved.median_seconds) + " / " + t("reports.p90") + " " + seconds(total.resolved.p90_seconds)],
      [t("reports.offline"), t("reports.hours", { n: (total.offline_seconds / 3600).toFixed(1) })],
      [t("reports.reader_faults"), total.reader_faults],
      [t("reports.outages"), total.outages],
    ];
    const box = $("summary");
    box.replaceChildren();
    for (const [label, value] of items) {
      const div = document.createElement("div");
      div.className = "figure";
      div.dataset.metric = label;
      const b = document.createElement("b");
      b.textContent = String(value);
      const span = document.createElement("span");
      span.textContent = label;
      div.append(b, span);
      box.appendChild(div);
    }
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ animation: false, responsive: false }, config.options || {});
    charts[id] = new window.Chart($(id), config);
  }

  function render(report) {
    $("report-range").textContent = report.from + " – " + report.to + " (" + report.timezone + ")";
    summary(report.total);
    const outcomes = Object.keys(report.total.outcomes).filter((o) => o !== "nothing");
    draw("chart-outcomes", {
      type: "bar",
      data: {
        labels: report.day.map((d) => d.period.slice(5)),
        datasets: outcomes.map((o, i) => ({ label: t("outcome." + o), data: report.day.map((d) => d.outcomes[o]),
          backgroundColor: COLOURS[i % COLOURS.length] })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    });
    const reasons = Object.keys(report.total.calls_by_reason);
    draw("chart-hours", {
      type: "bar",
      data: {
        labels: report.hour.map((h) => h.period),
        datasets: reasons.map((r, i) => ({ label: t("reason." + r), data: report.hour.map((h) => h.calls_by_reason[r] || 0),
          backgroundColor: COLOURS[(i + 3) % COLOURS.length] })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    });
    // codes are object keys: "901" would sort before "011" as an array index, so order them explicitly
    const byCode = (counts) => Object.entries(counts).sort((a, b) => a[0].localeCompare(b[0]));
    fillTable("table-lookups", byCode(report.total.lookups));
    fillTable("table-calls", byCode(report.total.calls_by_code));
    fillTable("table-kiosks", report.kiosks.map((k) => [k.site + "/" + k.kiosk,
      t("reports.hours", { n: (k.offline_seconds / 3600).toFixed(1) }), k.reader_faults]));
    document.body.dataset.loaded = "yes";
  }

  async function load() {
    const q = query();
    $("csv").href = "/api/report.csv" + (q ? "?" + q : "");
    $("report-error").hidden = true;
    document.body.dataset.loaded = "no";
    const response = await fetch("/api/report" + (q ? "?" + q : ""), { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) {
      if (response.status === 401) { window.location.href = "/login?why=expired"; return; }
      $("report-error").textContent = body.message;
      $("report-error").hidden = false;
      document.body.dataset.loaded = "error";
      return;
    }
    render(body);
  }

  const initial = new URLSearchParams(window.location.search);
  for (const name of ["from", "to", "site"]) {
    if (initial.get(name)) $(name).value = initial.get(name);
  }
  $("range").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("print").addEventListener("click", () => window.print());
  load();
})();
