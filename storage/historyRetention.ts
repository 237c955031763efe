// Retention per collection. FerretDB has no TTL indexes, so history is trimmed by a sweep the
// node runs on a timer: for each collection, documents older than its retention are deleted in
// bounded batches (ids read by the time field, then deleted by _id, which FerretDB answers from
// the _id index), at most `maxPerSweep` per collection per sweep so one sweep never holds the
// store for long; what is left waits for the next sweep. Every node may run it: deleting is
// idempotent, a second node only repeats a little work.
import type { Db, Document } from 'mongodb';
import { MEDIA_BUCKET } from './mediaStore.js';
import { COLLECTIONS } from './schema.js';
import { DAY_MS, InvalidQuery } from './historyQuery.js';

/** Days each collection keeps (0: forever). */
export interface RetentionPolicy {
  positions: number;
  alarms: number;
  sessions: number;
  commands: number;
  driverRecords: number;
  /** Driving-behaviour episodes (aged by their end). */
  drivingBehaviour: number;
  /** Photos, audio and video (the GridFS bucket's files and their chunks). */
  media: number;
}

/**
 * Six months of track, a year of alarms, driver records, driving behaviour and media, three
 * months of sessions and command logs.
 */
export const DEFAULT_RETENTION: RetentionPolicy = {
  positions: 180,
  alarms: 365,
  sessions: 90,
  commands: 90,
  driverRecords: 365,
  drivingBehaviour: 365,
  media: 365,
};

/**
 * What ages a document, per collection. Alarms age by their end: an open alarm (endTime null)
 * is never deleted, its vehicle's actor still holds it.
 */
const AGE_FIELD: Record<keyof RetentionPolicy, string> = {
  positions: 'time',
  alarms: 'endTime',
  sessions: 'at',
  commands: 'at',
  driverRecords: 'time',
  drivingBehaviour: 'endTime',
  media: 'uploadDate',
};

/** Where each one is (media: the bucket's files; their chunks go with them). */
export const RETENTION_COLLECTIONS: Record<keyof RetentionPolicy, string> = {
  ...COLLECTIONS,
  media: `${MEDIA_BUCKET}.files`,
};

/** `positions=180,alarms=365,…` (any subset; the rest keep their default) as a policy. */
export function parseRetention(
  spec: string,
  base: RetentionPolicy = DEFAULT_RETENTION,
): RetentionPolicy {
  const policy = { ...base };
  for (const part of spec.split(',').filter((p) => p !== '')) {
    const [name, days] = part.split('=');
    if (!name || !Object.hasOwn(AGE_FIELD, name))
      throw new InvalidQuery(`unknown collection '${name}' (${Object.keys(AGE_FIELD).join(', ')})`);
    const n = Number(days);
    if (!Number.isInteger(n) || n < 0 || n > 36_500)
      throw new InvalidQuery(`${name}: retention is whole days from 0 (forever) to 36500`);
    policy[name as keyof RetentionPolicy] = n;
  }
  return policy;
}

export interface SweepOptions {
  /** Ids per delete (default 1000). */
  batch?: number;
  /** Documents deleted per collection per sweep at most (default 100 000). */
  maxPerSweep?: number;
}

export interface SweepResult {
  /** Deleted per collection. */
  deleted: Record<keyof RetentionPolicy, number>;
  /** Collections that reached maxPerSweep (more is left for the next sweep). */
  more: (keyof RetentionPolicy)[];
}

/** One sweep at `nowMs`: deletes what the policy no longer keeps, within the bounds. */
export async function sweepRetention(
  db: Db,
  policy: RetentionPolicy,
  nowMs: number,
  opts: SweepOptions = {},
): Promise<SweepResult> {
  const batch = opts.batch ?? 1000;
  const maxPerSweep = opts.maxPerSweep ?? 100_000;
  const result: SweepResult = {
    deleted: {
      positions: 0,
      alarms: 0,
      sessions: 0,
      commands: 0,
      driverRecords: 0,
      drivingBehaviour: 0,
      media: 0,
    },
    more: [],
  };
  for (const name of Object.keys(AGE_FIELD) as (keyof RetentionPolicy)[]) {
    const days = policy[name];
    if (days === 0) continue;
    const collection = db.collection<Document>(RETENTION_COLLECTIONS[name]);
    // $type date: null (an open alarm) and absent fields never match.
    const filter: Document = {
      [AGE_FIELD[name]]: { $lt: new Date(nowMs - days * DAY_MS), $type: 'date' },
    };
    while (result.deleted[name] < maxPerSweep) {
      const ids = (
        await collection
          .find(filter, {
            projection: { _id: 1 },
            limit: Math.min(batch, maxPerSweep - result.deleted[name]),
          })
          .toArray()
      ).map((d) => d._id as unknown);
      if (ids.length === 0) break;
      // A file's chunks first: a sweep cut short leaves a file to delete again, never chunks
      // nobody can find. One file at a time (FerretDB scans for an $in on files_id).
      if (name === 'media')
        for (const id of ids)
          await db.collection(`${MEDIA_BUCKET}.chunks`).deleteMany({ files_id: id });
      const r = await collection.deleteMany({ _id: { $in: ids } } as Document);
      result.deleted[name] += r.deletedCount;
      if (r.deletedCount === 0) break; // another node took them meanwhile
    }
    if (result.deleted[name] >= maxPerSweep) result.more.push(name);
  }
  return result;
}

export interface RetentionSweeperOptions extends SweepOptions {
  /** Between sweeps (default 1 hour); sooner while a collection has more to delete. */
  intervalMs?: number;
  /** Asked before each sweep; false skips it (another process sweeps the same database). */
  shouldSweep?: () => boolean;
  /** Told after each sweep, and of a sweep that failed (the next one retries). */
  onSweep?: (r: SweepResult) => void;
  onError?: (err: unknown) => void;
  now?: () => number;
}

/** Runs sweepRetention on a timer until stopped; each sweep is scheduled when the last ends. */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly policy: RetentionPolicy,
    private readonly opts: RetentionSweeperOptions = {},
  ) {}

  /** Starts sweeping (the first sweep after `firstDelayMs`, default one minute). */
  start(firstDelayMs = 60_000): void {
    this.schedule(firstDelayMs);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep()
        .then(() => undefined)
        .finally(() => (this.running = undefined));
    }, ms);
    this.timer.unref();
  }

  /** One sweep now (also what the timer runs). */
  async sweep(): Promise<SweepResult | undefined> {
    let next = this.opts.intervalMs ?? 3_600_000;
    try {
      if (this.opts.shouldSweep?.() === false) return undefined;
      const r = await sweepRetention(
        this.db,
        this.policy,
        (this.opts.now ?? Date.now)(),
        this.opts,
      );
      this.opts.onSweep?.(r);
      // Behind: sweep again soon rather than an hour later.
      if (r.more.length > 0) next = Math.min(next, 10_000);
      return r;
    } catch (err) {
      this.opts.onError?.(err);
      return undefined;
    } finally {
      clearTimeout(this.timer);
      this.schedule(next);
    }
  }

  /** No sweep starts after this; resolves when the running one is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
