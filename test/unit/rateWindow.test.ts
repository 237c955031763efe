// The status line's reports/s: averaged over a window as long as the report interval, terminals
// reporting in step (all at once every 10 s) give a steady rate, not 25/s then 0/s.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateWindow } from '../../cli/rateWindow.js';

describe('RateWindow', () => {
  it('50 terminals reporting in step every 10 s, sampled every 2 s: 5/s at every sample once the window is full', () => {
    const w = new RateWindow(10_000);
    const rates: number[] = [];
    let stored = 0;
    for (let t = 0; t <= 60_000; t += 2000) {
      if (t > 0 && t % 10_000 === 0) stored += 50; // every terminal's report, in one burst
      rates.push(w.sample(t, stored));
    }
    // Once 10 s are covered, every sample says 5/s.
    assert.deepEqual(
      rates.slice(5).map((r) => Math.round(r)),
      rates.slice(5).map(() => 5),
    );
  });

  it('follows a change of rate within the window, and starts again when the counter goes back', () => {
    const w = new RateWindow(4000);
    let n = 0;
    for (let t = 0; t <= 8000; t += 1000) w.sample(t, (n += 10));
    assert.equal(w.sample(9000, (n += 10)), 10);
    for (let t = 10_000; t <= 13_000; t += 1000) w.sample(t, (n += 30));
    assert.equal(w.sample(14_000, (n += 30)), 30);
    assert.equal(w.sample(15_000, 5), 0, 'a restarted counter: one sample, no rate yet');
    assert.equal(w.sample(16_000, 25), 20);
  });

  it('a single sample has no rate; the window must be positive', () => {
    assert.equal(new RateWindow(1000).sample(5, 100), 0);
    assert.throws(() => new RateWindow(0), RangeError);
  });
});
