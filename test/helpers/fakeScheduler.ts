// A scheduler whose clock moves only when the test says so.
import type { Scheduler } from '../../actors/runtime.js';

export class FakeScheduler implements Scheduler {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves the clock, firing due timers in order (and those they start, if due). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      let at = Infinity;
      for (const e of this.timers.values()) if (e.at <= end && e.at < at) at = e.at;
      if (at === Infinity) break;
      this.t = at;
      // Like Node's timers phase: every timer due at this instant fires before the next turn
      // (so what they start in the same turn, such as one batched read, starts together).
      for (const [id, e] of [...this.timers]) {
        if (e.at !== at || !this.timers.has(id)) continue;
        this.timers.delete(id);
        e.fn();
        await Promise.resolve();
      }
      await new Promise((r) => setImmediate(r));
    }
    this.t = end;
    await new Promise((r) => setImmediate(r));
  }
}
