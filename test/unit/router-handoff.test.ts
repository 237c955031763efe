// The router's handoff waits, with the membership and the handoff markers faked: a gained shard
// waits for its previous owner's marker of the same placement *made of the same registrations*
// (the newest member key's create revision), so a marker left from an earlier time of the same
// slot list (a node rejoined under its old name) does not release it, and nodes that read the
// membership at different moments still agree on what a placement is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HandoffMarker, HandoffMarkers, HandoffState } from '../../cluster/handoffBoard.js';
import type { Member } from '../../cluster/memberTable.js';
import { ClusterRouter } from '../../cluster/router.js';
import type { VehicleHost } from '../../hosting/vehicleHost.js';

class FakeBoard implements HandoffMarkers {
  readonly markers = new Map<string, HandoffMarker>();
  readonly published: { node: string; signature: string; since: number; state: HandoffState }[] =
    [];
  private readonly listeners: ((node: string, m: HandoffMarker) => void)[] = [];
  marker(node: string): HandoffMarker | undefined {
    return this.markers.get(node);
  }
  onMarker(fn: (node: string, m: HandoffMarker) => void): void {
    this.listeners.push(fn);
  }
  publish(node: string, signature: string, since: number, state: HandoffState): Promise<void> {
    this.published.push({ node, signature, since, state });
    this.set(node, { signature, since, state, at: 0 });
    return Promise.resolve();
  }
  /** Another node's marker arrives. */
  set(node: string, m: HandoffMarker): void {
    this.markers.set(node, m);
    for (const fn of this.listeners) fn(node, m);
  }
}

/** The local threads: take every placement at once, hand nothing off. */
const threads = {
  assign: () => Promise.resolve(0),
  onDrain: () => undefined,
  storageFull: () => false,
  close: () => Promise.resolve(),
} as unknown as VehicleHost;

const member = (node: string, createRevision: number): Member => ({
  node,
  gateway: '127.0.0.1:1',
  peer: '127.0.0.1:2',
  startedAt: 0,
  workers: 1,
  load: { terminals: 0 } as Member['load'],
  reportedAt: 0,
  createRevision,
});

function router(node: string, board: FakeBoard): ClusterRouter {
  const r = new ClusterRouter({ node, linkPrefix: `${node}/`, workers: 1, board, settleMs: 1 });
  r.attachLocal(threads);
  return r;
}

const settled = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('handoff markers name their placement and the registrations it is made of', () => {
  it("a node rejoining under its old name does not take the others' marker of its first time", async () => {
    const board = new FakeBoard();
    // x and j hosted vehicles together before (j's key then created at 2); x's marker of that
    // time is left.
    const before = router('x', new FakeBoard());
    before.setMembers([member('x', 1), member('j', 2)], 5);
    await settled();
    const signature = (before as unknown as { view: { signature: string } }).view.signature;
    await before.close();
    board.set('x', { signature, since: 2, state: 'serving', at: 0 });

    // j registers again: a new key, created at 20. The same slot list, another placement.
    const j = router('j', board);
    j.registered(20);
    j.setMembers([member('x', 1), member('j', 20)], 21);
    await settled();
    assert.ok(j.pendingShards > 0, "j waits for x's handoff of this time");

    board.set('x', { signature, since: 20, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, 0, "x's marker of this time releases them");
    await j.close();
  });

  it("two nodes that start together, each reading the other's key, each take the other's marker", async () => {
    const board = new FakeBoard();
    const a = router('a', board);
    const g = router('g', board);
    a.registered(10);
    g.registered(11);
    // a read the members after g registered: both first views hold both.
    const both = [member('a', 10), member('g', 11)];
    a.setMembers(both, 12);
    g.setMembers(both, 12);
    await settled();
    assert.deepEqual(
      board.published.map((p) => p.since),
      [11, 11],
      'both name the same registrations',
    );
    assert.equal(a.pendingShards + g.pendingShards, 0, 'nobody waits for a timeout');
    await a.close();
    await g.close();
  });

  it('a load report (same members, same keys) publishes nothing', async () => {
    const board = new FakeBoard();
    const x = router('x', board);
    x.setMembers([member('x', 3), member('g', 4)], 10);
    await settled();
    const count = board.published.length;
    x.setMembers([member('x', 3), member('g', 4)], 11);
    await settled();
    assert.equal(board.published.length, count);
    await x.close();
  });

  it('gained shards wait for a marker of the same placement and registrations, or a left or dead node', async () => {
    const board = new FakeBoard();
    const j = router('j', board);
    j.registered(40);
    j.setMembers([member('x', 1), member('y', 2), member('j', 40)], 41);
    await settled();
    assert.ok(j.pendingShards > 0);
    const signature = (j as unknown as { view: { signature: string } }).view.signature;
    const waiting = j.pendingShards;
    board.set('x', { signature: 'another placement', since: 45, state: 'serving', at: 0 });
    board.set('y', { signature, since: 39, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, waiting, 'neither another placement nor older keys count');
    board.set('y', { signature: 'whatever', since: 0, state: 'left', at: 0 });
    assert.ok(j.pendingShards < waiting, "y's shards released: it left");
    board.set('x', { signature, since: 40, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, 0, "x's shards released: its marker is of this placement");
    j.setMembers([member('x', 1), member('j', 40)], 50); // y's key goes
    await j.close();
  });
});
