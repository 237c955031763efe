// `fleetmesh start`: the local system — etcd and the MongoDB-protocol server (kept under
// .fleetmesh/data so data survives restarts, unless external ones are named), the locator on the
// port terminals are configured with (8808), `--nodes N` nodes each in a process of its own
// (gateways on 8809…, gRPC on 9808…, metrics on 9464…), and with `--sim N` a simulator of N
// terminals that start at the locator. A status line shows every node: connections and
// authenticated terminals, distinct reports stored per second, acknowledgement p99 and persist
// lag; JSON logs go to stderr. Ctrl-C stops the nodes first (each leaves the membership and hands
// its vehicles to the others), then the locator, then the servers.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { projectRoot, startLocalServers } from '../devservers/localServers.js';
import { writerTotals } from '../hosting/vehicleThread.js';
import { startGrpcServer } from '../api/grpcServer.js';
import { createLog, LOG_LEVELS, logLevelFrom } from '../telemetry/log.js';
import type { DrainStats } from '../cluster/drain.js';
import { startLocatorService } from '../locator/locatorService.js';
import { advertisedHost, startNode } from '../node/node.js';
import { externalServers, localStoreBackend } from '../devservers/serverConfig.js';
import { RateWindow } from './rateWindow.js';

/**
 * The port OpenTelemetry's Prometheus exporter uses by default (registered for it in the
 * Prometheus project's port list), so it is where a scraper expects a service's metrics, and
 * it is not next to 8808/9808, which a second node on the machine shifts by one.
 */
export const DEFAULT_METRICS_PORT = 9464;

/** Nodes one `start` runs: each is a process with its worker threads; more is a real cluster's job. */
export const MAX_NODES = 16;

interface StartOption {
  name: string;
  value: string;
  help: string;
}

// Every option `start` takes: the parser accepts only these and the help lists them all, so the
// two cannot drift apart.
const startOptions: readonly StartOption[] = [
  {
    name: '--nodes',
    value: 'N',
    help: `nodes on this machine, a process each (1; at most ${MAX_NODES})`,
  },
  {
    name: '--port',
    value: 'PORT',
    help: "the locator's JT/T 808 port, where terminals connect (8808; 0: a free one)",
  },
  {
    name: '--gateway-port',
    value: 'PORT',
    help: "the first node's JT/T 808 gateway, the next nodes the ports after it (8809; 0: free)",
  },
  {
    name: '--grpc-port',
    value: 'PORT',
    help: "the first node's gRPC, the next nodes the ports after it (9808; 0: free)",
  },
  {
    name: '--metrics-port',
    value: 'PORT',
    help: `the first node's Prometheus metrics at /metrics, the next after it (${DEFAULT_METRICS_PORT}; 0: off)`,
  },
  {
    name: '--locator-grpc-port',
    value: 'PORT',
    help: "the locator's gRPC Locate, Drain, ListDecisions (9807; 0: a free one)",
  },
  {
    name: '--log-level',
    value: 'LEVEL',
    help: 'JSON logs on stderr from this level (FLEETMESH_LOG_LEVEL; info)',
  },
  {
    name: '--grpc-token',
    value: 'T[,T]',
    help: 'gRPC bearer tokens (FLEETMESH_GRPC_TOKENS; .fleetmesh/grpc-token)',
  },
  { name: '--host', value: 'HOST', help: 'address to listen on (0.0.0.0)' },
  {
    name: '--dashboard-port',
    value: 'PORT',
    help: 'operator web dashboard, reading the first node and the locator (8080; 0: off)',
  },
  {
    name: '--node',
    value: 'NAME',
    help: "the first node's name in etcd; the next ones count on (node-1, node-2, …)",
  },
  {
    name: '--advertise',
    value: 'HOST',
    help: 'host the other members reach it at (--host; 127.0.0.1 for 0.0.0.0)',
  },
  { name: '--ack', value: 'durable|receive', help: 'acknowledge reports once stored (durable)' },
  {
    name: '--sim',
    value: 'N',
    help: 'also run N simulated terminals, starting at the locator (0)',
  },
  { name: '--interval-ms', value: 'MS', help: "the simulated terminals' report interval (10000)" },
  { name: '--data-dir', value: 'DIR', help: "the local servers' data (.fleetmesh/data)" },
  {
    name: '--mongodb-uri',
    value: 'URI',
    help: 'use this MongoDB (MONGODB_URI; default: start the local store)',
  },
  {
    name: '--local-store',
    value: 'postgresql|sqlite',
    help: "the local store's backend (FLEETMESH_LOCAL_STORE; postgresql)",
  },
  {
    name: '--etcd-endpoints',
    value: 'URL[,URL]',
    help: 'use this etcd (ETCD_ENDPOINTS; default: start a local one)',
  },
];

/** The options of `start`, one a line, indented by `indent`. */
export function startUsage(indent = '  '): string {
  const left = startOptions.map((o) => `${o.name} ${o.value}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return startOptions
    .map((o, i) => `${indent}${(left[i] as string).padEnd(width)}${o.help}\n`)
    .join('');
}

export class UsageError extends Error {}

/**
 * `--name value` or `--name=value` pairs of known options, as `--name value` (the form
 * serverConfig's readers take too); `help` when -h/--help is among them.
 */
export function parseStartArgs(args: readonly string[]): { argv: string[]; help: boolean } {
  const argv: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-h' || a === '--help') return { argv: [], help: true };
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!startOptions.some((o) => o.name === name)) throw new UsageError(`unknown option '${a}'`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    argv.push(name, value);
  }
  return { argv, help: false };
}

/** The first value of `name` in parsed `--name value` pairs. */
function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i += 2) if (args[i] === name) return args[i + 1];
  return undefined;
}

function numberFlag(args: string[], name: string, fallback: number, max: number): number {
  const raw = flag(args, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new UsageError(`${name} takes a whole number from 0 to ${max}, not '${raw}'`);
  }
  return n;
}

/**
 * gRPC bearer tokens: `--grpc-token T`, or FLEETMESH_GRPC_TOKENS (comma-separated), or one
 * generated on first start and kept in .fleetmesh/grpc-token (printed at start).
 */
function grpcTokens(args: string[]): { tokens: string[]; file?: string } {
  const given = flag(args, '--grpc-token') ?? process.env.FLEETMESH_GRPC_TOKENS;
  if (given) return { tokens: given.split(',').filter((t) => t !== '') };
  const dir = join(projectRoot, '.fleetmesh');
  const file = join(dir, 'grpc-token');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  }
  return { tokens: [readFileSync(file, 'utf8').trim()], file };
}

/** The node names: the first as given, the next counting on its number (node-1 → node-2). */
export function nodeNames(first: string, count: number): string[] {
  const m = /^(.*?)(\d+)$/.exec(first);
  return Array.from({ length: count }, (_, i) =>
    i === 0 ? first : m ? `${m[1]}${Number(m[2]) + i}` : `${first}-${i + 1}`,
  );
}

/** What a node process is started with (sent over IPC: tokens stay out of the process list). */
export interface NodeChildConfig {
  node: string;
  mongodbUri: string;
  etcdEndpoints: string[];
  host: string;
  advertise?: string;
  port: number;
  grpcPort: number;
  /** 0: no metrics server. */
  metricsPort: number;
  ackMode: 'durable' | 'receive';
  tokens: string[];
  logLevel?: string;
  /** Drain: a terminal still here this long after its 0x8105 is closed (default 30 s). */
  drainCloseAfterMs?: number;
}

/** A node process's figures for the status line (and tests). */
export interface NodeChildStatus {
  node: string;
  members: number;
  connections: number;
  /** Connections still waiting to authenticate. */
  pending: number;
  /** Distinct reports its vehicles stored since start (retransmissions not counted). */
  reportsStored: number;
  /** Location reports (0x0200, 0x0704) its gateway received since start. */
  reportsReceived: number;
  persistLagMs: number;
  buffered: number;
  /** Acknowledgement p99 since the last status (ms). */
  ackP99Ms: number;
  draining: boolean;
  drain: DrainStats | undefined;
}

export interface NodeChild {
  node: string;
  pid: number;
  port: number;
  grpcPort: number;
  metricsPort: number | undefined;
  status(): Promise<NodeChildStatus>;
  /** Stops the node (it leaves the membership, hands its vehicles over) and waits for its exit. */
  stop(): Promise<void>;
  /** Resolves with its exit code when the process ends, for whatever reason. */
  /** Its exit code, or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals | null>;
}

type ChildReply =
  | { ready: true; port: number; grpcPort: number; metricsPort?: number }
  | { failed: string }
  | { id: number; result?: NodeChildStatus; error?: string };

/**
 * Starts a node in a process of its own. Detached: a terminal's Ctrl-C reaches only the parent,
 * which stops the nodes before the locator and the servers; a parent that dies closes the IPC
 * channel, and the node stops by itself then.
 */
export async function forkNodeChild(config: NodeChildConfig): Promise<NodeChild> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['node-child'], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    detached: true,
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (c, signal) => resolve(c ?? signal)),
  );
  let next = 0;
  const waiting = new Map<
    number,
    { resolve(v: NodeChildStatus | undefined): void; reject(e: Error): void }
  >();
  void exited.then((code) => {
    for (const w of waiting.values()) w.reject(new Error(`${config.node} exited (${code})`));
    waiting.clear();
  });
  const ready = new Promise<{ port: number; grpcPort: number; metricsPort?: number }>(
    (resolve, reject) => {
      child.on('message', (m: ChildReply) => {
        if ('ready' in m) resolve(m);
        else if ('failed' in m) reject(new Error(`${config.node}: ${m.failed}`));
        else {
          const w = waiting.get(m.id);
          waiting.delete(m.id);
          if (m.error !== undefined) w?.reject(new Error(m.error));
          else w?.resolve(m.result);
        }
      });
      void exited.then((code) =>
        reject(new Error(`${config.node} exited (${code}) before it was ready`)),
      );
    },
  );
  child.send({ config });
  const ports = await ready;
  const ask = (op: 'status' | 'stop'): Promise<NodeChildStatus | undefined> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error(`${config.node} is gone`));
      const id = next++;
      waiting.set(id, { resolve, reject });
      child.send({ id, op });
    });
  return {
    node: config.node,
    pid: child.pid as number,
    port: ports.port,
    grpcPort: ports.grpcPort,
    metricsPort: ports.metricsPort,
    status: async () => (await ask('status')) as NodeChildStatus,
    async stop() {
      if (child.exitCode === null && child.signalCode === null)
        await ask('stop').catch(() => undefined);
      await exited;
    },
    exited,
  };
}

/** The node process: one node, its gRPC server, figures on request, stop on request. */
async function runNodeChild(): Promise<void> {
  const [message] = (await once(process, 'message')) as [{ config: NodeChildConfig }];
  const c = message.config;
  const logger = createLog({ level: logLevelFrom(c.logLevel), base: { node: c.node } });
  const acks = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 2,
  });
  let node: Awaited<ReturnType<typeof startNode>>;
  let grpc: Awaited<ReturnType<typeof startGrpcServer>>;
  try {
    node = await startNode({
      node: c.node,
      mongodbUri: c.mongodbUri,
      port: c.port,
      host: c.host,
      membership: {
        etcdEndpoints: c.etcdEndpoints,
        ...(c.advertise ? { advertise: c.advertise } : {}),
        grpc: `${advertisedHost(c.host, c.advertise)}:${c.grpcPort}`,
        ...(c.drainCloseAfterMs !== undefined
          ? { drain: { closeAfterMs: c.drainCloseAfterMs } }
          : {}),
      },
      logger,
      // 0 is "off" here, not "a free port": an operator asks for no metrics port.
      ...(c.metricsPort > 0 ? { metrics: { port: c.metricsPort, host: c.host } } : {}),
      policy: { ackMode: c.ackMode },
      events: { ackLatency: (ms) => acks.recordValue(Math.max(1, Math.round(ms))) },
    });
    grpc = await startGrpcServer(node, { host: c.host, port: c.grpcPort, tokens: c.tokens }).catch(
      async (err: unknown) => {
        await node.stop();
        throw err;
      },
    );
  } catch (err) {
    process.send?.({ failed: err instanceof Error ? err.message : String(err) }, () =>
      process.exit(1),
    );
    return;
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await grpc.stop();
      await node.stop();
      acks.destroy();
    })());
  const status = async (): Promise<NodeChildStatus> => {
    const positions = writerTotals(await node.stats(), 'positions');
    const g = node.gateway.stats;
    const s: NodeChildStatus = {
      node: node.node,
      members: node.members().length,
      connections: g.connections,
      pending: g.pending,
      reportsStored: positions.stored,
      reportsReceived: (g.framesById.get(0x0200) ?? 0) + (g.framesById.get(0x0704) ?? 0),
      persistLagMs: positions.lastLagMs,
      buffered: positions.buffered,
      ackP99Ms: acks.getValueAtPercentile(99),
      draining: node.drain?.draining ?? false,
      drain: node.drain ? { ...node.drain.stats, recent: [...node.drain.stats.recent] } : undefined,
    };
    acks.reset();
    return s;
  };
  process.on('message', (m: { id?: number; op?: 'status' | 'stop' }) => {
    if (m.id === undefined) return;
    const work = m.op === 'stop' ? stop().then(() => undefined) : status();
    work.then(
      (result) =>
        process.send?.({ id: m.id, result }, () => {
          if (m.op === 'stop') process.exit(0);
        }),
      (err: unknown) => process.send?.({ id: m.id, error: String(err) }),
    );
  });
  // The parent died (its IPC channel closed) or asked with a signal: stop in order all the same.
  process.once('disconnect', () => void stop().finally(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().finally(() => process.exit(0)));
  process.on('SIGINT', () => undefined); // the parent decides when a node stops
  process.send?.({
    ready: true,
    port: node.port,
    grpcPort: grpc.port,
    ...(node.metrics ? { metricsPort: node.metrics.port } : {}),
  });
}

/** A port option, and the ports after it for the next nodes (0 stays 0: a free one each). */
function portsFrom(args: string[], name: string, fallback: number, count: number): number[] {
  const first = numberFlag(args, name, fallback, 65535);
  if (first > 0 && first + count - 1 > 65535)
    throw new UsageError(`${name} ${first} leaves no room for ${count} nodes`);
  return Array.from({ length: count }, (_, i) => (first === 0 ? 0 : first + i));
}

/** Runs until SIGINT/SIGTERM; with -h/--help prints the options instead. */
export async function runStart(rawArgs: string[]): Promise<number> {
  const { argv: args, help } = parseStartArgs(rawArgs);
  if (help) {
    process.stdout.write(`usage: fleetmesh start [options]\n${startUsage()}`);
    return 0;
  }
  const external = externalServers(args);
  const count = numberFlag(args, '--nodes', 1, MAX_NODES);
  if (count < 1) throw new UsageError(`--nodes takes a whole number from 1 to ${MAX_NODES}`);
  const locatorPort = numberFlag(args, '--port', 8808, 65535);
  const gatewayPorts = portsFrom(args, '--gateway-port', 8809, count);
  const grpcPorts = portsFrom(args, '--grpc-port', 9808, count);
  const metricsPorts = portsFrom(args, '--metrics-port', DEFAULT_METRICS_PORT, count);
  const locatorGrpcPort = numberFlag(args, '--locator-grpc-port', 9807, 65535);
  const levelFlag = flag(args, '--log-level');
  if (levelFlag !== undefined && !(LOG_LEVELS as readonly string[]).includes(levelFlag)) {
    throw new UsageError(`--log-level takes ${LOG_LEVELS.join('|')}, not '${levelFlag}'`);
  }
  const names = nodeNames(flag(args, '--node') ?? 'node-1', count);
  const sim = numberFlag(args, '--sim', 0, 1_000_000);
  const intervalMs = numberFlag(args, '--interval-ms', 10_000, 3_600_000);
  const ack = flag(args, '--ack') ?? 'durable';
  if (ack !== 'durable' && ack !== 'receive') {
    throw new UsageError(`--ack takes durable or receive, not '${ack}'`);
  }
  const ackMode = ack;
  const storeBackend = localStoreBackend(args);
  const dashboardPort = numberFlag(args, '--dashboard-port', 8080, 65535);
  const logger = createLog({ level: logLevelFrom(levelFlag), base: { role: 'locator' } });
  const { tokens, file: tokenFile } = grpcTokens(args);
  const host = flag(args, '--host') ?? '0.0.0.0';
  const advertise = flag(args, '--advertise');
  const servers = await startLocalServers({
    external,
    storeBackend,
    dataDir: flag(args, '--data-dir') ?? join(projectRoot, '.fleetmesh', 'data'),
  });
  const started = await Promise.allSettled(
    names.map((node, i) =>
      forkNodeChild({
        node,
        mongodbUri: servers.mongodbUri,
        etcdEndpoints: servers.etcdEndpoints,
        host,
        ...(advertise ? { advertise } : {}),
        port: gatewayPorts[i]!,
        grpcPort: grpcPorts[i]!,
        metricsPort: metricsPorts[i]!,
        ackMode,
        tokens,
        ...(levelFlag ? { logLevel: levelFlag } : {}),
      }),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r) => r.status === 'rejected');
  let locator: Awaited<ReturnType<typeof startLocatorService>> | undefined;
  try {
    if (failed) throw failed.reason;
    // The locator reads the nodes from etcd and sends each terminal to the least loaded.
    locator = await startLocatorService({
      etcdEndpoints: servers.etcdEndpoints,
      host,
      port: locatorPort,
      grpcPort: locatorGrpcPort,
      grpcTokens: tokens,
      logger,
    });
  } catch (err) {
    for (const n of nodes.reverse()) await n.stop();
    await servers.stop();
    throw err;
  }
  const first = nodes[0]!;
  // The operator's web dashboard (docs/dashboard.md): a client of the first node's gRPC.
  const { startBesideNode } = await import('../dashboard/index.js');
  const dashboard = await startBesideNode({
    port: dashboardPort,
    portGiven: flag(args, '--dashboard-port') !== undefined,
    host,
    grpcPort: first.grpcPort,
    token: tokens[0] as string,
    nodeName: first.node,
    // Its Locator panel reads the locator's decisions (ListDecisions) with the same tokens.
    ...(locator.grpc ? { locatorGrpcPort: locator.grpc.port } : {}),
  });
  process.stdout.write(`${dashboard.line}\n`);
  const reach = advertisedHost(host, advertise);
  const lines = [
    `fleetmesh: MongoDB ${servers.mongodbUri}${servers.storeBackend ? ` (local FerretDB on ${servers.storeBackend})` : ' (external)'}`,
    `fleetmesh: etcd    ${servers.etcdEndpoints.join(',')}${external.etcdEndpoints ? ' (external)' : ' (local)'}`,
    ...servers.processes.map((p) => `fleetmesh: ${p.name} pid ${p.pid}, log ${p.logFile}`),
    `fleetmesh: locator: terminals connect to JT/T 808 port ${locator.port} and are sent on to a node (0x8105); gRPC fleetmesh.v1.LocatorService on port ${locator.grpc?.port ?? 'none'}`,
    ...nodes.map(
      (n) =>
        `fleetmesh: node ${n.node} (pid ${n.pid}): JT/T 808 gateway on port ${n.port}, gRPC on port ${n.grpcPort}, ` +
        (n.metricsPort !== undefined
          ? `metrics at http://${reach}:${n.metricsPort}/metrics`
          : 'metrics off'),
    ),
    `fleetmesh: ${ackMode} acknowledgements; members of the cluster in etcd: ${nodes.map((n) => n.node).join(', ')}`,
    `fleetmesh: gRPC fleetmesh.v1.VehicleService on port ${first.grpcPort} (${first.node}; every node answers for every vehicle; health, reflection; token ${tokenFile ? `in ${tokenFile}` : 'as given'})`,
    `fleetmesh:   grpcurl -plaintext -H "authorization: Bearer $(cat .fleetmesh/grpc-token)" localhost:${first.grpcPort} fleetmesh.v1.VehicleService/ListOnlineVehicles`,
    `fleetmesh: drain a node: npx fleetmesh drain ${nodes[nodes.length - 1]!.node} --etcd-endpoints ${servers.etcdEndpoints.join(',')}`,
    'fleetmesh: running; Ctrl-C stops it',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  for (const n of nodes)
    void n.exited.then((code) => {
      if (!stopping)
        process.stderr.write(
          `fleetmesh: node ${n.node} exited (${code}); it is not restarted: its terminals reconnect through the locator to the others\n`,
        );
    });

  let simulator: ChildProcess | undefined;
  if (sim > 0) {
    // Configured with the locator's address, as terminals in the field are.
    simulator = fork(
      fileURLToPath(new URL('../bench/simulate.js', import.meta.url)),
      [
        ...['--port', String(locator.port), '--locator'],
        ...['--count', String(sim), '--interval-ms', String(intervalMs)],
      ],
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
    );
  }

  // reports/s over the last report interval (10 s at least), not since the last line 2 s ago:
  // every terminal is counted once per interval, so the figure is steady (cli/rateWindow.ts).
  const rateWindowMs = Math.max(10_000, intervalMs);
  const storedRates = new Map<string, RateWindow>();
  const receivedRates = new Map<string, RateWindow>();
  const rateOf = (windows: Map<string, RateWindow>, name: string, count: number): number => {
    let w = windows.get(name);
    if (!w) windows.set(name, (w = new RateWindow(rateWindowMs)));
    return w.sample(performance.now(), count);
  };
  const status = setInterval(() => void statusLine().catch(() => undefined), 2000);
  async function statusLine(): Promise<void> {
    const all = await Promise.all(nodes.map((n) => n.status().catch(() => undefined)));
    let connections = 0;
    let online = 0;
    let rate = 0;
    let p99 = 0;
    let lag = 0;
    let buffered = 0;
    let members = 0;
    const each: string[] = [];
    all.forEach((s, i) => {
      const name = nodes[i]!.node;
      if (!s) return each.push(`${name} gone`);
      // Distinct reports: a retransmission of a stored report is a duplicate, not a report.
      const r = rateOf(storedRates, name, s.reportsStored);
      // Per node, what its gateway received: where the terminals are, not where vehicles live.
      const received = rateOf(receivedRates, name, s.reportsReceived);
      connections += s.connections;
      online += s.connections - s.pending;
      rate += r;
      p99 = Math.max(p99, s.ackP99Ms);
      lag = Math.max(lag, s.persistLagMs);
      buffered += s.buffered;
      members = Math.max(members, s.members);
      each.push(
        `${name}${s.draining ? ' draining' : ''} ${s.connections}/${s.connections - s.pending} ${received.toFixed(0)}/s`,
      );
    });
    // Both: sockets that never authenticate show as connections; terminals online are the
    // authenticated ones. Per node: connections/authenticated, reports/s its gateway received.
    const line =
      `members ${members}  connections ${connections}  terminals online ${online}  reports/s ${rate.toFixed(0)}  ` +
      `acks p99 ${p99} ms  persist lag ${lag} ms  buffered ${buffered}  | ${each.join(' | ')}`;
    // On a terminal the line is redrawn in place: cut to the width (a wrapped line would leave
    // its first row behind at every redraw) and cleared to the end.
    const width = Math.max(20, (process.stdout.columns ?? 200) - 1);
    const shown = line.length > width ? `${line.slice(0, width - 1)}…` : line;
    if (process.stdout.isTTY) process.stdout.write(`\r${shown}\x1b[K`);
    else process.stdout.write(`${line}\n`);
  }

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  stopping = true;
  clearInterval(status);
  simulator?.kill();
  await dashboard.stop();
  // The nodes first, one at a time and the last started first: each leaves the membership and
  // hands its vehicles to those still running. Then the locator, then the servers.
  for (const n of [...nodes].reverse()) await n.stop();
  await locator.stop();
  await servers.stop();
  process.stdout.write('\nfleetmesh: stopped\n');
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'node-child')
  await runNodeChild();
