// A terminal's frames reach its vehicle in the order its gateway read them, whatever way they
// travelled. The gateway numbers every delivery of a connection (1, 2, 3, …); on their way a
// frame may be sent back by a worker that lost the vehicle, relayed by a node whose view of the
// membership was behind, or held at a new owner until the old one handed over, and so overtake
// one read before it. The vehicle takes them through this stage: the next number goes on, a
// later one waits for the gap to fill (bounded in count, and in time by the actor's timer),
// an earlier one (already passed, or its wait was given up) goes on at once: nothing is
// dropped. Pure logic: no timers, no I/O (the caller says what time it is).

interface LinkState<T> {
  /** The number the next frame in order has. */
  next: number;
  /** Frames past a gap, by number, with when each came. */
  held: Map<number, { item: T; at: number }>;
}

export interface LinkOrderStats {
  /** Frames that waited for an earlier one. */
  held: number;
  /** Gaps given up (waited too long, or too many frames behind them): their frames went on. */
  gapsSkipped: number;
  /** Frames older than the next number (their gap had been given up): passed at once. */
  late: number;
}

export function emptyLinkOrderStats(): LinkOrderStats {
  return { held: 0, gapsSkipped: 0, late: 0 };
}

export class LinkOrder<T> {
  private readonly links = new Map<string, LinkState<T>>();

  /**
   * @param maxHeld frames one vehicle may hold behind gaps; past it the gap is given up
   * @param maxLinks links remembered per vehicle (a terminal reconnecting leaves old ones)
   * @param stats counters, shared by the vehicles of a thread
   */
  constructor(
    private readonly maxHeld = 64,
    private readonly maxLinks = 4,
    readonly stats: LinkOrderStats = emptyLinkOrderStats(),
  ) {}

  /**
   * The link's frames up to `lastSeq` were taken by a previous owner (a saved session): its
   * next frame is `lastSeq + 1`.
   */
  resume(linkId: string, lastSeq: number): void {
    const s = this.state(linkId);
    if (s.held.size === 0) s.next = lastSeq + 1;
  }

  /** A frame numbered `seq` on the link, come at `now`: returns the frames that go on now, in order. */
  offer(linkId: string, seq: number, item: T, now = 0): T[] {
    const s = this.state(linkId);
    if (seq === s.next) {
      s.next++;
      if (s.held.size === 0) return [item];
      return [item, ...this.takeInOrder(s)];
    }
    if (seq < s.next) {
      this.stats.late++;
      return [item];
    }
    s.held.set(seq, { item, at: now });
    this.stats.held++;
    if (this.heldCount() <= this.maxHeld) return [];
    return this.skipGaps();
  }

  /** True while a frame waits for an earlier one. */
  get waiting(): boolean {
    for (const s of this.links.values()) if (s.held.size > 0) return true;
    return false;
  }

  /** The number of the last frame that went on, on this link (undefined: none yet). */
  lastSeq(linkId: string): number | undefined {
    const s = this.links.get(linkId);
    return s && s.next > 1 ? s.next - 1 : undefined;
  }

  /**
   * When the longest-waiting frame will have waited `waitMs` (undefined: none waits), so the
   * caller's timer fires when a gap is due, not earlier, not later.
   */
  nextDeadline(waitMs: number): number | undefined {
    let oldest: number | undefined;
    for (const s of this.links.values())
      for (const h of s.held.values()) if (oldest === undefined || h.at < oldest) oldest = h.at;
    return oldest === undefined ? undefined : oldest + waitMs;
  }

  /** Gives up the gaps whose frames have waited `waitMs` by `now`: they go on, in order. */
  skipExpired(now: number, waitMs: number): T[] {
    return this.skip((s) => {
      let oldest = Infinity;
      for (const h of s.held.values()) oldest = Math.min(oldest, h.at);
      return oldest <= now - waitMs;
    });
  }

  /** Gives up every gap (the vehicle leaves memory, or holds too many): all go on, in order. */
  skipGaps(): T[] {
    return this.skip(() => true);
  }

  private skip(due: (s: LinkState<T>) => boolean): T[] {
    const out: T[] = [];
    for (const s of this.links.values())
      while (s.held.size > 0 && due(s)) {
        this.stats.gapsSkipped++;
        s.next = Math.min(...s.held.keys());
        out.push(...this.takeInOrder(s));
      }
    return out;
  }

  private takeInOrder(s: LinkState<T>): T[] {
    const out: T[] = [];
    for (let h = s.held.get(s.next); h !== undefined; h = s.held.get(s.next)) {
      s.held.delete(s.next);
      s.next++;
      out.push(h.item);
    }
    return out;
  }

  private heldCount(): number {
    let n = 0;
    for (const s of this.links.values()) n += s.held.size;
    return n;
  }

  private state(linkId: string): LinkState<T> {
    let s = this.links.get(linkId);
    if (s) {
      // Least recently used first: the session's link, used by every frame, stays.
      this.links.delete(linkId);
      this.links.set(linkId, s);
      return s;
    }
    // A link first seen here starts at 1 (the gateway numbers each connection from 1).
    s = { next: 1, held: new Map() };
    if (this.links.size >= this.maxLinks) {
      // The least recently used link with nothing held goes.
      for (const [id, old] of this.links)
        if (old.held.size === 0) {
          this.links.delete(id);
          break;
        }
    }
    this.links.set(linkId, s);
    return s;
  }
}
