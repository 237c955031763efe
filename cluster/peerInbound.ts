// One peer's stream into this node: records of terminals connected to the peer, for vehicles
// this node owns (or, while views of the membership differ, relayed once to the owner). Each of
// the peer's links becomes a proxy link here (cluster/peerLinks.ts) whose frames go back on the
// same stream. Records the vehicles' side cannot take now wait here in order (bounded by the
// peer's credit, which counts only what was taken) and are offered again on `retry`.
import type { TerminalLink } from '../actors/vehicleActor.js';
import { vehicleIdOf, type Edition } from '../jt808/header.js';
import {
  deliveryOf,
  FRAME_BATCH_FORMAT,
  FrameBatchBuilder,
  LINK_CLOSED,
  LINK_NAME,
  PLATFORM_MESSAGE,
  readFrameBatch,
  UPLINK,
  type BatchRecord,
} from '../hosting/frameBatch.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import type { ProxyLink, ProxyLinkTable } from './peerLinks.js';
import type { RouteBatch, RouteServerStream } from './peerService.js';

/** Where an inbound record goes: the router decides local or onward (false: not now). */
export type InboundDeliver = (vehicleId: string, d: GatewayDelivery, hops: number) => boolean;

/** A terminal connected to another node, as this node's vehicles see it. */
export class ProxyTerminalLink implements TerminalLink {
  /** The vehicle its frames named (for closing the links of a dead worker's vehicles). */
  vehicleId: string | undefined;
  constructor(
    readonly id: string,
    readonly node: string,
    private readonly inbound: PeerInbound,
    private readonly remote: number,
  ) {}
  send(frame: Uint8Array): void {
    this.inbound.answer((out) => out.send(this.remote, frame));
  }
  close(reason: string): void {
    this.inbound.answer((out) => out.close(this.remote, reason));
  }
  authenticated(vehicleId: string, edition: Edition): void {
    this.inbound.answer((out) => out.authenticated(this.remote, edition, vehicleId));
  }
}

let streams = 0;

export class PeerInbound {
  readonly id = ++streams;
  peer = '';
  private prefix = '';
  private readonly out = new FrameBatchBuilder();
  /** Cluster-wide names of the peer's links (LINK_NAME), until they close. */
  private readonly names = new Map<number, { id: string; node: string }>();
  /** This stream's proxies by the peer's link number. */
  private readonly mine = new Map<number, ProxyLink<ProxyTerminalLink>>();
  private lastPhone = '';
  private lastVehicle = '';
  private consumed = 0;
  private flushScheduled = false;
  /** Records the vehicles' side could not take yet, per vehicle in order (one vehicle waiting
   * for its handoff does not hold up the others). */
  private readonly waiting = new Map<string, { d: GatewayDelivery; hops: number }[]>();
  private waitingCount = 0;
  private ended = false;

  constructor(
    private readonly stream: RouteServerStream,
    private readonly proxies: ProxyLinkTable<ProxyTerminalLink>,
    private readonly deliver: InboundDeliver,
    private readonly onEnd: (inbound: PeerInbound, links: ProxyLink<ProxyTerminalLink>[]) => void,
  ) {
    stream.on('data', (b: RouteBatch) => this.batch(b));
    // The caller sends nothing until this node answers: a dead node never takes a frame.
    stream.write({
      records: new Uint8Array(0),
      consumed: 0,
      fromNode: '',
      linkPrefix: '',
      hops: 0,
    });
    stream.on('error', () => this.end());
    stream.on('end', () => this.end());
    stream.on('close', () => this.end());
  }

  /** Records held because the vehicles' side was full. */
  get held(): number {
    return this.waitingCount;
  }

  private batch(b: RouteBatch): void {
    if (b.fromNode && (b.format ?? 0) !== FRAME_BATCH_FORMAT) {
      // A node of another version: its records would be misread, so none is taken.
      this.stream.destroy(
        new Error(
          `peer ${b.fromNode} sends frame records of format ${b.format ?? 0}; this node reads ${FRAME_BATCH_FORMAT} (nodes of different versions)`,
        ),
      );
      return;
    }
    if (b.fromNode) this.peer = b.fromNode;
    if (b.linkPrefix) this.prefix = b.linkPrefix;
    try {
      readFrameBatch(b.records, (r) => this.record(r, b.hops));
    } catch (err) {
      // A peer speaking another format: nothing of it can be trusted.
      this.stream.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.retry();
  }

  private record(r: BatchRecord, hops: number): void {
    if (r.kind === LINK_NAME) {
      if (this.names.size < this.proxies.limit) this.names.set(r.link, { id: r.id, node: r.node });
      return;
    }
    if (r.kind !== UPLINK && r.kind !== LINK_CLOSED && r.kind !== PLATFORM_MESSAGE) return;
    const vehicleId = r.kind === UPLINK ? this.vehicleOf(r.header.phone) : r.vehicleId;
    if (r.kind === LINK_CLOSED) {
      const proxy = this.proxyOf(r.link);
      this.names.delete(r.link);
      if (!proxy) {
        this.taken(); // a link refused at the limit: nothing to close here, but its credit returns
        return;
      }
      this.proxies.release(proxy.number);
      this.mine.delete(r.link);
      this.offer(vehicleId, deliveryOf(r, proxy.link, proxy.number)!, hops);
      return;
    }
    const proxy = this.proxyOf(r.link);
    if (!proxy) {
      // Too many links from peers: the terminal is closed and reconnects (nothing was acknowledged).
      this.answer((out) => out.close(r.link, 'too many links on the owner node'));
      this.consumed++;
      return;
    }
    proxy.link.vehicleId = vehicleId;
    this.offer(vehicleId, deliveryOf(r, proxy.link, proxy.number)!, hops);
  }

  /** This stream's proxy for the peer's link (made on first use; undefined at the table's limit). */
  private proxyOf(remote: number): ProxyLink<ProxyTerminalLink> | undefined {
    let proxy = this.mine.get(remote);
    if (proxy) return proxy;
    proxy = this.proxies.allocate(this.id, remote, () => this.proxyLink(remote));
    if (proxy) this.mine.set(remote, proxy);
    return proxy;
  }

  /** The vehicle of a header's phone; the last one is remembered (a link's frames repeat it). */
  private vehicleOf(phone: string): string {
    if (phone !== this.lastPhone) {
      this.lastPhone = phone;
      this.lastVehicle = vehicleIdOf(phone);
    }
    return this.lastVehicle;
  }

  private proxyLink(remote: number): ProxyTerminalLink {
    const name = this.names.get(remote);
    return new ProxyTerminalLink(
      name?.id ?? `${this.prefix}${remote}`,
      name?.node ?? this.peer,
      this,
      remote,
    );
  }

  private offer(vehicleId: string, d: GatewayDelivery, hops: number): void {
    // In order per vehicle: once one of its records waits, its later ones wait behind it.
    const queue = this.waiting.get(vehicleId);
    if (queue === undefined && this.deliver(vehicleId, d, hops)) {
      this.taken();
      return;
    }
    if (queue) queue.push({ d, hops });
    else this.waiting.set(vehicleId, [{ d, hops }]);
    this.waitingCount++;
  }

  private taken(): void {
    this.consumed++;
    this.schedule();
  }

  /** Offers the held records again (the vehicles' side drained, or the placement changed). */
  retry(): void {
    let n = 0;
    for (const [vehicleId, queue] of this.waiting) {
      while (queue.length > 0 && this.deliver(vehicleId, queue[0]!.d, queue[0]!.hops)) {
        queue.shift();
        n++;
      }
      if (queue.length === 0) this.waiting.delete(vehicleId);
    }
    if (n > 0) {
      this.waitingCount -= n;
      this.consumed += n;
      this.schedule();
    }
  }

  /** Queues something for the peer's terminals on this stream. */
  answer(write: (out: FrameBatchBuilder) => void): void {
    if (this.ended) return;
    write(this.out);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled || this.ended) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.ended || (this.out.count === 0 && this.consumed === 0)) return;
    const batch: RouteBatch = {
      records: new Uint8Array(this.out.take()),
      consumed: this.consumed,
      fromNode: '',
      linkPrefix: '',
      hops: 0,
    };
    this.consumed = 0;
    this.stream.write(batch);
  }

  /** The stream is over: its links' vehicles hear they closed; held records are dropped unacknowledged. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.waiting.clear();
    this.waitingCount = 0;
    this.names.clear();
    this.mine.clear();
    this.onEnd(this, this.proxies.releaseStream(this.id));
    try {
      this.stream.end();
    } catch {
      // already gone
    }
  }
}
