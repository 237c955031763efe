// Where a vehicle lives: vehicle id → one of a fixed number of shards → the owner slot chosen by
// rendezvous (highest-random-weight) hashing over the live slots (ARCHITECTURE.md, Placement).
// When a slot joins, only the shards it wins move to it; when one leaves, only its shards move.
// A slot is one worker thread of one node, (node, worker), from the membership (`clusterSlots`);
// one node alone places over its own workers the same way (`workerSlots`). Pure code.
import { fnv1a, mix32, SHARDS, shardOf } from '../domain/shard.js';

export { SHARDS, shardOf } from '../domain/shard.js';

/** The key of one slot: worker `worker` of node `node` (node names never hold '/'). */
export function slotKey(node: string, worker: number): string {
  return `${node}/${worker}`;
}

/** A slot key's node and worker. */
export function parseSlotKey(key: string): { node: string; worker: number } {
  const i = key.lastIndexOf('/');
  return { node: key.slice(0, i), worker: Number(key.slice(i + 1)) };
}

/** The slot keys of a node's worker threads when it places over them alone (no cluster). */
export function workerSlots(workers: number): string[] {
  return Array.from({ length: workers }, (_, i) => `worker-${i}`);
}

/** Vehicle → worker for a node placing over its own workers alone, as a cluster would. */
export function ownWorkers(workers: number): (vehicleId: string) => number {
  const placement = new Placement(workerSlots(workers));
  return (vehicleId) => placement.ownerOf(vehicleId);
}

/**
 * Every slot of the cluster, from its members and the worker threads each advertises, sorted so
 * that every node derives the same list from the same membership.
 */
export function clusterSlots(members: Iterable<{ node: string; workers: number }>): string[] {
  const out: string[] = [];
  for (const m of members) for (let w = 0; w < m.workers; w++) out.push(slotKey(m.node, w));
  return out.sort();
}

/**
 * The owners of all shards over a set of slots, named by stable keys (e.g. "node-a/3"). Built
 * once per membership change (shards × slots hashes); a lookup is a hash and an array read.
 */
export class Placement {
  /** Slot index (into `slots`) per shard. */
  private readonly owner: Uint16Array;

  constructor(
    readonly slots: readonly string[],
    readonly shards = SHARDS,
  ) {
    if (slots.length === 0) throw new RangeError('placement needs at least one slot');
    if (slots.length > 0xffff) throw new RangeError('at most 65535 slots');
    if (new Set(slots).size !== slots.length) throw new RangeError('slot keys must be unique');
    const seeds = slots.map(fnv1a);
    this.owner = new Uint16Array(shards);
    for (let shard = 0; shard < shards; shard++) {
      let best = 0;
      let bestWeight = -1;
      for (let i = 0; i < seeds.length; i++) {
        const w = mix32(seeds[i]! ^ Math.imul(shard + 1, 0x9e3779b1));
        // Ties (rare) go to the smaller key, so the order slots are listed in never matters.
        if (w > bestWeight || (w === bestWeight && slots[i]! < slots[best]!)) {
          best = i;
          bestWeight = w;
        }
      }
      this.owner[shard] = best;
    }
  }

  /** The index in `slots` of the shard's owner. */
  ownerOfShard(shard: number): number {
    return this.owner[shard]!;
  }

  /** The index in `slots` of the vehicle's owner. */
  ownerOf(vehicleId: string): number {
    return this.owner[shardOf(vehicleId, this.shards)]!;
  }

  /** Shards per slot, in `slots` order. */
  load(): number[] {
    const out = new Array<number>(this.slots.length).fill(0);
    for (const o of this.owner) out[o]!++;
    return out;
  }
}
