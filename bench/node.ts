// Node benchmark: sustained reports/s, acknowledgement latency (hdr) and persist lag, in durable
// and ack-on-receive modes, beside the raw unordered-insert rate of the same database server
// measured in the same run; and memory per connected, authenticated, idle terminal.
//   npm run bench -- node [--seconds S] [--terminals N] [--window W] [--idle N] [--workers N]
//     [--activations N] [--idle-seconds S] [--heartbeat-ms MS] [--churn N] [--churn-idle-ms MS]
// The activation burst: N terminals register and authenticate at once, sit idle (node and store
// CPU measured), the node stops and starts again and they authenticate against stored records.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { MongoClient } from 'mongodb';
import { startLocalServers } from '../devservers/localServers.js';
import { DEFAULT_SAVE_EVERY_MS, startNode } from '../node/node.js';
import { forkNode } from './nodeProcess.js';
import { treeCpuMs } from './processCpu.js';
import { writerTotals } from '../hosting/vehicleThread.js';
import { COLLECTIONS, ensureIndexes } from '../storage/schema.js';
import { positionDocument } from '../storage/vehicleStore.js';
import { SimTerminal, trackPoint } from './terminal.js';
import {
  percentileCurve,
  type BenchContext,
  type PercentilePoint,
  type Row,
  type TimePoint,
} from './report.js';

/**
 * Samples a running count as a rate over time until stopped: at most ~200 points whatever the
 * duration. `onTick` sees the seconds elapsed (for a progress bar).
 */
function rateTimeline(
  count: () => number,
  seconds: number,
  onTick?: (elapsed: number) => void,
): () => TimePoint[] {
  const points: TimePoint[] = [];
  const t0 = performance.now();
  let last = { at: t0, n: count() };
  const timer = setInterval(
    () => {
      const now = performance.now();
      const n = count();
      points.push({
        atMs: (now + last.at) / 2 - t0,
        perSec: ((n - last.n) / (now - last.at)) * 1000,
      });
      last = { at: now, n };
      onTick?.((now - t0) / 1000);
    },
    Math.max(250, (seconds * 1000) / 200),
  );
  return () => {
    clearInterval(timer);
    return points;
  };
}

export interface NodeBenchOptions {
  seconds: number;
  terminals: number;
  window: number;
  idleTerminals: number;
  /** Terminals in the activation burst (0: skipped). */
  activations: number;
  /** How long the activated terminals sit idle while CPU is measured. */
  idleSeconds: number;
  heartbeatMs: number;
  /** Distinct vehicles that come and go (0: skipped), and the idle passivation used for them. */
  churn: number;
  churnIdleMs: number;
  /** Vehicle worker threads (default: one per core; 0 = on the gateway's thread). */
  workers?: number;
}

interface ModeResult {
  mode: 'durable' | 'receive';
  reportsPerSec: number;
  /** The node process's CPU (every thread) per acknowledged report, µs. */
  cpuPerReportUs: number;
  /** The local store's CPU (its processes and their children) per acknowledged report, µs. */
  storeCpuPerReportUs: number | undefined;
  ackP50Ms: number;
  ackP99Ms: number;
  ackP999Ms: number;
  persistLagMs: number;
  stored: number;
  acked: number;
  /** Acknowledged reports per second over the run, and the ack latency curve (ms). */
  timeline: TimePoint[];
  percentiles: PercentilePoint[];
}

/**
 * The database's own rate for the same documents into the same collection shape (the node's
 * indexes, points spread over `vehicles` vehicles): one client, insertMany of 1000, unordered.
 */
async function rawInsertRate(
  uri: string,
  seconds: number,
  vehicles: number,
  storePids: readonly number[],
): Promise<RawRate> {
  const client = new MongoClient(uri);
  await client.connect();
  const db = client.db('fleetmesh_bench_raw');
  await db.dropDatabase();
  await ensureIndexes(db);
  const col = db.collection(COLLECTIONS.positions);
  let n = 0;
  const stopTimeline = rateTimeline(() => n, seconds);
  const end = Date.now() + seconds * 1000;
  const t0 = Date.now();
  const spread = Math.max(1, vehicles);
  const cpu0 = process.cpuUsage();
  const store0 = storePids.length > 0 ? treeCpuMs(storePids) : 0;
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
  const timeline = stopTimeline();
  const cpu = process.cpuUsage(cpu0);
  const storeMs = storePids.length > 0 ? treeCpuMs(storePids) - store0 : undefined;
  await client.close();
  return {
    timeline,
    docsPerSec: rate,
    clientCpuPerDocUs: ((cpu.user + cpu.system) / n) as number,
    storeCpuPerDocUs: storeMs === undefined ? undefined : (storeMs * 1000) / n,
  };
}

interface RawRate {
  docsPerSec: number;
  timeline: TimePoint[];
  /** This process's CPU (the driver building and sending the documents) per document, µs. */
  clientCpuPerDocUs: number;
  storeCpuPerDocUs: number | undefined;
}

/** A bench database starts empty. */
async function dropDatabase(uri: string, database: string): Promise<void> {
  const admin = new MongoClient(uri);
  await admin.connect();
  await admin.db(database).dropDatabase();
  await admin.close();
}

async function runMode(
  uri: string,
  mode: 'durable' | 'receive',
  o: NodeBenchOptions,
  storePids: readonly number[],
  ctx: BenchContext,
): Promise<ModeResult> {
  const database = `fleetmesh_bench_${mode}`;
  await dropDatabase(uri, database);
  // The node runs in its own process so its CPU is measured apart from the terminals'.
  const node = await forkNode({
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
  const cpu0 = await node.cpuMs();
  const store0 = storePids.length > 0 ? treeCpuMs(storePids) : 0;
  const lagTimer = setInterval(
    () =>
      void node
        .stats()
        .then((s) => lag.recordValue(Math.max(1, writerTotals(s, 'positions').lastLagMs * 1000)))
        .catch(() => undefined),
    50,
  );
  const t0 = performance.now();
  const stopTimeline = rateTimeline(
    () => acked,
    o.seconds,
    (elapsed) => ctx.progress(mode, elapsed, o.seconds),
  );
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
  const timeline = stopTimeline();
  // Durable: every acknowledged report is stored by now. Receive: the writes may still be going,
  // and their CPU belongs to these reports too.
  await node.flush();
  const cpuMs = (await node.cpuMs()) - cpu0;
  const storeMs = storePids.length > 0 ? treeCpuMs(storePids) - store0 : undefined;
  terminals.forEach((t) => t.close());
  const counter = new MongoClient(uri);
  await counter.connect();
  const stored = await counter.db(database).collection('positions').countDocuments();
  await counter.close();
  await node.stop();
  const r: ModeResult = {
    mode,
    reportsPerSec: acked / elapsed,
    cpuPerReportUs: (cpuMs * 1000) / Math.max(1, acked),
    storeCpuPerReportUs: storeMs === undefined ? undefined : (storeMs * 1000) / Math.max(1, acked),
    ackP50Ms: h.getValueAtPercentile(50) / 1000,
    ackP99Ms: h.getValueAtPercentile(99) / 1000,
    ackP999Ms: h.getValueAtPercentile(99.9) / 1000,
    persistLagMs: lag.getValueAtPercentile(99) / 1000,
    stored,
    acked,
    timeline,
    percentiles: percentileCurve(h, 1 / 1000),
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
    const { child } = await simulatorOnline(node.port, n, [
      ...['--first', String(from), '--auth-code', 'bench'],
    ]);
    children.push(child);
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

interface ActivationResult {
  terminals: number;
  /** First connection to the last terminal registered and authenticated (fresh database). */
  registerMs: number;
  /** With those terminals idle, sending a heartbeat every heartbeatMs: CPU over the window. */
  idle: { seconds: number; heartbeatMs: number; nodeCpuPercent: number; storeCpuPercent?: number };
  /** node.stop() with every vehicle changed (online → offline): passivation writes them all. */
  stopMs: number;
  /** After a restart: first connection to the last authenticated with its stored record. */
  authenticateAfterRestartMs: number;
  stopAfterRestartMs: number;
}

/** Runs the terminal simulator in a child until its terminals are online. */
async function simulatorOnline(
  port: number,
  count: number,
  extra: string[],
): Promise<{ child: ChildProcess; onlineMs: number }> {
  const child = fork(
    fileURLToPath(new URL('./simulate.js', import.meta.url)),
    [...['--port', String(port), '--count', String(count), '--idle'], ...extra],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  const onlineMs = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      const m = /ready (\d+) (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[2]));
    });
    child.once('exit', (code) => reject(new Error(`simulator exited ${code}`)));
  });
  return { child, onlineMs };
}

async function stopSimulator(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * A burst of activations, as a cluster handoff or a locator burst makes them: `count` terminals
 * register and authenticate at once against a fresh database; sit idle; the node stops (saving
 * every vehicle) and starts again, and they all authenticate against their stored records.
 */
async function activationBurst(
  uri: string,
  count: number,
  idleSeconds: number,
  heartbeatMs: number,
  storePids: readonly number[],
  workers: number | undefined,
): Promise<ActivationResult> {
  const database = 'fleetmesh_bench_activation';
  await dropDatabase(uri, database);
  const codes = join(mkdtempSync(join(tmpdir(), 'fleetmesh-bench-')), 'codes.json');
  const nodeOptions = {
    mongodbUri: uri,
    database,
    // Every terminal connects at once from this one address: none is refused for waiting.
    gateway: {
      maxConnections: count + 10,
      maxPendingConnections: count,
      maxPendingPerAddress: count,
    },
    ...(workers !== undefined ? { workers } : {}),
  };
  const simulator = ['--concurrency', String(count), '--codes', codes];
  const heartbeats = ['--heartbeat-ms', String(heartbeatMs)];

  let node = await forkNode(nodeOptions);
  const first = await simulatorOnline(node.port, count, [...simulator, ...heartbeats]);
  // The authentications' saves (DEFAULT_SAVE_EVERY_MS after them) are not idle work: let them
  // happen and finish first.
  await new Promise((r) => setTimeout(r, DEFAULT_SAVE_EVERY_MS + 1000));
  await node.flush();
  const cpu0 = await node.cpuMs();
  const store0 = storePids.length > 0 ? treeCpuMs(storePids) : 0;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const wall = performance.now() - t0;
  const idle = {
    seconds: idleSeconds,
    heartbeatMs,
    nodeCpuPercent: (((await node.cpuMs()) - cpu0) / wall) * 100,
    ...(storePids.length > 0
      ? { storeCpuPercent: ((treeCpuMs(storePids) - store0) / wall) * 100 }
      : {}),
  };
  await stopSimulator(first.child);
  let t = performance.now();
  await node.stop();
  const stopMs = performance.now() - t;

  node = await forkNode(nodeOptions);
  const again = await simulatorOnline(node.port, count, [...simulator, '--no-register']);
  await stopSimulator(again.child);
  t = performance.now();
  await node.stop();
  const stopAfterRestartMs = performance.now() - t;
  rmSync(dirname(codes), { recursive: true, force: true });
  return {
    terminals: count,
    registerMs: first.onlineMs,
    idle,
    stopMs,
    authenticateAfterRestartMs: again.onlineMs,
    stopAfterRestartMs,
  };
}

interface ChurnResult {
  vehicles: number;
  idlePassivateMs: number;
  seconds: number;
  /** Vehicle actors in memory: the most seen while they came and went, and at the end. */
  maxActive: number;
  activeAtEnd: number;
  passivations: number;
  /** The node process's memory (MB) after the first wave, the most seen, and at the end. */
  rssMb: { start: number; max: number; end: number };
  heapMb: { start: number; max: number; end: number };
}

/**
 * Vehicles that come and go: `count` distinct terminals, in waves, each connecting, registering,
 * reporting once and leaving; idle passivation (shortened to `idlePassivateMs`) must keep the
 * actors in memory, and the node's memory, bounded by how many came recently, not by how many
 * ever came.
 */
async function churn(
  uri: string,
  count: number,
  idlePassivateMs: number,
  workers: number | undefined,
): Promise<ChurnResult> {
  const database = 'fleetmesh_bench_churn';
  await dropDatabase(uri, database);
  const node = await forkNode({
    mongodbUri: uri,
    database,
    idlePassivateMs,
    ...(workers !== undefined ? { workers } : {}),
  });
  const mb = (b: number): number => Math.round((b / 1024 / 1024) * 10) / 10;
  const active = async (): Promise<{ active: number; passivations: number }> => {
    const s = await node.stats();
    return {
      active: s.reduce((n, t) => n + t.actors.active, 0),
      passivations: s.reduce((n, t) => n + t.actors.passivations, 0),
    };
  };
  let maxActive = 0;
  let start: { rss: number; heap: number } | undefined;
  const max = { rss: 0, heap: 0 };
  const t0 = performance.now();
  const wave = 10_000;
  for (let first = 0; first < count; first += wave) {
    const n = Math.min(wave, count - first);
    const { child } = await simulatorOnline(node.port, n, [
      ...['--first', String(first), '--brief', '--concurrency', '500'],
    ]);
    await stopSimulator(child);
    const m = await node.memory();
    start ??= m;
    max.rss = Math.max(max.rss, m.rss);
    max.heap = Math.max(max.heap, m.heap);
    maxActive = Math.max(maxActive, (await active()).active);
  }
  const seconds = (performance.now() - t0) / 1000;
  // The last wave leaves memory after the idle period.
  const deadline = Date.now() + idlePassivateMs * 4 + 10_000;
  while ((await active()).active > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  const end = await node.memory();
  const last = await active();
  await node.stop();
  return {
    vehicles: count,
    idlePassivateMs,
    seconds,
    maxActive,
    activeAtEnd: last.active,
    passivations: last.passivations,
    rssMb: { start: mb(start?.rss ?? 0), max: mb(max.rss), end: mb(end.rss) },
    heapMb: { start: mb(start?.heap ?? 0), max: mb(max.heap), end: mb(end.heap) },
  };
}

/** Tables of the node suite, in the order they are handed to the reporter. */
const MODE_COLUMNS = [
  { key: 'reportsPerSec', label: 'reports/s', digits: 0 },
  { key: 'ackP50Ms', label: 'ack p50 ms', digits: 1 },
  { key: 'ackP99Ms', label: 'ack p99 ms', digits: 1 },
  { key: 'ackP999Ms', label: 'ack p99.9 ms', digits: 1 },
  { key: 'persistLagMs', label: 'persist lag p99 ms', digits: 1 },
  { key: 'acked', label: 'acked', digits: 0 },
  { key: 'stored', label: 'stored', digits: 0 },
  { key: 'cpuPerReportUs', label: 'node CPU µs/report', digits: 1 },
  { key: 'storeCpuPerReportUs', label: 'store CPU µs/report', digits: 1 },
];

/** Figures without the ones not measured (no store CPU with MONGODB_URI). */
function defined(figures: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(figures).filter((e): e is [string, number] => e[1] !== undefined),
  );
}

export async function runNodeBench(
  ctx: BenchContext,
  o: NodeBenchOptions,
): Promise<Record<string, unknown>> {
  const servers = await startLocalServers({
    external: {
      etcdEndpoints: ['http://unused:1'],
      ...(process.env.MONGODB_URI ? { mongodbUri: process.env.MONGODB_URI } : {}),
    },
  });
  // The local store's processes (FerretDB, PostgreSQL and its backends); none for MONGODB_URI.
  const storePids = servers.processes.filter((p) => p.name !== 'etcd').map((p) => p.pid);
  try {
    const step = (s: string): void => ctx.step(`${s}…`);
    const database = servers.storeBackend
      ? `local FerretDB on ${servers.storeBackend}`
      : 'MONGODB_URI';
    let raw: RawRate | undefined;
    let durable: ModeResult | undefined;
    let receive: ModeResult | undefined;
    if (o.terminals > 0) {
      const rawSeconds = Math.max(2, o.seconds / 2);
      step('raw insert baseline');
      const before = await rawInsertRate(servers.mongodbUri, rawSeconds, o.terminals, storePids);
      step('durable acknowledgements');
      durable = await runMode(servers.mongodbUri, 'durable', o, storePids, ctx);
      step('acknowledge on receive');
      receive = await runMode(servers.mongodbUri, 'receive', o, storePids, ctx);
      step('raw insert baseline again');
      const after = await rawInsertRate(servers.mongodbUri, rawSeconds, o.terminals, storePids);
      const mean = (a: number | undefined, b: number | undefined): number | undefined =>
        a === undefined || b === undefined ? undefined : (a + b) / 2;
      const r: RawRate = {
        docsPerSec: (before.docsPerSec + after.docsPerSec) / 2,
        clientCpuPerDocUs: (before.clientCpuPerDocUs + after.clientCpuPerDocUs) / 2,
        storeCpuPerDocUs: mean(before.storeCpuPerDocUs, after.storeCpuPerDocUs),
        timeline: before.timeline,
      };
      raw = r;
      const rawName = 'raw unordered insertMany of position documents, mean of before and after';
      const modeRow = (m: ModeResult): Row => ({
        name: m.mode,
        figures: defined({
          reportsPerSec: m.reportsPerSec,
          ackP50Ms: m.ackP50Ms,
          ackP99Ms: m.ackP99Ms,
          ackP999Ms: m.ackP999Ms,
          persistLagMs: m.persistLagMs,
          acked: m.acked,
          stored: m.stored,
          cpuPerReportUs: m.cpuPerReportUs,
          storeCpuPerReportUs: m.storeCpuPerReportUs,
        }),
        baseline: {
          name: rawName,
          figures: defined({
            reportsPerSec: r.docsPerSec,
            cpuPerReportUs: r.clientCpuPerDocUs,
            storeCpuPerReportUs: r.storeCpuPerDocUs,
          }),
        },
        ratio: { column: 'reportsPerSec', value: m.reportsPerSec / r.docsPerSec },
        timeline: m.timeline,
        baselineTimeline: r.timeline,
        percentiles: m.percentiles,
      });
      ctx.table({
        title: `node: ${o.terminals} terminals, window ${o.window}, ${o.seconds} s per mode; database: ${database}; baseline: the raw insert rate (CPU: the inserting client's and the store's per document)`,
        columns: MODE_COLUMNS,
        rows: [modeRow(durable), modeRow(receive)],
        timelineUnit: 'reports/s acknowledged',
        percentileUnit: 'ms report → ack',
      });
      const rawRow = (name: string, x: RawRate): Row => ({
        name,
        figures: defined({
          docsPerSec: x.docsPerSec,
          clientCpuPerDocUs: x.clientCpuPerDocUs,
          storeCpuPerDocUs: x.storeCpuPerDocUs,
        }),
        timeline: x.timeline,
      });
      ctx.table({
        title: `node: the baseline, raw unordered insertMany of 1000 position documents (same indexes), ${rawSeconds} s each`,
        columns: [
          { key: 'docsPerSec', label: 'docs/s', digits: 0 },
          { key: 'clientCpuPerDocUs', label: 'client CPU µs/doc', digits: 1 },
          { key: 'storeCpuPerDocUs', label: 'store CPU µs/doc', digits: 1 },
        ],
        rows: [rawRow('before the modes', before), rawRow('after the modes', after)],
        timelineUnit: 'docs/s',
      });
    }
    let activation: ActivationResult | undefined;
    if (o.activations > 0) {
      step(`${o.activations} terminals activating at once`);
      activation = await activationBurst(
        servers.mongodbUri,
        o.activations,
        o.idleSeconds,
        o.heartbeatMs,
        storePids,
        o.workers,
      );
      const a = activation;
      ctx.table({
        title: `node: activation burst, ${a.terminals} terminals register and authenticate at once (fresh database), sit idle ${a.idle.seconds} s (a heartbeat each every ${a.idle.heartbeatMs / 1000} s), the node stops and starts again`,
        columns: [
          { key: 'registerMs', label: 'all online ms', digits: 0 },
          { key: 'nodeCpuPercent', label: 'idle node CPU %', digits: 1 },
          { key: 'storeCpuPercent', label: 'idle store CPU %', digits: 1 },
          { key: 'stopMs', label: 'stop ms', digits: 0 },
          { key: 'authenticateAfterRestartMs', label: 'online again ms', digits: 0 },
          { key: 'stopAfterRestartMs', label: 'stop again ms', digits: 0 },
        ],
        rows: [
          {
            name: `${a.terminals} terminals`,
            figures: defined({
              registerMs: a.registerMs,
              nodeCpuPercent: a.idle.nodeCpuPercent,
              storeCpuPercent: a.idle.storeCpuPercent,
              stopMs: a.stopMs,
              authenticateAfterRestartMs: a.authenticateAfterRestartMs,
              stopAfterRestartMs: a.stopAfterRestartMs,
            }),
          },
        ],
      });
    }
    let churned: ChurnResult | undefined;
    if (o.churn > 0) {
      step(`${o.churn} vehicles coming and going`);
      churned = await churn(servers.mongodbUri, o.churn, o.churnIdleMs, o.workers);
      const c = churned;
      ctx.table({
        title: `node: churn, ${c.vehicles} distinct vehicles connect, register, report once and leave (waves of 10 000), idle passivation ${c.idlePassivateMs} ms; node memory MB`,
        columns: [
          { key: 'seconds', label: 's', digits: 1 },
          { key: 'maxActive', label: 'actors max', digits: 0 },
          { key: 'activeAtEnd', label: 'at end', digits: 0 },
          { key: 'passivations', label: 'passivations', digits: 0 },
          { key: 'rssStart', label: 'RSS start', digits: 1 },
          { key: 'rssMax', label: 'RSS max', digits: 1 },
          { key: 'rssEnd', label: 'RSS end', digits: 1 },
          { key: 'heapStart', label: 'heap+ext start', digits: 1 },
          { key: 'heapMax', label: 'heap+ext max', digits: 1 },
          { key: 'heapEnd', label: 'heap+ext end', digits: 1 },
        ],
        rows: [
          {
            name: `${c.vehicles} vehicles`,
            figures: {
              seconds: c.seconds,
              maxActive: c.maxActive,
              activeAtEnd: c.activeAtEnd,
              passivations: c.passivations,
              rssStart: c.rssMb.start,
              rssMax: c.rssMb.max,
              rssEnd: c.rssMb.end,
              heapStart: c.heapMb.start,
              heapMax: c.heapMb.max,
              heapEnd: c.heapMb.end,
            },
          },
        ],
      });
    }
    let memory: IdleMemory | undefined;
    if (o.idleTerminals > 0) {
      step(`${o.idleTerminals} idle terminals`);
      // Handed over before the node stops: stopping saves every vehicle, which takes long.
      memory = await memoryPerIdleTerminal(servers.mongodbUri, o.idleTerminals, o.workers, (m) =>
        ctx.table({
          title: `node: ${o.idleTerminals} idle terminals, node side (main thread + workers, after GC), bytes per terminal; marginal: what the second half added`,
          columns: [
            { key: 'bytesPerTerminal', label: 'RSS', digits: 0 },
            { key: 'heapPerTerminal', label: 'heap+ext', digits: 0 },
            { key: 'marginalBytesPerTerminal', label: 'marginal RSS', digits: 0 },
            { key: 'marginalHeapPerTerminal', label: 'marginal heap+ext', digits: 0 },
          ],
          rows: [{ name: `${o.idleTerminals} terminals`, figures: { ...m } }],
        }),
      );
    }
    return { raw, durable, receive, activation, churn: churned, memory };
  } finally {
    await servers.stop();
  }
}
