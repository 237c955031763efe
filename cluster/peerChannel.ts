// This node's stream to one peer: frames of vehicles the peer owns, from terminals connected
// here, go out in one RouteBatch per turn of the event loop (never one message per frame); the
// peer's answers (frames to send, links to close, authentications) come back on the same stream
// and go to the links they name. Bounded: at most `maxInFlight` records the peer has not taken
// yet; past that `deliver` refuses and the gateway pauses the socket (nothing is dropped).
// When the stream breaks, the links that used it are closed: their terminals reconnect and
// send again what was not acknowledged (as when a worker dies).
import type { TerminalLink } from '../actors/vehicleActor.js';
import {
  applyToLink,
  FRAME_BATCH_FORMAT,
  FrameBatchBuilder,
  readFrameBatch,
} from '../hosting/frameBatch.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import { peerClient, type PeerClient, type RouteBatch, type RouteStream } from './peerService.js';

export interface PeerChannelOptions {
  /** This node's name and link id prefix, told to the peer on the stream's first message. */
  self: string;
  linkPrefix: string;
  /** The peer's node name and address (host:port of its peer service). */
  peer: string;
  address: string;
  maxInFlight: number;
  /** The links answers name (the gateway's, and relayed ones). */
  linkByNumber(n: number): TerminalLink | undefined;
  /** The peer took records: sockets paused for this channel may read again. */
  drained(): void;
  log?: (line: string) => void;
  /** How long a broken stream stays closed before the next delivery opens it again. */
  reconnectDelayMs?: number;
}

export interface PeerChannelStats {
  batchesOut: number;
  recordsOut: number;
  batchesIn: number;
  breaks: number;
  refused: number;
}

export class PeerChannel {
  readonly stats: PeerChannelStats = {
    batchesOut: 0,
    recordsOut: 0,
    batchesIn: 0,
    breaks: 0,
    refused: 0,
  };
  private client: PeerClient | undefined;
  private stream: RouteStream | undefined;
  /** The peer answered on the current stream: records may go (none are risked on a dead peer). */
  private ready = false;
  private failures = 0;
  private helloSent = false;
  /** Records out per hop count (0: our own terminals', 1-2: relayed for another node). */
  private readonly out = [
    new FrameBatchBuilder(),
    new FrameBatchBuilder(),
    new FrameBatchBuilder(),
  ];
  private flushScheduled = false;
  private inFlight = 0;
  /** Links whose frames crossed this stream: closed when it breaks. */
  private readonly links = new Set<number>();
  private closedUntil = 0;
  private reopenTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: PeerChannelOptions) {}

  get address(): string {
    return this.opts.address;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Queues a record for the peer; false when the peer has too many untaken (or is unreachable). */
  deliver(vehicleId: string, d: GatewayDelivery, hops: 0 | 1 | 2): boolean {
    if (this.closed) return false;
    if (d.kind === 'linkClosed' && !this.links.has(d.linkNumber)) {
      return true; // nothing of this link reached the peer: nothing to close there
    }
    if (!this.open() || !this.ready) {
      // Until the peer answers, frames wait at the gateway (its socket pauses).
      this.stats.refused++;
      return false;
    }
    if (d.kind !== 'linkClosed' && this.inFlight >= this.opts.maxInFlight) {
      this.stats.refused++;
      return false;
    }
    const out = this.out[hops]!;
    if (d.kind !== 'linkClosed' && !this.links.has(d.linkNumber)) {
      // The link's cluster-wide name goes first: a relayed link's number is the relay's own,
      // and the owner must know the terminal's session by its original id.
      out.linkName(d.linkNumber, d.link.id, d.link.node);
    }
    if (d.kind === 'uplink') {
      out.uplink(d.linkNumber, d.receivedAt, d.header, d.edition, d.body, d.seq);
      this.links.add(d.linkNumber);
    } else if (d.kind === 'platformMessage') {
      out.platformMessage(d.linkNumber, d.edition, d.messageId, d.phone, vehicleId, d.body, d.seq);
      this.links.add(d.linkNumber);
    } else {
      out.linkClosed(d.linkNumber, d.at, d.reason, vehicleId, d.seq, d.link.id);
      this.links.delete(d.linkNumber);
    }
    this.inFlight++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** A unary control-plane call on the peer. */
  callClient(): PeerClient {
    this.client ??= peerClient(this.opts.address);
    return this.client;
  }

  private open(): boolean {
    if (this.stream) return true;
    if (Date.now() < this.closedUntil) return false;
    try {
      const stream = this.callClient().route();
      this.stream = stream;
      this.ready = false;
      this.helloSent = false;
      stream.on('data', (b: RouteBatch) => this.answers(b));
      stream.on('error', (err: Error) => this.broken(stream, err.message));
      stream.on('end', () => this.broken(stream, 'the peer ended the stream'));
      return true;
    } catch (err) {
      this.broken(undefined, String(err));
      return false;
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const stream = this.stream;
    if (!stream) return;
    for (let hops = 0; hops < this.out.length; hops++) {
      const out = this.out[hops]!;
      if (out.count === 0) continue;
      this.stats.batchesOut++;
      this.stats.recordsOut += out.count;
      const batch: RouteBatch = {
        records: new Uint8Array(out.take()),
        consumed: 0,
        fromNode: this.helloSent ? '' : this.opts.self,
        linkPrefix: this.helloSent ? '' : this.opts.linkPrefix,
        hops,
        ...(this.helloSent ? {} : { format: FRAME_BATCH_FORMAT }),
      };
      this.helloSent = true;
      stream.write(batch);
    }
  }

  private answers(b: RouteBatch): void {
    this.stats.batchesIn++;
    if (!this.ready) {
      // The peer's first (empty) batch: it is there.
      this.ready = true;
      this.failures = 0;
      this.opts.drained();
    }
    if (b.records.length > 0) {
      readFrameBatch(b.records, (r) => applyToLink(r, this.opts.linkByNumber));
    }
    if (b.consumed > 0) {
      const wasFull = this.inFlight >= this.opts.maxInFlight;
      this.inFlight = Math.max(0, this.inFlight - b.consumed);
      if (wasFull) this.opts.drained();
    }
  }

  private broken(stream: RouteStream | undefined, why: string): void {
    if (stream !== undefined && stream !== this.stream) return; // an older stream's last words
    const wasReady = this.ready;
    this.stream = undefined;
    this.ready = false;
    for (const out of this.out) out.take();
    this.inFlight = 0;
    if (this.closed) return;
    // Reopened after a pause that grows while the peer stays away (a dead node until its
    // lease ends): its terminals' frames wait meanwhile instead of reconnecting every second.
    this.failures++;
    const delay = Math.min(
      5_000,
      (this.opts.reconnectDelayMs ?? 1000) * 2 ** Math.max(0, this.failures - 1),
    );
    this.closedUntil = Date.now() + delay;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = setTimeout(() => this.opts.drained(), delay);
    this.reopenTimer.unref();
    if (!wasReady) return; // nothing was sent on it
    this.stats.breaks++;
    this.opts.log?.(`router: stream to ${this.opts.peer} broke (${why}); closing its links`);
    // What crossed and was not answered is lost with the stream: those terminals connect again
    // and send what was not acknowledged.
    const links = [...this.links];
    this.links.clear();
    for (const n of links) this.opts.linkByNumber(n)?.close(`peer ${this.opts.peer} unreachable`);
  }

  /**
   * The peer left (or this node stops): what crossed and was not answered will not be, so the
   * links that used the stream are closed (their terminals connect again and resend).
   */
  close(): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
    this.flush();
    this.stream?.end();
    this.stream = undefined;
    this.client?.close();
    const links = [...this.links];
    this.links.clear();
    for (const n of links) this.opts.linkByNumber(n)?.close(`peer ${this.opts.peer} left`);
  }
}
