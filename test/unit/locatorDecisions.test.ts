// The locator's decision log (locator/decisions.ts): the ring at its limit, the per-node count
// buckets and their bounds, and the reason each kind of choice gets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseNode, type Candidate } from '../../cluster/locatorPolicy.js';
import { DecisionLog, reasonOf, type Decision } from '../../locator/decisions.js';

const candidate = (node: string, terminals: number, over: Partial<Candidate> = {}): Candidate => ({
  node,
  gateway: '127.0.0.1:1',
  zone: 'default',
  capacity: 100,
  terminals,
  assigned: 0,
  draining: false,
  ...over,
});

const decision = (
  node: string,
  atUnixMs: number,
  candidates: Candidate[] = [],
): Omit<Decision, 'seq' | 'candidates'> & { candidates: Candidate[] } => ({
  atUnixMs,
  vehicleId: '1',
  phone: '000000000001',
  source: 'jt808',
  node,
  reason: node === '' ? 'no-node' : 'least-loaded',
  terminalZone: '',
  nodeZone: 'default',
  inZone: false,
  overCapacity: false,
  candidates,
});

describe('DecisionLog', () => {
  it('keeps the last `capacity` decisions, newest first, and counts every one', () => {
    const log = new DecisionLog({ capacity: 5 });
    for (let i = 1; i <= 5; i++) log.record(decision(`n${i}`, i));
    assert.deepEqual(
      log.list(1000).map((d) => d.seq),
      [5, 4, 3, 2, 1],
    );
    // At its limit: the sixth overwrites the first, and so on around the ring.
    for (let i = 6; i <= 12; i++) log.record(decision(`n${i}`, i));
    assert.equal(log.recorded, 12);
    assert.deepEqual(
      log.list(1000).map((d) => [d.seq, d.node]),
      [
        [12, 'n12'],
        [11, 'n11'],
        [10, 'n10'],
        [9, 'n9'],
        [8, 'n8'],
      ],
    );
    assert.deepEqual(
      log.list(2).map((d) => d.seq),
      [12, 11],
    );
    // After a seq: only the newer ones (a poller's increment), never past the ring.
    assert.deepEqual(
      log.list(1000, 10).map((d) => d.seq),
      [12, 11],
    );
    assert.deepEqual(
      log.list(1000, 2).map((d) => d.seq),
      [12, 11, 10, 9, 8],
    );
    assert.deepEqual(log.list(1000, 12), []);
  });

  it('keeps the lightest candidates of a decision, at most maxCandidates', () => {
    const log = new DecisionLog({ maxCandidates: 3 });
    const cs = [50, 10, 30, 20, 40].map((t, i) => candidate(`n${i}`, t));
    const d = log.record(decision('n1', 1, cs));
    assert.deepEqual(
      d.candidates.map((c) => [c.node, c.terminals]),
      [
        ['n1', 10],
        ['n3', 20],
        ['n2', 30],
      ],
    );
    assert.equal('gateway' in (d.candidates[0] as object), false);
  });

  it('counts per node in buckets over the window, empty buckets included, old ones dropped', () => {
    const log = new DecisionLog({ bucketMs: 1000, buckets: 3 });
    log.record(decision('a', 10_100));
    log.record(decision('a', 10_200));
    log.record(decision('b', 11_500));
    log.record(decision('', 11_600));
    let counts = log.counts(11_999);
    assert.deepEqual(counts, [
      { startUnixMs: 9_000, byNode: {}, otherNodes: 0, noNode: 0 },
      { startUnixMs: 10_000, byNode: { a: 2 }, otherNodes: 0, noNode: 0 },
      { startUnixMs: 11_000, byNode: { b: 1 }, otherNodes: 0, noNode: 1 },
    ]);
    // Two buckets later the first is out of the window.
    log.record(decision('c', 13_000));
    counts = log.counts(13_000);
    assert.deepEqual(
      counts.map((b) => [b.startUnixMs, b.byNode]),
      [
        [11_000, { b: 1 }],
        [12_000, {}],
        [13_000, { c: 1 }],
      ],
    );
    // Much later: nothing left, still every bucket of the window.
    assert.deepEqual(
      log.counts(100_000).map((b) => b.byNode),
      [{}, {}, {}],
    );
  });

  it('names at most maxNodesPerBucket nodes per bucket, the rest counted together', () => {
    const log = new DecisionLog({ maxNodesPerBucket: 2, bucketMs: 1000, buckets: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'a', 'constructor']) log.record(decision(n, 500));
    const [, now] = log.counts(999);
    assert.deepEqual(now, { startUnixMs: 0, byNode: { a: 2, b: 1 }, otherNodes: 3, noNode: 0 });
  });

  it('refuses bounds that are not whole numbers ≥ 1', () => {
    assert.throws(() => new DecisionLog({ capacity: 0 }), /capacity/);
    assert.throws(() => new DecisionLog({ buckets: 1.5 }), /buckets/);
  });
});

describe('reasonOf', () => {
  const fixed = () => 0;
  it('least loaded, zone, drain, fallback, no node', () => {
    const plain = [candidate('a', 10), candidate('b', 20)];
    assert.equal(reasonOf(plain, undefined, chooseNode(plain, undefined, fixed)), 'least-loaded');

    const zoned = [candidate('a', 10), candidate('b', 20, { zone: 'south' })];
    const inZone = chooseNode(zoned, 'south', fixed);
    assert.equal(inZone?.candidate.node, 'b');
    assert.equal(reasonOf(zoned, 'south', inZone), 'zone');

    // The zone's only node is full: any node is taken.
    const full = [candidate('a', 10), candidate('b', 100, { zone: 'south' })];
    assert.equal(reasonOf(full, 'south', chooseNode(full, 'south', fixed)), 'fallback');
    // Every node full: the least loaded anyway.
    const allFull = [candidate('a', 100), candidate('b', 120)];
    const over = chooseNode(allFull, undefined, fixed);
    assert.equal(over?.overCapacity, true);
    assert.equal(reasonOf(allFull, undefined, over), 'fallback');

    // The lightest node drains: the drain decided.
    const draining = [candidate('a', 0, { draining: true }), candidate('b', 20)];
    const d = chooseNode(draining, undefined, fixed);
    assert.equal(d?.candidate.node, 'b');
    assert.equal(reasonOf(draining, undefined, d), 'drain');
    // A draining node heavier than the choice did not change it.
    const heavy = [candidate('a', 50, { draining: true }), candidate('b', 20)];
    assert.equal(reasonOf(heavy, undefined, chooseNode(heavy, undefined, fixed)), 'least-loaded');

    const none = [candidate('a', 0, { draining: true })];
    assert.equal(reasonOf(none, undefined, chooseNode(none, undefined, fixed)), 'no-node');
  });
});
