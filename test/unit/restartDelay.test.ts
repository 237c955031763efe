// A vehicle worker that keeps dying is restarted with growing delays, not in a tight loop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restartDelayMs } from '../../hosting/workerHost.js';

describe('restartDelayMs', () => {
  it('restarts at once up to 3 deaths a minute, then backs off doubling up to 30 s', () => {
    const now = 1_000_000;
    const within = (n: number): number[] =>
      Array.from({ length: n }, (_, i) => now - 1000 * (i + 1));
    assert.equal(restartDelayMs([], now), 0);
    assert.equal(restartDelayMs(within(2), now), 0);
    assert.equal(restartDelayMs(within(3), now), 1000);
    assert.equal(restartDelayMs(within(4), now), 2000);
    assert.equal(restartDelayMs(within(6), now), 8000);
    assert.equal(restartDelayMs(within(20), now), 30_000);
  });

  it('deaths older than a minute do not count', () => {
    const now = 1_000_000;
    assert.equal(restartDelayMs([now - 61_000, now - 70_000, now - 90_000, now - 120_000], now), 0);
  });
});
