// Group commit to one collection: writes are buffered and sent as one unordered bulk write when
// the batch is full or `maxDelayMs` has passed. Each write's promise settles when the database
// has acknowledged it, which is what durable 0x8001 acknowledgements wait for.
//
// - A duplicate key counts as stored (ids are deterministic: a retransmission is already there).
// - Transient errors (network, no primary, server selection) retry the batch with capped
//   exponential backoff, for as long as it takes: acknowledged data is never dropped.
// - Any other per-document error rejects that document's promise and is counted.
// - The buffer is bounded: past `maxBuffered` the writer reports `full` and callers must stop
//   producing (the gateway pauses its sockets) until `onDrain` fires. Writes are still taken up
//   to `maxHeld` (what was already on its way when the sockets paused); past that a write is
//   refused at once with WriterFull and counted (a durable report is then answered as failed
//   and sent again by its terminal).
import {
  MongoBulkWriteError,
  MongoError,
  type AnyBulkWriteOperation,
  type Collection,
  type Document,
} from 'mongodb';

export type WriteOutcome = 'stored' | 'duplicate';

export interface BatchWriterOptions {
  /** Updates and replaces per bulk write (see batchLength). */
  maxUpdates?: number;
  maxBatch?: number;
  /**
   * Bulk writes in flight at once (default 1). Above 1, batches may land out of order: only for
   * writers whose writes do not depend on each other's order (inserts with their own ids).
   */
  maxConcurrent?: number;
  maxDelayMs?: number;
  maxBuffered?: number;
  /** Writes held at most (buffered + in flight); past it `add` refuses. Default 2 × maxBuffered. */
  maxHeld?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  onRetry?(err: unknown, attempt: number): void;
}

export interface BatchWriterStats {
  stored: number;
  duplicates: number;
  failed: number;
  batches: number;
  retries: number;
  /** Time from a write being buffered to its acknowledgement, last batch (ms). */
  lastLagMs: number;
  /** Field updates merged into one already buffered for the same _id. */
  coalesced: number;
  /** Writes refused because maxHeld were held. */
  refused: number;
  /** Fenced updates refused because a newer owner had written the document. */
  fenced: number;
  /**
   * Writes per bulk write, as histogram buckets (Prometheus `fleetmesh_store_batch_size`).
   * Every writer keeps it; optional only for sums that leave it out.
   */
  batchSizes?: BatchSizeFigures;
}

/** Upper bounds of the batch-size buckets: 1 … the default maxBatch, then +Inf. */
export const BATCH_SIZE_BUCKETS: readonly number[] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

export interface BatchSizeFigures {
  /** Batches per bucket, not cumulative: counts[i] ≤ BATCH_SIZE_BUCKETS[i]; the last is +Inf. */
  counts: number[];
  /** Writes in all batches counted. */
  sum: number;
}

/** Counts one batch of `size` writes into `f`. */
export function countBatchSize(f: BatchSizeFigures, size: number): void {
  let i = 0;
  while (i < BATCH_SIZE_BUCKETS.length && size > BATCH_SIZE_BUCKETS[i]!) i++;
  f.counts[i]!++;
  f.sum += size;
}

/** The writer holds maxHeld writes: this one was not taken. */
export class WriterFull extends Error {
  constructor(readonly collection: string) {
    super(`batch writer for ${collection} is full`);
    this.name = 'WriterFull';
  }
}

interface Pending {
  op: AnyBulkWriteOperation<Document>;
  at: number;
  resolve(o: WriteOutcome): void;
  reject(e: unknown): void;
  /** A field update still open to later updates of the same _id (see setFields). */
  fields?: { id: string; set: Document; unset: Document; epoch?: number };
  /** A fenced update (setFields with an epoch): a duplicate key means a newer owner wrote. */
  fenced?: boolean;
}

/** The field fenced updates compare (see setFields). */
export const OWNER_EPOCH_FIELD = 'ownerEpoch';

/** A fenced update was refused: the document was written by an owner with a newer epoch. */
export class StaleOwner extends Error {
  constructor(readonly id: string) {
    super(`a newer owner has written ${id}: this write is refused`);
    this.name = 'StaleOwner';
  }
}

const TRANSIENT_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

function writeErrorsOf(
  err: MongoBulkWriteError,
): { index: number; code?: number; errmsg?: string }[] {
  const list = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
  return list.filter((e): e is NonNullable<typeof e> => Boolean(e));
}

export function isTransient(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false;
  // The driver wraps a failed connection in a bulk write error with no per-document errors
  // (and no document written): that is the whole batch failing, not its documents.
  if (err instanceof MongoBulkWriteError && writeErrorsOf(err).length > 0) return false;
  for (const label of [
    'RetryableWriteError',
    'RetryableError',
    'TransientTransactionError',
    'SystemOverloadedError',
  ]) {
    if (err.hasErrorLabel?.(label)) return true;
  }
  if (
    /ECONNREFUSED|ECONNRESET|EPIPE|timed out|connection .*closed|not connected/i.test(err.message)
  )
    return true;
  const name = err.constructor.name;
  if (/Network|ServerSelection|NotConnected|PoolCleared|Topology/.test(name)) return true;
  return typeof err.code === 'number' && TRANSIENT_CODES.has(err.code);
}

/** The _id an update or replace is for; undefined for an insert. */
function updatedId(op: AnyBulkWriteOperation<Document>): unknown {
  if ('updateOne' in op) return (op.updateOne.filter as Document)._id;
  if ('replaceOne' in op) return (op.replaceOne.filter as Document)._id;
  return undefined;
}

/**
 * Matches the document only where no newer owner wrote it. An upsert that matches nothing
 * then tries to create the _id and hits the existing document: that duplicate key is the
 * refusal.
 */
function fencedFilter(id: string, epoch: number): Document {
  return {
    _id: id,
    $or: [{ [OWNER_EPOCH_FIELD]: { $lte: epoch } }, { [OWNER_EPOCH_FIELD]: { $exists: false } }],
  };
}

function isUpdate(op: AnyBulkWriteOperation<Document>): boolean {
  return updatedId(op) !== undefined;
}

export class BatchWriter {
  readonly stats: BatchWriterStats & { batchSizes: BatchSizeFigures } = {
    stored: 0,
    duplicates: 0,
    failed: 0,
    batches: 0,
    retries: 0,
    lastLagMs: 0,
    coalesced: 0,
    refused: 0,
    fenced: 0,
    batchSizes: { counts: new Array<number>(BATCH_SIZE_BUCKETS.length + 1).fill(0), sum: 0 },
  };
  private buffer: Pending[] = [];
  /** Buffered field updates by _id, not yet taken into a batch. */
  private readonly openFields = new Map<string, Pending>();
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Bulk writes in flight. */
  private readonly running = new Set<Promise<void>>();
  private closed = false;
  private wasFull = false;
  private readonly drainListeners = new Set<() => void>();
  private readonly maxBatch: number;
  private readonly maxUpdates: number;
  private readonly maxConcurrent: number;
  private readonly maxDelayMs: number;
  private readonly maxBuffered: number;
  private readonly maxHeld: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly collection: Collection<Document>,
    private readonly options: BatchWriterOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 1000;
    this.maxUpdates = options.maxUpdates ?? 32;
    this.maxConcurrent = options.maxConcurrent ?? 1;
    this.maxDelayMs = options.maxDelayMs ?? 10;
    this.maxBuffered = options.maxBuffered ?? 50_000;
    this.maxHeld = options.maxHeld ?? 2 * this.maxBuffered;
    this.retryBaseMs = options.retryBaseMs ?? 50;
    this.retryMaxMs = options.retryMaxMs ?? 2000;
  }

  /** Writes waiting or being written. */
  get buffered(): number {
    return this.buffer.length + this.inFlight;
  }

  get full(): boolean {
    return this.buffered >= this.maxBuffered;
  }

  /** Called once each time the writer goes from full to below its limit. */
  onDrain(fn: () => void): () => void {
    this.drainListeners.add(fn);
    return () => this.drainListeners.delete(fn);
  }

  insert(doc: Document): Promise<WriteOutcome> {
    return this.add({ insertOne: { document: doc } });
  }

  /** Replaces (or creates) the document with this _id: idempotent, so safe to retry. */
  /**
   * The whole document with this _id (created if missing). With `epoch` the write is fenced as
   * setFields' is: it replaces only a document whose ownerEpoch is at most `epoch` (or absent),
   * stores `epoch` with it, and rejects with StaleOwner (counted as `fenced`) where a newer owner
   * wrote.
   */
  replace(doc: Document & { _id: string }, epoch?: number): Promise<WriteOutcome> {
    if (epoch === undefined)
      return this.add({
        replaceOne: { filter: { _id: doc._id } as Document, replacement: doc, upsert: true },
      });
    return this.add(
      {
        replaceOne: {
          filter: fencedFilter(doc._id, epoch),
          replacement: { ...doc, [OWNER_EPOCH_FIELD]: epoch },
          upsert: true,
        },
      },
      undefined,
      true,
    );
  }

  /** An update by _id with upsert (e.g. $set of last state). */
  update(id: string, update: Document): Promise<WriteOutcome> {
    return this.add({ updateOne: { filter: { _id: id } as Document, update, upsert: true } });
  }

  /**
   * `$set`/`$unset` of some fields of the document with this _id (created if missing). While it
   * waits in the buffer, later calls for the same _id merge into it (the later value of a field
   * wins), so a burst of changes to one document is one write; every caller's promise settles
   * with that write.
   *
   * With `epoch` the update is fenced: it applies only where the document's ownerEpoch is at most
   * `epoch` (or absent), and sets it to `epoch`; a document written by a newer owner is left as
   * it is and the write rejects with StaleOwner (counted as `fenced`). The upsert then tries to
   * create the document and hits its _id: that duplicate key is how the store says no.
   */
  setFields(
    id: string,
    set: Document,
    unset: readonly string[] = [],
    epoch?: number,
  ): Promise<WriteOutcome> {
    const open = this.openFields.get(id);
    if (open?.fields && open.fields.epoch === epoch && !this.closed) {
      for (const [k, v] of Object.entries(set)) {
        open.fields.set[k] = v;
        delete open.fields.unset[k];
      }
      for (const k of unset) {
        open.fields.unset[k] = '';
        delete open.fields.set[k];
      }
      this.stats.coalesced++;
      return new Promise((resolve, reject) => {
        const first = { resolve: open.resolve, reject: open.reject };
        open.resolve = (o) => {
          first.resolve(o);
          resolve(o);
        };
        open.reject = (e) => {
          first.reject(e);
          reject(e);
        };
      });
    }
    if (Object.keys(set).length === 0 && unset.length === 0) return Promise.resolve('stored');
    const fields = {
      id,
      set: { ...set },
      unset: Object.fromEntries(unset.map((k) => [k, ''])),
      ...(epoch !== undefined ? { epoch } : {}),
    };
    const filter: Document = epoch === undefined ? { _id: id } : fencedFilter(id, epoch);
    // The update document is made when the batch is taken, from the merged fields.
    return this.add({ updateOne: { filter, update: {}, upsert: true } }, fields);
  }

  /** `fenced`: a duplicate key on this upsert means a newer owner wrote (see replace). */
  add(
    op: AnyBulkWriteOperation<Document>,
    fields?: Pending['fields'],
    fenced = false,
  ): Promise<WriteOutcome> {
    if (this.closed) return Promise.reject(new Error('batch writer closed'));
    if (this.buffered >= this.maxHeld) {
      this.stats.refused++;
      return Promise.reject(new WriterFull(this.collection.collectionName));
    }
    return new Promise((resolve, reject) => {
      const pending: Pending = { op, at: Date.now(), resolve, reject };
      if (fenced) pending.fenced = true;
      if (fields) {
        pending.fields = fields;
        this.openFields.set(fields.id, pending);
      }
      this.buffer.push(pending);
      if (this.full) this.wasFull = true;
      if (this.buffer.length >= this.maxBatch) void this.flush();
      else this.flushLater();
    });
  }

  private flushLater(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.maxDelayMs);
  }

  /**
   * Writes the next batch of what is buffered and resolves when it (and the batches in flight
   * beside it) are acknowledged. A batch may stop short (maxUpdates, a repeated _id): the rest is
   * written by the timer, or by calling again until `buffered` is 0, as VehicleStore.flush does.
   */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // At most maxConcurrent bulk writes at once; with one, batches are written in order.
    while (this.running.size >= this.maxConcurrent) await Promise.race(this.running);
    if (this.buffer.length === 0) {
      await Promise.all(this.running);
      return;
    }
    const batch = this.buffer.splice(0, this.batchLength());
    for (const p of batch) if (p.fields) this.closeFields(p);
    this.inFlight += batch.length;
    const written: Promise<void> = this.writeBatch(batch).finally(() => {
      this.inFlight -= batch.length;
      this.running.delete(written);
    });
    this.running.add(written);
    // A full batch waiting behind this one may go out beside it.
    if (this.buffer.length >= this.maxBatch && this.running.size < this.maxConcurrent)
      void this.flush();
    await written;
    if (this.buffer.length >= this.maxBatch) await this.flush();
    else if (this.buffer.length > 0) this.flushLater();
    else await Promise.all(this.running);
  }

  /**
   * How many buffered writes go in the next batch: up to maxBatch, at most maxUpdates updates
   * (FerretDB runs a command's updates one after another, ~1 ms each, so this bounds how long a
   * batch of inserts behind them waits; it once also kept FerretDB v1.24 under its connection
   * leak, fixed by deps/ferretdb/patches/0002), and never two updates of the same _id (the
   * order inside an unordered batch is not guaranteed).
   */
  private batchLength(): number {
    const seen = new Set<unknown>();
    const n = Math.min(this.maxBatch, this.buffer.length);
    let updates = 0;
    for (let i = 0; i < n; i++) {
      const id = updatedId(this.buffer[i]!.op);
      if (id === undefined) continue;
      if (seen.has(id) || updates >= this.maxUpdates) return i;
      seen.add(id);
      updates++;
    }
    return n;
  }

  /** A buffered field update leaves the buffer: no more merging; its update document is made. */
  private closeFields(p: Pending): void {
    const f = p.fields!;
    p.fields = undefined;
    if (this.openFields.get(f.id) === p) this.openFields.delete(f.id);
    const update: Document = {};
    if (f.epoch !== undefined) {
      f.set[OWNER_EPOCH_FIELD] = f.epoch;
      p.fenced = true;
    }
    if (Object.keys(f.set).length > 0) update.$set = f.set;
    if (Object.keys(f.unset).length > 0) update.$unset = f.unset;
    if ('updateOne' in p.op) p.op.updateOne.update = update;
  }

  /** Writes one batch until every write in it is settled; `counted`: in the batch figures. */
  private async writeBatch(whole: Pending[], counted = true): Promise<void> {
    let batch = whole;
    let attempt = 0;
    let duplicateRetries = 0;
    for (;;) {
      try {
        await this.collection.bulkWrite(
          batch.map((p) => p.op),
          { ordered: false },
        );
        for (const p of batch) this.settle(p, 'stored');
        break;
      } catch (err) {
        if (err instanceof MongoBulkWriteError && writeErrorsOf(err).length > 0) {
          const failed = new Map<number, { code?: number; errmsg?: string }>();
          for (const we of writeErrorsOf(err)) failed.set(we.index, we);
          const updates = batch.filter((p) => isUpdate(p.op));
          const updateFailed = batch.some((p, i) => isUpdate(p.op) && failed.has(i));
          // FerretDB v1 ends an update command at its first failing update, reports it at index
          // 0 whichever it was, and reports the rest as nothing: when one of several updates
          // failed, nobody knows which, so each is written again on its own (they are idempotent
          // by _id), where an error can only be its own.
          const alone = updateFailed && updates.length > 1;
          const again: Pending[] = [];
          batch.forEach((p, i) => {
            if (alone && isUpdate(p.op)) return;
            const e = failed.get(i);
            if (!e) this.settle(p, 'stored');
            else if (e.code === 11000 && p.fenced) {
              this.stats.fenced++;
              p.reject(new StaleOwner(String(updatedId(p.op))));
            } else if (e.code === 11000 && isUpdate(p.op) && duplicateRetries < 3) {
              // An upsert that lost a race with another writer creating the same _id: it was
              // not applied; now that the document exists it will be.
              again.push(p);
            } else if (e.code === 11000 && !isUpdate(p.op)) this.settle(p, 'duplicate');
            else {
              this.stats.failed++;
              p.reject(new Error(`write failed (${e.code}): ${e.errmsg}`));
            }
          });
          if (alone) {
            for (const p of updates) await this.writeBatch([p], false);
          }
          if (again.length === 0) break;
          duplicateRetries++;
          batch = again;
          continue;
        }
        if (!isTransient(err)) {
          this.stats.failed += batch.length;
          for (const p of batch) p.reject(err);
          break;
        }
        attempt++;
        this.stats.retries++;
        this.options.onRetry?.(err, attempt);
        const delay = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt - 1, 10));
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
      }
    }
    if (!counted) return;
    this.stats.batches++;
    countBatchSize(this.stats.batchSizes, whole.length);
    this.stats.lastLagMs = Date.now() - (whole[0]?.at ?? Date.now());
    if (this.wasFull && this.buffered - whole.length < this.maxBuffered) {
      this.wasFull = false;
      for (const fn of this.drainListeners) fn();
    }
  }

  private settle(p: Pending, outcome: WriteOutcome): void {
    if (outcome === 'duplicate') this.stats.duplicates++;
    else this.stats.stored++;
    p.resolve(outcome);
  }

  /** Flushes and refuses further writes. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.buffer.length > 0 || this.running.size > 0) await this.flush();
  }
}
