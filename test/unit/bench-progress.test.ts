// The bench progress bar: drawn only when enabled (stdout a terminal), on one line, cleared
// before other output.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProgressBar } from '../../bench/progress.js';

function stream(): { written: string[]; write(s: string): boolean; columns: number } {
  const written: string[] = [];
  return { written, write: (s) => written.push(s) > 0, columns: 80 };
}

describe('bench progress bar', () => {
  it('draws the share done on one line and clears it', () => {
    const s = stream();
    const bar = new ProgressBar(s, true, 0);
    bar.update('codec', 1, 4);
    bar.update('codec', 4, 4);
    assert.equal(s.written.length, 2);
    assert.match(s.written[0]!, /^\rcodec \[#+-+\] {2}25 %/);
    assert.match(s.written[1]!, /^\rcodec \[#+\] 100 %/);
    assert.ok(
      s.written.every((w) => !w.includes('\n')),
      'never a new line',
    );
    bar.clear();
    assert.equal(s.written[2], '\r\x1b[K');
    bar.clear();
    assert.equal(s.written.length, 3, 'nothing to clear twice');
  });

  it('a terminal of unknown width (0 columns) gets the whole line', () => {
    const s = { ...stream(), columns: 0 };
    new ProgressBar(s, true, 0).update('node', 1, 2);
    assert.ok(s.written[0]!.endsWith(' 50 %\x1b[K'), JSON.stringify(s.written[0]));
  });

  it('draws nothing when not on a terminal', () => {
    const s = stream();
    const bar = new ProgressBar(s, false);
    bar.update('node', 1, 2);
    bar.clear();
    assert.deepEqual(s.written, []);
  });
});
