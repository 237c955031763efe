// The router's handoff waits, with the membership and the handoff markers faked: a gained shard
// waits for its previous owner's marker of the same placement *from the same membership revision
// or later*, so a marker left from an earlier time of the same placement (it came back after a
// flap, or a node rejoined under its old name) does not release it; a node whose applied
// placement comes back after a flap says so with a new marker.
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

const member = (node: string): Member => ({
  node,
  gateway: '127.0.0.1:1',
  peer: '127.0.0.1:2',
  startedAt: 0,
  workers: 1,
  load: { terminals: 0 } as Member['load'],
  reportedAt: 0,
});

function router(node: string, board: FakeBoard): ClusterRouter {
  const r = new ClusterRouter({ node, linkPrefix: `${node}/`, workers: 1, board, settleMs: 1 });
  r.attachLocal(threads);
  return r;
}

const settled = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('handoff markers name their placement and the revision it dates from', () => {
  it("a node rejoining under its old name does not take the others' marker of its first time", async () => {
    const board = new FakeBoard();
    // x and j hosted vehicles together before (placement P); x's marker of that time is left.
    const before = router('x', new FakeBoard());
    before.setMembers([member('x'), member('j')], 5);
    await settled();
    const signatureP = (before as unknown as { view: { signature: string } }).view.signature;
    await before.close();
    board.set('x', { signature: signatureP, since: 5, state: 'serving', at: 0 });

    // j registers again at revision 20: P once more, a new time of it.
    const j = router('j', board);
    j.registered(20);
    j.setMembers([member('x'), member('j')], 21);
    await settled();
    assert.ok(j.pendingShards > 0, "j waits for x's handoff of this time");

    board.set('x', { signature: signatureP, since: 20, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, 0, "x's marker of this time releases them");
    await j.close();
  });

  it('a placement that comes back after a flap is a new one: the node that never left it says so with a new marker', async () => {
    const board = new FakeBoard();
    const x = router('x', board);
    x.setMembers([member('x'), member('g')], 10);
    await settled();
    const applied = board.published.at(-1)!;
    assert.equal(applied.since, 0, 'the first view dates from the registration (none here)');
    // y joins and leaves again before x's settle time is over: x moves nothing…
    x.setMembers([member('x'), member('g'), member('y')], 30);
    x.setMembers([member('x'), member('g')], 31);
    await settled();
    const republished = board.published.at(-1)!;
    assert.deepEqual(
      { signature: republished.signature, since: republished.since, state: republished.state },
      { signature: applied.signature, since: 31, state: 'serving' },
      '…but its marker names the placement from the revision it came back at',
    );
    // Load reports (same slots) publish nothing more.
    const count = board.published.length;
    x.setMembers([member('x'), member('g')], 32);
    await settled();
    assert.equal(board.published.length, count);
    await x.close();
  });

  it('gained shards wait for a marker of the same placement and revision, or a left or dead node', async () => {
    const board = new FakeBoard();
    const j = router('j', board);
    j.registered(40);
    j.setMembers([member('x'), member('y'), member('j')], 41);
    await settled();
    assert.ok(j.pendingShards > 0);
    const signature = (j as unknown as { view: { signature: string } }).view.signature;
    const waiting = j.pendingShards;
    board.set('x', { signature: 'another placement', since: 45, state: 'serving', at: 0 });
    board.set('y', { signature, since: 39, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, waiting, 'neither another placement nor an older time counts');
    board.set('y', { signature: 'whatever', since: 0, state: 'left', at: 0 });
    assert.ok(j.pendingShards < waiting, "y's shards released: it left");
    board.set('x', { signature, since: 40, state: 'serving', at: 0 });
    assert.equal(j.pendingShards, 0, "x's shards released: its marker is of this time");
    await j.close();
  });
});
