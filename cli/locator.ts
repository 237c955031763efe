// `fleetmesh locator`: the locator as a process of its own (several can run): terminals
// configured with its address get 0x8105 to the least-loaded node; gRPC Locate for other
// clients. It reads the nodes from etcd and keeps nothing else (docs/locator.md).
import { readFileSync } from 'node:fs';
import { createLog, logLevelFrom } from '../telemetry/log.js';
import type { ZoneMap } from '../cluster/locatorPolicy.js';
import { startLocatorService } from '../locator/locatorService.js';
import { UsageError } from './start.js';

const OPTIONS: readonly { name: string; value: string; help: string }[] = [
  { name: '--etcd-endpoints', value: 'URL[,URL]', help: 'etcd of the cluster (ETCD_ENDPOINTS)' },
  { name: '--host', value: 'HOST', help: 'address to listen on (0.0.0.0)' },
  {
    name: '--port',
    value: 'PORT',
    help: 'JT/T 808 port terminals connect to (8808; 0: a free one)',
  },
  {
    name: '--grpc-port',
    value: 'PORT',
    help: 'gRPC Locate, Drain, ListDecisions, health, reflection (9807; 0: free)',
  },
  {
    name: '--grpc-token',
    value: 'T[,T]',
    help: 'bearer tokens (none: Locate open, Drain and ListDecisions refused)',
  },
  {
    name: '--zones',
    value: 'FILE',
    help: 'JSON {"regions": {"44": "south", "44/100": "gz"}, "vehicles": {…}}',
  },
  {
    name: '--time-limit',
    value: 'MIN',
    help: 'minutes a terminal stays on its node before coming back (60)',
  },
  {
    name: '--unsupported',
    value: 'close|parameters',
    help: 'terminals refusing 0x8105 word 2 (close)',
  },
  { name: '--log-level', value: 'LEVEL', help: 'JSON logs on stderr from this level (info)' },
];

export function locatorUsage(indent = '  '): string {
  const left = OPTIONS.map((o) => `${o.name} ${o.value}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return OPTIONS.map((o, i) => `${indent}${left[i]!.padEnd(width)}${o.help}\n`).join('');
}

function parse(args: readonly string[]): Map<string, string> | 'help' {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') return 'help';
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!OPTIONS.some((o) => o.name === name)) throw new UsageError(`unknown option '${a}'`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    out.set(name, value);
  }
  return out;
}

function port(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535)
    throw new UsageError(`${name} takes a port 0..65535, not '${v}'`);
  return n;
}

function zones(file: string): ZoneMap {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--zones ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const isMap = (x: unknown): x is Record<string, string> =>
    typeof x === 'object' && x !== null && Object.values(x).every((z) => typeof z === 'string');
  const o = v as { regions?: unknown; vehicles?: unknown };
  if (
    typeof v !== 'object' ||
    v === null ||
    (o.regions !== undefined && !isMap(o.regions)) ||
    (o.vehicles !== undefined && !isMap(o.vehicles))
  )
    throw new UsageError(`--zones ${file}: want {"regions": {…}, "vehicles": {…}} of zone names`);
  return v as ZoneMap;
}

export async function runLocator(args: readonly string[]): Promise<number> {
  const p = parse(args);
  if (p === 'help') {
    process.stdout.write(`usage: fleetmesh locator [options]\n${locatorUsage()}`);
    return 0;
  }
  const endpoints = (p.get('--etcd-endpoints') ?? process.env.ETCD_ENDPOINTS ?? '')
    .split(',')
    .filter((e) => e !== '');
  if (endpoints.length === 0)
    throw new UsageError('--etcd-endpoints (or ETCD_ENDPOINTS) is required');
  const unsupported = p.get('--unsupported') ?? 'close';
  if (unsupported !== 'close' && unsupported !== 'parameters')
    throw new UsageError(`--unsupported takes close or parameters, not '${unsupported}'`);
  const timeLimit = p.get('--time-limit') ?? '60';
  if (!/^\d+$/.test(timeLimit) || Number(timeLimit) > 65535)
    throw new UsageError(`--time-limit takes minutes 0..65535, not '${timeLimit}'`);
  const logger = createLog({
    level: logLevelFrom(p.get('--log-level')),
    base: { role: 'locator' },
  });
  const zoneFile = p.get('--zones');
  const tokens = p
    .get('--grpc-token')
    ?.split(',')
    .filter((t) => t !== '');
  const service = await startLocatorService({
    etcdEndpoints: endpoints,
    host: p.get('--host') ?? '0.0.0.0',
    port: port(p.get('--port'), 8808, '--port'),
    grpcPort: port(p.get('--grpc-port'), 9807, '--grpc-port'),
    ...(tokens && tokens.length > 0 ? { grpcTokens: tokens } : {}),
    ...(zoneFile ? { zones: zones(zoneFile) } : {}),
    timeLimitMinutes: Number(timeLimit),
    unsupported,
    logger,
  });
  logger.info(
    'locator.started',
    {
      port: service.port,
      grpcPort: service.grpc?.port ?? 0,
      members: service.watch.members().length,
    },
    'locator listening',
  );
  process.stdout.write(
    `locator: JT/T 808 on port ${service.port}, gRPC on ${service.grpc?.port ?? 'none'}; ` +
      `${service.watch.members().length} node(s) known\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await service.stop();
  return 0;
}
