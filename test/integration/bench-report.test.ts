// The bench reporter's proof: a short suite run with --report prints its tables and writes
// report.json and report.html; every figure printed is in the JSON (and nothing printed is
// not), and the HTML carries the same report and shows each figure.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import {
  BASELINE_PREFIX,
  formatFigure,
  type BenchReport,
  type Column,
  type Table,
} from '../../bench/report.js';

const runJs = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

function runBench(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ['--expose-gc', runJs, ...args],
      { timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    ),
  );
}

/** A printed cell back to a number (thousands separators dropped); undefined for –. */
function cellValue(cell: string): number | undefined {
  if (cell === '–') return undefined;
  const m = /^-?[\d,]+(\.\d+)?/.exec(cell);
  assert.ok(m, `a number in "${cell}"`);
  return Number(m[0].replace(/,/g, ''));
}

/** The printed cell agrees with the JSON figure to the digits printed. */
function assertSame(cell: string, value: number | undefined, column: Column, where: string): void {
  const printed = cellValue(cell);
  if (value === undefined) {
    assert.equal(printed, undefined, `${where}: printed a figure the JSON does not have`);
    return;
  }
  assert.ok(printed !== undefined, `${where}: the JSON has ${value}, printed –`);
  const tolerance = 0.5 * 10 ** -column.digits + 1e-9 * Math.abs(value);
  assert.ok(
    Math.abs(printed - value) <= tolerance,
    `${where}: printed ${cell}, JSON ${value} (±${tolerance})`,
  );
}

/** Checks a table's printed lines (from its title on) against its JSON; returns lines used. */
function checkTable(lines: string[], at: number, t: Table): number {
  assert.equal(lines[at], t.title, 'the title');
  let i = at + 2; // past the header
  const hasRatio = t.rows.some((r) => r.ratio);
  for (const row of t.rows) {
    const cells = lines[i++]!.trim().split(/\s{2,}/);
    assert.equal(cells[0], row.name, 'rows in order');
    t.columns.forEach((c, k) =>
      assertSame(cells[k + 1]!, row.figures[c.key], c, `${row.name} ${c.label}`),
    );
    if (hasRatio) {
      const ratio = cells[t.columns.length + 1];
      if (!row.ratio) assert.equal(ratio, undefined);
      else {
        const ratioColumn = { key: 'ratio', label: 'ratio', digits: 2 };
        assertSame(ratio!, row.ratio.value, ratioColumn, `${row.name} ratio`);
        const range = /rounds ([\d.,]+)–([\d.,]+)/.exec(ratio!);
        assert.equal(Boolean(range), Boolean(row.ratio.range), `${row.name}: ratio range`);
        if (range && row.ratio.range) {
          assertSame(range[1]!, row.ratio.range[0], ratioColumn, `${row.name} lowest round`);
          assertSame(range[2]!, row.ratio.range[1], ratioColumn, `${row.name} highest round`);
        }
      }
    }
    if (row.baseline) {
      const line = lines[i++]!;
      assert.ok(line.startsWith(BASELINE_PREFIX + row.baseline.name), `${row.name}: its baseline`);
      const base = line.slice(BASELINE_PREFIX.length + row.baseline.name.length).trim();
      const baseCells = base.split(/\s{2,}/);
      t.columns.forEach((c, k) =>
        assertSame(
          baseCells[k]!,
          row.baseline!.figures[c.key],
          c,
          `${row.name} baseline ${c.label}`,
        ),
      );
    }
  }
  return i - at;
}

describe('bench report (--report DIR)', () => {
  it('placement with small sizes: the JSON carries every printed figure, the HTML the same report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetmesh-bench-report-'));
    try {
      const { stdout } = await runBench([
        'placement',
        ...['--seconds', '0.07', '--vehicles', '2000', '--slots', '2,8'],
        ...['--report', dir],
      ]);
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as BenchReport;
      assert.deepEqual(
        report.suites.map((s) => s.suite),
        ['placement'],
      );
      const tables = report.suites[0]!.tables;
      assert.equal(tables.length, 2, 'lookups and joins');
      const lookup = tables[0]!.rows[0]!;
      assert.ok(lookup.figures.opsPerSec! > 0 && lookup.baseline, 'a rate beside its baseline');
      assert.ok(lookup.timeline!.length > 0 && lookup.baselineTimeline!.length > 0, 'timelines');
      assert.ok(lookup.percentiles!.length > 0 && lookup.baselinePercentiles!.length > 0);
      assert.deepEqual(
        tables[1]!.rows.map((r) => r.name),
        ['2 → 3 slots', '8 → 9 slots'],
      );

      // Every printed line is a table's, and every table's figures are the JSON's.
      const lines = stdout.split('\n');
      let i = 0;
      for (const t of tables) {
        while (lines[i] === '') i++;
        i += checkTable(lines, i, t);
      }
      assert.deepEqual(
        lines.slice(i).filter((l) => l !== ''),
        [],
        'nothing printed outside the tables',
      );

      // The page embeds the same report, shows each figure, and loads nothing from elsewhere.
      const html = readFileSync(join(dir, 'report.html'), 'utf8');
      const embedded = /<script id="report-data" type="application\/json">(.*?)<\/script>/s.exec(
        html,
      );
      assert.ok(embedded, 'the report is embedded');
      assert.deepEqual(JSON.parse(embedded[1]!), report);
      for (const t of tables)
        for (const row of t.rows)
          for (const c of t.columns) {
            const v = row.figures[c.key];
            if (v !== undefined)
              assert.ok(
                html.includes(`${formatFigure(v, c.digits)}`),
                `${row.name} ${c.label} in the page`,
              );
          }
      assert.ok(html.includes('<div class="plots" id="t0">'), 'a plot area per table');
      assert.ok(/new uPlot\(/.test(html) && /uPlot=function|var uPlot/.test(html), 'uPlot inlined');
      assert.doesNotMatch(
        html,
        /<(script|link)[^>]+(src|href)=/,
        'no external script or stylesheet',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
