// The locator's choice: least loaded relative to capacity, a burst spread by counting our own
// assignments (and what happens without them: the herd), several locators, zones with their
// fallback, draining nodes, and the ledger that counts assignments between reports.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AssignmentLedger,
  candidatesOf,
  chooseNode,
  zoneOf,
  type Candidate,
} from '../../cluster/locatorPolicy.js';
import type { Member } from '../../cluster/memberTable.js';

/** mulberry32: seeded, so a failure can be replayed. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const node = (name: string, over: Partial<Candidate> = {}): Candidate => ({
  node: name,
  gateway: `10.0.0.1:${name.length}`,
  zone: 'default',
  capacity: 10_000,
  terminals: 0,
  assigned: 0,
  draining: false,
  ...over,
});

/** Sends `n` terminals through one locator with no report in between; returns counts per node. */
function burst(cands: Candidate[], n: number, random: () => number, zone?: string): number[] {
  for (let i = 0; i < n; i++) {
    const c = chooseNode(cands, zone, random)!;
    c.candidate.assigned++;
  }
  return cands.map((c) => c.terminals + c.assigned);
}

const maxOverMean = (xs: number[]): number =>
  Math.max(...xs) / (xs.reduce((a, b) => a + b, 0) / xs.length);

describe('locator policy', () => {
  it('chooses the least loaded relative to capacity', () => {
    const cands = [
      node('a', { terminals: 500, capacity: 1000 }),
      node('b', { terminals: 900, capacity: 2000 }),
      node('c', { terminals: 300, capacity: 500 }),
    ];
    for (let i = 0; i < 20; i++)
      assert.equal(chooseNode(cands, undefined, Math.random)?.candidate.node, 'b');
  });

  it('spreads a burst between two reports evenly (busiest ≤ 1.05× mean), from uneven start', () => {
    const cands = [node('a', { terminals: 100 }), node('b'), node('c', { terminals: 50 })];
    const counts = burst(cands, 3000, seeded(1));
    assert.ok(maxOverMean(counts) <= 1.05, `counts ${counts.join(',')}`);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts.join(',')}`);
  });

  it('without counting its own assignments the whole burst herds onto one node', () => {
    // The failure the ledger prevents: every choice sees the same last report.
    const cands = [node('a', { terminals: 10 }), node('b'), node('c', { terminals: 10 })];
    const chosen = new Set<string>();
    for (let i = 0; i < 1000; i++)
      chosen.add(chooseNode(cands, undefined, Math.random)!.candidate.node);
    assert.deepEqual([...chosen], ['b']);
  });

  it('capacities 1:2:1 give shares of 1/4, 1/2, 1/4 (each within 5 %)', () => {
    const cands = [
      node('a', { capacity: 5000 }),
      node('b', { capacity: 10_000 }),
      node('c', { capacity: 5000 }),
    ];
    const counts = burst(cands, 4000, seeded(2));
    const want = [0.25, 0.5, 0.25];
    counts.forEach((n, i) =>
      assert.ok(Math.abs(n / 4000 / want[i]! - 1) <= 0.05, `counts ${counts.join(',')}`),
    );
  });

  it('two locators that do not see each other’s assignments still balance together', () => {
    const reported = [0, 0, 0];
    const l1 = reported.map((t, i) => node(`n${i}`, { terminals: t }));
    const l2 = reported.map((t, i) => node(`n${i}`, { terminals: t }));
    const r1 = seeded(3);
    const r2 = seeded(4);
    for (let i = 0; i < 1500; i++) {
      chooseNode(l1, undefined, r1)!.candidate.assigned++;
      chooseNode(l2, undefined, r2)!.candidate.assigned++;
    }
    const total = l1.map((c, i) => c.assigned + l2[i]!.assigned);
    assert.ok(maxOverMean(total) <= 1.05, `total ${total.join(',')}`);
  });

  it('two locators with equal views pick different nodes (no lockstep herd)', () => {
    const view = () => [node('a'), node('b'), node('c')];
    let same = 0;
    const r1 = seeded(5);
    const r2 = seeded(6);
    for (let i = 0; i < 300; i++)
      if (
        chooseNode(view(), undefined, r1)!.candidate.node ===
        chooseNode(view(), undefined, r2)!.candidate.node
      )
        same++;
    // Three equally light nodes: ~1/3 agree by chance; lockstep would be all 300.
    assert.ok(same < 150, `${same} of 300 the same`);
  });

  it('prefers the terminal’s zone while it has room, then any zone', () => {
    const cands = [
      node('edge-1', { zone: 'gz', capacity: 10, terminals: 8 }),
      node('cloud-1', { zone: 'cloud', terminals: 0 }),
    ];
    const first = chooseNode(cands, 'gz', Math.random)!;
    assert.equal(first.candidate.node, 'edge-1', 'the zone’s node although more loaded');
    assert.equal(first.inZone, true);
    const counts = burst(cands, 10, seeded(7), 'gz');
    assert.deepEqual(counts, [10, 8], 'edge-1 takes up to its capacity, the rest go elsewhere');
    const after = chooseNode(cands, 'gz', Math.random)!;
    assert.equal(after.candidate.node, 'cloud-1');
    assert.equal(after.inZone, false);
    // A zone with no node at all (down) falls back too.
    assert.equal(chooseNode(cands, 'sh', Math.random)!.candidate.node, 'cloud-1');
  });

  it('never chooses a draining node; none when all drain; the least loaded when all are full', () => {
    const cands = [node('a', { draining: true }), node('b', { terminals: 9000 })];
    for (let i = 0; i < 20; i++)
      assert.equal(chooseNode(cands, undefined, Math.random)!.candidate.node, 'b');
    assert.equal(chooseNode([node('a', { draining: true })], undefined, Math.random), undefined);
    assert.equal(chooseNode([], undefined, Math.random), undefined);
    const full = [
      node('a', { capacity: 10, terminals: 12 }),
      node('b', { capacity: 10, terminals: 11 }),
    ];
    const c = chooseNode(full, undefined, Math.random)!;
    assert.equal(c.candidate.node, 'b');
    assert.equal(c.overCapacity, true);
  });

  it('finds a terminal’s zone by vehicle, then city, then province', () => {
    const map = { vehicles: { '13800000001': 'own' }, regions: { '44': 'south', '44/100': 'gz' } };
    assert.equal(zoneOf('13800000001', { province: 44, city: 100 }, map), 'own');
    assert.equal(zoneOf('2', { province: 44, city: 100 }, map), 'gz');
    assert.equal(zoneOf('2', { province: 44, city: 300 }, map), 'south');
    assert.equal(zoneOf('2', { province: 11, city: 100 }, map), undefined);
    assert.equal(zoneOf('2', undefined, map), undefined);
    assert.equal(zoneOf('2', { province: 44, city: 100 }, {}), undefined);
  });
});

describe('assignment ledger', () => {
  it('a report takes in the assignments made before it (less the grace), not those after', () => {
    const l = new AssignmentLedger({ graceMs: 100, ttlMs: 10_000, maxPerNode: 100 });
    l.assign('a', 1000);
    l.assign('a', 1950);
    l.assign('a', 2100);
    assert.equal(l.count('a', 2100), 3);
    l.reported('a', 2000); // sampled after the first arrived; the second may still be on its way
    assert.equal(l.count('a', 2100), 2);
    assert.equal(l.count('b', 2100), 0);
  });

  it('forgets assignments whose terminal never arrived after ttlMs, and nodes that left', () => {
    const l = new AssignmentLedger({ graceMs: 0, ttlMs: 1000, maxPerNode: 100 });
    l.assign('a', 0);
    l.assign('a', 500);
    assert.equal(l.count('a', 999), 2);
    assert.equal(l.count('a', 1200), 1);
    l.retain(new Set(['b']));
    assert.equal(l.count('a', 1200), 0);
  });

  it('holds at most maxPerNode per node', () => {
    const l = new AssignmentLedger({ graceMs: 0, ttlMs: 1e9, maxPerNode: 50 });
    for (let i = 0; i < 500; i++) l.assign('a', i);
    assert.equal(l.count('a', 500), 50);
  });

  it('candidates come from the members’ reports and the ledger', () => {
    const l = new AssignmentLedger();
    l.assign('n1', 10);
    const members: Member[] = [
      {
        node: 'n1',
        gateway: 'h:1',
        startedAt: 0,
        workers: 1,
        reportedAt: 0,
        load: { terminals: 4, capacity: 20, zone: 'gz', draining: true },
      },
      {
        node: 'n2',
        gateway: 'h:2',
        startedAt: 0,
        workers: 1,
        reportedAt: 0,
        load: { terminals: 1 },
      },
    ];
    assert.deepEqual(candidatesOf(members, l, 20), [
      {
        node: 'n1',
        gateway: 'h:1',
        zone: 'gz',
        capacity: 20,
        terminals: 4,
        assigned: 1,
        draining: true,
      },
      {
        node: 'n2',
        gateway: 'h:2',
        zone: 'default',
        capacity: 10_000,
        terminals: 1,
        assigned: 0,
        draining: false,
      },
    ]);
  });
});
