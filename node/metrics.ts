// Prometheus metrics of one node, served over HTTP at GET /metrics. Most figures are counted
// already where they happen (the gateway's stats, each vehicle thread's actors, writers and
// loader); they are read at scrape time, so the hot paths pay nothing more. What is not counted
// elsewhere is counted here: acknowledgements by result (read from the frames written to
// terminals) and the acknowledgement latency (the vehicles' ackLatency events).
import { createServer, type Server } from 'node:http';
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
} from 'prom-client';
import { BATCH_SIZE_BUCKETS, type BatchSizeFigures } from '../storage/batchWriter.js';
import type { ThreadStats } from '../hosting/vehicleThread.js';
import type { Gateway } from '../gateway/gateway.js';
import type { RouterStats } from '../cluster/router.js';
import type { EventHub } from '../actors/eventHub.js';
import type { FleetLog } from '../telemetry/log.js';

const WRITERS = [
  'vehicles',
  'positions',
  'alarms',
  'sessions',
  'commands',
  'driverRecords',
  'drivingBehaviour',
] as const;

/** What the metrics read from a node (a subset of FleetNode, so no import cycle at run time). */
export interface MetricsSource {
  gateway: Gateway;
  events: EventHub;
  stats(): Promise<ThreadStats[]>;
  members(): readonly unknown[];
  /** Times the vehicle workers were started again (absent with workers: 0). */
  workerRestarts?(): number;
  /** What crossed between nodes (a member of a cluster only; cluster/router.ts). */
  routing?(): RouterStats & { pendingShards: number; isolated: boolean };
}

/**
 * The result byte of a 0x8001 platform general response, read from an encoded frame without
 * decoding it (only its first bytes are unescaped); undefined for any other message.
 */
export function ackResultOf(frame: Uint8Array): number | undefined {
  // Every downlink frame passes here: walk the escaped bytes without copying them. After the
  // leading 0x7e: message id (2), attributes (2), the rest of the header (12 or 17 bytes, 4 more
  // with sub-package fields), then replySerial(2) replyId(2) result(1).
  let i = 1;
  const next = (): number | undefined => {
    if (i >= frame.length - 1) return undefined;
    const b = frame[i++]!;
    if (b !== 0x7d || i >= frame.length - 1) return b;
    return frame[i++] === 0x02 ? 0x7e : 0x7d;
  };
  if (next() !== 0x80 || next() !== 0x01) return undefined;
  const hi = next();
  const lo = next();
  if (hi === undefined || lo === undefined) return undefined;
  const attrs = (hi << 8) + lo;
  const skip = (attrs & 0x4000 ? 13 : 8) + (attrs & 0x2000 ? 4 : 0) + 4;
  for (let k = 0; k < skip; k++) if (next() === undefined) return undefined;
  return next();
}

/**
 * A histogram whose buckets are counted elsewhere (the batch writers of every vehicle thread)
 * and copied in at scrape time: prom-client's Histogram only takes observations one by one,
 * which would mean sending every batch size across threads. Exposed exactly as a Histogram is.
 */
export class CopiedHistogram extends Histogram<string> {
  private readonly figures = new Map<string, BatchSizeFigures>();

  constructor(
    private readonly metricName: string,
    private readonly metricHelp: string,
    registry: Registry,
  ) {
    super({
      name: metricName,
      help: metricHelp,
      labelNames: ['collection'],
      buckets: [...BATCH_SIZE_BUCKETS],
      registers: [registry],
    });
  }

  /** The figures for one collection from now on (non-cumulative counts, the last +Inf). */
  setFigures(collection: string, f: BatchSizeFigures): void {
    this.figures.set(collection, f);
  }

  override get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.metricName}_bucket`;
    for (const [collection, f] of this.figures) {
      let acc = 0;
      BATCH_SIZE_BUCKETS.forEach((le, i) => {
        acc += f.counts[i] ?? 0;
        values.push({ metricName: bucket, labels: { le, collection }, value: acc });
      });
      acc += f.counts[BATCH_SIZE_BUCKETS.length] ?? 0;
      values.push({ metricName: bucket, labels: { le: '+Inf', collection }, value: acc });
      values.push({ metricName: `${this.metricName}_sum`, labels: { collection }, value: f.sum });
      values.push({ metricName: `${this.metricName}_count`, labels: { collection }, value: acc });
    }
    return Promise.resolve({
      name: this.metricName,
      help: this.metricHelp,
      // prom-client's typings declare MetricType a numeric enum; the library writes this string.
      type: 'histogram' as unknown as MetricType,
      aggregator: 'sum',
      collect: () => undefined,
      values,
    });
  }

  /** What the registry reads for the text exposition (Histogram's own reads its observations). */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.get();
  }
}

/** Sums bucket figures of several threads' writers. */
export function sumBatchSizes(all: readonly (BatchSizeFigures | undefined)[]): BatchSizeFigures {
  const out: BatchSizeFigures = {
    counts: new Array<number>(BATCH_SIZE_BUCKETS.length + 1).fill(0),
    sum: 0,
  };
  for (const f of all) {
    if (!f) continue;
    f.counts.forEach((c, i) => {
      if (i < out.counts.length) out.counts[i]! += c;
    });
    out.sum += f.sum;
  }
  return out;
}

/** How long a snapshot of the vehicle threads' stats is reused (several scrapers at once). */
const STATS_REUSE_MS = 500;

export class NodeMetrics {
  readonly registry = new Registry();
  private source: MetricsSource | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly acks: Counter<'result'>;
  private readonly ackLatency: Histogram;
  private readonly batchSizes: CopiedHistogram;
  private readonly gauges: Record<string, Gauge<string>> = {};
  private readonly counters: Record<string, Counter<string>> = {};
  private lastStats: { at: number; stats: ThreadStats[] } | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'fleetmesh_process_' });
    const r = [this.registry];
    this.acks = new Counter({
      name: 'fleetmesh_acks_total',
      help: '0x8001 general responses sent to terminals, by result (0 ok, 1 failure, 2 malformed/refused, 3 unsupported)',
      labelNames: ['result'],
      registers: r,
    });
    this.ackLatency = new Histogram({
      name: 'fleetmesh_ack_latency_seconds',
      help: 'From a report received to its acknowledgement sent (durable: once stored)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    this.batchSizes = new CopiedHistogram(
      'fleetmesh_store_batch_size',
      'Writes per bulk write sent to the store',
      this.registry,
    );
    const gauge = (name: string, help: string, labelNames: string[] = []): void => {
      this.gauges[name] = new Gauge({ name, help, labelNames, registers: r });
    };
    const counter = (name: string, help: string, labelNames: string[] = []): void => {
      this.counters[name] = new Counter({ name, help, labelNames, registers: r });
    };
    gauge('fleetmesh_connections', 'Open terminal connections');
    gauge('fleetmesh_terminals_authenticated', 'Connections whose terminal has authenticated');
    gauge('fleetmesh_connections_pending', 'Connections not authenticated yet');
    counter('fleetmesh_connections_accepted_total', 'Connections accepted');
    counter('fleetmesh_connections_refused_total', 'Connections refused at accept', ['reason']);
    counter('fleetmesh_connections_closed_total', 'Connections the node closed', ['reason']);
    counter('fleetmesh_frames_total', 'Frames received (including bad ones)');
    counter('fleetmesh_frames_by_id_total', 'Frames whose header was read', ['message_id']);
    counter('fleetmesh_bad_frames_total', 'Frames refused, by reason', ['reason']);
    gauge('fleetmesh_members', 'Live members of the cluster as this node sees them');
    counter('fleetmesh_worker_restarts_total', 'Vehicle worker threads started again');
    gauge('fleetmesh_actors_active', 'Vehicle actors in memory');
    counter('fleetmesh_actor_messages_total', 'Messages taken by vehicle actors');
    counter('fleetmesh_actor_activations_total', 'Vehicle actors activated');
    counter('fleetmesh_actor_passivations_total', 'Vehicle actors passivated');
    counter('fleetmesh_actor_errors_total', 'Actor turns, activations, passivations that threw');
    counter('fleetmesh_mailbox_refused_total', 'Messages refused by a full mailbox (retried)');
    gauge('fleetmesh_mailbox_queued', "Messages waiting in vehicle actors' mailboxes");
    gauge(
      'fleetmesh_persist_lag_seconds',
      'Age of the oldest write in the last batch (largest thread)',
      ['collection'],
    );
    gauge('fleetmesh_store_buffered', 'Writes waiting in the batch writers', ['collection']);
    gauge('fleetmesh_store_full', '1 while a writer is over its buffer limit (sockets paused)');
    counter('fleetmesh_store_writes_total', 'Writes settled, by outcome', [
      'collection',
      'outcome',
    ]);
    counter('fleetmesh_store_batches_total', 'Bulk writes sent (writes / batches = batch size)', [
      'collection',
    ]);
    counter('fleetmesh_store_retries_total', 'Bulk writes retried after a transient error', [
      'collection',
    ]);
    counter('fleetmesh_loader_reads_total', 'Batched activation reads', ['outcome']);
    counter(
      'fleetmesh_routed_records_total',
      'Frames routed between nodes: out (to an owner elsewhere), in (from a peer), relayed (for a peer whose view was behind), rerouted (sent back by a worker after a move)',
      ['direction'],
    );
    counter(
      'fleetmesh_link_order_total',
      "Frames put back in their connection's order by their vehicle: held (waited for an earlier one that came another way), gaps_skipped (waited too long; went on without it), late (came after its gap was given up; taken at once)",
      ['what'],
    );
    counter('fleetmesh_peer_calls_total', 'Calls between nodes (command, vehicle, …)', [
      'direction',
    ]);
    gauge('fleetmesh_proxy_links', "Links of other nodes' terminals whose vehicles run here");
    counter('fleetmesh_placement_changes_total', 'Placements applied (members changed)');
    counter('fleetmesh_shards_moved_total', 'Shards this node gained or lost', ['direction']);
    counter('fleetmesh_vehicles_handed_off_total', 'Vehicles saved and let go to a new owner');
    counter(
      'fleetmesh_handoff_timeouts_total',
      "Gained shards released without the previous owner's handoff marker",
    );
    gauge('fleetmesh_shards_pending', "Gained shards waiting for the previous owner's handoff");
    gauge('fleetmesh_isolated', '1 while this node is cut off and serves none of its vehicles');
    counter('fleetmesh_isolations_total', 'Times this node was cut off from the cluster');
  }

  /** Acknowledgements sent, by result byte (copied into the counter at scrape time). */
  private readonly acksByResult = new Array<number>(256).fill(0);

  /** For the gateway's `onDownlink` (every frame sent): counts acknowledgements by result. */
  readonly onDownlink = (frame: Uint8Array): void => {
    const result = ackResultOf(frame);
    if (result !== undefined) this.acksByResult[result]!++;
  };

  /** Reads its figures from this node from now on (and listens to its ack latencies). */
  attach(source: MetricsSource): void {
    this.source = source;
    this.unsubscribe?.();
    this.unsubscribe = source.events.subscribe({ kinds: new Set(['ackLatency']) }, (e) => {
      if (e.kind === 'ackLatency') this.ackLatency.observe(e.ms / 1000);
    });
  }

  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.source = undefined;
  }

  /** The exposition text, every figure read now. */
  async text(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  private setCounter(name: string, value: number, labels: Record<string, string> = {}): void {
    const c = this.counters[name]!;
    // Totals kept elsewhere: the counter takes their value (a restarted worker's reset shows
    // as a counter reset, which rate() handles).
    c.remove(labels);
    c.inc(labels, value);
  }

  private async refresh(): Promise<void> {
    const s = this.source;
    if (!s) return;
    const g = s.gateway.stats;
    this.gauges.fleetmesh_connections!.set(g.connections);
    this.gauges.fleetmesh_terminals_authenticated!.set(g.connections - g.pending);
    this.gauges.fleetmesh_connections_pending!.set(g.pending);
    this.setCounter('fleetmesh_connections_accepted_total', g.accepted);
    this.setCounter('fleetmesh_connections_refused_total', g.refusedConnections, {
      reason: 'max-connections',
    });
    this.setCounter('fleetmesh_connections_refused_total', g.refusedPending, {
      reason: 'max-pending',
    });
    const closed: [string, number][] = [
      ['garbage', g.closedForGarbage],
      ['idle', g.idleClosed],
      ['auth-deadline', g.authDeadlineClosed],
      ['slow-reader', g.closedSlowReader],
      ['backlog-full', g.closedBacklogFull],
    ];
    for (const [reason, v] of closed)
      this.setCounter('fleetmesh_connections_closed_total', v, { reason });
    this.setCounter('fleetmesh_frames_total', g.frames);
    for (const [id, v] of g.framesById)
      this.setCounter('fleetmesh_frames_by_id_total', v, {
        message_id: id === 'other' ? id : `0x${id.toString(16).padStart(4, '0')}`,
      });
    this.acksByResult.forEach((v, result) => {
      if (v === 0) return;
      this.acks.remove({ result: String(result) });
      this.acks.inc({ result: String(result) }, v);
    });
    this.gauges.fleetmesh_members!.set(s.members().length);
    const r = s.routing?.();
    if (r) {
      for (const [direction, v] of [
        ['out', r.routedOut],
        ['in', r.routedIn],
        ['relayed', r.relayed],
        ['rerouted', r.rerouted],
      ] as const)
        this.setCounter('fleetmesh_routed_records_total', v, { direction });
      this.setCounter('fleetmesh_peer_calls_total', r.callsIn, { direction: 'in' });
      this.setCounter('fleetmesh_peer_calls_total', r.callsOut, { direction: 'out' });
      this.gauges.fleetmesh_proxy_links!.set(r.proxyLinks);
      this.setCounter('fleetmesh_placement_changes_total', r.placementChanges);
      this.setCounter('fleetmesh_shards_moved_total', r.shardsGained, { direction: 'gained' });
      this.setCounter('fleetmesh_shards_moved_total', r.shardsLost, { direction: 'lost' });
      this.setCounter('fleetmesh_vehicles_handed_off_total', r.vehiclesHandedOff);
      this.setCounter('fleetmesh_handoff_timeouts_total', r.handoffTimeouts);
      this.gauges.fleetmesh_shards_pending!.set(r.pendingShards);
      this.gauges.fleetmesh_isolated!.set(r.isolated ? 1 : 0);
      this.setCounter('fleetmesh_isolations_total', r.isolations);
    }
    this.setCounter('fleetmesh_worker_restarts_total', s.workerRestarts?.() ?? 0);

    let threads: ThreadStats[] = [];
    const now = Date.now();
    if (this.lastStats && now - this.lastStats.at < STATS_REUSE_MS) threads = this.lastStats.stats;
    else {
      try {
        threads = await s.stats();
        this.lastStats = { at: now, stats: threads };
      } catch {
        // A worker being restarted: its figures are missing from this scrape.
        threads = this.lastStats?.stats ?? [];
      }
    }
    const sum = (f: (t: ThreadStats) => number): number => threads.reduce((a, t) => a + f(t), 0);
    const bad: Record<string, number> = { ...g.rejected };
    // Bodies read by the vehicle threads (bodies: 'raw') are checked there.
    bad['body-malformed'] = (bad['body-malformed'] ?? 0) + sum((t) => t.malformedBodies);
    bad.unauthenticated = g.unauthenticated;
    bad['phone-mismatch'] = g.phoneMismatch;
    for (const [reason, v] of Object.entries(bad))
      this.setCounter('fleetmesh_bad_frames_total', v ?? 0, { reason });
    for (const [what, f] of [
      ['held', (t: ThreadStats) => t.linkOrder?.held ?? 0],
      ['gaps_skipped', (t: ThreadStats) => t.linkOrder?.gapsSkipped ?? 0],
      ['late', (t: ThreadStats) => t.linkOrder?.late ?? 0],
    ] as const)
      this.setCounter('fleetmesh_link_order_total', sum(f), { what });
    this.gauges.fleetmesh_actors_active!.set(sum((t) => t.actors.active));
    this.gauges.fleetmesh_mailbox_queued!.set(sum((t) => t.actors.queued));
    this.setCounter(
      'fleetmesh_actor_messages_total',
      sum((t) => t.actors.messages),
    );
    this.setCounter(
      'fleetmesh_actor_activations_total',
      sum((t) => t.actors.activations),
    );
    this.setCounter(
      'fleetmesh_actor_passivations_total',
      sum((t) => t.actors.passivations),
    );
    this.setCounter(
      'fleetmesh_actor_errors_total',
      sum((t) => t.actors.errors),
    );
    this.setCounter(
      'fleetmesh_mailbox_refused_total',
      sum((t) => t.actors.refused),
    );
    this.gauges.fleetmesh_store_full!.set(threads.some((t) => t.full) ? 1 : 0);
    for (const w of WRITERS) {
      const collection = { collection: w };
      const lag = threads.reduce((a, t) => Math.max(a, t.writers[w].lastLagMs), 0);
      this.gauges.fleetmesh_persist_lag_seconds!.set(collection, lag / 1000);
      this.gauges.fleetmesh_store_buffered!.set(
        collection,
        sum((t) => t.writers[w].buffered),
      );
      const outcomes: [string, number][] = [
        ['stored', sum((t) => t.writers[w].stored)],
        ['duplicate', sum((t) => t.writers[w].duplicates)],
        ['failed', sum((t) => t.writers[w].failed)],
        // Refused at once: the writer held its hard limit.
        ['refused', sum((t) => t.writers[w].refused)],
        // Refused because a newer owner of the vehicle wrote the document.
        ['fenced', sum((t) => t.writers[w].fenced)],
      ];
      for (const [outcome, v] of outcomes)
        this.setCounter('fleetmesh_store_writes_total', v, { collection: w, outcome });
      this.setCounter(
        'fleetmesh_store_batches_total',
        sum((t) => t.writers[w].batches),
        collection,
      );
      this.batchSizes.setFigures(w, sumBatchSizes(threads.map((t) => t.writers[w].batchSizes)));
      this.setCounter(
        'fleetmesh_store_retries_total',
        sum((t) => t.writers[w].retries),
        collection,
      );
    }
    const reads = sum((t) => t.loader.reads);
    const failedReads = sum((t) => t.loader.failedReads);
    this.setCounter('fleetmesh_loader_reads_total', reads - failedReads, { outcome: 'ok' });
    this.setCounter('fleetmesh_loader_reads_total', failedReads, { outcome: 'failed' });
  }
}

/** GET /metrics over HTTP; anything else 404. Port 0 picks a free one. */
export async function serveMetrics(
  metrics: NodeMetrics,
  opts: { host?: string; port: number },
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Writes the store's silent troubles to the log every `intervalMs`: writes that failed for good
 * (each one answered result 1), a writer with writes waiting and none settled since the last
 * look (the store stalled), a writer over its buffer limit (sockets paused).
 */
export function watchStore(
  stats: () => Promise<ThreadStats[]>,
  log: FleetLog,
  intervalMs = 5000,
): () => void {
  let last: Record<string, { settled: number; failed: number }> | undefined;
  const check = async (): Promise<void> => {
    const threads = await stats();
    const now: Record<string, { settled: number; failed: number }> = {};
    for (const w of WRITERS) {
      let settled = 0;
      let failed = 0;
      let buffered = 0;
      let retries = 0;
      for (const t of threads) {
        const f = t.writers[w];
        settled += f.stored + f.duplicates + f.failed;
        failed += f.failed;
        buffered += f.buffered;
        retries += f.retries;
      }
      now[w] = { settled, failed };
      const before = last?.[w];
      if (!before) continue;
      if (failed > before.failed)
        log.error(
          'store.write-failed',
          { collection: w, failed: failed - before.failed },
          'writes failed for good',
        );
      if (buffered > 0 && settled === before.settled)
        log.warn(
          'store.stalled',
          { collection: w, buffered, retries },
          'no write settled in the last interval',
        );
    }
    if (threads.some((t) => t.full))
      log.warn('store.full', {}, 'a writer is over its buffer limit; sockets paused');
    last = now;
  };
  const timer = setInterval(() => {
    check().catch(() => undefined); // a worker being restarted: look again next time
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A running count over a list of restart times that keeps only its latest entries (the worker
 * host keeps 100): entries newer than the last one seen are new. Exact while fewer than the kept
 * number happen between two looks (restarts past the third in a minute are a second apart).
 */
export function restartCounter(restarts: readonly number[]): () => number {
  let total = 0;
  let newest = -Infinity;
  return () => {
    for (const t of restarts)
      if (t > newest) {
        total++;
      }
    if (restarts.length > 0) newest = Math.max(newest, restarts[restarts.length - 1]!);
    return total;
  };
}
