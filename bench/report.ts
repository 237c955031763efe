// The one reporter of the bench suites: suites hand it their figures as tables (data, not
// text); it prints each table as it comes and keeps it, and at the end writes the same tables
// as JSON and as a self-contained HTML page with plots. The printed table and the report are
// made from the same objects, so they cannot disagree.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ProgressBar } from './progress.js';

/** Throughput at a moment of a measurement: `atMs` since it started. */
export interface TimePoint {
  atMs: number;
  perSec: number;
}

/** A point of an hdr percentile curve. */
export interface PercentilePoint {
  percentile: number;
  value: number;
}

export interface Column {
  key: string;
  /** Printed header, unit included ('ops/s', 'p99 ns'). */
  label: string;
  /** Fraction digits printed (the JSON keeps every digit). */
  digits: number;
}

export interface Row {
  name: string;
  /** By column key; a column missing here was not measured for this row (printed –). */
  figures: Record<string, number>;
  /** What this row is measured against, with its figures in the same columns. */
  baseline?: { name: string; figures: Record<string, number> };
  /** figures[column] ÷ the baseline's, as the suite measured it (codec: median of paired rounds). */
  ratio?: { column: string; value: number; range?: [number, number] };
  /** For the plots: throughput over time and the hdr percentile curve, the baseline's beside. */
  timeline?: TimePoint[];
  baselineTimeline?: TimePoint[];
  percentiles?: PercentilePoint[];
  baselinePercentiles?: PercentilePoint[];
}

export interface Table {
  title: string;
  columns: Column[];
  rows: Row[];
  /** What the timelines count per second, and the unit of the percentile curves. */
  timelineUnit?: string;
  percentileUnit?: string;
}

export interface SuiteReport {
  suite: string;
  about: string;
  tables: Table[];
  /** Whatever else the suite returned (figures not in a table yet). */
  result?: unknown;
  seconds: number;
}

export interface BenchReport {
  version: 1;
  date: string;
  node: string;
  argv: string[];
  suites: SuiteReport[];
}

/** What a suite is given: where its figures go, and a progress bar. */
export interface BenchContext {
  /** Prints the table now and keeps it for the report. */
  table(t: Table): void;
  /** `done` of `total` (any unit) of what `label` names; drawn only on a terminal. */
  progress(label: string, done: number, total: number): void;
  /** A line on stderr saying what runs now. */
  step(text: string): void;
}

/** Hdr percentiles where 1/(1 − p) doubles: 0, 50, 75, 87.5 … 99.99, then 100. */
export const CURVE_PERCENTILES: readonly number[] = [
  ...Array.from({ length: 14 }, (_, i) => 100 * (1 - 2 ** -i)),
  100,
];

/** The percentile curve of an hdr histogram (anything with getValueAtPercentile). */
export function percentileCurve(
  h: { getValueAtPercentile(p: number): number },
  scale = 1,
): PercentilePoint[] {
  return CURVE_PERCENTILES.map((percentile) => ({
    percentile,
    value: h.getValueAtPercentile(percentile) * scale,
  }));
}

export function formatFigure(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function formatRatio(r: NonNullable<Row['ratio']>): string {
  const range = r.range
    ? ` (rounds ${formatFigure(r.range[0], 2)}–${formatFigure(r.range[1], 2)})`
    : '';
  return `${formatFigure(r.value, 2)} ×${range}`;
}

/** Name cell of a baseline line. */
export const BASELINE_PREFIX = '  ↳ baseline: ';

/**
 * The table as printed: a title, a header, then each row and, under it, its baseline in the
 * same columns. Cells are separated by at least two spaces (names and figures have no two).
 */
export function formatTable(t: Table): string[] {
  const lines: { name: string; cells: string[] }[] = [];
  const hasRatio = t.rows.some((r) => r.ratio);
  for (const r of t.rows) {
    const cells = t.columns.map((c) => formatFigure(r.figures[c.key], c.digits));
    if (hasRatio) cells.push(r.ratio ? formatRatio(r.ratio) : '');
    lines.push({ name: r.name, cells });
    if (r.baseline) {
      const base = r.baseline.figures;
      lines.push({
        name: BASELINE_PREFIX + r.baseline.name,
        cells: t.columns.map((c) => formatFigure(base[c.key], c.digits)),
      });
    }
  }
  const header = [...t.columns.map((c) => c.label), ...(hasRatio ? ['× baseline'] : [])];
  const nameWidth = Math.max(4, ...lines.map((l) => l.name.length));
  const widths = header.map((h, i) =>
    Math.max(h.length, ...lines.map((l) => l.cells[i]?.length ?? 0)),
  );
  const line = (name: string, cells: string[]): string =>
    [name.padEnd(nameWidth), ...cells.map((c, i) => c.padStart(widths[i]!))].join('  ').trimEnd();
  return [t.title, line('', header), ...lines.map((l) => line(l.name, l.cells))];
}

/** The reporter of one run: prints tables as suites hand them over, writes the report at the end. */
export class Reporter {
  private readonly suites: SuiteReport[] = [];
  private started = 0;
  private readonly bar: ProgressBar;

  constructor(
    private readonly print: (line: string) => void = (l) => console.log(l),
    bar = new ProgressBar(),
  ) {
    this.bar = bar;
  }

  /** Runs one suite with a context of its own; its tables and result go in the report. */
  async run(
    suite: string,
    about: string,
    fn: (ctx: BenchContext) => Promise<unknown> | unknown,
  ): Promise<void> {
    const s: SuiteReport = { suite, about, tables: [], seconds: 0 };
    this.started = performance.now();
    this.suites.push(s);
    const ctx: BenchContext = {
      table: (t) => {
        s.tables.push(t);
        this.bar.clear();
        this.print('');
        for (const l of formatTable(t)) this.print(l);
      },
      progress: (label, done, total) => this.bar.update(`${suite}: ${label}`, done, total),
      step: (text) => {
        this.bar.clear();
        process.stderr.write(`${suite} bench: ${text}\n`);
      },
    };
    try {
      const result = await fn(ctx);
      if (result !== undefined) s.result = result;
    } finally {
      this.bar.clear();
      s.seconds = (performance.now() - this.started) / 1000;
    }
  }

  report(argv: string[]): BenchReport {
    return {
      version: 1,
      date: new Date().toISOString(),
      node: process.version,
      argv,
      suites: this.suites,
    };
  }
}

/** Writes `report.json` and `report.html` into `dir` (made if missing); returns their paths. */
export function writeReport(dir: string, report: BenchReport): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(html, reportHtml(report));
  return { json, html };
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** uPlot (script and stylesheet) read from node_modules, to be inlined: no CDN at view time. */
function uPlotSources(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  const dir = join(require.resolve('uplot/package.json'), '..', 'dist');
  return {
    js: readFileSync(join(dir, 'uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(join(dir, 'uPlot.min.css'), 'utf8'),
  };
}

/** A table as HTML: every figure with its baseline's beside it, and the ratio. */
function tableHtml(t: Table): string {
  const hasRatio = t.rows.some((r) => r.ratio);
  const head = ['', ...t.columns.map((c) => c.label), ...(hasRatio ? ['× baseline'] : [])]
    .map((h) => `<th>${escapeHtml(h)}</th>`)
    .join('');
  const body = t.rows
    .map((r) => {
      const cells = t.columns.map((c) => {
        const v = formatFigure(r.figures[c.key], c.digits);
        const b = r.baseline?.figures[c.key];
        const base =
          b === undefined
            ? ''
            : `<span class="base">${escapeHtml(formatFigure(b, c.digits))}</span>`;
        return `<td>${escapeHtml(v)}${base}</td>`;
      });
      if (hasRatio) cells.push(`<td>${r.ratio ? escapeHtml(formatRatio(r.ratio)) : ''}</td>`);
      const baseName = r.baseline
        ? `<span class="base">baseline: ${escapeHtml(r.baseline.name)}</span>`
        : '';
      return `<tr><th>${escapeHtml(r.name)}${baseName}</th>${cells.join('')}</tr>`;
    })
    .join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** The page: figures as static tables, plots drawn by the inlined uPlot from the embedded JSON. */
export function reportHtml(report: BenchReport): string {
  const { js, css } = uPlotSources();
  // Inside <script>, "</" would end the element early.
  const data = JSON.stringify(report).replace(/</g, '\\u003c');
  let tableIndex = 0;
  const sections = report.suites
    .map((s) => {
      const tables = s.tables
        .map((t) => {
          const id = `t${tableIndex++}`;
          return `<section><h3>${escapeHtml(t.title)}</h3>\n${tableHtml(t)}\n<div class="plots" id="${id}"></div></section>`;
        })
        .join('\n');
      return `<h2>${escapeHtml(s.suite)}</h2><p>${escapeHtml(s.about)} (${s.seconds.toFixed(1)} s)</p>\n${tables}`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetmesh bench ${escapeHtml(report.date)}</title>
<style>${css}</style>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; vertical-align: top; }
tbody th { text-align: left; font-weight: normal; }
.base { display: block; color: #888; font-size: 85%; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.uplot .u-legend { font-size: 12px; text-align: left; }
.plot h4 { margin: .6em 0 .2em; font-weight: normal; font-size: 90%; }
</style></head>
<body>
<h1>fleetmesh benchmark report</h1>
<p>${escapeHtml(report.date)} · Node ${escapeHtml(report.node)} · <code>${escapeHtml(report.argv.join(' '))}</code></p>
${sections}
<script id="report-data" type="application/json">${data}</script>
<script>${js}</script>
<script>${PLOT_SCRIPT}</script>
</body></html>
`;
}

// Runs in the browser: for every row with a timeline or a percentile curve, one plot of each,
// the row's series beside its baseline's (dashed).
const PLOT_SCRIPT = `
(function () {
  const report = JSON.parse(document.getElementById('report-data').textContent);
  const size = { width: 480, height: 220, legend: { live: false } };
  const series = (name, base) => [
    {},
    { label: name, stroke: '#1f6fd1', width: 2, spanGaps: true },
    ...(base ? [{ label: 'baseline: ' + base, stroke: '#d1641f', width: 1.5, dash: [6, 4], spanGaps: true }] : []),
  ];
  const plot = (host, title, opts, data) => {
    const box = document.createElement('div');
    box.className = 'plot';
    const h = document.createElement('h4');
    h.textContent = title;
    box.appendChild(h);
    host.appendChild(box);
    new uPlot(Object.assign({}, size, opts), data, box);
  };
  // x of a percentile: how many nines (0 → 0, 90 → 1, 99 → 2 …), 100 put one step past the last.
  const nines = (p, last) => (p >= 100 ? last + 1 : -Math.log10(1 - p / 100));
  let index = 0;
  for (const suite of report.suites) {
    for (const table of suite.tables) {
      const host = document.getElementById('t' + index++);
      for (const row of table.rows) {
        const base = row.baseline ? row.baseline.name : undefined;
        if (row.timeline && row.timeline.length > 0) {
          const tables = [[row.timeline.map((p) => p.atMs / 1000), row.timeline.map((p) => p.perSec)]];
          if (row.baselineTimeline) tables.push([row.baselineTimeline.map((p) => p.atMs / 1000), row.baselineTimeline.map((p) => p.perSec)]);
          plot(host, row.name + ': throughput over time (' + (table.timelineUnit || '/s') + ')', {
            scales: { x: { time: false } },
            axes: [{ label: 'seconds into the measurement' }, { size: 90 }],
            series: series(row.name, row.baselineTimeline ? base : undefined),
          }, uPlot.join(tables));
        }
        if (row.percentiles && row.percentiles.length > 0) {
          const finite = row.percentiles.filter((p) => p.percentile < 100);
          const last = finite.length ? nines(finite[finite.length - 1].percentile) : 0;
          const xs = row.percentiles.map((p) => nines(p.percentile, last));
          const data = [xs, row.percentiles.map((p) => p.value)];
          const withBase = row.baselinePercentiles && row.baselinePercentiles.length === xs.length;
          if (withBase) data.push(row.baselinePercentiles.map((p) => p.value));
          plot(host, row.name + ': hdr percentiles (' + (table.percentileUnit || '') + '; last point: the maximum)', {
            // Log y: the tail is orders of magnitude above the median.
            scales: { x: { time: false }, y: { distr: 3 } },
            axes: [{ label: 'percentile', values: (u, v) => v.map((x) => (x > last ? '' : (100 * (1 - Math.pow(10, -x))).toPrecision(4).replace(/\\.?0+$/, '') + '%')) }, { size: 90 }],
            series: series(row.name, withBase ? base : undefined),
          }, data);
        }
      }
    }
  }
})();
`;
