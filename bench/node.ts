// Node benchmark: sustained reports/s, acknowledgement latency (hdr) and persist lag, in durable
// and ack-on-receive modes, beside the raw unordered-insert rate of the same database server
// measured in the same run; and memory per connected, authenticated, idle terminal.
//   npm run bench -- node [--seconds S] [--terminals N] [--window W] [--idle N] [--workers N]
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { MongoClient } from 'mongodb';
import { startLocalServers } from '../cluster/localServers.js';
import { startNode } from '../cluster/node.js';
import { writerTotals } from '../cluster/vehicleShard.js';
import { COLLECTIONS, ensureIndexes } from '../storage/schema.js';
import { positionDocument } from '../storage/vehicleStore.js';
import { SimTerminal, trackPoint } from './terminal.js';

export interface NodeBenchOptions {
  seconds: number;
  terminals: number;
  window: number;
  idleTerminals: number;
  /** Vehicle worker threads (default: one per core; 0 = on the gateway's thread). */
  workers?: number;
}

interface ModeResult {
  mode: 'durable' | 'receive';
  reportsPerSec: number;
  ackP50Ms: number;
  ackP99Ms: number;
  ackP999Ms: number;
  persistLagMs: number;
  stored: number;
  acked: number;
}

/**
 * The database's own rate for the same documents into the same collection shape (the node's
 * indexes, points spread over `vehicles` vehicles): one client, insertMany of 1000, unordered.
 */
async function rawInsertRate(uri: string, seconds: number, vehicles: number): Promise<number> {
  const client = new MongoClient(uri);
  await client.connect();
  const db = client.db('fleetmesh_bench_raw');
  await db.dropDatabase();
  await ensureIndexes(db);
  const col = db.collection(COLLECTIONS.positions);
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = Date.now();
  const spread = Math.max(1, vehicles);
  while (Date.now() < end) {
    const docs = Array.from({ length: 1000 }, () => {
      const k = n++;
      return positionDocument(
        `139${String(k % spread).padStart(8, '0')}`,
        trackPoint(Math.floor(k / spread)),
        'live',
        Date.now(),
        0,
      );
    });
    await col.insertMany(docs, { ordered: false });
  }
  const rate = n / ((Date.now() - t0) / 1000);
  await client.close();
  return rate;
}

async function runMode(
  uri: string,
  mode: 'durable' | 'receive',
  o: NodeBenchOptions,
): Promise<ModeResult> {
  const database = `fleetmesh_bench_${mode}`;
  const admin = new MongoClient(uri);
  await admin.connect();
  await admin.db(database).dropDatabase();
  await admin.close();
  const node = await startNode({
    mongodbUri: uri,
    database,
    policy: { ackMode: mode },
    writer: { maxBatch: 1000, maxDelayMs: 10 },
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
  });
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const lag = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const terminals = await Promise.all(
    Array.from({ length: o.terminals }, async (_, i) => {
      const t = new SimTerminal({
        port: node.port,
        phone: `0137${String(i).padStart(8, '0')}`,
        timeoutMs: 60_000,
      });
      await t.connect();
      await t.register();
      await t.authenticate();
      return t;
    }),
  );
  let acked = 0;
  let stop = false;
  const lagTimer = setInterval(
    () =>
      void node
        .stats()
        .then((s) => lag.recordValue(Math.max(1, writerTotals(s, 'positions').lastLagMs * 1000)))
        .catch(() => undefined),
    50,
  );
  const t0 = performance.now();
  await Promise.all(
    terminals.map(async (t) => {
      let k = 0;
      const inFlight = new Set<Promise<void>>();
      while (!stop) {
        const sent = performance.now();
        const p: Promise<void> = t.report(trackPoint(k++)).then(
          () => {
            acked++;
            h.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
          },
          () => undefined,
        );
        const tracked: Promise<void> = p.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        if (inFlight.size >= o.window) await Promise.race(inFlight);
        if (performance.now() - t0 > o.seconds * 1000) stop = true;
      }
      await Promise.all(inFlight);
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(lagTimer);
  terminals.forEach((t) => t.close());
  await node.flush();
  const stored = await node.client.db(database).collection('positions').countDocuments();
  await node.stop();
  const r: ModeResult = {
    mode,
    reportsPerSec: acked / elapsed,
    ackP50Ms: h.getValueAtPercentile(50) / 1000,
    ackP99Ms: h.getValueAtPercentile(99) / 1000,
    ackP999Ms: h.getValueAtPercentile(99.9) / 1000,
    persistLagMs: lag.getValueAtPercentile(99) / 1000,
    stored,
    acked,
  };
  h.destroy();
  lag.destroy();
  return r;
}

interface IdleMemory {
  /** Averages over every terminal (fixed costs of the first connections included). */
  bytesPerTerminal: number;
  heapPerTerminal: number;
  /** What the second half of the terminals added, per terminal. */
  marginalBytesPerTerminal: number;
  marginalHeapPerTerminal: number;
}

/** Connects `count` terminals from two simulator children and measures this node's memory per terminal. */
async function memoryPerIdleTerminal(
  uri: string,
  count: number,
  workers: number | undefined,
  onMeasured?: (m: IdleMemory) => void,
): Promise<IdleMemory> {
  // Provision the vehicles up front: FerretDB's upserts make 10k registrations take minutes,
  // and registering is not what this measures.
  const seed = new MongoClient(uri);
  await seed.connect();
  await seed.db('fleetmesh_bench_idle').dropDatabase();
  const vehicles = seed
    .db('fleetmesh_bench_idle')
    .collection<{ _id: string; authCode: string; edition: number }>('vehicles');
  for (let i = 0; i < count; i += 1000) {
    await vehicles.insertMany(
      Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
        _id: `136${String(i + j).padStart(8, '0')}`,
        authCode: 'bench',
        edition: 2013,
      })),
    );
  }
  await seed.close();
  // State write-back is pushed past the measurement: buffered writes are not what an idle terminal costs.
  const node = await startNode({
    mongodbUri: uri,
    database: 'fleetmesh_bench_idle',
    gateway: { maxConnections: count + 10 },
    policy: { saveEveryMs: 3_600_000 },
    ...(workers !== undefined ? { workers } : {}),
  });
  // RSS is the whole process; heap + external is the main thread's plus every worker's isolate.
  const settle = async (): Promise<{ rss: number; heap: number }> => {
    for (let i = 0; i < 3; i++) {
      global.gc?.();
      await new Promise((r) => setTimeout(r, 200));
    }
    const main = process.memoryUsage();
    const threads = workers === 0 ? [] : await node.memory();
    return {
      rss: main.rss,
      heap:
        main.heapUsed + main.external + threads.reduce((a, t) => a + t.heapUsed + t.external, 0),
    };
  };
  // Two halves from two simulator children: the second half's cost is the marginal cost of a
  // terminal, without the fixed costs the first connections bring (V8 growing its young
  // generation, worker isolates' first pages), which an average over 10k still carries.
  const children: ChildProcess[] = [];
  const connect = async (from: number, n: number): Promise<void> => {
    const child = fork(
      fileURLToPath(new URL('./simulate.js', import.meta.url)),
      [
        ...['--port', String(node.port), '--count', String(n), '--first', String(from)],
        ...['--idle', '--auth-code', 'bench'],
      ],
      { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
    );
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`simulator exited ${code}`)));
    });
  };
  const before = await settle();
  const half = Math.floor(count / 2);
  await connect(0, half);
  const middle = await settle();
  await connect(half, count - half);
  const afterMem = await settle();
  const result = {
    bytesPerTerminal: (afterMem.rss - before.rss) / count,
    heapPerTerminal: (afterMem.heap - before.heap) / count,
    marginalBytesPerTerminal: (afterMem.rss - middle.rss) / (count - half),
    marginalHeapPerTerminal: (afterMem.heap - middle.heap) / (count - half),
  };
  // Reported before the node stops: stopping saves every vehicle's state, which takes minutes
  // for 10k vehicles on FerretDB's SQLite backend (replaces are slow there).
  onMeasured?.(result);
  for (const c of children) c.kill();
  const stopStarted = Date.now();
  await node.stop();
  process.stderr.write(
    `node bench: node stopped (state saved) in ${Date.now() - stopStarted} ms\n`,
  );
  return result;
}

export async function runNodeBench(o: NodeBenchOptions): Promise<Record<string, unknown>> {
  const servers = await startLocalServers({
    external: {
      etcdEndpoints: ['http://unused:1'],
      ...(process.env.MONGODB_URI ? { mongodbUri: process.env.MONGODB_URI } : {}),
    },
  });
  try {
    const step = (s: string): void => void process.stderr.write(`node bench: ${s}…\n`);
    const f = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 1 });
    const modeLine = (m: ModeResult, rawRate: number): string =>
      `  ${m.mode.padEnd(8)} ${f(m.reportsPerSec).padStart(9)} reports/s (${f((m.reportsPerSec / rawRate) * 100)} % of raw)  ack p50 ${f(m.ackP50Ms)} ms  p99 ${f(m.ackP99Ms)} ms  p99.9 ${f(m.ackP999Ms)} ms  persist lag p99 ${f(m.persistLagMs)} ms  acked ${m.acked} stored ${m.stored}`;
    console.log(
      `node (${o.terminals} terminals, window ${o.window}, ${o.seconds} s per mode; database: ${servers.storeBackend ? `local FerretDB on ${servers.storeBackend}` : 'MONGODB_URI'})`,
    );
    let raw = 0;
    let durable: ModeResult | undefined;
    let receive: ModeResult | undefined;
    if (o.terminals > 0) {
      step('raw insert baseline');
      raw = await rawInsertRate(servers.mongodbUri, Math.max(2, o.seconds / 2), o.terminals);
      console.log(
        `  baseline: raw unordered insertMany of position documents (same indexes): ${f(raw)} docs/s`,
      );
      step('durable acknowledgements');
      durable = await runMode(servers.mongodbUri, 'durable', o);
      console.log(modeLine(durable, raw));
      step('acknowledge on receive');
      receive = await runMode(servers.mongodbUri, 'receive', o);
      console.log(modeLine(receive, raw));
      step('raw insert baseline again');
      const rawAfter = await rawInsertRate(
        servers.mongodbUri,
        Math.max(2, o.seconds / 2),
        o.terminals,
      );
      raw = (raw + rawAfter) / 2;
      console.log(
        `  baseline again: ${f(rawAfter)} docs/s; against the mean ${f(raw)}: durable ${f((durable.reportsPerSec / raw) * 100)} %, receive ${f((receive.reportsPerSec / raw) * 100)} %`,
      );
    }
    let memory: IdleMemory | undefined;
    if (o.idleTerminals > 0) {
      step(`${o.idleTerminals} idle terminals`);
      memory = await memoryPerIdleTerminal(servers.mongodbUri, o.idleTerminals, o.workers, (m) =>
        console.log(
          `  idle terminals: ${o.idleTerminals} (node side: main thread + workers, after GC): average ${f(m.bytesPerTerminal)} B RSS, ${f(m.heapPerTerminal)} B heap+external per terminal; marginal (second half) ${f(m.marginalBytesPerTerminal)} B RSS, ${f(m.marginalHeapPerTerminal)} B heap+external per terminal`,
        ),
      );
    }
    return { rawRate: raw, durable, receive, memory };
  } finally {
    await servers.stop();
  }
}
