// Where nodes tell each other how far their handoff has come, in etcd under
// `fleetmesh/handoff/<node>`: the placement a node has applied (by its signature, and the
// membership revision from which the members had that placement) once the vehicles it lost are
// saved and their writes are in the database, and whether it is leaving or has left. A node that
// gained shards from another holds their frames until that node's marker names the same
// placement from the same revision or later (or says it left, or it died): a placement that came
// back after a flap (P1 → P2 → P1) is a new one, and a marker of its first time does not count.
// Not on a lease: "left" must outlive the leaver's lease.
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';

export type HandoffState = 'serving' | 'leaving' | 'left';

export interface HandoffMarker {
  /** The signature of the placement the node has applied and handed off under. */
  signature: string;
  /** The membership revision from which the members had that placement (0: not known). */
  since: number;
  state: HandoffState;
  at: number;
}

/** What the router needs of the board (a fake serves unit tests). */
export interface HandoffMarkers {
  marker(node: string): HandoffMarker | undefined;
  onMarker(fn: (node: string, marker: HandoffMarker) => void): void;
  publish(node: string, signature: string, since: number, state: HandoffState): Promise<void>;
}

/** Parses a marker; undefined for anything else (ignored). */
export function parseMarker(value: string): HandoffMarker | undefined {
  if (value.length > 1024) return undefined;
  try {
    const v = JSON.parse(value) as Partial<HandoffMarker>;
    if (
      typeof v.signature === 'string' &&
      (v.state === 'serving' || v.state === 'leaving' || v.state === 'left') &&
      typeof v.at === 'number'
    )
      return {
        signature: v.signature,
        since: typeof v.since === 'number' && Number.isFinite(v.since) ? v.since : 0,
        state: v.state,
        at: v.at,
      };
  } catch {
    // not a marker
  }
  return undefined;
}

export class HandoffBoard implements HandoffMarkers {
  private readonly markers = new Map<string, HandoffMarker>();
  private readonly listeners = new Set<(node: string, marker: HandoffMarker) => void>();
  private watcher: Watcher | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly prefix = 'fleetmesh/handoff/',
  ) {}

  /** Reads every marker and follows their changes. */
  async start(): Promise<void> {
    const all = await this.etcd.getAll().prefix(this.prefix).exec();
    for (const kv of all.kvs) this.apply(kv);
    this.watcher = await this.etcd
      .watch()
      .prefix(this.prefix)
      .startRevision(String(Number(all.header.revision) + 1))
      .create();
    this.watcher.on('put', (kv: IKeyValue) => this.apply(kv));
    this.watcher.on('error', () => undefined); // the client resumes the watch by itself
  }

  private apply(kv: IKeyValue): void {
    const node = kv.key.toString().slice(this.prefix.length);
    const marker = parseMarker(kv.value.toString());
    if (!marker) return;
    this.markers.set(node, marker);
    for (const fn of this.listeners) fn(node, marker);
  }

  marker(node: string): HandoffMarker | undefined {
    return this.markers.get(node);
  }

  onMarker(fn: (node: string, marker: HandoffMarker) => void): void {
    this.listeners.add(fn);
  }

  async publish(
    node: string,
    signature: string,
    since: number,
    state: HandoffState,
  ): Promise<void> {
    await this.etcd
      .put(`${this.prefix}${node}`)
      .value(JSON.stringify({ signature, since, state, at: Date.now() }));
  }

  async close(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
  }
}
