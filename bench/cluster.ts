// Cluster benchmark (issue 11), four measurements side by side with their baselines in one run:
//   forwarding  records/s through a PeerChannel → PeerInbound pair over real gRPC on loopback
//               (the inbound side in a worker thread: two event loops, as two nodes have), and
//               the round-trip latency at half that load; baseline: the same records through a
//               FrameBatchBuilder / readFrameBatch in-process, both directions.
//   join        shards moved when a node joins n = 2..16 nodes × workers (planHandoff over
//               PlacementView), against the ideal 1/(n+1). Pure.
//   failover    kill -9 of one of 3 node processes: time until every one of its terminals (and
//               of the vehicles it owned) reports again, beside the expiry of its lease alone.
//   durable     durable reports/s through 3 nodes (terminals spread over the gateways) against
//               1 node (the single-node path), same store.
//   npm run bench -- cluster [--parts forwarding,join,failover,durable] [--seconds S]
//     [--links N] [--max-in-flight N] [--join-nodes 2,3,…] [--join-workers 1,4]
//     [--failover-terminals N] [--ttl S] [--interval-ms MS] [--report-timeout-ms MS]
//     [--terminals N] [--window W] [--durable-seconds S] [--workers N]
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import hdr from 'hdr-histogram-js';
import { MongoClient } from 'mongodb';
import { availableParallelism, loadavg } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { TerminalLink } from '../actors/vehicleActor.js';
import { decodeFrame, encodeFrame, type DecodedFrame } from '../jt808/codec.js';
import { vehicleIdOf } from '../jt808/header.js';
import { FrameBatchBuilder, readFrameBatch, SEND, UPLINK } from '../hosting/frameBatch.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import { planHandoff, PlacementView } from '../cluster/handoffPlan.js';
import { DEFAULT_LEASE_TTL_SECONDS } from '../cluster/membership.js';
import { startLocalServers, type LocalServers } from '../devservers/localServers.js';
import type { NodeOptions } from '../node/node.js';
import { PeerChannel } from '../cluster/peerChannel.js';
import { PeerInbound, ProxyTerminalLink } from '../cluster/peerInbound.js';
import { ProxyLinkTable } from '../cluster/peerLinks.js';
import {
  peerClient,
  peerServer,
  peerServerWindow,
  peerService,
  type RouteBatch,
  type RouteServerStream,
  type RouteStream,
} from '../cluster/peerService.js';
import { shardOf } from '../cluster/placement.js';
import { COLLECTIONS } from '../storage/schema.js';
import { forkNode, type NodeProcess } from './nodeProcess.js';
import {
  percentileCurve,
  type BenchContext,
  type PercentilePoint,
  type Row,
  type TimePoint,
} from './report.js';
import { SimTerminal, trackPoint } from './terminal.js';

export type ClusterPart = 'forwarding' | 'join' | 'failover' | 'durable';
export const CLUSTER_PARTS: readonly ClusterPart[] = ['forwarding', 'join', 'failover', 'durable'];

export interface ClusterBenchOptions {
  parts: readonly ClusterPart[];
  /** Forwarding: seconds of the saturated run, of the paced run, and of each baseline. */
  seconds: number;
  /** Forwarding: distinct terminals (links, vehicles) whose records cross. */
  links: number;
  /** Forwarding: the channel's credit (the router's default is 8192). */
  maxInFlight: number;
  /** Forwarding: the paced run's rate, records/s (0: half the saturated rate). */
  pacedRate: number;
  /** Join: cluster sizes before the join, and workers per node. */
  joinNodes: number[];
  joinWorkers: number[];
  /** Failover: terminals over the 3 nodes (0: skipped), the lease TTL, report interval and timeout. */
  failoverTerminals: number;
  ttlSeconds: number;
  intervalMs: number;
  reportTimeoutMs: number;
  /** Durable: terminals, reports in flight per terminal, seconds per measurement. */
  terminals: number;
  window: number;
  durableSeconds: number;
  /** Worker threads per node process (failover, durable). */
  workers: number;
}

export const DEFAULT_CLUSTER_OPTIONS: ClusterBenchOptions = {
  parts: CLUSTER_PARTS,
  seconds: 5,
  links: 1000,
  maxInFlight: 8192,
  pacedRate: 0,
  joinNodes: Array.from({ length: 15 }, (_, i) => i + 2),
  joinWorkers: [1, 4],
  failoverTerminals: 150,
  ttlSeconds: DEFAULT_LEASE_TTL_SECONDS,
  intervalMs: 1000,
  reportTimeoutMs: 1000,
  terminals: 150,
  window: 4,
  durableSeconds: 10,
  workers: 1,
};

/** The machine as the figures were taken: cores and the 1-minute load average (other work shows). */
function machine(): string {
  return `${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const histogram = (): hdr.Histogram =>
  hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

/** Samples a running count as a rate every `everyMs` until stopped. */
function rateTimeline(count: () => number, everyMs = 250): () => TimePoint[] {
  const points: TimePoint[] = [];
  const t0 = performance.now();
  let last = { at: t0, n: count() };
  const timer = setInterval(() => {
    const now = performance.now();
    const n = count();
    points.push({
      atMs: (now + last.at) / 2 - t0,
      perSec: ((n - last.n) / (now - last.at)) * 1000,
    });
    last = { at: now, n };
  }, everyMs);
  return () => {
    clearInterval(timer);
    return points;
  };
}

// --- forwarding ---------------------------------------------------------------------------

const INBOUND_ROLE = 'fleetmesh-bench-peer-inbound';

/**
 * The owner's side, in a worker thread: the peer service with one PeerInbound per stream, and
 * a fake VehicleHost that answers each uplink with a SEND of its body to the terminal's link.
 */
async function serveInbound(): Promise<void> {
  const proxies = new ProxyLinkTable<ProxyTerminalLink>();
  // The peer service's own server, HTTP/2 window included (cluster/peerService.ts).
  const server = peerServer();
  let records = 0;
  server.addService(peerService().service, {
    route: (stream: RouteServerStream) =>
      new PeerInbound(
        stream,
        proxies,
        (_vehicleId, d) => {
          records++;
          if (d.kind === 'uplink') d.link.send(d.body);
          return true;
        },
        () => undefined,
      ),
    call: (_call: unknown, callback: grpc.sendUnaryData<{ resultJson: string }>) =>
      callback(null, { resultJson: 'null' }),
  });
  // The reference: the same service on a server of its own that sends every batch back as it
  // came (gRPC and the thread hop alone, without PeerChannel and PeerInbound).
  const echo = peerServer();
  echo.addService(peerService().service, {
    route: (stream: RouteServerStream) =>
      stream.on('data', (b: RouteBatch) =>
        stream.write({ records: b.records, consumed: 0, fromNode: '', linkPrefix: '', hops: 0 }),
      ),
    call: (_call: unknown, callback: grpc.sendUnaryData<{ resultJson: string }>) =>
      callback(null, { resultJson: 'null' }),
  });
  const bind = (s: grpc.Server): Promise<number> =>
    new Promise<number>((resolve, reject) =>
      s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  const port = await bind(server);
  const echoPort = await bind(echo);
  peerServerWindow(server);
  peerServerWindow(echo);
  parentPort?.on('message', (m: string) => {
    if (m === 'records') parentPort?.postMessage({ records });
    if (m === 'stop') {
      echo.forceShutdown();
      server.tryShutdown(() => process.exit(0));
    }
  });
  parentPort?.postMessage({ port, echoPort });
}

/** One terminal's uplink as the gateway hands it over: header, a 0x0200 body, its vehicle. */
interface Uplink {
  vehicleId: string;
  delivery: Extract<GatewayDelivery, { kind: 'uplink' }>;
  /** The body, whose first 8 bytes carry the send time (the fake host echoes it back). */
  body: Uint8Array;
  view: DataView;
}

function uplinks(count: number): Uplink[] {
  return Array.from({ length: count }, (_, i) => {
    const phone = `0139${String(i).padStart(8, '0')}`;
    const frame = encodeFrame(
      { type: 'LocationReport', body: trackPoint(i) },
      { phone, serial: i & 0xffff, edition: 2013 },
    );
    const decoded = decodeFrame(frame.subarray(1, frame.length - 1)) as DecodedFrame;
    const body = decoded.body.slice();
    const link: TerminalLink = {
      id: `bench/${i}`,
      node: 'bench-a',
      send: () => undefined,
      close: () => undefined,
      authenticated: () => undefined,
    };
    return {
      vehicleId: vehicleIdOf(phone),
      body,
      view: new DataView(body.buffer, body.byteOffset, body.byteLength),
      delivery: {
        kind: 'uplink',
        link,
        linkNumber: i + 1,
        header: decoded.header,
        edition: 2013,
        message: null,
        body,
        receivedAt: Date.now(),
      },
    };
  });
}

interface ForwardingRun {
  recordsPerSec: number;
  /** Round trip of a record (out, SEND back), ms. */
  p50Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  maxMs?: number;
  cpuUsPerRecord: number;
  records: number;
  timeline: TimePoint[];
  percentiles?: PercentilePoint[];
}

/** Where answers land: counts them and records each one's round trip (µs) while `timing`. */
class AnswerSink {
  answered = 0;
  timing = false;
  readonly h = histogram();
  take(frame: Uint8Array): void {
    this.answered++;
    if (!this.timing) return;
    const sent = new DataView(frame.buffer, frame.byteOffset, 8).getFloat64(0);
    this.h.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
  }
}

function summarize(
  sink: AnswerSink,
  records: number,
  seconds: number,
  cpu: NodeJS.CpuUsage,
  timeline: TimePoint[],
  timed: boolean,
): ForwardingRun {
  const r: ForwardingRun = {
    recordsPerSec: records / seconds,
    cpuUsPerRecord: (cpu.user + cpu.system) / Math.max(1, records),
    records,
    timeline,
  };
  if (timed) {
    r.p50Ms = sink.h.getValueAtPercentile(50) / 1000;
    r.p99Ms = sink.h.getValueAtPercentile(99) / 1000;
    r.p999Ms = sink.h.getValueAtPercentile(99.9) / 1000;
    r.maxMs = sink.h.maxValue / 1000;
    r.percentiles = percentileCurve(sink.h, 1 / 1000);
  }
  return r;
}

/**
 * Sends records as fast as the credit allows (rate undefined) or at `rate` records/s, for
 * `seconds`, through `send` (false: no credit now; `wake` is called when there is again).
 * Returns the answers counted and the wall time.
 */
async function drive(
  ups: Uplink[],
  send: (u: Uplink) => boolean,
  setWake: (fn: () => void) => void,
  sink: AnswerSink,
  seconds: number,
  rate: number | undefined,
  onProgress: (elapsed: number) => void,
): Promise<{ answered: number; seconds: number }> {
  let sent = 0;
  let stopped = false;
  let blocked = false;
  const t0 = performance.now();
  const a0 = sink.answered;
  const sendOne = (): boolean => {
    const u = ups[sent % ups.length]!;
    u.view.setFloat64(0, performance.now());
    if (!send(u)) return false;
    sent++;
    return true;
  };
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (stopped) return;
      const now = performance.now();
      if (now - t0 >= seconds * 1000) {
        stopped = true;
        resolve();
        return;
      }
      onProgress((now - t0) / 1000);
      const due = rate === undefined ? 4096 : Math.floor((rate * (now - t0)) / 1000) - sent;
      for (let i = 0; i < due; i++)
        if (!sendOne()) {
          blocked = true;
          return; // woken when the peer takes records
        }
      if (rate === undefined) setImmediate(pump);
      else setTimeout(pump, 1);
    };
    setWake(() => {
      if (!blocked) return;
      blocked = false;
      setImmediate(pump);
    });
    pump();
  });
  const wall = (performance.now() - t0) / 1000;
  // What is still on its way comes back (at most the credit).
  const deadline = Date.now() + 5000;
  while (sink.answered - a0 < sent && Date.now() < deadline) await sleep(5);
  return { answered: sink.answered - a0, seconds: wall };
}

/** The baseline's path without gRPC: the same records built, read, answered, read, in-process. */
class InProcessPair {
  private readonly out = new FrameBatchBuilder();
  private readonly back = new FrameBatchBuilder();
  private scheduled = false;
  constructor(private readonly sink: AnswerSink) {}
  deliver(u: Uplink): boolean {
    const d = u.delivery;
    this.out.uplink(d.linkNumber, d.receivedAt, d.header, d.edition, u.body);
    if (!this.scheduled) {
      this.scheduled = true;
      // One batch per turn each way, as the channel and the inbound flush.
      setImmediate(() => {
        this.scheduled = false;
        this.crossOut();
        setImmediate(() => this.crossBack());
      });
    }
    return true;
  }
  crossOut(): void {
    readFrameBatch(this.out.take(), (r) => {
      if (r.kind === UPLINK) this.back.send(r.link, r.body.slice());
    });
  }
  crossBack(): void {
    readFrameBatch(this.back.take(), (r) => {
      if (r.kind === SEND) this.sink.take(r.frame);
    });
  }
}

/** The reference: the same batches, one per turn, over a bare gRPC stream that echoes them. */
class EchoPair {
  private readonly out = new FrameBatchBuilder();
  private scheduled = false;
  private readonly stream: RouteStream;
  constructor(
    address: string,
    private readonly sink: AnswerSink,
  ) {
    this.stream = peerClient(address).route();
    this.stream.on('error', () => undefined);
    this.stream.on('data', (b: RouteBatch) => {
      const bytes = b.records;
      const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      readFrameBatch(buffer as ArrayBuffer, (r) => {
        if (r.kind === UPLINK) this.sink.take(r.body);
      });
    });
  }
  deliver(u: Uplink): boolean {
    const d = u.delivery;
    this.out.uplink(d.linkNumber, d.receivedAt, d.header, d.edition, u.body);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.stream.write({
          records: new Uint8Array(this.out.take()),
          consumed: 0,
          fromNode: '',
          linkPrefix: '',
          hops: 0,
        });
      });
    }
    return true;
  }
  close(): void {
    this.stream.end();
  }
}

/** The baseline's ceiling: batches of 1024 records both ways in a tight loop. */
function inProcessRate(ups: Uplink[], seconds: number): ForwardingRun {
  const sink = new AnswerSink();
  const out = new FrameBatchBuilder();
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const points: TimePoint[] = [];
  let lastAt = t0;
  let lastN = 0;
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 1024; i++) {
      const u = ups[n++ % ups.length]!;
      const d = u.delivery;
      out.uplink(d.linkNumber, d.receivedAt, d.header, d.edition, u.body);
    }
    const back = new FrameBatchBuilder();
    readFrameBatch(out.take(), (r) => {
      if (r.kind === UPLINK) back.send(r.link, r.body.slice());
    });
    readFrameBatch(back.take(), (r) => {
      if (r.kind === SEND) sink.take(r.frame);
    });
    const now = performance.now();
    if (now - lastAt >= 250) {
      points.push({ atMs: (now + lastAt) / 2 - t0, perSec: ((n - lastN) / (now - lastAt)) * 1000 });
      lastAt = now;
      lastN = n;
    }
  }
  const wall = (performance.now() - t0) / 1000;
  return summarize(sink, sink.answered, wall, process.cpuUsage(cpu0), points, false);
}

interface ForwardingResult {
  saturated: ForwardingRun;
  paced: ForwardingRun;
  /** The same batches over a bare gRPC echo stream (reference: the transport alone). */
  echoPaced: ForwardingRun;
  baselineSaturated: ForwardingRun;
  baselinePaced: ForwardingRun;
  pacedRate: number;
  batchesOut: number;
  recordsOut: number;
}

async function forwarding(ctx: BenchContext, o: ClusterBenchOptions): Promise<ForwardingResult> {
  const ups = uplinks(o.links);
  ctx.step('forwarding: baseline, FrameBatchBuilder → readFrameBatch both ways in-process');
  const baselineSaturated = inProcessRate(ups, o.seconds);

  const worker = new Worker(new URL(import.meta.url), { workerData: { role: INBOUND_ROLE } });
  const { port, echoPort } = await new Promise<{ port: number; echoPort: number }>(
    (resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    },
  );
  const sink = new AnswerSink();
  const links = new Map<number, TerminalLink>();
  for (const u of ups)
    links.set(u.delivery.linkNumber, { ...u.delivery.link, send: (f) => sink.take(f) });
  let wake: () => void = () => undefined;
  const channel = new PeerChannel({
    self: 'bench-a',
    linkPrefix: 'bench-a/0/',
    peer: 'bench-b',
    address: `127.0.0.1:${port}`,
    maxInFlight: o.maxInFlight,
    linkByNumber: (n) => links.get(n),
    drained: () => wake(),
    reconnectDelayMs: 100,
  });
  const send = (u: Uplink): boolean => channel.deliver(u.vehicleId, u.delivery, 0);
  const setWake = (fn: () => void): void => {
    wake = fn;
  };
  try {
    ctx.step('forwarding: warm-up');
    await drive(ups, send, setWake, sink, Math.min(1, o.seconds), undefined, () => undefined);

    ctx.step(`forwarding: saturated, credit ${o.maxInFlight}`);
    const stats0 = { ...channel.stats };
    let cpu0 = process.cpuUsage();
    let a0 = sink.answered;
    let stopTimeline = rateTimeline(() => sink.answered - a0);
    let r = await drive(ups, send, setWake, sink, o.seconds, undefined, (e) =>
      ctx.progress('forwarding, saturated', e, o.seconds),
    );
    const saturated = summarize(
      sink,
      r.answered,
      r.seconds,
      process.cpuUsage(cpu0),
      stopTimeline(),
      false,
    );
    const batchesOut = channel.stats.batchesOut - stats0.batchesOut;
    const recordsOut = channel.stats.recordsOut - stats0.recordsOut;

    const pacedRate = o.pacedRate > 0 ? o.pacedRate : Math.round(saturated.recordsPerSec / 2);
    ctx.step(`forwarding: paced at ${pacedRate} records/s`);
    sink.timing = true;
    cpu0 = process.cpuUsage();
    a0 = sink.answered;
    stopTimeline = rateTimeline(() => sink.answered - a0);
    r = await drive(ups, send, setWake, sink, o.seconds, pacedRate, (e) =>
      ctx.progress('forwarding, paced', e, o.seconds),
    );
    const paced = summarize(
      sink,
      r.answered,
      r.seconds,
      process.cpuUsage(cpu0),
      stopTimeline(),
      true,
    );

    ctx.step(`forwarding: baseline paced at ${pacedRate} records/s`);
    const baseSink = new AnswerSink();
    baseSink.timing = true;
    const pair = new InProcessPair(baseSink);
    cpu0 = process.cpuUsage();
    stopTimeline = rateTimeline(() => baseSink.answered);
    r = await drive(
      ups,
      (u) => pair.deliver(u),
      () => undefined,
      baseSink,
      o.seconds,
      pacedRate,
      () => undefined,
    );
    const baselinePaced = summarize(
      baseSink,
      r.answered,
      r.seconds,
      process.cpuUsage(cpu0),
      stopTimeline(),
      true,
    );
    ctx.step(`forwarding: bare gRPC echo paced at ${pacedRate} records/s`);
    const echoSink = new AnswerSink();
    const echo = new EchoPair(`127.0.0.1:${echoPort}`, echoSink);
    await drive(
      ups,
      (u) => echo.deliver(u),
      () => undefined,
      echoSink,
      0.5,
      1000,
      () => undefined,
    );
    echoSink.h.reset();
    echoSink.timing = true;
    cpu0 = process.cpuUsage();
    const e0 = echoSink.answered;
    stopTimeline = rateTimeline(() => echoSink.answered - e0);
    r = await drive(
      ups,
      (u) => echo.deliver(u),
      () => undefined,
      echoSink,
      o.seconds,
      pacedRate,
      () => undefined,
    );
    const echoPaced = summarize(
      echoSink,
      r.answered,
      r.seconds,
      process.cpuUsage(cpu0),
      stopTimeline(),
      true,
    );
    echo.close();
    return {
      saturated,
      paced,
      echoPaced,
      baselineSaturated,
      baselinePaced,
      pacedRate,
      batchesOut,
      recordsOut,
    };
  } finally {
    channel.close();
    worker.postMessage('stop');
    await Promise.race([new Promise((r) => worker.once('exit', r)), sleep(2000)]);
    await worker.terminate();
  }
}

// --- join ---------------------------------------------------------------------------------

interface JoinRow {
  nodes: number;
  workers: number;
  slots: number;
  moved: number;
  movedShare: number;
  ideal: number;
  /** Shards that changed owner between the nodes already there (0 with rendezvous hashing). */
  betweenOld: number;
  /** What the old nodes' plans say they lost, summed (equals moved). */
  lost: number;
  planMs: number;
}

function joinShares(nodes: number[], workers: number, onRow: (done: number) => void): JoinRow[] {
  const rows: JoinRow[] = [];
  const members = (n: number): { node: string; workers: number }[] =>
    Array.from({ length: n }, (_, i) => ({ node: `node-${i + 1}`, workers }));
  const views = new Map<number, PlacementView>();
  const view = (n: number): PlacementView => {
    let v = views.get(n);
    if (!v) views.set(n, (v = new PlacementView(members(n))));
    return v;
  };
  for (const n of nodes) {
    const before = view(n);
    const after = view(n + 1);
    const joiner = `node-${n + 1}`;
    const t0 = performance.now();
    const plan = planHandoff(before, after, joiner, workers);
    const planMs = performance.now() - t0;
    let moved = 0;
    for (const l of plan.gained.values()) moved += l.length;
    let changed = 0;
    for (let s = 0; s < after.shards; s++)
      if (before.nodeOfShard(s) !== after.nodeOfShard(s)) changed++;
    let lost = 0;
    for (const m of members(n)) lost += planHandoff(before, after, m.node, workers).lost;
    rows.push({
      nodes: n,
      workers,
      slots: n * workers,
      moved,
      movedShare: moved / after.shards,
      ideal: 1 / (n + 1),
      betweenOld: changed - moved,
      lost,
      planMs,
    });
    views.delete(n - 1);
    onRow(rows.length);
  }
  return rows;
}

// --- processes: failover and durable ------------------------------------------------------

const MEMBERS_PREFIX = 'fleetmesh/members/';

async function dropDatabase(uri: string, database: string): Promise<void> {
  const c = new MongoClient(uri);
  await c.connect();
  await c.db(database).dropDatabase();
  await c.close();
}

async function countPositions(uri: string, database: string): Promise<number> {
  const c = new MongoClient(uri);
  await c.connect();
  const n = await c.db(database).collection(COLLECTIONS.positions).countDocuments();
  await c.close();
  return n;
}

/** `names.length` node processes in one cluster; resolves once etcd lists them all, settled. */
async function startCluster(
  servers: LocalServers,
  database: string,
  names: string[],
  base: Partial<NodeOptions>,
  ttlSeconds: number,
): Promise<NodeProcess[]> {
  const nodes = await Promise.all(
    names.map((node) =>
      forkNode({
        ...base,
        node,
        mongodbUri: servers.mongodbUri,
        database,
        membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds },
      }),
    ),
  );
  const etcd = new Etcd3({ hosts: servers.etcdEndpoints });
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const keys = await etcd.getAll().prefix(MEMBERS_PREFIX).keys();
      if (names.every((n) => keys.includes(MEMBERS_PREFIX + n))) break;
      if (Date.now() > deadline) throw new Error('cluster: the nodes did not all join');
      await sleep(100);
    }
  } finally {
    etcd.close();
  }
  // The routers apply a placement 300 ms after the membership's last change.
  await sleep(1500);
  return nodes;
}

/** The node owning each vehicle, as every node computes it from the same members. */
function ownerView(names: string[], workers: number): (vehicleId: string) => string {
  const v = new PlacementView(names.map((node) => ({ node, workers })));
  return (id) => v.nodeOfShard(shardOf(id));
}

/** Registers and authenticates a terminal through `port`, retrying while placements settle. */
async function onlineTerminal(
  port: number,
  phone: string,
  timeoutMs: number,
): Promise<SimTerminal> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const t = new SimTerminal({ port, phone, timeoutMs });
    try {
      await t.connect();
      if ((await t.register()) !== 0) throw new Error(`${phone}: registration refused`);
      if ((await t.authenticate()) !== 0) throw new Error(`${phone}: authentication refused`);
      return t;
    } catch (err) {
      lastErr = err;
      t.close();
      await sleep(200);
    }
  }
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}

interface DurableRun {
  nodes: number;
  terminals: number;
  reportsPerSec: number;
  ackP50Ms: number;
  ackP99Ms: number;
  ackP999Ms: number;
  acked: number;
  stored: number;
  /** Terminals whose vehicle is owned by another node than the one they are connected to. */
  crossShare: number;
  timeline: TimePoint[];
  percentiles: PercentilePoint[];
}

async function durableRun(
  ctx: BenchContext,
  servers: LocalServers,
  count: number,
  o: ClusterBenchOptions,
): Promise<DurableRun> {
  const database = `fleetmesh_bench_cluster_${count}`;
  await dropDatabase(servers.mongodbUri, database);
  const base: Partial<NodeOptions> = {
    policy: { ackMode: 'durable' },
    writer: { maxBatch: 1000, maxDelayMs: 10 },
    workers: o.workers,
  };
  const names = Array.from({ length: count }, (_, i) => `d${i + 1}`);
  // One node is the single-node path (no membership, no router); three are a cluster.
  const nodes =
    count === 1
      ? [await forkNode({ ...base, mongodbUri: servers.mongodbUri, database })]
      : await startCluster(servers, database, names, base, 10);
  const owner = count === 1 ? () => 'd1' : ownerView(names, o.workers);
  const terminals: SimTerminal[] = [];
  let cross = 0;
  try {
    for (let i = 0; i < o.terminals; i += 50) {
      const group = await Promise.all(
        Array.from({ length: Math.min(50, o.terminals - i) }, (_, j) => {
          const k = i + j;
          const phone = `0138${String(k).padStart(8, '0')}`;
          if (owner(vehicleIdOf(phone)) !== names[k % count]) cross++;
          return onlineTerminal(nodes[k % count]!.port, phone, 60_000);
        }),
      );
      terminals.push(...group);
    }
    const h = histogram();
    let acked = 0;
    let stop = false;
    const t0 = performance.now();
    const stopTimeline = rateTimeline(() => acked);
    const progress = setInterval(
      () =>
        ctx.progress(
          `durable, ${count} node(s)`,
          (performance.now() - t0) / 1000,
          o.durableSeconds,
        ),
      250,
    );
    await Promise.all(
      terminals.map(async (t) => {
        let k = 0;
        const inFlight = new Set<Promise<void>>();
        while (!stop) {
          const sent = performance.now();
          const p: Promise<void> = t.report(trackPoint(k++)).then(
            (result) => {
              if (result !== 0) return;
              acked++;
              h.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
            },
            () => undefined,
          );
          const tracked: Promise<void> = p.finally(() => inFlight.delete(tracked));
          inFlight.add(tracked);
          if (inFlight.size >= o.window) await Promise.race(inFlight);
          if (performance.now() - t0 > o.durableSeconds * 1000) stop = true;
        }
        await Promise.all(inFlight);
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    clearInterval(progress);
    const timeline = stopTimeline();
    for (const t of terminals) t.close();
    await Promise.all(nodes.map((n) => n.flush()));
    const stored = await countPositions(servers.mongodbUri, database);
    const r: DurableRun = {
      nodes: count,
      terminals: terminals.length,
      reportsPerSec: acked / elapsed,
      ackP50Ms: h.getValueAtPercentile(50) / 1000,
      ackP99Ms: h.getValueAtPercentile(99) / 1000,
      ackP999Ms: h.getValueAtPercentile(99.9) / 1000,
      acked,
      stored,
      crossShare: cross / Math.max(1, o.terminals),
      timeline,
      percentiles: percentileCurve(h, 1 / 1000),
    };
    h.destroy();
    return r;
  } finally {
    for (const t of terminals) t.close();
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  }
}

interface FailoverGroup {
  terminals: number;
  recovered: number;
  /** Kill → the last of them has a report acknowledged that was sent after the kill, ms. */
  allMs: number;
  p50Ms: number;
  reconnects: number;
}

interface FailoverResult {
  ttlSeconds: number;
  /** Kill → the killed node's member key gone from etcd (its lease expired), ms. */
  leaseGoneMs: number;
  connected: FailoverGroup;
  /** Of those, the ones whose vehicle the killed node owned, and the ones a live node owns. */
  connectedOwned: FailoverGroup;
  connectedLiveOwner: FailoverGroup;
  owned: FailoverGroup;
  others: FailoverGroup;
  all: FailoverGroup;
}

interface FailTerminal {
  phone: string;
  code: string;
  gateway: number;
  t: SimTerminal;
  group: 'connected' | 'owned' | 'others';
  /** Owned by the killed node too (a terminal of the 'connected' group). */
  ownedByKilled: boolean;
  recoveredAt?: number;
  reconnects: number;
}

async function failover(
  ctx: BenchContext,
  servers: LocalServers,
  o: ClusterBenchOptions,
): Promise<FailoverResult> {
  const database = 'fleetmesh_bench_cluster_failover';
  await dropDatabase(servers.mongodbUri, database);
  const names = ['f1', 'f2', 'f3'];
  const victim = 1; // f2
  ctx.step(`failover: 3 nodes, lease TTL ${o.ttlSeconds} s`);
  const nodes = await startCluster(
    servers,
    database,
    names,
    { workers: o.workers, writer: { maxBatch: 1000, maxDelayMs: 10 } },
    o.ttlSeconds,
  );
  const ports = nodes.map((n) => n.port);
  const owner = ownerView(names, o.workers);
  const terms: FailTerminal[] = [];
  let stop = false;
  let killAt: number | undefined;
  const etcd = new Etcd3({ hosts: servers.etcdEndpoints });
  try {
    ctx.step(`failover: ${o.failoverTerminals} terminals over the 3 gateways`);
    for (let i = 0; i < o.failoverTerminals; i += 50) {
      const group = await Promise.all(
        Array.from({ length: Math.min(50, o.failoverTerminals - i) }, async (_, j) => {
          const k = i + j;
          const gateway = k % 3;
          const phone = `0137${String(k).padStart(8, '0')}`;
          const t = await onlineTerminal(ports[gateway]!, phone, o.reportTimeoutMs);
          const ownerNode = owner(vehicleIdOf(phone));
          const ft: FailTerminal = {
            phone,
            code: t.authCode ?? '',
            gateway,
            t,
            group:
              gateway === victim ? 'connected' : ownerNode === names[victim] ? 'owned' : 'others',
            ownedByKilled: ownerNode === names[victim],
            reconnects: 0,
          };
          return ft;
        }),
      );
      terms.push(...group);
    }
    // Each terminal reports every interval; when an answer does not come in time or the
    // connection closes, it connects to the next gateway in its list, authenticates, goes on.
    const runTerminal = async (ft: FailTerminal): Promise<void> => {
      let step = 0;
      // Our own flag: a SimTerminal whose connect failed never says it is closed.
      let connected = true;
      await sleep(Math.random() * o.intervalMs);
      while (!stop) {
        try {
          if (!connected || ft.t.closed) {
            const t = new SimTerminal({
              port: ports[ft.gateway]!,
              phone: ft.phone,
              timeoutMs: o.reportTimeoutMs,
            });
            ft.t = t;
            await t.connect();
            connected = true;
            if ((await t.authenticate(ft.code)) !== 0) throw new Error('authentication refused');
          }
          const sentAt = performance.now();
          const result = await ft.t.report(trackPoint(step++));
          if (result !== 0) throw new Error(`report result ${result}`);
          if (killAt !== undefined && sentAt >= killAt) ft.recoveredAt ??= performance.now();
          await sleep(o.intervalMs);
        } catch (err) {
          if (process.env.FLEETMESH_BENCH_DEBUG && killAt !== undefined)
            process.stderr.write(
              `${Math.round(performance.now() - killAt)} ms ${ft.phone} ${ft.group} owned by killed ${ft.ownedByKilled} gateway ${ft.gateway}: ${String(err)}\n`,
            );
          connected = false;
          ft.t.close();
          if (stop) break;
          ft.gateway = (ft.gateway + 1) % ports.length;
          ft.reconnects++;
          await sleep(100);
        }
      }
    };
    const running = terms.map((ft) => runTerminal(ft));
    await sleep(Math.max(2000, 2 * o.intervalMs));
    for (const ft of terms) ft.reconnects = 0;
    ctx.step(`failover: kill -9 of ${names[victim]}`);
    killAt = performance.now();
    process.kill(nodes[victim]!.pid, 'SIGKILL');
    let leaseGoneMs = NaN;
    const limitMs = (o.ttlSeconds + 30) * 1000;
    while (performance.now() - killAt < limitMs) {
      const now = performance.now();
      if (
        Number.isNaN(leaseGoneMs) &&
        (await etcd.get(MEMBERS_PREFIX + names[victim]!).string()) === null
      )
        leaseGoneMs = now - killAt;
      ctx.progress('failover', (now - killAt) / 1000, o.ttlSeconds + 5);
      if (!Number.isNaN(leaseGoneMs) && terms.every((ft) => ft.recoveredAt !== undefined)) break;
      await sleep(50);
    }
    stop = true;
    await Promise.all(running);
    const group = (list: FailTerminal[]): FailoverGroup => {
      const times = list
        .filter((ft) => ft.recoveredAt !== undefined)
        .map((ft) => ft.recoveredAt! - killAt!)
        .sort((a, b) => a - b);
      return {
        terminals: list.length,
        recovered: times.length,
        allMs: times.length === list.length && list.length > 0 ? times[times.length - 1]! : NaN,
        p50Ms: times.length > 0 ? times[Math.floor((times.length - 1) / 2)]! : NaN,
        reconnects: list.reduce((n, ft) => n + ft.reconnects, 0),
      };
    };
    return {
      ttlSeconds: o.ttlSeconds,
      leaseGoneMs,
      connected: group(terms.filter((ft) => ft.group === 'connected')),
      connectedOwned: group(terms.filter((ft) => ft.group === 'connected' && ft.ownedByKilled)),
      connectedLiveOwner: group(
        terms.filter((ft) => ft.group === 'connected' && !ft.ownedByKilled),
      ),
      owned: group(terms.filter((ft) => ft.group === 'owned')),
      others: group(terms.filter((ft) => ft.group === 'others')),
      all: group(terms),
    };
  } finally {
    stop = true;
    for (const ft of terms) ft.t.close();
    etcd.close();
    await Promise.all(
      nodes.filter((_, i) => i !== victim).map((n) => n.stop().catch(() => undefined)),
    );
  }
}

// --- the suite ----------------------------------------------------------------------------

export interface ClusterBenchResult {
  forwarding?: ForwardingResult;
  join?: JoinRow[];
  failover?: FailoverResult;
  durable?: { one: DurableRun; three: DurableRun };
}

export async function runClusterBench(
  ctx: BenchContext,
  options: Partial<ClusterBenchOptions> = {},
): Promise<ClusterBenchResult> {
  const o: ClusterBenchOptions = { ...DEFAULT_CLUSTER_OPTIONS, ...options };
  const out: ClusterBenchResult = {};
  const has = (p: ClusterPart): boolean => o.parts.includes(p);

  if (has('forwarding')) {
    const before = machine();
    const f = await forwarding(ctx, o);
    const after = machine();
    out.forwarding = f;
    const columns = [
      { key: 'recordsPerSec', label: 'records/s', digits: 0 },
      { key: 'p50Ms', label: 'p50 ms', digits: 3 },
      { key: 'p99Ms', label: 'p99 ms', digits: 3 },
      { key: 'p999Ms', label: 'p99.9 ms', digits: 3 },
      { key: 'maxMs', label: 'max ms', digits: 3 },
      { key: 'cpuUsPerRecord', label: 'CPU µs/record', digits: 2 },
    ];
    const figures = (r: ForwardingRun): Record<string, number> =>
      Object.fromEntries(
        Object.entries({
          recordsPerSec: r.recordsPerSec,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          p999Ms: r.p999Ms,
          maxMs: r.maxMs,
          cpuUsPerRecord: r.cpuUsPerRecord,
        }).filter((e): e is [string, number] => e[1] !== undefined),
      );
    const baseName = 'FrameBatchBuilder → readFrameBatch → SEND → readFrameBatch, in-process';
    const perBatch = f.recordsOut / Math.max(1, f.batchesOut);
    ctx.table({
      title: `cluster: cross-node forwarding, one PeerChannel → PeerInbound pair over gRPC on loopback (inbound in a worker thread; its fake host answers each uplink with a SEND), ${o.links} terminals, credit ${o.maxInFlight}, ${o.seconds} s each; a record counts once its SEND is back; latency: round trip out and back; goals ≥ 500 000 records/s, p99 ≤ 2 ms at half load; ${Math.round(perBatch)} records per batch when saturated; CPU: the whole process (both sides); ${before} before, ${after} after`,
      columns,
      rows: [
        {
          name: 'saturated (as fast as the credit allows)',
          figures: figures(f.saturated),
          baseline: { name: `${baseName}, tight loop`, figures: figures(f.baselineSaturated) },
          ratio: {
            column: 'recordsPerSec',
            value: f.saturated.recordsPerSec / f.baselineSaturated.recordsPerSec,
          },
          timeline: f.saturated.timeline,
          baselineTimeline: f.baselineSaturated.timeline,
        },
        {
          name: `paced at ${f.pacedRate} records/s${o.pacedRate > 0 ? '' : ' (half)'}`,
          figures: figures(f.paced),
          baseline: {
            name: `${baseName}, one batch per turn, same pace`,
            figures: figures(f.baselinePaced),
          },
          ratio: { column: 'p99Ms', value: f.paced.p99Ms! / f.baselinePaced.p99Ms! },
          timeline: f.paced.timeline,
          baselineTimeline: f.baselinePaced.timeline,
          ...(f.paced.percentiles ? { percentiles: f.paced.percentiles } : {}),
          ...(f.baselinePaced.percentiles
            ? { baselinePercentiles: f.baselinePaced.percentiles }
            : {}),
        },
        {
          name: `reference: bare gRPC echo of the same batches at ${f.pacedRate} records/s (no PeerChannel, PeerInbound)`,
          figures: figures(f.echoPaced),
          baseline: {
            name: `${baseName}, one batch per turn, same pace`,
            figures: figures(f.baselinePaced),
          },
          ratio: { column: 'p99Ms', value: f.echoPaced.p99Ms! / f.baselinePaced.p99Ms! },
          ...(f.echoPaced.percentiles ? { percentiles: f.echoPaced.percentiles } : {}),
          ...(f.baselinePaced.percentiles
            ? { baselinePercentiles: f.baselinePaced.percentiles }
            : {}),
        },
      ],
      timelineUnit: 'records/s answered',
      percentileUnit: 'ms record → its SEND back',
    });
  }

  if (has('join')) {
    const total = o.joinWorkers.length * o.joinNodes.length;
    let done = 0;
    const rows: JoinRow[] = [];
    for (const w of o.joinWorkers) {
      ctx.step(`join: one node of ${w} workers joins ${o.joinNodes.join(', ')} nodes`);
      const before = done;
      rows.push(
        ...joinShares(o.joinNodes, w, (n) => ctx.progress('join', (done = before + n), total)),
      );
    }
    out.join = rows;
    ctx.table({
      title:
        'cluster: shards moved when a node joins n nodes (each and the joiner with the same workers), planHandoff over PlacementView, 65 536 shards; baseline: the ideal share 1/(n+1)',
      columns: [
        { key: 'slots', label: 'slots before', digits: 0 },
        { key: 'moved', label: 'shards moved', digits: 0 },
        { key: 'movedShare', label: 'share moved', digits: 4 },
        { key: 'betweenOld', label: 'moved between old nodes', digits: 0 },
        { key: 'lost', label: 'old nodes lost', digits: 0 },
        { key: 'planMs', label: 'plan ms', digits: 1 },
      ],
      rows: rows.map((r): Row => ({
        name: `${r.nodes} nodes × ${r.workers} workers + 1`,
        figures: {
          slots: r.slots,
          moved: r.moved,
          movedShare: r.movedShare,
          betweenOld: r.betweenOld,
          lost: r.lost,
          planMs: r.planMs,
        },
        baseline: {
          name: `ideal 1/${r.nodes + 1}`,
          figures: { moved: r.ideal * 65_536, movedShare: r.ideal },
        },
        ratio: { column: 'movedShare', value: r.movedShare / r.ideal },
      })),
    });
  }

  if (has('failover') || has('durable')) {
    const servers = await startLocalServers();
    const store = servers.storeBackend
      ? `local FerretDB on ${servers.storeBackend}`
      : 'MONGODB_URI';
    try {
      if (has('failover') && o.failoverTerminals > 0) {
        const before = machine();
        const f = await failover(ctx, servers, o);
        out.failover = f;
        const row = (name: string, g: FailoverGroup): Row => ({
          name,
          figures: {
            terminals: g.terminals,
            recovered: g.recovered,
            allMs: g.allMs / 1000,
            p50Ms: g.p50Ms / 1000,
            reconnects: g.reconnects,
          },
          baseline: {
            name: `the lease alone: kill → member key gone from etcd (TTL ${f.ttlSeconds} s)`,
            figures: { allMs: f.leaseGoneMs / 1000 },
          },
          ratio: { column: 'allMs', value: g.allMs / f.leaseGoneMs },
        });
        ctx.table({
          title: `cluster: kill -9 of one of 3 node processes (${o.workers} worker(s) each, lease TTL ${f.ttlSeconds} s, the dominant term), ${o.failoverTerminals} terminals spread over the 3 gateways reporting every ${o.intervalMs} ms; a terminal whose answer does not come within ${o.reportTimeoutMs} ms or whose connection closes connects to the next gateway and authenticates; time from the kill to a report sent after it being acknowledged; goal ≤ 10 s; store: ${store}; ${before}`,
          columns: [
            { key: 'terminals', label: 'terminals', digits: 0 },
            { key: 'recovered', label: 'reporting again', digits: 0 },
            { key: 'allMs', label: 'all again s', digits: 2 },
            { key: 'p50Ms', label: 'p50 s', digits: 2 },
            { key: 'reconnects', label: 'reconnects', digits: 0 },
          ],
          rows: [
            row('connected to the killed node (its terminals)', f.connected),
            row('  of which owned by it', f.connectedOwned),
            row('  of which owned by a live node', f.connectedLiveOwner),
            row('owned by the killed node, connected to another', f.owned),
            row('neither', f.others),
            row('all terminals', f.all),
          ],
        });
      }
      if (has('durable') && o.terminals > 0) {
        const before = machine();
        ctx.step(`durable: 1 node, ${o.terminals} terminals`);
        const one = await durableRun(ctx, servers, 1, o);
        ctx.step(`durable: 3 nodes, ${o.terminals} terminals over their gateways`);
        const three = await durableRun(ctx, servers, 3, o);
        out.durable = { one, three };
        const figures = (d: DurableRun): Record<string, number> => ({
          reportsPerSec: d.reportsPerSec,
          ackP50Ms: d.ackP50Ms,
          ackP99Ms: d.ackP99Ms,
          ackP999Ms: d.ackP999Ms,
          acked: d.acked,
          stored: d.stored,
          crossShare: d.crossShare,
        });
        ctx.table({
          title: `cluster: durable reports/s, ${o.terminals} terminals (window ${o.window}, ${o.durableSeconds} s) spread over the gateways, ${o.workers} worker(s) per node, every node a process of its own; baseline: 1 node, the single-node path (no membership), same store (${store}); ${before} before, ${machine()} after`,
          columns: [
            { key: 'reportsPerSec', label: 'reports/s', digits: 0 },
            { key: 'ackP50Ms', label: 'ack p50 ms', digits: 1 },
            { key: 'ackP99Ms', label: 'ack p99 ms', digits: 1 },
            { key: 'ackP999Ms', label: 'ack p99.9 ms', digits: 1 },
            { key: 'acked', label: 'acked', digits: 0 },
            { key: 'stored', label: 'stored', digits: 0 },
            { key: 'crossShare', label: 'owned elsewhere', digits: 2 },
          ],
          rows: [
            {
              name: '3 nodes',
              figures: figures(three),
              baseline: { name: '1 node', figures: figures(one) },
              ratio: { column: 'reportsPerSec', value: three.reportsPerSec / one.reportsPerSec },
              timeline: three.timeline,
              baselineTimeline: one.timeline,
              percentiles: three.percentiles,
              baselinePercentiles: one.percentiles,
            },
          ],
          timelineUnit: 'reports/s acknowledged',
          percentileUnit: 'ms report → ack',
        });
      }
    } finally {
      await servers.stop();
    }
  }
  return out;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === INBOUND_ROLE)
  await serveInbound();
