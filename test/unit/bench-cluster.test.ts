// The cluster bench's pure part (shards moved when a node joins): what it prints is what the
// report holds, and the figures are those of the placement (rendezvous: only the joiner gains).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runClusterBench } from '../../bench/cluster.js';
import { formatFigure, Reporter } from '../../bench/report.js';
import { ProgressBar } from '../../bench/progress.js';

describe('cluster bench, join part', () => {
  it('prints the shards moved per join beside the ideal, and the report carries the same figures', async () => {
    const printed: string[] = [];
    const quiet = new ProgressBar({ write: () => true, columns: 80 }, false, 0);
    const reporter = new Reporter((l) => printed.push(l), quiet);
    await reporter.run('cluster', 'test', (ctx) =>
      runClusterBench(
        { ...ctx, step: () => undefined },
        { parts: ['join'], joinNodes: [2, 3], joinWorkers: [1, 2] },
      ),
    );
    const report = reporter.report([]);
    const tables = report.suites[0]!.tables;
    assert.equal(tables.length, 1);
    const rows = tables[0]!.rows;
    assert.deepEqual(
      rows.map((r) => r.name),
      [
        '2 nodes × 1 workers + 1',
        '3 nodes × 1 workers + 1',
        '2 nodes × 2 workers + 1',
        '3 nodes × 2 workers + 1',
      ],
    );
    for (const r of rows) {
      const nodes = Number(r.name.split(' ')[0]);
      const ideal = 1 / (nodes + 1);
      assert.equal(r.baseline?.figures.movedShare, ideal);
      // Only the joiner gains; the old nodes' losses add up to what it gained.
      assert.equal(r.figures.betweenOld, 0);
      assert.equal(r.figures.lost, r.figures.moved);
      assert.ok(Math.abs(r.figures.movedShare! / ideal - 1) < 0.05, `${r.name}: near the ideal`);
      assert.equal(r.ratio?.value, r.figures.movedShare! / ideal);
      // The printed line of the row carries its figures as the report holds them.
      const line = printed.find((l) => l.startsWith(r.name));
      assert.ok(line, `${r.name} printed`);
      for (const c of tables[0]!.columns) {
        const v = r.figures[c.key];
        if (v !== undefined)
          assert.ok(line.includes(formatFigure(v, c.digits)), `${c.key} in ${line}`);
      }
    }
  });
});
