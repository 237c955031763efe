// `fleetmesh start`: the local system — etcd and the MongoDB-protocol server (kept under
// .fleetmesh/data so data survives restarts, unless external ones are named), one node with its
// JT/T 808 gateway, and with `--sim N` a simulator of N terminals. A status line shows terminals
// online, reports/s, acknowledgement p99 and persist lag. Ctrl-C stops everything.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { projectRoot, startLocalServers } from '../cluster/localServers.js';
import { writerTotals } from '../cluster/vehicleShard.js';
import { startGrpcServer } from '../cluster/grpcServer.js';
import { advertisedHost, startNode } from '../cluster/node.js';
import { externalServers, localStoreBackend } from '../cluster/serverConfig.js';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
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

export async function runStart(args: string[]): Promise<number> {
  const external = externalServers(args);
  const port = Number(flag(args, '--port') ?? 8808);
  const sim = Number(flag(args, '--sim') ?? 0);
  const ackMode = flag(args, '--ack') === 'receive' ? 'receive' : 'durable';
  const servers = await startLocalServers({
    external,
    storeBackend: localStoreBackend(args),
    dataDir: flag(args, '--data-dir') ?? join(projectRoot, '.fleetmesh', 'data'),
  });
  const acks = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 2,
  });
  let online = 0;
  const host = flag(args, '--host') ?? '0.0.0.0';
  const grpcPort = Number(flag(args, '--grpc-port') ?? 9808);
  const advertise = flag(args, '--advertise');
  const node = await startNode({
    node: flag(args, '--node') ?? 'node-1',
    mongodbUri: servers.mongodbUri,
    port,
    host,
    membership: {
      etcdEndpoints: servers.etcdEndpoints,
      ...(advertise ? { advertise } : {}),
      grpc: `${advertisedHost(host, advertise)}:${grpcPort}`,
    },
    log: (line) => process.stderr.write(`${line}\n`),
    policy: { ackMode },
    events: {
      ackLatency: (ms) => acks.recordValue(Math.max(1, Math.round(ms))),
      online: (_id, isOnline) => (online += isOnline ? 1 : -1),
    },
  });
  const { tokens, file: tokenFile } = grpcTokens(args);
  const grpc = await startGrpcServer(node, {
    host,
    port: grpcPort,
    tokens,
  });
  const lines = [
    `fleetmesh: MongoDB ${servers.mongodbUri}${servers.storeBackend ? ` (local FerretDB on ${servers.storeBackend})` : ' (external)'}`,
    `fleetmesh: etcd    ${servers.etcdEndpoints.join(',')}${external.etcdEndpoints ? ' (external)' : ' (local)'}`,
    ...servers.processes.map((p) => `fleetmesh: ${p.name} pid ${p.pid}, log ${p.logFile}`),
    `fleetmesh: JT/T 808 gateway on port ${node.port} (${ackMode} acknowledgements)`,
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
      [
        '--port',
        String(node.port),
        '--count',
        String(sim),
        '--interval-ms',
        flag(args, '--interval-ms') ?? '10000',
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      },
    );
  }

  let lastStored = 0;
  const status = setInterval(() => void statusLine().catch(() => undefined), 2000);
  async function statusLine(): Promise<void> {
    const positions = writerTotals(await node.stats(), 'positions');
    const stored = positions.stored + positions.duplicates;
    const rate = (stored - lastStored) / 2;
    lastStored = stored;
    const line = `members ${node.members().length}  terminals online ${online}  reports/s ${rate.toFixed(0)}  acks p99 ${acks.getValueAtPercentile(99)} ms  persist lag ${positions.lastLagMs} ms  buffered ${positions.buffered}`;
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
