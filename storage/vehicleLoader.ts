// Reads vehicle records for activation in batches: every vehicle asked for in the same turn of the
// event loop is read with one `find` by `$in` (up to `maxBatch` ids), at most `maxInFlight`
// reads run at once, and the rest wait their turn, so a burst of activations (a node start, a
// handoff, a locator burst) queues instead of opening thousands of reads that time out. Pure
// scheduling: the read itself is given, so tests inject failures without a database.

export interface VehicleLoaderOptions {
  /** Ids per read; default 256. */
  maxBatch?: number;
  /** Reads at once; default 4. */
  maxInFlight?: number;
  /** Vehicles waiting for a read; past it `load` rejects with LoadQueueFull. Default 100 000. */
  maxWaiting?: number;
}

export interface VehicleLoaderStats {
  /** Batched reads issued, and those that failed (every vehicle in one is rejected). */
  reads: number;
  failedReads: number;
  /** Vehicles asked for, and asked again while a read for them was already waiting. */
  requested: number;
  coalesced: number;
  /** Loads refused because maxWaiting vehicles were waiting. */
  refused: number;
  /** The largest number of vehicles waiting at once. */
  maxWaitingSeen: number;
}

/** A load refused because too many vehicles wait for a read; the caller retries later. */
export class LoadQueueFull extends Error {
  constructor(limit: number) {
    super(`${limit} vehicles are already waiting to be read`);
    this.name = 'LoadQueueFull';
  }
}

interface Waiter<R> {
  resolve(r: R | null): void;
  reject(err: unknown): void;
}

export class VehicleLoader<R extends { _id: string }> {
  readonly stats: VehicleLoaderStats = {
    reads: 0,
    failedReads: 0,
    requested: 0,
    coalesced: 0,
    refused: 0,
    maxWaitingSeen: 0,
  };
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly maxWaiting: number;
  /** Vehicles not yet in a read, in the order they were asked for. */
  private readonly waiting = new Map<string, Waiter<R>[]>();
  private inFlight = 0;
  private dispatchArmed = false;

  constructor(
    private readonly read: (ids: string[]) => Promise<R[]>,
    opts: VehicleLoaderOptions = {},
  ) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.maxWaiting = Math.max(1, opts.maxWaiting ?? 100_000);
  }

  /** The stored record of `id`, or null when there is none. */
  load(id: string): Promise<R | null> {
    this.stats.requested++;
    return new Promise((resolve, reject) => {
      const queued = this.waiting.get(id);
      if (queued) {
        this.stats.coalesced++;
        queued.push({ resolve, reject });
        return;
      }
      if (this.waiting.size >= this.maxWaiting) {
        this.stats.refused++;
        reject(new LoadQueueFull(this.maxWaiting));
        return;
      }
      this.waiting.set(id, [{ resolve, reject }]);
      this.stats.maxWaitingSeen = Math.max(this.stats.maxWaitingSeen, this.waiting.size);
      this.armDispatch();
    });
  }

  /** Vehicles waiting for a read to start. */
  get queued(): number {
    return this.waiting.size;
  }

  get reading(): number {
    return this.inFlight;
  }

  // One dispatch per turn: the activations of one batch of frames share their reads.
  private armDispatch(): void {
    if (this.dispatchArmed) return;
    this.dispatchArmed = true;
    setImmediate(() => {
      this.dispatchArmed = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.size > 0) {
      const batch = new Map<string, Waiter<R>[]>();
      for (const [id, waiters] of this.waiting) {
        batch.set(id, waiters);
        this.waiting.delete(id);
        if (batch.size >= this.maxBatch) break;
      }
      this.inFlight++;
      this.stats.reads++;
      void this.runRead(batch);
    }
  }

  private async runRead(batch: Map<string, Waiter<R>[]>): Promise<void> {
    let found: R[] | undefined;
    let failure: unknown;
    try {
      found = await this.read([...batch.keys()]);
    } catch (err) {
      failure = err;
    }
    this.inFlight--;
    if (found === undefined) {
      this.stats.failedReads++;
      for (const waiters of batch.values()) for (const w of waiters) w.reject(failure);
    } else {
      const byId = new Map<string, R>();
      for (const r of found) byId.set(r._id, r);
      for (const [id, waiters] of batch) {
        const r = byId.get(id) ?? null;
        // Each waiter gets its own copy: two activations of one id must not share state.
        waiters.forEach((w, i) => w.resolve(i === 0 || r === null ? r : structuredClone(r)));
      }
    }
    this.dispatch();
  }
}
