// The page reads the same API as any client (no CDN, no build step). Every
// value from the data is inserted as text (textContent, attributes set one by
// one), never as markup: a country name is data, not HTML. The server sends
// a Content-Security-Policy allowing this file's script only.
"use strict";

const SERIES = [
  ["production", "#2a7", "production"],
  ["domestic_consumption", "#c50", "consumption"],
  ["ending_stocks", "#36c", "ending stocks"],
];
const STU_COLOR = "#888";
const SVG = "http://www.w3.org/2000/svg";
const UNIT = "1000 60-kg bags";

const fmt = (v, d = 0) => v == null ? "" : Number(v).toLocaleString("en-US",
  { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = v => v == null ? "" : `${fmt(100 * v, 1)} %`;

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.setAttribute("class", v);
    else if (k.startsWith("data-")) e.dataset[k.slice(5)] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c == null ? "" : c);
  return e;
}

/** The API's URL for a table's rows, in JSON or (suffix) CSV. */
function tableUrl(table, params, suffix = "") {
  return `/v1/tables/${table}${suffix}?${new URLSearchParams(params)}`;
}

async function rows(table, params) {
  const r = await fetch(tableUrl(table, params));
  const body = await r.json();
  if (!r.ok) throw new Error(`${table}: ${body.error}`);
  return body.rows;
}

/** Round tick values from 0 to at least max: steps of 1, 2 or 5 × 10^n. */
function ticks(max, count = 5) {
  const raw = Math.max(max, 1e-9) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let v = 0; v <= max + step / 2; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

/** A line chart of `series` ([key, color]) over `xs`, with round ticks; an
 *  optional `right` series ([key, color, format]) on its own axis. */
function lineChart(svg, data, xKey, series, opts = {}) {
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const L = 80, B = 30, T = 10, R = opts.right ? 70 : 10;
  svg.replaceChildren();
  if (!data.length) return;
  const xs = data.map(d => d[xKey]);
  const xi = new Map(xs.map((x, i) => [x, i]));
  const lo = Math.min(0, ...data.flatMap(d => series.map(([k]) => d[k] ?? 0)));
  const hi = Math.max(0, ...data.flatMap(d => series.map(([k]) => d[k] ?? 0)));
  const up = ticks(hi), down = lo < 0 ? ticks(-lo).map(v => -v) : [0];
  const top = up[up.length - 1], bottom = down[down.length - 1];
  const x = v => L + (W - L - R) * (xs.length < 2 ? 0.5 : xi.get(v) / (xs.length - 1));
  const y = v => H - B - (H - B - T) * (v - bottom) / (top - bottom || 1);
  for (const v of [...new Set([...down, ...up])].sort((a, b) => a - b)) {
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#999" : "#eee" }));
    svg.append(el("svg:text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11 }, fmt(v)));
  }
  svg.append(el("svg:text", { x: 4, y: T + 8, "font-size": 10, fill: "#666" }, opts.unit ?? ""));
  const every = Math.ceil(xs.length / 12);
  xs.forEach((v, i) => {
    if (i % every === 0) {
      svg.append(el("svg:text", { x: x(v), y: H - 10, "text-anchor": "middle", "font-size": 11 }, String(v)));
    }
  });
  const line = (pts, color, dash) => svg.append(el("svg:polyline", {
    fill: "none", stroke: color, "stroke-width": 2, points: pts.join(" "),
    ...(dash ? { "stroke-dasharray": "4 3" } : {}),
  }));
  for (const [k, color] of series) {
    line(data.filter(d => d[k] != null).map(d => `${x(d[xKey])},${y(d[k])}`), color);
  }
  if (opts.right) {
    const [k, color, format] = opts.right;
    const rt = ticks(Math.max(0, ...data.map(d => d[k] ?? 0)));
    const rtop = rt[rt.length - 1] || 1;
    const ry = v => H - B - (H - B - T) * v / rtop;
    for (const v of rt) {
      svg.append(el("svg:text", { x: W - R + 6, y: ry(v) + 4, "font-size": 11, fill: color }, format(v)));
    }
    line(data.filter(d => d[k] != null).map(d => `${x(d[xKey])},${ry(d[k])}`), color, true);
  }
}

function legend() {
  const items = SERIES.map(([, c, n]) => {
    const swatch = el("i");
    swatch.style.background = c;
    return el("span", {}, swatch, `${n} (${UNIT})`);
  });
  const stu = el("i");
  stu.style.background = STU_COLOR;
  items.push(el("span", {}, stu, "stocks-to-use (right axis, dashed)"));
  document.getElementById("legend").replaceChildren(...items);
}

const BALANCE_COLUMNS = "market_year,production,domestic_consumption,ending_stocks,stocks_to_use";

async function showBalance(country) {
  const params = { country_code: country, columns: BALANCE_COLUMNS, limit: 200 };
  const data = await rows("serving.coffee_balance", params);
  lineChart(document.getElementById("chart"), data, "market_year", SERIES,
    { unit: UNIT, right: ["stocks_to_use", STU_COLOR, pct] });
  document.getElementById("balance-csv").href = tableUrl("serving.coffee_balance", params, ".csv");
  document.querySelector("#balance tbody").replaceChildren(...data.slice().reverse().map(d =>
    el("tr", { "data-year": d.market_year },
      el("td", {}, String(d.market_year)),
      el("td", { class: "production" }, fmt(d.production)),
      el("td", {}, fmt(d.domestic_consumption)),
      el("td", {}, fmt(d.ending_stocks)),
      el("td", { class: "stu" }, pct(d.stocks_to_use)))));
  const sel = document.getElementById("year");
  sel.replaceChildren(...data.slice().reverse().map(d => el("option", {}, String(d.market_year))));
  await showRevisions(country, sel.value);
}

async function showRevisions(country, year) {
  // The file has no World row: its sum is computed here, so the revisions
  // shown for the World are Brazil's (the largest producer), and say so.
  const code = country === "WORLD" ? "BR" : country;
  const names = document.getElementById("country");
  const name = [...names.options].find(o => o.value === code)?.textContent ?? code;
  document.getElementById("revisions-of").textContent = country === "WORLD"
    ? `revisions of ${name} (the World total has no revision history in the file)`
    : `revisions of ${name}`;
  const params = {
    commodity_code: "0711100", country_code: code, market_year: year, attribute_id: "028",
    columns: "release_ord,release_year,release_month,value,change", limit: 500,
  };
  const data = await rows("serving.psd_revisions", params);
  document.getElementById("revisions-csv").href = tableUrl("serving.psd_revisions", params, ".csv");
  document.querySelector("#revisions tbody").replaceChildren(...data.map(d =>
    el("tr", {},
      el("td", {}, `${d.release_year}-${String(d.release_month).padStart(2, "0")}`),
      el("td", {}, fmt(d.value)),
      el("td", {}, d.change == null ? "" : fmt(d.change)))));
}

/** The CFTC panel, when the COT dataset is landed and has Coffee C rows. */
async function showCot() {
  const params = {
    columns: "report_date,managed_money_long,managed_money_short,managed_money_net",
    sort: "-report_date", limit: 520,
  };
  const r = await fetch(tableUrl("serving.cot_coffee", params));
  if (!r.ok) return; // not landed: no panel
  const data = (await r.json()).rows.slice().reverse();
  if (!data.length) return;
  lineChart(document.getElementById("cot-chart"), data, "report_date",
    [["managed_money_net", "#a3c"]], { unit: "contracts" });
  document.getElementById("cot-csv").href = tableUrl("serving.cot_coffee", params, ".csv");
  document.querySelector("#cot-table tbody").replaceChildren(...data.slice(-12).reverse().map(d =>
    el("tr", {},
      el("td", {}, d.report_date),
      el("td", {}, fmt(d.managed_money_long)),
      el("td", {}, fmt(d.managed_money_short)),
      el("td", { class: "net" }, fmt(d.managed_money_net)))));
  document.getElementById("cot").hidden = false;
}

async function showRelease() {
  const r = await fetch("/v1/releases");
  const body = await r.json();
  const psd = (body.rows ?? []).filter(d => d.dataset === "psd" && d.is_latest)[0];
  document.getElementById("release").textContent = psd
    ? `${psd.year}-${String(psd.month).padStart(2, "0")}` : "none loaded";
}

async function main() {
  legend();
  await showRelease();
  const countries = await rows("serving.coffee_balance",
    { columns: "country_code,country_name", market_year: "2000..", limit: 10000 });
  const seen = new Map(countries.map(c => [c.country_code, c.country_name ?? c.country_code]));
  const sel = document.getElementById("country");
  sel.replaceChildren(...[...seen]
    .sort((a, b) => a[0] === "WORLD" ? -1 : b[0] === "WORLD" ? 1 : String(a[1]).localeCompare(String(b[1])))
    .map(([c, n]) => el("option", { value: c }, String(n))));
  sel.value = "WORLD";
  sel.onchange = () => showBalance(sel.value).catch(fail);
  document.getElementById("year").onchange = e => showRevisions(sel.value, e.target.value).catch(fail);
  await showBalance("WORLD");
  await showCot();
  document.body.dataset.ready = "1";
}
const fail = e => { document.getElementById("error").textContent = String(e); };
main().catch(fail);
