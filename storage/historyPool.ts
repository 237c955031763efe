// The piscina pool history queries hand their CPU work to (storage/historyWorker.ts): a few
// threads, started on first use and ended when idle, and a bounded queue — past it a query is
// refused (ResultTooLarge's sibling, PoolBusy) rather than queued without limit.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { AreaShape } from './historyShapes.js';
import type { HistoryTask } from './historyWorker.js';

/** The pool's queue is full: try again later. */
export class PoolBusy extends Error {
  override name = 'PoolBusy';
}

export interface HistoryPoolOptions {
  /** Threads at most (default: half the cores, at least 1, at most 4). */
  threads?: number;
  /** Tasks waiting for a thread at most (default 64). */
  maxQueue?: number;
}

export class HistoryPool {
  private readonly pool: Piscina<HistoryTask, Uint8Array>;

  constructor(opts: HistoryPoolOptions = {}) {
    this.pool = new Piscina<HistoryTask, Uint8Array>({
      filename: new URL('./historyWorker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: opts.threads ?? Math.min(4, Math.max(1, Math.floor(availableParallelism() / 2))),
      maxQueue: opts.maxQueue ?? 64,
      idleTimeout: 30_000,
    });
  }

  private async run(task: HistoryTask): Promise<Uint8Array> {
    try {
      // The coordinates move to the worker (they are not used here afterwards).
      return await this.pool.run(task, {
        transferList: [task.latitude.buffer as ArrayBuffer, task.longitude.buffer as ArrayBuffer],
      });
    } catch (err) {
      if (err instanceof Error && err.message === 'Task queue is at limit')
        throw new PoolBusy('the history pool is busy: too many queries at once');
      throw err;
    }
  }

  /** Douglas-Peucker keep mask (see simplifyKeep). */
  simplify(
    latitude: Float64Array,
    longitude: Float64Array,
    toleranceM: number,
  ): Promise<Uint8Array> {
    return this.run({ kind: 'simplify', latitude, longitude, toleranceM });
  }

  /** Inside mask (see insideMask). */
  inside(latitude: Float64Array, longitude: Float64Array, shape: AreaShape): Promise<Uint8Array> {
    return this.run({ kind: 'inside', latitude, longitude, shape });
  }

  /** Tasks waiting for a thread now. */
  get queued(): number {
    return this.pool.queueSize;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
