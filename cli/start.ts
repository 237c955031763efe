// `fleetmesh start`: the local system — etcd and the MongoDB-protocol server (kept under
// .fleetmesh/data so data survives restarts, unless external ones are named), one node with its
// JT/T 808 gateway, and with `--sim N` a simulator of N terminals. A status line shows
// connections and authenticated terminals, distinct reports stored per second, acknowledgement
// p99 and persist lag; JSON logs go to stderr, Prometheus metrics to --metrics-port. Ctrl-C
// stops everything.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { projectRoot, startLocalServers } from '../cluster/localServers.js';
import { writerTotals } from '../cluster/vehicleShard.js';
import { startGrpcServer } from '../cluster/grpcServer.js';
import { createLog, LOG_LEVELS, logLevelFrom } from '../cluster/log.js';
import { advertisedHost, startNode } from '../cluster/node.js';
import { externalServers, localStoreBackend } from '../cluster/serverConfig.js';

/**
 * The port OpenTelemetry's Prometheus exporter uses by default (registered for it in the
 * Prometheus project's port list), so it is where a scraper expects a service's metrics, and
 * it is not next to 8808/9808, which a second node on the machine shifts by one.
 */
export const DEFAULT_METRICS_PORT = 9464;

interface StartOption {
  name: string;
  value: string;
  help: string;
}

// Every option `start` takes: the parser accepts only these and the help lists them all, so the
// two cannot drift apart.
const startOptions: readonly StartOption[] = [
  { name: '--port', value: 'PORT', help: 'JT/T 808 gateway port (8808; 0: a free one)' },
  { name: '--grpc-port', value: 'PORT', help: 'gRPC port (9808)' },
  {
    name: '--metrics-port',
    value: 'PORT',
    help: `Prometheus metrics at /metrics (${DEFAULT_METRICS_PORT}; 0: off)`,
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
  { name: '--dashboard-port', value: 'PORT', help: 'operator web dashboard (8080; 0: off)' },
  { name: '--node', value: 'NAME', help: "this node's name in the membership in etcd (node-1)" },
  {
    name: '--advertise',
    value: 'HOST',
    help: 'host the other members reach it at (--host; 127.0.0.1 for 0.0.0.0)',
  },
  { name: '--ack', value: 'durable|receive', help: 'acknowledge reports once stored (durable)' },
  { name: '--sim', value: 'N', help: 'also run N simulated terminals (0)' },
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

/** Runs until SIGINT/SIGTERM; with -h/--help prints the options instead. */
export async function runStart(rawArgs: string[]): Promise<number> {
  const { argv: args, help } = parseStartArgs(rawArgs);
  if (help) {
    process.stdout.write(`usage: fleetmesh start [options]\n${startUsage()}`);
    return 0;
  }
  const external = externalServers(args);
  const port = numberFlag(args, '--port', 8808, 65535);
  const grpcPort = numberFlag(args, '--grpc-port', 9808, 65535);
  const metricsPort = numberFlag(args, '--metrics-port', DEFAULT_METRICS_PORT, 65535);
  const levelFlag = flag(args, '--log-level');
  if (levelFlag !== undefined && !(LOG_LEVELS as readonly string[]).includes(levelFlag)) {
    throw new UsageError(`--log-level takes ${LOG_LEVELS.join('|')}, not '${levelFlag}'`);
  }
  const nodeName = flag(args, '--node') ?? 'node-1';
  const logger = createLog({ level: logLevelFrom(levelFlag), base: { node: nodeName } });
  const sim = numberFlag(args, '--sim', 0, 1_000_000);
  const intervalMs = numberFlag(args, '--interval-ms', 10_000, 3_600_000);
  const ack = flag(args, '--ack') ?? 'durable';
  if (ack !== 'durable' && ack !== 'receive') {
    throw new UsageError(`--ack takes durable or receive, not '${ack}'`);
  }
  const ackMode = ack;
  const storeBackend = localStoreBackend(args);
  const servers = await startLocalServers({
    external,
    storeBackend,
    dataDir: flag(args, '--data-dir') ?? join(projectRoot, '.fleetmesh', 'data'),
  });
  const acks = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 2,
  });
  const host = flag(args, '--host') ?? '0.0.0.0';
  const advertise = flag(args, '--advertise');
  const node = await startNode({
    node: nodeName,
    mongodbUri: servers.mongodbUri,
    port,
    host,
    membership: {
      etcdEndpoints: servers.etcdEndpoints,
      ...(advertise ? { advertise } : {}),
      grpc: `${advertisedHost(host, advertise)}:${grpcPort}`,
    },
    logger,
    // 0 is "off" here, not "a free port": an operator asks for no metrics port.
    ...(metricsPort > 0 ? { metrics: { port: metricsPort, host } } : {}),
    policy: { ackMode },
    events: {
      ackLatency: (ms) => acks.recordValue(Math.max(1, Math.round(ms))),
    },
  });
  const { tokens, file: tokenFile } = grpcTokens(args);
  const grpc = await startGrpcServer(node, {
    host,
    port: grpcPort,
    tokens,
  });
  // The operator's web dashboard (docs/dashboard.md): a client of the gRPC service above.
  const { startBesideNode } = await import('../dashboard/index.js');
  const dashboard = await startBesideNode({
    port: numberFlag(args, '--dashboard-port', 8080, 65535),
    portGiven: flag(args, '--dashboard-port') !== undefined,
    host,
    grpcPort: grpc.port,
    token: tokens[0] as string,
    nodeName: node.node,
  });
  process.stdout.write(`${dashboard.line}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void dashboard.stop());
  }
  const lines = [
    `fleetmesh: MongoDB ${servers.mongodbUri}${servers.storeBackend ? ` (local FerretDB on ${servers.storeBackend})` : ' (external)'}`,
    `fleetmesh: etcd    ${servers.etcdEndpoints.join(',')}${external.etcdEndpoints ? ' (external)' : ' (local)'}`,
    ...servers.processes.map((p) => `fleetmesh: ${p.name} pid ${p.pid}, log ${p.logFile}`),
    `fleetmesh: JT/T 808 gateway on port ${node.port} (${ackMode} acknowledgements)`,
    node.metrics
      ? `fleetmesh: Prometheus metrics at http://${advertisedHost(host, advertise)}:${node.metrics.port}/metrics`
      : 'fleetmesh: metrics off',
    `fleetmesh: member ${node.node} of the cluster in etcd (${node.members().length} live)`,
    `fleetmesh: gRPC fleetmesh.v1.VehicleService on port ${grpc.port} (health, reflection; token ${tokenFile ? `in ${tokenFile}` : 'as given'})`,
    `fleetmesh:   grpcurl -plaintext -H "authorization: Bearer $(cat .fleetmesh/grpc-token)" localhost:${grpc.port} fleetmesh.v1.VehicleService/ListOnlineVehicles`,
    'fleetmesh: running; Ctrl-C stops it',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  let simulator: ChildProcess | undefined;
  if (sim > 0) {
    simulator = fork(
      fileURLToPath(new URL('../bench/simulate.js', import.meta.url)),
      ['--port', String(node.port), '--count', String(sim), '--interval-ms', String(intervalMs)],
      {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      },
    );
  }

  let lastStored = 0;
  const status = setInterval(() => void statusLine().catch(() => undefined), 2000);
  async function statusLine(): Promise<void> {
    const positions = writerTotals(await node.stats(), 'positions');
    // Distinct reports: a retransmission of a stored report is a duplicate, not a report.
    const rate = (positions.stored - lastStored) / 2;
    lastStored = positions.stored;
    const g = node.gateway.stats;
    // Both: sockets that never authenticate show as connections; terminals online are the
    // authenticated ones.
    const line = `members ${node.members().length}  connections ${g.connections}  terminals online ${g.connections - g.pending}  reports/s ${rate.toFixed(0)}  acks p99 ${acks.getValueAtPercentile(99)} ms  persist lag ${positions.lastLagMs} ms  buffered ${positions.buffered}`;
    acks.reset();
    if (process.stdout.isTTY) process.stdout.write(`\r${line.padEnd(100)}`);
    else process.stdout.write(`${line}\n`);
  }

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(status);
  simulator?.kill();
  await grpc.stop();
  await node.stop();
  await servers.stop();
  acks.destroy();
  process.stdout.write('\nfleetmesh: stopped\n');
  return 0;
}
