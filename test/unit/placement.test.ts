// The placement function: vehicle → shard → owner slot by rendezvous hashing. What the cluster
// relies on: every process computes the same owner, a joining slot takes only the shards it
// wins, a leaving slot gives away only its own, the load is even, and a vehicle's shard never
// changes between versions (it would move every vehicle in a rolling upgrade).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  clusterSlots,
  parseSlotKey,
  Placement,
  SHARDS,
  shardOf,
  slotKey,
} from '../../cluster/placement.js';

const slots = (n: number, prefix = 'node-'): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** The owner's key of every shard. */
const owners = (p: Placement): string[] =>
  Array.from({ length: p.shards }, (_, s) => p.slots[p.ownerOfShard(s)]!);

describe('placement', () => {
  it("a vehicle's shard is fixed across versions", () => {
    // Golden values: changing the hash moves every vehicle to another owner. (Changed once, from
    // 4 096 to 65 536 shards, before placement spanned nodes: no cluster relied on it yet.)
    assert.deepEqual(
      ['13912345678', '0', '1', '99999999999999999999'].map((v) => shardOf(v)),
      [57423, 36705, 30095, 20486],
    );
  });

  it('every process computes the same owners, whatever order the slots are listed in', () => {
    fc.assert(
      fc.property(
        fc
          .uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 12 })
          .chain((keys) =>
            fc.tuple(
              fc.constant(keys),
              fc.shuffledSubarray(keys, { minLength: keys.length, maxLength: keys.length }),
            ),
          ),
        ([keys, shuffled]) => {
          assert.deepEqual(owners(new Placement(keys, 256)), owners(new Placement(shuffled, 256)));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a joining slot takes only the shards it wins, about its share', () => {
    for (const n of [1, 2, 5, 16]) {
      const before = owners(new Placement(slots(n)));
      const after = owners(new Placement([...slots(n), 'joining']));
      let moved = 0;
      for (let s = 0; s < SHARDS; s++) {
        if (after[s] === before[s]) continue;
        assert.equal(after[s], 'joining', `shard ${s} moved between old slots`);
        moved++;
      }
      const ideal = SHARDS / (n + 1);
      assert.ok(
        moved > ideal * 0.8 && moved < ideal * 1.2,
        `${n}+1 slots: ${moved} moved, ideal ${ideal}`,
      );
    }
  });

  it('a leaving slot gives away only its own shards', () => {
    const before = owners(new Placement(slots(8)));
    const after = owners(new Placement(slots(8).filter((k) => k !== 'node-3')));
    for (let s = 0; s < SHARDS; s++)
      if (before[s] !== 'node-3') assert.equal(after[s], before[s], `shard ${s} moved`);
  });

  it('spreads the shards evenly at cluster sizes (every slot within 10 % of the mean at 16, 25 % at 256)', () => {
    const wide = new Placement(
      Array.from({ length: 256 }, (_, i) => slotKey(`node-${i >> 3}`, i & 7)),
    );
    const wideMean = SHARDS / 256;
    for (const l of wide.load()) assert.ok(Math.abs(l - wideMean) <= wideMean * 0.25, `load ${l}`);

    const load = new Placement(slots(16)).load();
    const mean = SHARDS / 16;
    assert.equal(
      load.reduce((a, b) => a + b, 0),
      SHARDS,
    );
    for (const l of load) assert.ok(Math.abs(l - mean) <= mean * 0.1, `load ${load.join(', ')}`);
  });

  it('looks a vehicle up through its shard', () => {
    const p = new Placement(slots(3));
    assert.equal(p.ownerOf('13912345678'), p.ownerOfShard(shardOf('13912345678')));
  });

  it('refuses no slots, duplicate keys and too many slots', () => {
    assert.throws(() => new Placement([]), RangeError);
    assert.throws(() => new Placement(['a', 'a']), RangeError);
    assert.throws(() => new Placement(slots(0x10000), 16), RangeError);
  });

  it('slots are (node, worker) pairs from the members, in the same order whatever order they are listed in', () => {
    const members = [
      { node: 'b', workers: 2 },
      { node: 'a', workers: 3 },
      { node: 'old', workers: 0 }, // hosts no vehicles
    ];
    const listed = clusterSlots(members);
    assert.deepEqual(listed, ['a/0', 'a/1', 'a/2', 'b/0', 'b/1']);
    assert.deepEqual(clusterSlots([...members].reverse()), listed);
    assert.deepEqual(parseSlotKey('node-1.x/12'), { node: 'node-1.x', worker: 12 });
    assert.equal(slotKey('a', 2), 'a/2');
  });
});
