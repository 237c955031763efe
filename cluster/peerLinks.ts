// Links of terminals connected to other nodes, as this node's workers see them. A peer names its
// terminals' links by its own numbers; here each gets a number of this node's (the upper half of
// the u32 space: the gateway numbers its own links below PROXY_LINK_BASE) and keeps the peer's
// cluster-wide link id, so a vehicle that moves to another owner still knows its session. Pure
// code: what a link does when a vehicle sends on it is the caller's (cluster/peerInbound.ts).

import { PROXY_LINK_BASE } from '../hosting/frameBatch.js';

export interface ProxyLink<L> {
  /** This node's number for the link. */
  number: number;
  /** Which inbound stream it came from, and that peer's number for it. */
  stream: number;
  remote: number;
  /** What the stream's owner does with it (sends frames back to the peer, …). */
  link: L;
}

/**
 * The table of proxy links, by this node's number (each stream finds its own by the peer's
 * number: PeerInbound); at `limit` links a new one is refused (undefined).
 */
export class ProxyLinkTable<L> {
  private readonly byNumber = new Map<number, ProxyLink<L>>();
  private next = PROXY_LINK_BASE;
  refused = 0;

  constructor(readonly limit = 1_000_000) {}

  get size(): number {
    return this.byNumber.size;
  }

  /** A new proxy for a peer's link, made with `make(number)`; undefined at the limit. */
  allocate(stream: number, remote: number, make: (number: number) => L): ProxyLink<L> | undefined {
    if (this.byNumber.size >= this.limit) {
      this.refused++;
      return undefined;
    }
    let number = this.next;
    // Numbers are reused only after 2^31 links; skip any still held.
    while (this.byNumber.has(number)) number = this.advance(number);
    this.next = this.advance(number);
    const p: ProxyLink<L> = { number, stream, remote, link: make(number) };
    this.byNumber.set(number, p);
    return p;
  }

  get(number: number): ProxyLink<L> | undefined {
    return this.byNumber.get(number);
  }

  release(number: number): void {
    this.byNumber.delete(number);
  }

  /** Every proxy of one stream, released (the stream ended). */
  releaseStream(stream: number): ProxyLink<L>[] {
    const out: ProxyLink<L>[] = [];
    for (const p of this.byNumber.values()) if (p.stream === stream) out.push(p);
    for (const p of out) this.release(p.number);
    return out;
  }

  values(): IterableIterator<ProxyLink<L>> {
    return this.byNumber.values();
  }

  private advance(n: number): number {
    return n >= 0xffff_ffff ? PROXY_LINK_BASE : n + 1;
  }
}
