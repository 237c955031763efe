// Store benchmark: what the vehicle state path asks of the MongoDB-protocol server, on each store
// side by side in one run — the local FerretDB on each of its backends (PostgreSQL, SQLite), and
// any store named with `--store NAME=URI` (a real MongoDB). For each: batched inserts, reads by
// _id at capped concurrency, one `$in` read per batch, `$set` updates in bulk writes and as
// single updates at capped concurrency. Rates, hdr latency per operation, and the rate as a ratio
// of the first store's in the same run.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import hdr from 'hdr-histogram-js';
import { MongoClient, type Collection, type Document } from 'mongodb';
import { projectRoot, startLocalStore, type LocalStore } from '../devservers/localStore.js';
import type { StoreBackend } from '../devservers/serverConfig.js';
import { percentileCurve, type BenchContext, type PercentilePoint, type Row } from './report.js';

export interface StoreBenchOptions {
  documents: number;
  /** Local FerretDB backends to start and measure, in this order; the first is the baseline. */
  localStores: StoreBackend[];
  /** Stores to measure after them: name → MongoDB URI. */
  stores: Record<string, string>;
}

export interface StoreRow {
  store: string;
  workload: string;
  ops: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** hdr percentile curve of one operation's latency, ms. */
  percentiles: PercentilePoint[];
}

function vehicleDoc(i: number): Document {
  return {
    _id: `v${i}`,
    authCode: 'abcdef0123456789',
    edition: 2013,
    registration: {
      province: 11,
      city: 22,
      maker: 'ACME',
      model: 'M1',
      terminalId: `T${i}`,
      plateColor: 1,
      plate: `A${i}`,
      registeredAt: new Date(),
    },
    lastState: {
      time: Date.now(),
      latitude: 31.2,
      longitude: 121.4,
      speed: 50,
      alarm: 0,
      status: 3,
    },
    online: true,
    node: 'node-1',
    openAlarms: [],
    pendingCommands: [],
  };
}

/**
 * Runs `ops` operations, at most `concurrency` at once; hdr of each operation's latency (µs).
 * The rate counts documents: `docsPerOp` for a bulk or `$in` operation.
 */
async function timed(
  store: string,
  workload: string,
  ops: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
  docsPerOp = 1,
): Promise<StoreRow> {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let next = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ops) {
        const i = next++;
        const s = performance.now();
        try {
          await op(i);
        } catch {
          errors++; // counted and shown: SQLite answers SQLITE_BUSY to concurrent updates
        }
        h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      }
    }),
  );
  const ms = performance.now() - t0;
  const row: StoreRow = {
    store,
    workload,
    ops,
    perSecond: ((ops * docsPerOp) / ms) * 1000,
    p50Ms: h.getValueAtPercentile(50) / 1000,
    p99Ms: h.getValueAtPercentile(99) / 1000,
    maxMs: h.maxValue / 1000,
    errors,
    percentiles: percentileCurve(h, 1 / 1000),
  };
  h.destroy();
  return row;
}

async function measureStore(
  store: string,
  uri: string,
  n: number,
  onWorkload: () => void,
): Promise<StoreRow[]> {
  const client = new MongoClient(uri, { maxPoolSize: 64 });
  await client.connect();
  const db = client.db(`bench_store_${Date.now()}`);
  const col: Collection<Document> = db.collection('vehicles');
  const ids = (from: number, count: number): string[] =>
    Array.from({ length: Math.min(count, n - from) }, (_, k) => `v${from + k}`);
  const rows: StoreRow[] = [];
  const add = (r: StoreRow): void => {
    rows.push(r);
    onWorkload();
  };
  try {
    const batch = 1000;
    add(
      await timed(
        store,
        `insert, bulk of ${batch}`,
        Math.ceil(n / batch),
        1,
        (b) =>
          col.insertMany(
            ids(b * batch, batch).map((_, k) => vehicleDoc(b * batch + k)),
            { ordered: false },
          ),
        batch,
      ),
    );
    const reads = Math.min(n, 2000);
    for (const c of [1, 8, 64]) {
      add(
        await timed(store, `findOne by _id, ${c} at once`, reads, c, (i) =>
          col.findOne({ _id: `v${(i * 7919) % n}` } as Document),
        ),
      );
    }
    const inBatch = 256;
    add(
      await timed(
        store,
        `find $in of ${inBatch} ids`,
        Math.ceil(reads / inBatch),
        1,
        (b) => col.find({ _id: { $in: ids(b * inBatch, inBatch) } } as Document).toArray(),
        inBatch,
      ),
    );
    const updates = Math.min(n, 500);
    const bulk = 32;
    add(
      await timed(
        store,
        `$set, bulk of ${bulk}`,
        Math.ceil(updates / bulk),
        1,
        (b) =>
          col.bulkWrite(
            ids(b * bulk, bulk).map((id) => ({
              updateOne: {
                filter: { _id: id } as Document,
                update: { $set: { online: false, lastSeen: Date.now() } },
              },
            })),
            { ordered: false },
          ),
        bulk,
      ),
    );
    for (const c of [1, 8]) {
      add(
        await timed(store, `updateOne $set, ${c} at once`, updates, c, (i) =>
          col.updateOne({ _id: `v${(i * 7919) % n}` } as Document, {
            $set: { online: true, lastSeen: Date.now() },
          }),
        ),
      );
    }
  } finally {
    await db.dropDatabase().catch(() => undefined);
    await client.close();
  }
  return rows;
}

/** Workloads measured per store (for the progress bar). */
const WORKLOADS = 7;

export async function runStoreBench(ctx: BenchContext, o: StoreBenchOptions): Promise<void> {
  const rows: StoreRow[] = [];
  const total = (o.localStores.length + Object.keys(o.stores).length) * WORKLOADS;
  let done = 0;
  const onWorkload = (): void => ctx.progress('workloads', ++done, total);
  for (const backend of o.localStores) {
    const dir = join(
      projectRoot,
      '.fleetmesh',
      'run',
      `bench-store-${randomBytes(4).toString('hex')}`,
    );
    let local: LocalStore | undefined;
    try {
      ctx.step(`starting the local store on ${backend}`);
      local = await startLocalStore({ dataDir: dir, logDir: join(dir, 'logs'), backend });
      rows.push(...(await measureStore(backend, local.uri, o.documents, onWorkload)));
    } finally {
      await local?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const [name, uri] of Object.entries(o.stores))
    rows.push(...(await measureStore(name, uri, o.documents, onWorkload)));
  const baseline = rows[0]?.store ?? '';
  const base = new Map(rows.filter((r) => r.store === baseline).map((r) => [r.workload, r]));
  const figures = (r: StoreRow): Record<string, number> => ({
    perSecond: r.perSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
    errors: r.errors,
  });
  ctx.table({
    title: `store: ${o.documents} vehicle documents in the collection; baseline: ${baseline}, the same workload`,
    columns: [
      { key: 'perSecond', label: 'docs/s', digits: 0 },
      { key: 'p50Ms', label: 'p50 ms', digits: 2 },
      { key: 'p99Ms', label: 'p99 ms', digits: 2 },
      { key: 'maxMs', label: 'max ms', digits: 1 },
      { key: 'errors', label: 'errors', digits: 0 },
    ],
    rows: rows.map((r): Row => {
      const b = r.store === baseline ? undefined : base.get(r.workload);
      return {
        name: `${r.store}: ${r.workload}`,
        figures: figures(r),
        percentiles: r.percentiles,
        ...(b
          ? {
              baseline: { name: `${b.store}: ${b.workload}`, figures: figures(b) },
              ratio: { column: 'perSecond', value: r.perSecond / b.perSecond },
              baselinePercentiles: b.percentiles,
            }
          : {}),
      };
    }),
    percentileUnit: 'ms per operation',
  });
}
