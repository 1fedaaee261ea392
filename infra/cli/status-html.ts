// `npm run status -- --html FILE`: one self-contained page (no network needed to view it, and a
// Content-Security-Policy that forbids any) with the status table and four charts drawn by
// Chart.js, whose minified UMD build is inlined: backup size and duration over time per database
// and volume, drill RTO history against the objective, and a calendar of restore points per tier.
//
// Why Chart.js: actively maintained (v4), one dependency-free 200 KB file, line and scatter
// charts on a linear time axis without a date adapter, and each chart exposes its drawn points
// (getDatasetMeta), which the browser test asserts.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { formatDuration } from "../config";
import { formatAge, type FleetStatus } from "../plan/fleet-status";

let chartJsSource: string | undefined;
/** The bundled Chart.js build (node_modules/chart.js/dist/chart.umd.min.js). */
export function chartJs(): string {
  chartJsSource ??= readFileSync(join(dirname(require.resolve("chart.js")), "chart.umd.min.js"), "utf8");
  return chartJsSource;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
/** JSON safe inside <script>: no `</script>`, no `<!--`. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

export interface ChartData {
  size: { label: string; points: { x: number; y: number }[] }[];
  duration: { label: string; points: { x: number; y: number }[] }[];
  rto: { label: string; points: { x: number; y: number }[] }[];
  rtoObjectiveSeconds: number;
  calendar: { tier: string; points: { x: number; y: number }[] }[];
  calendarItems: string[];
}

/** The numbers the charts draw, from the status document. */
export function chartData(s: FleetStatus): ChartData {
  const size: ChartData["size"] = [];
  const duration: ChartData["duration"] = [];
  const calendarItems: string[] = [];
  const byTier = new Map<string, { x: number; y: number }[]>([["daily", []], ["weekly", []], ["monthly", []]]);
  for (const h of s.hosts) {
    for (const i of h.items) {
      const label = `${h.name} ${i.kind === "globals" ? "roles" : `${i.kind} ${i.name}`}`;
      const t = (p: { createdAt: string }) => Date.parse(p.createdAt);
      size.push({ label, points: i.history.filter((p) => p.sizeBytes !== null).map((p) => ({ x: t(p), y: p.sizeBytes! })) });
      duration.push({ label, points: i.history.filter((p) => p.durationSeconds !== null).map((p) => ({ x: t(p), y: p.durationSeconds! })) });
      const row = calendarItems.push(label) - 1;
      for (const p of i.history) byTier.get(p.tier)!.push({ x: Math.floor(t(p) / 86_400_000) * 86_400_000, y: row });
    }
  }
  const rto = new Map<string, { x: number; y: number }[]>();
  for (const h of s.hosts) {
    for (const r of h.drill.history) {
      for (const d of r.databases) {
        if (!d.rto) continue;
        const label = `${h.name} ${d.database}`;
        if (!rto.has(label)) rto.set(label, []);
        rto.get(label)!.push({ x: Date.parse(r.startedAt), y: d.rto.achievedSeconds });
      }
    }
  }
  return {
    size,
    duration,
    rto: [...rto.entries()].map(([label, points]) => ({ label, points })),
    rtoObjectiveSeconds: s.objectives.rtoSeconds,
    calendar: [...byTier.entries()].map(([tier, points]) => ({ tier, points })),
    calendarItems,
  };
}

function tableHtml(s: FleetStatus): string {
  const out: string[] = [];
  const cov = (p: { required: number; covered: number; pending: number; missing: string[] }) =>
    `${p.covered}/${p.required}${p.pending ? ` (${p.pending} pending)` : ""}${p.missing.length ? ` <b class="bad">missed ${esc(p.missing.join(", "))}</b>` : ""}`;
  for (const h of s.hosts) {
    out.push(`<h2>host ${esc(h.name)} <span class="${h.ok ? "ok" : "bad"}">${h.ok ? "OK" : "OBJECTIVES MISSED"}</span></h2>`);
    out.push('<table class="items"><tr><th>item</th><th>newest</th><th>tier</th><th>age</th><th>RPO</th><th>points d/w/m</th><th>days</th><th>weeks</th><th>months</th><th>size</th></tr>');
    for (const i of h.items) {
      const n = i.newest;
      out.push(
        `<tr data-item="${esc(i.id)}"><td>${esc(i.kind === "globals" ? "roles" : `${i.kind} ${i.name}`)}</td><td>${n ? esc(n.createdAt) : "none"}</td><td>${n ? n.tier : "-"}</td>` +
          `<td>${n ? formatDuration(n.ageSeconds) : "-"}</td><td class="${i.rpo.ok ? "ok" : "bad"}">${i.rpo.ok ? "ok" : "missed"}</td>` +
          `<td>${i.restorePoints.daily}/${i.restorePoints.weekly}/${i.restorePoints.monthly}</td><td>${cov(i.promise.daily)}</td><td>${cov(i.promise.weekly)}</td><td>${cov(i.promise.monthly)}</td>` +
          `<td>${n && n.sizeBytes !== null ? n.sizeBytes.toLocaleString("en") + " B" : "-"}</td></tr>`,
      );
    }
    out.push("</table>");
    const d = h.drill;
    const l = d.last;
    out.push(
      `<p class="drill">drill: ${
        !d.scheduled
          ? "none (no databases)"
          : !l
            ? '<b class="bad">none in the bucket</b>'
            : `last ${esc(l.startedAt)} <b class="${l.result === "pass" && !d.overdue ? "ok" : "bad"}">${esc(l.result)}${d.overdue ? ", overdue" : ""}</b>${l.failure ? ` at stage <code>${esc(l.failure.stage)}</code>: ${esc(l.failure.reason)}` : ""}; RTO ${l.databases.map((x) => `${esc(x.database)} ${x.rto ? `${x.rto.achievedSeconds}s of ${formatDuration(x.rto.targetSeconds)}` : "n/a"}`).join(", ")}`
      }</p>`,
    );
    const b = h.storage.bytes;
    out.push(`<p>stored: daily ${b.daily.toLocaleString("en")} B, weekly ${b.weekly.toLocaleString("en")} B, monthly ${b.monthly.toLocaleString("en")} B, drills ${b.drills.toLocaleString("en")} B</p>`);
    if (!h.wal.enabled) out.push('<p class="wal">WAL archive: none (point-in-time recovery is off)</p>');
    for (const c of h.wal.clusters) {
      const n = c.newest;
      out.push(
        `<p class="wal" data-cluster="${esc(c.cluster)}">WAL archive <code>${esc(c.cluster)}</code>: ${
          n ? `newest segment <code>${esc(n.segment)}</code> archived ${esc(n.lastModified)} (${formatAge(n.ageSeconds)} ago)` : "no segment archived"
        } <b class="${c.rpo.ok ? "ok" : "bad"}">RPO ${c.rpo.ok ? "ok" : "missed"}</b>; ${c.segments} segment(s), ${c.bytes.toLocaleString("en")} B</p>`,
      );
    }
  }
  out.push(s.ok ? '<p class="ok" id="verdict">all objectives hold</p>' : `<div id="verdict" class="bad"><p>${s.problems.length} problem(s):</p><ul>${s.problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul></div>`);
  return out.join("\n");
}

// Runs in the page. Plain ES2017, no network.
const PAGE_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var day = function (ms) { return new Date(ms).toISOString().slice(0, 10); };
  var stamp = function (ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " "); };
  // Dates on the axis; date and time when the axis spans less than three days.
  function tick(v) { return this.max - this.min < 3 * 86400000 ? stamp(v) : day(v); }
  function timeAxis() { return { type: "linear", ticks: { callback: tick, maxTicksLimit: 8 } }; }
  function series(list) {
    return list.map(function (s, i) {
      return { label: s.label, data: s.points, borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length], showLine: true, pointRadius: 4 };
    });
  }
  function tooltipTitle(items) { return items.length ? stamp(items[0].parsed.x) : ""; }
  var common = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { tooltip: { callbacks: { title: tooltipTitle } } } };
  function opts(yTitle, extra) {
    return Object.assign({}, common, { scales: { x: timeAxis(), y: { beginAtZero: true, title: { display: true, text: yTitle } } } }, extra || {});
  }
  var charts = {};
  charts.size = new Chart(document.getElementById("chart-size"), { type: "scatter", data: { datasets: series(data.size) }, options: opts("bytes") });
  charts.duration = new Chart(document.getElementById("chart-duration"), { type: "scatter", data: { datasets: series(data.duration) }, options: opts("seconds") });
  var rtoSets = series(data.rto);
  var xs = [];
  data.rto.forEach(function (s) { s.points.forEach(function (p) { xs.push(p.x); }); });
  if (xs.length) {
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (lo === hi) { lo -= 43200000; hi += 43200000; }
    rtoSets.push({ label: "RTO objective", data: [{ x: lo, y: data.rtoObjectiveSeconds }, { x: hi, y: data.rtoObjectiveSeconds }], borderColor: "#d62728", borderDash: [6, 4], showLine: true, pointRadius: 0 });
  }
  charts.rto = new Chart(document.getElementById("chart-rto"), { type: "scatter", data: { datasets: rtoSets }, options: opts("seconds (log)", { scales: { x: timeAxis(), y: { type: "logarithmic", title: { display: true, text: "RTO seconds (log)" } } } }) });
  var tierColor = { daily: "#2ca02c", weekly: "#1f77b4", monthly: "#9467bd" };
  var tierStyle = { daily: "circle", weekly: "rect", monthly: "triangle" };
  charts.calendar = new Chart(document.getElementById("chart-calendar"), {
    type: "scatter",
    data: { datasets: data.calendar.map(function (t) { return { label: t.tier, data: t.points, backgroundColor: tierColor[t.tier], borderColor: tierColor[t.tier], pointStyle: tierStyle[t.tier], pointRadius: 6 }; }) },
    options: Object.assign({}, common, {
      plugins: { tooltip: { callbacks: { title: function (items) { return items.length ? day(items[0].parsed.x) : ""; }, label: function (c) { return data.calendarItems[c.parsed.y] + ": " + c.dataset.label; } } } },
      scales: {
        x: { type: "linear", ticks: { stepSize: 86400000, callback: function (v) { return day(v); }, maxTicksLimit: 12 } },
        y: {
          type: "linear", min: -0.5, max: data.calendarItems.length - 0.5, reverse: true,
          afterBuildTicks: function (axis) { axis.ticks = data.calendarItems.map(function (_, i) { return { value: i }; }); },
          ticks: { autoSkip: false, callback: function (v) { return data.calendarItems[v] || ""; } }
        }
      }
    })
  });
  window.restorableCharts = charts;
  document.body.setAttribute("data-charts-rendered", "true");
})();
`;

export function statusHtml(s: FleetStatus): string {
  const title = `restorable status: ${s.stack}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.items { border-collapse: collapse; font-size: 0.9em; }
table.items td, table.items th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
.ok { color: #186a1e; } .bad { color: #b00020; }
.chart { position: relative; height: 300px; margin: 1em 0 2em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1em; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>${esc(s.provider)} bucket <code>${esc(s.bucket)}</code> at ${esc(s.endpoint)}; generated ${esc(s.generatedAt)}. Objectives: RPO ${formatDuration(s.objectives.rpoSeconds)}, RTO ${formatDuration(s.objectives.rtoSeconds)}; retention ${s.retention.daily} daily / ${s.retention.weekly} weekly / ${s.retention.monthly} monthly.</p>
${tableHtml(s)}
<div class="grid">
<section><h2>Backup size</h2><div class="chart"><canvas id="chart-size" role="img" aria-label="backup size over time"></canvas></div></section>
<section><h2>Backup duration</h2><div class="chart"><canvas id="chart-duration" role="img" aria-label="backup duration over time"></canvas></div></section>
<section><h2>Drill RTO against the objective</h2><div class="chart"><canvas id="chart-rto" role="img" aria-label="drill RTO history"></canvas></div></section>
<section><h2>Restore points per tier</h2><div class="chart"><canvas id="chart-calendar" role="img" aria-label="calendar of restore points"></canvas></div></section>
</div>
<script id="status-data" type="application/json">${scriptJson(s)}</script>
<script id="chart-data" type="application/json">${scriptJson(chartData(s))}</script>
<script>${chartJs().replace(/<\/script/gi, "<\\/script")}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
