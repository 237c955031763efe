// `fleetmesh track VEHICLE --from T --to T [--format csv|geojson]`: a vehicle's stored track
// from a node's HistoryService (StreamTrack), written to stdout as it arrives: CSV (one line
// per point) or GeoJSON (a FeatureCollection of points, in time order). Blind-area re-uploads
// are marked in both.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HISTORY_PROTO } from '../api/historyService.js';
import { projectRoot } from '../devservers/localServers.js';
import { UsageError } from './start.js';

export const trackUsage = `VEHICLE --from T --to T [--format csv|geojson] [--server HOST:PORT]
                        [--token T] [--fields a,b] [--bucket-ms MS | --tolerance-m M]`;

const HELP = `usage: fleetmesh track ${trackUsage}
  VEHICLE            the terminal's phone (1 to 20 digits)
  --from, --to       ISO 8601 times (2026-11-01T08:00:00+08:00) or Unix ms; at most 31 days
  --format           csv (default) or geojson
  --server           the node's gRPC address (default localhost:9808)
  --token            bearer token (default: FLEETMESH_GRPC_TOKEN, then .fleetmesh/grpc-token)
  --fields           only these fields (latitude, longitude, altitude, speed, direction, alarm,
                     status, mileage_km, fuel_l, satellites, signal, received_at, source)
  --bucket-ms MS     the first point of every MS milliseconds
  --tolerance-m M    Douglas-Peucker: drop points within M metres of the simplified line
`;

type Obj = Record<string, unknown>;

/** A time flag: Unix ms, or anything Date.parse takes that carries a date (ISO 8601). */
export function parseTime(name: string, raw: string | undefined): number {
  if (raw === undefined) throw new UsageError(`${name} is required`);
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isSafeInteger(ms)) throw new UsageError(`${name}: '${raw}' is not a time`);
  return ms;
}

/** The bearer token: the flag's, else FLEETMESH_GRPC_TOKEN, else .fleetmesh/grpc-token. */
export function resolveToken(flag: string | undefined): string {
  const token =
    flag ??
    process.env.FLEETMESH_GRPC_TOKEN ??
    (existsSync(join(projectRoot, '.fleetmesh', 'grpc-token'))
      ? readFileSync(join(projectRoot, '.fleetmesh', 'grpc-token'), 'utf8').trim()
      : undefined);
  if (!token)
    throw new UsageError('no token: --token, FLEETMESH_GRPC_TOKEN or .fleetmesh/grpc-token');
  return token;
}

/** A HistoryService client for `server` (host:port), camelCase fields as the server's. */
export function historyClient(server: string): grpc.Client {
  const loaded = grpc.loadPackageDefinition(
    protoLoader.loadSync(HISTORY_PROTO, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    }),
  ) as unknown as { fleetmesh: { v1: { HistoryService: grpc.ServiceClientConstructor } } };
  return new loaded.fleetmesh.v1.HistoryService(server, grpc.credentials.createInsecure());
}

interface TrackArgs {
  vehicleId: string;
  from: number;
  to: number;
  format: 'csv' | 'geojson';
  server: string;
  token: string;
  request: Obj;
}

function parseArgs(args: string[]): TrackArgs | undefined {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  const known = [
    '--from',
    '--to',
    '--format',
    '--server',
    '--token',
    '--fields',
    '--bucket-ms',
    '--tolerance-m',
  ];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') return undefined;
    if (a.startsWith('--')) {
      if (!known.includes(a)) throw new UsageError(`unknown option ${a}`);
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      flags.set(a, v);
    } else positional.push(a);
  }
  if (positional.length !== 1) throw new UsageError('name one VEHICLE');
  const format = flags.get('--format') ?? 'csv';
  if (format !== 'csv' && format !== 'geojson')
    throw new UsageError(`--format takes csv or geojson, not '${format}'`);
  const token = resolveToken(flags.get('--token'));
  const from = parseTime('--from', flags.get('--from'));
  const to = parseTime('--to', flags.get('--to'));
  const request: Obj = {
    vehicleId: positional[0],
    fromUnixMs: from,
    toUnixMs: to,
    fields:
      flags
        .get('--fields')
        ?.split(',')
        .filter((f) => f !== '') ?? [],
  };
  if (flags.has('--bucket-ms') && flags.has('--tolerance-m'))
    throw new UsageError('--bucket-ms and --tolerance-m: one downsampling at a time');
  if (flags.has('--bucket-ms')) {
    request.downsampling = 'DOWNSAMPLING_TIME_BUCKET';
    request.bucketMs = Number(flags.get('--bucket-ms'));
  }
  if (flags.has('--tolerance-m')) {
    request.downsampling = 'DOWNSAMPLING_DOUGLAS_PEUCKER';
    request.toleranceM = Number(flags.get('--tolerance-m'));
  }
  return {
    vehicleId: positional[0]!,
    from,
    to,
    format,
    server: flags.get('--server') ?? 'localhost:9808',
    token,
    request,
  };
}

const CSV_HEADER =
  'time,time_unix_ms,latitude,longitude,altitude_m,speed_kmh,direction_deg,alarm,status,mileage_km,blind_area,source\n';

function csvLine(p: Obj): string {
  const t = Number(p.timeUnixMs);
  return `${[
    new Date(t).toISOString(),
    t,
    p.latitude,
    p.longitude,
    p.altitudeM,
    p.speedKmh,
    p.directionDeg,
    p.alarm,
    p.status,
    p.mileageKm ?? '',
    p.blindArea ? 1 : 0,
    p.source,
  ].join(',')}\n`;
}

function geojsonFeature(p: Obj): string {
  const { latitude, longitude, timeUnixMs, ...rest } = p;
  const properties: Obj = { time: new Date(Number(timeUnixMs)).toISOString(), timeUnixMs };
  for (const [k, v] of Object.entries(rest))
    if (v !== null && v !== undefined && !k.startsWith('_')) properties[k] = v;
  return JSON.stringify({
    type: 'Feature',
    geometry: { type: 'Point', coordinates: [longitude, latitude] },
    properties,
  });
}

/** Writes, waiting for the output to drain when it is full (a pipe to a slow reader). */
export async function writeOut(out: Writable, s: string): Promise<void> {
  if (!out.write(s)) await new Promise((r) => out.once('drain', r));
}

/** Runs the command; the track goes to `out` (stdout). */
export async function runTrack(args: string[], out: Writable = process.stdout): Promise<number> {
  const a = parseArgs(args);
  if (!a) {
    out.write(HELP);
    return 0;
  }
  const client = historyClient(a.server);
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${a.token}`);
  const stream = (
    client as unknown as Record<
      string,
      (r: Obj, m: grpc.Metadata) => grpc.ClientReadableStream<Obj>
    >
  ).streamTrack!.call(client, a.request, md);
  let first = true;
  try {
    await writeOut(
      out,
      a.format === 'csv' ? CSV_HEADER : '{"type":"FeatureCollection","features":[\n',
    );
    for await (const chunk of stream as AsyncIterable<Obj>) {
      let text = '';
      for (const p of chunk.points as Obj[]) {
        if (a.format === 'csv') text += csvLine(p);
        else {
          text += `${first ? '' : ',\n'}${geojsonFeature(p)}`;
          first = false;
        }
      }
      await writeOut(out, text);
    }
    if (a.format === 'geojson') await writeOut(out, '\n]}\n');
    return 0;
  } catch (err) {
    const e = err as Partial<grpc.ServiceError>;
    throw new Error(e.details ? `${grpc.status[e.code ?? 2]}: ${e.details}` : String(err));
  } finally {
    client.close();
  }
}
