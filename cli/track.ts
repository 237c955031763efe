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
import { Output } from './output.js';
import { UsageError } from './start.js';

export const trackUsage = `VEHICLE --from T --to T [--format csv|geojson] [--server HOST:PORT]
                        [--token T] [--fields a,b] [--bucket-ms MS | --tolerance-m M]`;

const HELP = `usage: fleetmesh track ${trackUsage}
  VEHICLE            the terminal's phone (1 to 20 digits)
  --from, --to       ISO 8601 times (2026-11-01T08:00:00+08:00) or Unix ms; at most 31 days
  --format           csv (default) or geojson
  --server           the node's gRPC address (default localhost:9808)
  --token            bearer token (default: FLEETMESH_GRPC_TOKEN, then .fleetmesh/grpc-token)
  --fields a,b       only these fields, in this order (default all: latitude, longitude,
                     altitude, speed, direction, alarm, status, mileage_km, fuel_l, satellites,
                     signal, received_at, source); CSV columns: time, time_unix_ms, the fields,
                     blind_area, time_invalid; GeoJSON always has the coordinates
  a refused request prints nothing on stdout (the error on stderr, exit 1); no points in the
  range is said on stderr (exit 0)
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
  /** The chosen fields (all by default), in the order given: the columns or properties. */
  fields: string[];
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
  const chosen = [
    ...new Set(
      (flags.get('--fields') ?? '')
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f !== ''),
    ),
  ];
  // No --fields: every field. GeoJSON needs the coordinates whatever else is chosen.
  const fields = chosen.length > 0 ? chosen : Object.keys(TRACK_FIELD_COLUMNS);
  const asked =
    chosen.length > 0 && format === 'geojson'
      ? [...new Set([...chosen, 'latitude', 'longitude'])]
      : chosen;
  const request: Obj = { vehicleId: positional[0], fromUnixMs: from, toUnixMs: to, fields: asked };
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
    fields,
    request,
  };
}

/**
 * The fields a track may ask for (the service's, in its order) and their CSV columns. The
 * default (no --fields) is all of them, in CSV and GeoJSON alike.
 */
export const TRACK_FIELD_COLUMNS: Record<string, { key: string; columns: string[] }> = {
  latitude: { key: 'latitude', columns: ['latitude'] },
  longitude: { key: 'longitude', columns: ['longitude'] },
  altitude: { key: 'altitudeM', columns: ['altitude_m'] },
  speed: { key: 'speedKmh', columns: ['speed_kmh'] },
  direction: { key: 'directionDeg', columns: ['direction_deg'] },
  alarm: { key: 'alarm', columns: ['alarm'] },
  status: { key: 'status', columns: ['status'] },
  mileage_km: { key: 'mileageKm', columns: ['mileage_km'] },
  fuel_l: { key: 'fuelL', columns: ['fuel_l'] },
  satellites: { key: 'satellites', columns: ['satellites'] },
  signal: { key: 'signal', columns: ['signal'] },
  received_at: { key: 'receivedUnixMs', columns: ['received_at', 'received_at_unix_ms'] },
  source: { key: 'source', columns: ['source'] },
};

/** The chosen fields that have columns (an unknown one is left to the service to refuse). */
function known(fields: string[]): string[] {
  return fields.filter((f) => Object.hasOwn(TRACK_FIELD_COLUMNS, f));
}

/** CSV: time, the chosen fields, then the two marks every point has. */
function csvHeader(fields: string[]): string {
  const columns = ['time', 'time_unix_ms'];
  for (const f of known(fields)) columns.push(...TRACK_FIELD_COLUMNS[f]!.columns);
  return `${[...columns, 'blind_area', 'time_invalid'].join(',')}\n`;
}

/** A value as a CSV cell: empty when the point has none. */
const cell = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

function csvLine(p: Obj, fields: string[]): string {
  const t = Number(p.timeUnixMs);
  const cells = [new Date(t).toISOString(), String(t)];
  for (const f of known(fields)) {
    const v = p[TRACK_FIELD_COLUMNS[f]!.key];
    if (f === 'received_at')
      cells.push(v === undefined || v === null ? '' : new Date(Number(v)).toISOString(), cell(v));
    else cells.push(cell(v));
  }
  cells.push(p.blindArea ? '1' : '0', p.timeInvalid ? '1' : '0');
  return `${cells.join(',')}\n`;
}

/** A GeoJSON point: coordinates always (asked for), the chosen fields as properties. */
function geojsonFeature(p: Obj, fields: string[]): string {
  const t = Number(p.timeUnixMs);
  const properties: Obj = {
    time: new Date(t).toISOString(),
    timeUnixMs: t,
    blindArea: p.blindArea === true,
    timeInvalid: p.timeInvalid === true,
  };
  for (const f of known(fields)) {
    if (f === 'latitude' || f === 'longitude') continue; // the geometry's
    const key = TRACK_FIELD_COLUMNS[f]!.key;
    const v = p[key];
    if (v !== undefined && v !== null) properties[key] = v;
  }
  return JSON.stringify({
    type: 'Feature',
    geometry: { type: 'Point', coordinates: [p.longitude, p.latitude] },
    properties,
  });
}

/**
 * Runs the command; the track goes to `out` (stdout), notes to `err` (stderr). Nothing is
 * written to `out` before the service's first answer, so a refused request (bad vehicle, range,
 * field or token) leaves it empty and throws (exit 1). A reader that goes away (`| head`) ends
 * the command quietly.
 */
export async function runTrack(
  args: string[],
  out: Writable = process.stdout,
  err: Writable = process.stderr,
): Promise<number> {
  const a = parseArgs(args);
  if (!a) {
    out.write(HELP);
    return 0;
  }
  const output = new Output(out);
  const client = historyClient(a.server);
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${a.token}`);
  const stream = (
    client as unknown as Record<
      string,
      (r: Obj, m: grpc.Metadata) => grpc.ClientReadableStream<Obj>
    >
  ).streamTrack!.call(client, a.request, md);
  let points = 0;
  let started = false;
  const start = (): string => {
    started = true;
    return a.format === 'csv' ? csvHeader(a.fields) : '{"type":"FeatureCollection","features":[\n';
  };
  try {
    for await (const chunk of stream as AsyncIterable<Obj>) {
      let text = started ? '' : start();
      for (const p of chunk.points as Obj[]) {
        if (a.format === 'csv') text += csvLine(p, a.fields);
        else text += `${points === 0 ? '' : ',\n'}${geojsonFeature(p, a.fields)}`;
        points++;
      }
      if (!(await output.write(text))) {
        stream.on('error', () => undefined); // the CANCELLED that follows
        stream.cancel();
        return 0;
      }
    }
    let text = started ? '' : start();
    if (a.format === 'geojson') text += `${points === 0 ? '' : '\n'}]}\n`;
    if (text !== '' && !(await output.write(text))) return 0;
    if (points === 0)
      err.write(
        `fleetmesh: no points for ${a.vehicleId} in ${new Date(a.from).toISOString()} – ${new Date(a.to).toISOString()}\n`,
      );
    return 0;
  } catch (e) {
    if (output.closed) return 0;
    const se = e as Partial<grpc.ServiceError>;
    throw new Error(se.details ? `${grpc.status[se.code ?? 2]}: ${se.details}` : String(e));
  } finally {
    client.close();
  }
}
