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
import { projectRoot, startLocalStore, type LocalStore } from '../cluster/localStore.js';
import type { StoreBackend } from '../cluster/serverConfig.js';

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
  return {
    store,
    workload,
    ops,
    perSecond: ((ops * docsPerOp) / ms) * 1000,
    p50Ms: h.getValueAtPercentile(50) / 1000,
    p99Ms: h.getValueAtPercentile(99) / 1000,
    maxMs: h.maxValue / 1000,
    errors,
  };
}

async function measureStore(store: string, uri: string, n: number): Promise<StoreRow[]> {
  const client = new MongoClient(uri, { maxPoolSize: 64 });
  await client.connect();
  const db = client.db(`bench_store_${Date.now()}`);
  const col: Collection<Document> = db.collection('vehicles');
  const ids = (from: number, count: number): string[] =>
    Array.from({ length: Math.min(count, n - from) }, (_, k) => `v${from + k}`);
  const rows: StoreRow[] = [];
  try {
    const batch = 1000;
    rows.push(
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
      rows.push(
        await timed(store, `findOne by _id, ${c} at once`, reads, c, (i) =>
          col.findOne({ _id: `v${(i * 7919) % n}` } as Document),
        ),
      );
    }
    const inBatch = 256;
    rows.push(
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
    rows.push(
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
      rows.push(
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

export async function runStoreBench(o: StoreBenchOptions): Promise<StoreRow[]> {
  const rows: StoreRow[] = [];
  for (const backend of o.localStores) {
    const dir = join(
      projectRoot,
      '.fleetmesh',
      'run',
      `bench-store-${randomBytes(4).toString('hex')}`,
    );
    let local: LocalStore | undefined;
    try {
      local = await startLocalStore({ dataDir: dir, logDir: join(dir, 'logs'), backend });
      rows.push(...(await measureStore(backend, local.uri, o.documents)));
    } finally {
      await local?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const [name, uri] of Object.entries(o.stores))
    rows.push(...(await measureStore(name, uri, o.documents)));
  const baseline = rows[0]?.store ?? '';
  const base = new Map(rows.filter((r) => r.store === baseline).map((r) => [r.workload, r]));
  console.log(`\nstore suite: ${o.documents} vehicle documents in the collection`);
  console.log(
    'store'.padEnd(12) +
      'workload'.padEnd(32) +
      'docs/s'.padStart(10) +
      'p50 ms'.padStart(10) +
      'p99 ms'.padStart(10) +
      'max ms'.padStart(10) +
      'errors'.padStart(8) +
      `  × ${baseline}`,
  );
  for (const r of rows) {
    const b = base.get(r.workload);
    console.log(
      r.store.padEnd(12) +
        r.workload.padEnd(32) +
        r.perSecond.toFixed(0).padStart(10) +
        r.p50Ms.toFixed(2).padStart(10) +
        r.p99Ms.toFixed(2).padStart(10) +
        r.maxMs.toFixed(1).padStart(10) +
        String(r.errors).padStart(8) +
        (b ? `  ${(r.perSecond / b.perSecond).toFixed(2)}` : ''),
    );
  }
  return rows;
}
