// What the locator decided, for operators (gRPC ListDecisions, the dashboard's Locator panel):
// the last decisions in a ring, and per node how many terminals it was given in each 10 s of the
// last 15 minutes. Both bounded: the ring holds `capacity` decisions (the oldest overwritten),
// a decision keeps at most `maxCandidates` candidates' loads (the lightest), and the buckets are
// `buckets` long with at most `maxNodesPerBucket` nodes each (past it, counted as `otherNodes`).
import type { Candidate, Choice } from '../cluster/locatorPolicy.js';

/** Why this node (or none). */
export type DecisionReason =
  /** The least loaded relative to capacity (no zone known or none preferred). */
  | 'least-loaded'
  /** A node of the terminal's zone with room. */
  | 'zone'
  /** A draining node was lighter than the one chosen: the drain decided. */
  | 'drain'
  /** Not the preferred choice: the terminal's zone had no node with room, or every node was full. */
  | 'fallback'
  /** No node could take the terminal (none live, or all draining): it was refused. */
  | 'no-node';

/** Where the decision was asked for: a terminal at the JT/T 808 endpoint, or gRPC Locate. */
export type DecisionSource = 'jt808' | 'locate';

export interface CandidateLoad {
  node: string;
  zone: string;
  capacity: number;
  /** Terminals at its last report. */
  terminals: number;
  /** This locator's assignments to it since that report. */
  assigned: number;
  draining: boolean;
}

export interface Decision {
  /** 1, 2, … since the locator started. */
  seq: number;
  atUnixMs: number;
  vehicleId: string;
  /** The phone as in the terminal's header ('' for a Locate by vehicle id). */
  phone: string;
  source: DecisionSource;
  /** '' when no node could take it. */
  node: string;
  reason: DecisionReason;
  /** The terminal's zone ('' when none is known) and the chosen node's. */
  terminalZone: string;
  nodeZone: string;
  inZone: boolean;
  overCapacity: boolean;
  /** The candidates' loads as the choice saw them, lightest first. */
  candidates: CandidateLoad[];
}

export interface DecisionBucket {
  startUnixMs: number;
  /** Terminals sent to each node in this bucket. */
  byNode: Record<string, number>;
  /** Decisions for nodes past `maxNodesPerBucket`. */
  otherNodes: number;
  /** Terminals no node could take. */
  noNode: number;
}

export interface DecisionLogOptions {
  /** Decisions kept (default 1 000). */
  capacity: number;
  /** Candidates kept per decision (default 16). */
  maxCandidates: number;
  /** Width of a count bucket (default 10 000 ms). */
  bucketMs: number;
  /** Buckets kept, the current one included (default 90: 15 minutes). */
  buckets: number;
  /** Nodes counted by name per bucket (default 64). */
  maxNodesPerBucket: number;
}

export const DEFAULT_DECISION_LOG: DecisionLogOptions = {
  capacity: 1000,
  maxCandidates: 16,
  bucketMs: 10_000,
  buckets: 90,
  maxNodesPerBucket: 64,
};

const utilisation = (c: { terminals: number; assigned: number; capacity: number }): number =>
  c.capacity > 0 ? (c.terminals + c.assigned) / c.capacity : Infinity;

/** The reason of a choice among `candidates` for a terminal of `zone`. */
export function reasonOf(
  candidates: readonly Candidate[],
  zone: string | undefined,
  choice: Choice | undefined,
): DecisionReason {
  if (!choice) return 'no-node';
  if (choice.overCapacity || (zone !== undefined && !choice.inZone)) return 'fallback';
  if (choice.inZone) return 'zone';
  const chosen = utilisation(choice.candidate);
  if (candidates.some((c) => c.draining && c.capacity > 0 && utilisation(c) < chosen))
    return 'drain';
  return 'least-loaded';
}

export class DecisionLog {
  readonly options: DecisionLogOptions;
  private readonly ring: (Decision | undefined)[];
  /** Decisions recorded since start: the next one's seq is total + 1. */
  private total = 0;
  private readonly buckets: DecisionBucket[] = [];
  private readonly listeners = new Set<(d: Decision) => void>();

  constructor(options: Partial<DecisionLogOptions> = {}) {
    this.options = { ...DEFAULT_DECISION_LOG, ...options };
    for (const k of Object.keys(this.options) as (keyof DecisionLogOptions)[]) {
      const v = this.options[k];
      if (!Number.isInteger(v) || v < 1) throw new Error(`DecisionLog: ${k} must be ≥ 1`);
    }
    this.ring = new Array<Decision | undefined>(this.options.capacity);
  }

  /** Decisions recorded since start (more than the ring holds once it is full). */
  get recorded(): number {
    return this.total;
  }

  record(d: Omit<Decision, 'seq' | 'candidates'> & { candidates: readonly Candidate[] }): Decision {
    const candidates = d.candidates
      .map((c) => ({
        node: c.node,
        zone: c.zone,
        capacity: c.capacity,
        terminals: c.terminals,
        assigned: c.assigned,
        draining: c.draining,
      }))
      .sort((a, b) => utilisation(a) - utilisation(b) || (a.node < b.node ? -1 : 1))
      .slice(0, this.options.maxCandidates);
    const decision: Decision = { ...d, seq: ++this.total, candidates };
    this.ring[(decision.seq - 1) % this.options.capacity] = decision;
    this.count(decision);
    for (const fn of this.listeners) fn(decision);
    return decision;
  }

  /** Calls `fn` with each decision recorded from now on; returns the unsubscribe. */
  subscribe(fn: (d: Decision) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The newest `limit` decisions (at most the ring's capacity) after `afterSeq`, newest first. */
  list(limit: number, afterSeq = 0): Decision[] {
    const out: Decision[] = [];
    const n = Math.min(limit, this.options.capacity, this.total);
    for (let seq = this.total; seq > this.total - n && seq > afterSeq; seq--) {
      out.push(this.ring[(seq - 1) % this.options.capacity] as Decision);
    }
    return out;
  }

  /**
   * The count buckets of the last `buckets × bucketMs` up to `now`, oldest first, every one of
   * them (a bucket without decisions is empty).
   */
  counts(now: number): DecisionBucket[] {
    this.expire(now);
    const { bucketMs, buckets } = this.options;
    const current = Math.floor(now / bucketMs) * bucketMs;
    const byStart = new Map(this.buckets.map((b) => [b.startUnixMs, b]));
    const out: DecisionBucket[] = [];
    for (let i = buckets - 1; i >= 0; i--) {
      const start = current - i * bucketMs;
      const b = byStart.get(start);
      out.push(
        b
          ? { ...b, byNode: { ...b.byNode } }
          : { startUnixMs: start, byNode: {}, otherNodes: 0, noNode: 0 },
      );
    }
    return out;
  }

  private count(d: Decision): void {
    const { bucketMs, maxNodesPerBucket } = this.options;
    const start = Math.floor(d.atUnixMs / bucketMs) * bucketMs;
    let b = this.buckets.find((x) => x.startUnixMs === start);
    if (!b) {
      b = { startUnixMs: start, byNode: {}, otherNodes: 0, noNode: 0 };
      this.buckets.push(b);
      this.buckets.sort((x, y) => x.startUnixMs - y.startUnixMs);
    }
    if (d.node === '') b.noNode++;
    else if (Object.hasOwn(b.byNode, d.node)) b.byNode[d.node]!++;
    else if (Object.keys(b.byNode).length < maxNodesPerBucket) b.byNode[d.node] = 1;
    else b.otherNodes++;
    this.expire(d.atUnixMs);
  }

  /** Drops the buckets older than the window ending at `now`. */
  private expire(now: number): void {
    const { bucketMs, buckets } = this.options;
    const oldest = Math.floor(now / bucketMs) * bucketMs - (buckets - 1) * bucketMs;
    while (this.buckets.length > 0 && this.buckets[0]!.startUnixMs < oldest) this.buckets.shift();
    // A clock stepping back leaves later buckets behind: never more than the window's count.
    while (this.buckets.length > buckets) this.buckets.shift();
  }
}
