// What a placement change means for one node, and which shards wait for their previous owner:
// the shards it gains (by previous owner), how many it loses, and what each of its worker
// threads owns now (one bit per shard). Pure code: the router applies it (cluster/router.ts).
import { createHash } from 'node:crypto';
import { clusterSlots, parseSlotKey, Placement } from './placement.js';

/** A placement with each slot's node and worker. */
export class PlacementView {
  readonly placement: Placement;
  readonly nodes: readonly string[];
  readonly workers: readonly number[];
  /** Equal for equal slot lists: what handoff markers name. */
  readonly signature: string;

  constructor(members: readonly { node: string; workers: number }[]) {
    const slots = clusterSlots(members);
    this.placement = new Placement(slots);
    this.nodes = slots.map((k) => parseSlotKey(k).node);
    this.workers = slots.map((k) => parseSlotKey(k).worker);
    this.signature = PlacementView.signatureOf(members);
  }

  /** The signature of the placement over these members, without building it (cheap). */
  static signatureOf(members: readonly { node: string; workers: number }[]): string {
    return createHash('sha1').update(clusterSlots(members).join(',')).digest('base64url');
  }

  nodeOfShard(shard: number): string {
    return this.nodes[this.placement.ownerOfShard(shard)]!;
  }

  get shards(): number {
    return this.placement.shards;
  }
}

export interface HandoffPlan {
  /** Shards this node owns now that another live node owned before, by that node. */
  gained: Map<string, number[]>;
  /** Shards this node owned before and another owns now. */
  lost: number;
  /** Per local worker thread, one bit per shard it owns now. */
  owned: Uint8Array[];
}

/**
 * The plan for `self` going from `before` (undefined: nobody owned anything) to `after`, with
 * `localWorkers` worker threads.
 */
export function planHandoff(
  before: PlacementView | undefined,
  after: PlacementView,
  self: string,
  localWorkers: number,
): HandoffPlan {
  const gained = new Map<string, number[]>();
  let lost = 0;
  const owned = Array.from(
    { length: localWorkers },
    () => new Uint8Array(Math.ceil(after.shards / 8)),
  );
  for (let shard = 0; shard < after.shards; shard++) {
    const slot = after.placement.ownerOfShard(shard);
    const now = after.nodes[slot]!;
    const was = before?.nodeOfShard(shard);
    if (now === self) {
      const bits = owned[after.workers[slot]!];
      if (bits) bits[shard >>> 3] = (bits[shard >>> 3] ?? 0) | (1 << (shard & 7));
      if (was !== undefined && was !== self) {
        let list = gained.get(was);
        if (!list) gained.set(was, (list = []));
        list.push(shard);
      }
    } else if (was === self) {
      lost++;
    }
  }
  return { gained, lost, owned };
}
