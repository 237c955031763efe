import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LinkOrder } from '../../actors/linkOrder.js';

describe('LinkOrder', () => {
  it('passes frames in order at once', () => {
    const o = new LinkOrder<number>();
    assert.deepEqual(o.offer('a', 1, 1), [1]);
    assert.deepEqual(o.offer('a', 2, 2), [2]);
    assert.equal(o.waiting, false);
    assert.equal(o.lastSeq('a'), 2);
  });

  it('holds a frame that overtook an earlier one until the earlier one comes', () => {
    const o = new LinkOrder<number>();
    assert.deepEqual(o.offer('a', 1, 1), [1]);
    assert.deepEqual(o.offer('a', 3, 3), []);
    assert.deepEqual(o.offer('a', 4, 4), []);
    assert.equal(o.waiting, true);
    assert.deepEqual(o.offer('a', 2, 2), [2, 3, 4]);
    assert.equal(o.waiting, false);
    assert.equal(o.stats.held, 2);
    assert.equal(o.stats.gapsSkipped, 0);
  });

  it('keeps links apart: a gap on one does not hold another', () => {
    const o = new LinkOrder<string>();
    assert.deepEqual(o.offer('old', 2, 'old2'), []);
    assert.deepEqual(o.offer('new', 1, 'new1'), ['new1']);
    assert.deepEqual(o.offer('old', 1, 'old1'), ['old1', 'old2']);
  });

  it("resumes a previous owner's session after its last frame", () => {
    const o = new LinkOrder<number>();
    o.resume('a', 40);
    assert.deepEqual(o.offer('a', 42, 42), []);
    assert.deepEqual(o.offer('a', 41, 41), [41, 42]);
    assert.equal(o.lastSeq('a'), 42);
  });

  it('gives the gap up when asked (the wait timed out): held frames go on in order', () => {
    const o = new LinkOrder<number>();
    o.offer('a', 1, 1);
    o.offer('a', 5, 5);
    o.offer('a', 3, 3);
    o.offer('a', 6, 6);
    assert.deepEqual(o.skipGaps(), [3, 5, 6]);
    assert.equal(o.waiting, false);
    assert.equal(o.stats.gapsSkipped, 2); // 2 and 4
    // The missing ones, when they come after all, go on at once (nothing is dropped).
    assert.deepEqual(o.offer('a', 2, 2), [2]);
    assert.deepEqual(o.offer('a', 4, 4), [4]);
    assert.equal(o.stats.late, 2);
    assert.deepEqual(o.offer('a', 7, 7), [7]);
  });

  it('at its limit of held frames gives the gap up instead of holding more', () => {
    const o = new LinkOrder<number>(3);
    o.offer('a', 1, 1);
    assert.deepEqual(o.offer('a', 3, 3), []);
    assert.deepEqual(o.offer('a', 4, 4), []);
    assert.deepEqual(o.offer('a', 5, 5), []);
    assert.deepEqual(o.offer('a', 6, 6), [3, 4, 5, 6]);
    assert.equal(o.waiting, false);
    assert.equal(o.stats.gapsSkipped, 1);
  });

  it('remembers a bounded number of links, never one that holds frames', () => {
    const o = new LinkOrder<string>(64, 2);
    o.offer('held', 2, 'held2');
    o.offer('b', 1, 'b1');
    o.offer('c', 1, 'c1'); // evicts b (nothing held), not 'held'
    o.offer('d', 1, 'd1'); // evicts c
    assert.deepEqual(o.offer('held', 1, 'held1'), ['held1', 'held2']);
    // b was forgotten: it starts again at 1, so its frame 2 waits (for the gap's timeout).
    assert.deepEqual(o.offer('b', 2, 'b2'), []);
    assert.deepEqual(o.skipGaps(), ['b2']);
  });

  it('forgets the least recently used link first, not the busiest', () => {
    const o = new LinkOrder<string>(64, 2);
    o.offer('session', 1, 's1');
    o.offer('flap', 1, 'f1');
    o.offer('session', 2, 's2'); // the session is used again
    o.offer('other', 1, 'o1'); // evicts 'flap', the least recently used
    assert.deepEqual(o.offer('session', 3, 's3'), ['s3'], 'the session goes on in order');
    assert.equal(o.lastSeq('flap'), undefined);
  });

  it('gives up only the gaps whose frames have waited long enough', () => {
    const o = new LinkOrder<number>();
    o.offer('a', 2, 2, 0); // waits for 1 from 0
    o.offer('b', 3, 3, 500); // waits for 1, 2 from 500
    assert.equal(o.nextDeadline(1000), 1000);
    assert.deepEqual(o.skipExpired(999, 1000), []);
    assert.deepEqual(o.skipExpired(1000, 1000), [2], "a's gap is due, b's is not");
    assert.equal(o.nextDeadline(1000), 1500);
    assert.deepEqual(o.skipExpired(1500, 1000), [3]);
    assert.equal(o.nextDeadline(1000), undefined);
  });

  it('any arrival order of a link within the hold bound comes out in order, every frame once', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((n) =>
          fc.shuffledSubarray(
            Array.from({ length: n }, (_, i) => i + 1),
            { minLength: n, maxLength: n },
          ),
        ),
        (arrival) => {
          const o = new LinkOrder<number>(64);
          const out = arrival.flatMap((s) => o.offer('a', s, s));
          assert.deepEqual(
            out,
            arrival.map((_, i) => i + 1),
          );
          assert.equal(o.waiting, false);
        },
      ),
      { seed: 808, numRuns: 300 },
    );
  });
});
