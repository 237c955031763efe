// Vehicle events across the cluster: a subscriber on any node (the gRPC event stream, the
// dashboard) sees the events of every node's vehicles. Each node serves the events of its own
// vehicles to its peers (`servePeerEvents`, from the node's local hub only, so nothing loops)
// and follows each peer's for the kinds its own subscribers want (`PeerEventFeed`, into the
// node's cluster hub). Best effort, like the public stream: what a slow peer cannot take is
// dropped and counted, never queued without bound.
import type * as grpc from '@grpc/grpc-js';
import { EVENT_KINDS, type VehicleEvent, type VehicleEventKind } from '../actors/vehicleEvents.js';
import type { EventHub } from '../actors/eventHub.js';
import {
  fromPeerJson,
  toPeerJson,
  type EventBatch,
  type EventsRequest,
  type PeerClient,
} from './peerService.js';

/** Events a peer's stream may have waiting before newer ones are dropped. */
export const MAX_PEER_EVENT_BACKLOG = 10_000;

export type EventsServerStream = grpc.ServerWritableStream<EventsRequest, EventBatch>;

/**
 * Streams this node's own events of the kinds asked for, one batch per turn of the event loop;
 * the first (empty) batch once `applied` says the vehicles produce them.
 */
export function servePeerEvents(
  call: EventsServerStream,
  local: EventHub,
  applied: () => Promise<void>,
  maxBacklog = MAX_PEER_EVENT_BACKLOG,
): void {
  const known = new Set<string>(EVENT_KINDS);
  const kinds = new Set(call.request.kinds.filter((k) => known.has(k)) as VehicleEventKind[]);
  let pending: VehicleEvent[] = [];
  let dropped = 0;
  let scheduled = false;
  let blocked = false;
  let ended = false;
  const flush = (): void => {
    scheduled = false;
    if (ended || blocked || (pending.length === 0 && dropped === 0)) return;
    const batch: EventBatch = { eventsJson: toPeerJson(pending), dropped };
    pending = [];
    dropped = 0;
    if (!call.write(batch)) blocked = true;
  };
  const unsubscribe =
    kinds.size === 0
      ? () => undefined
      : local.subscribe({ kinds }, (e) => {
          if (pending.length >= maxBacklog) {
            dropped++;
            return;
          }
          pending.push(e);
          if (!scheduled && !blocked) {
            scheduled = true;
            setImmediate(flush);
          }
        });
  call.on('drain', () => {
    blocked = false;
    flush();
  });
  const end = (): void => {
    if (ended) return;
    ended = true;
    unsubscribe();
  };
  call.on('cancelled', end);
  call.on('close', end);
  call.on('error', end);
  applied().then(
    () => {
      if (!ended) call.write({ eventsJson: '[]', dropped: 0 });
    },
    () => undefined,
  );
}

/** One peer's events, followed for the given kinds, published into this node's cluster hub. */
export class PeerEventFeed {
  private stream: grpc.ClientReadableStream<EventBatch> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readyResolve: (() => void) | undefined;
  /** Resolves once the peer produces the kinds asked for (or the feed closes). */
  ready: Promise<void>;
  /** Events the peer dropped for us, and batches received. */
  dropped = 0;
  batches = 0;

  constructor(
    private readonly client: () => PeerClient | undefined,
    private readonly self: string,
    readonly kinds: ReadonlySet<VehicleEventKind>,
    private readonly publish: (e: VehicleEvent) => void,
  ) {
    this.ready = new Promise((r) => (this.readyResolve = r));
    this.open();
  }

  private open(): void {
    if (this.closed) return;
    const client = this.client();
    if (!client) {
      this.retryTimer = setTimeout(() => this.open(), 1000);
      this.retryTimer.unref();
      return;
    }
    const stream = client.events({ kinds: [...this.kinds], fromNode: this.self });
    this.stream = stream;
    stream.on('data', (b: EventBatch) => {
      this.batches++;
      this.dropped += b.dropped;
      this.readyResolve?.();
      for (const e of fromPeerJson<VehicleEvent[]>(b.eventsJson)) this.publish(e);
    });
    const again = (): void => {
      if (this.stream !== stream || this.closed) return;
      this.stream = undefined;
      // The peer went away or restarted: follow it again shortly (it may be gone for good:
      // the router closes the feed when the member leaves).
      this.retryTimer = setTimeout(() => this.open(), 1000);
      this.retryTimer.unref();
    };
    stream.on('error', again);
    stream.on('end', again);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.stream = undefined;
    this.readyResolve?.();
  }
}
