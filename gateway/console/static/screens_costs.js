/* Nimbo console: Costs. Every number is Cost Explorer's (GetCostAndUsage, run by Nimbo's own
   handler): month-to-date including the open hour's estimate, by service, usage type, resource
   (instances, volumes, buckets) and, for the admin, account; a daily chart drawn as SVG here. */
"use strict";

const SERIES_COLOURS = ["#1f5fbf", "#d9822b", "#2f9e44", "#9c36b5", "#c92a2a", "#0c8599", "#5f3dc4", "#868e96"];
const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function monthStart(offset) {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1));
  return d.toISOString().slice(0, 10);
}

function usd(amount) {
  const value = Number(amount);
  if (value > 0 && value < 0.01) return `$${value.toPrecision(3)}`;   // small amounts stay readable
  return `$${value.toFixed(2)}`;
}

function axisUsd(value) {
  if (!value) return "$0";
  return value < 0.01 ? `$${value.toPrecision(2)}` : `$${value.toFixed(2)}`;
}

function metric(group, name) {
  return (group.Metrics || group.Total || {})[name] || {Amount: "0", Unit: ""};
}

/* A stacked bar chart of daily cost by service: (days [{Start}], series {name: [amounts]}). */
function dailyChart(days, series) {
  const names = Object.keys(series);
  const totals = days.map((_, d) => names.reduce((sum, n) => sum + series[n][d], 0));
  const top = Math.max(...totals, 0.000001);
  const width = 760, height = 240, left = 84, bottom = 28, right = 8, topPad = 10;
  const plotW = width - left - right, plotH = height - bottom - topPad;
  const barW = plotW / Math.max(days.length, 1);
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", id: "daily-chart",
                            "aria-label": `Daily cost by service, highest day ${usd(top)}`});
  for (let t = 0; t <= 4; t++) {
    const y = topPad + plotH - (plotH * t) / 4;
    chart.append(svg("line", {x1: left, x2: width - right, y1: y, y2: y, stroke: "#e3e7ed"}),
                 svg("text", {x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6573"}, axisUsd((top * t) / 4)));
  }
  days.forEach((day, d) => {
    let y = topPad + plotH;
    names.forEach((name, n) => {
      const value = series[name][d];
      if (!value) return;
      const barH = (value / top) * plotH;
      y -= barH;
      chart.append(svg("rect", {x: left + d * barW + 1, y, width: Math.max(barW - 2, 1), height: Math.max(barH, 0.5),
                                fill: SERIES_COLOURS[n % SERIES_COLOURS.length]},
                       svg("title", {}, `${day.Start} ${name}: ${usd(value)}`)));
    });
    if (days.length <= 31 && (d % Math.ceil(days.length / 10) === 0)) {
      chart.append(svg("text", {x: left + d * barW + barW / 2, y: height - 10, "text-anchor": "middle", "font-size": 11,
                                fill: "#5b6573"}, day.Start.slice(5)));
    }
  });
  const legend = h("div", {class: "legend"}, names.map((name, n) => {
    const item = h("span", {}, name);
    item.style.setProperty("--swatch", SERIES_COLOURS[n % SERIES_COLOURS.length]);
    return item;
  }));
  return h("div", {class: "chart"}, chart, legend);
}

function groupedTable(title, result, keyTitle, empty) {
  const groups = (result.ResultsByTime[0] || {}).Groups || [];
  const rows = groups.map(g => ({key: g.Keys[0], cost: metric(g, "UnblendedCost").Amount,
                                 usage: metric(g, "UsageQuantity")}))
    .sort((a, b) => Number(b.cost) - Number(a.cost));
  const top = Math.max(...rows.map(r => Number(r.cost)), 0.000001);
  return [h("h2", {}, title), table([
    {title: keyTitle, value: r => r.key},
    {title: "Usage", num: true, value: r => r.usage.Unit && r.usage.Unit !== "N/A" ? `${Number(r.usage.Amount).toPrecision(6)} ${r.usage.Unit}` : ""},
    {title: "Cost (USD)", num: true, value: r => h("span", {title: r.cost}, usd(r.cost))},
    {title: "", value: r => { const bar = h("div", {class: "bar"}); bar.style.width = `${(100 * Number(r.cost)) / top}%`; return bar; }},
  ], rows, empty || "No costs in this period.")];
}

Nimbo.screens.costs = async function (main, arg) {
  const months = [0, -1, -2, -3, -4, -5].map(monthStart);
  const start = months.includes(arg) ? arg : months[0];
  const end = (() => { const d = new Date(`${start}T00:00:00Z`); d.setUTCMonth(d.getUTCMonth() + 1); return d.toISOString().slice(0, 10); })();
  const period = {Start: start, End: end};
  const base = {TimePeriod: period, Granularity: "MONTHLY", Metrics: ["UnblendedCost", "UsageQuantity"]};
  const allOfThem = Nimbo.session.IsAdmin && !Nimbo.actAs;
  const [byService, daily, byUsage, byResource, history, byAccount] = await Promise.all([
    api("ce", "GetCostAndUsage", Object.assign({}, base, {GroupBy: [{Type: "DIMENSION", Key: "SERVICE"}]})),
    api("ce", "GetCostAndUsage", {TimePeriod: period, Granularity: "DAILY", Metrics: ["UnblendedCost"],
                                  GroupBy: [{Type: "DIMENSION", Key: "SERVICE"}]}),
    api("ce", "GetCostAndUsage", Object.assign({}, base, {GroupBy: [{Type: "DIMENSION", Key: "USAGE_TYPE"}]})),
    api("ce", "GetCostAndUsage", Object.assign({}, base, {GroupBy: [{Type: "DIMENSION", Key: "RESOURCE_ID"}]})),
    api("ce", "GetCostAndUsage", {TimePeriod: {Start: months[5], End: monthStart(1)}, Granularity: "MONTHLY", Metrics: ["UnblendedCost"]}),
    allOfThem ? api("ce", "GetCostAndUsage", Object.assign({}, base, {GroupBy: [{Type: "DIMENSION", Key: "LINKED_ACCOUNT"}]})) : null,
  ]);
  const monthTotal = await api("ce", "GetCostAndUsage", {TimePeriod: period, Granularity: "MONTHLY", Metrics: ["UnblendedCost"]});
  const total = metric(monthTotal.ResultsByTime[0], "UnblendedCost").Amount;
  const estimated = monthTotal.ResultsByTime[0].Estimated;

  const days = daily.ResultsByTime.map(r => r.TimePeriod);
  const series = {};
  daily.ResultsByTime.forEach((r, d) => (r.Groups || []).forEach(g => {
    series[g.Keys[0]] = series[g.Keys[0]] || new Array(days.length).fill(0);
    series[g.Keys[0]][d] += Number(metric(g, "UnblendedCost").Amount);
  }));

  const picker = h("select", {id: "cost-month", "aria-label": "Month"}, months.map(m => h("option", {value: m, selected: m === start}, m.slice(0, 7))));
  picker.addEventListener("change", () => { location.hash = `costs/${picker.value}`; });
  const monthName = start.slice(0, 7);
  const files = h("div", {class: "actions"},
    h("a", {href: `/console/api/costs.csv?${linkQuery({period: monthName})}`, download: `nimbo-costs-${monthName}.csv`, id: "download-csv"}, "Download CSV"),
    h("a", {href: `/console/api/focus.csv?${linkQuery({period: monthName})}`, download: `nimbo-focus-${monthName}.csv`, id: "download-focus"}, "Download FOCUS 1.2 CSV"));

  main.replaceChildren(
    h("h1", {}, "Costs"),
    h("div", {class: "actions"}, h("label", {}, "Month ", picker), files),
    h("div", {class: "cards"},
      h("div", {class: "card"}, h("div", {class: "muted"}, start === months[0] ? "Month to date" : `Total ${monthName}`),
        h("div", {class: "big", id: "cost-total", "data-exact": total, title: `${total} USD exactly`}, usd(total)),
        h("div", {class: "muted"}, estimated ? "Includes the estimate of hours not yet final." : "Final.")),
      allOfThem ? h("div", {class: "card"}, h("div", {class: "muted"}, "Scope"), h("div", {}, "All accounts")) : null),
    h("h2", {}, "Daily cost by service"), dailyChart(days, series),
    ...groupedTable("By service", byService, "Service"),
    ...(byAccount ? groupedTable("By account", byAccount, "Account") : []),
    ...groupedTable("By usage type", byUsage, "Usage type"),
    ...groupedTable("By resource (instances, volumes, buckets)", byResource, "Resource"),
    await focusExports(),
    h("h2", {}, "Previous months"),
    table([
      {title: "Month", value: r => r.TimePeriod.Start.slice(0, 7)},
      {title: "Cost (USD)", num: true, value: r => usd(metric(r, "UnblendedCost").Amount)},
      {title: "", value: r => (r.Estimated ? "estimated" : "")},
    ], history.ResultsByTime.slice().reverse()));
};

/* FOCUS 1.2 exports (AWS Data Exports' API): delivered into a bucket once per change of a month. */
async function focusExports() {
  const [exports, buckets] = await Promise.all([
    api("bcm-data-exports", "ListExports").then(o => o.Exports || []),
    api("s3", "ListBuckets").then(o => o.Buckets || []),
  ]);
  const form = h("form", {class: "inline", id: "create-focus-export"},
    h("label", {}, "Export name", h("input", {name: "Name", required: true, pattern: "[0-9A-Za-z_\\-]+", value: "focus"})),
    h("label", {}, "Bucket", h("select", {name: "Bucket", required: true}, buckets.map(b => h("option", {value: b.Name}, b.Name)))),
    h("label", {}, "Prefix", h("input", {name: "Prefix", value: "focus"})),
    h("button", {type: "submit", disabled: !buckets.length}, "Create FOCUS export"));
  onSubmit(form, async v => {
    await api("bcm-data-exports", "CreateExport", {Export: {
      Name: v.Name, DataQuery: {QueryStatement: "SELECT * FROM FOCUS_1_2_AWS"},
      DestinationConfigurations: {S3Destination: {S3Bucket: v.Bucket, S3Prefix: v.Prefix, S3Region: Nimbo.region || "us-east-1",
        S3OutputConfigurations: {OutputType: "CUSTOM", Format: "TEXT_OR_CSV", Compression: "GZIP", Overwrite: "OVERWRITE_REPORT"}}},
      RefreshCadence: {Frequency: "SYNCHRONOUS"}}});
    toast(`FOCUS export ${v.Name} created: each month is delivered to ${v.Bucket}/${v.Prefix}/ when its final costs change.`);
    route();
  });
  return h("section", {id: "focus-exports"}, h("h2", {}, "FOCUS exports"),
    h("p", {class: "muted"}, "Delivered as AWS Data Exports delivers FOCUS 1.2: gzip CSV under <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/, hours once they are final."),
    form, table([
      {title: "Export", value: e => e.ExportName},
      {title: "Status", value: e => h("span", {class: `state state-${e.ExportStatus.StatusCode === "HEALTHY" ? "Active" : "Inactive"}`},
                                       e.ExportStatus.StatusCode + (e.ExportStatus.StatusReason ? ` (${e.ExportStatus.StatusReason})` : ""))},
      {title: "Last delivered", value: e => e.ExportStatus.LastRefreshedAt || "not yet"},
      {title: "Actions", value: e => action("Delete", () => api("bcm-data-exports", "DeleteExport", {ExportArn: e.ExportArn}),
                                           {danger: true, confirm: `Delete the export ${e.ExportName}?`})},
    ], exports, "No FOCUS exports."));
}
