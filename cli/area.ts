// `fleetmesh area (--rect … | --circle … | --polygon …) [--from T --to T]`: the vehicles in an
// area, from a node's HistoryService — during a past window (FindVehiclesInArea, every page) or,
// without --from/--to, now (FindVehiclesInAreaNow, from the live vehicles) — written to stdout
// as CSV (one line per vehicle, in vehicle id order) or JSON.
import type { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { UsageError } from './start.js';
import { Output } from './output.js';
import { historyClient, parseTime, resolveToken } from './track.js';

export const areaUsage = `(--rect LAT1,LON1,LAT2,LON2 | --circle LAT,LON,RADIUS_M | --polygon "LAT,LON;LAT,LON;…")
                        [--from T --to T] [--format csv|json] [--server HOST:PORT] [--token T]
                        now only: [--online yes|no] [--min-speed KMH] [--max-speed KMH]
                        [--alarm-mask N] [--max-vehicles N]`;

const HELP = `usage: fleetmesh area ${areaUsage}
  the vehicles in an area: with --from and --to those with a stored position inside during that
  window (at most 7 days); without, those whose last report is inside now (live vehicles only)
  --rect LAT1,LON1,LAT2,LON2   a rectangle by two opposite corners (degrees)
  --circle LAT,LON,RADIUS_M    a circle: centre and radius in metres (at most 100 km)
  --polygon "LAT,LON;LAT,LON;…"  3 to 1000 vertices (straight lines on the map, even-odd rule)
                               an area's box is at most 2 x 2 degrees
  --from, --to       ISO 8601 times (2026-11-01T08:00:00+08:00) or Unix ms
  --format           csv (default) or json
  --server           the node's gRPC address (default localhost:9808)
  --token            bearer token (default: FLEETMESH_GRPC_TOKEN, then .fleetmesh/grpc-token)
  --online yes|no    now: only vehicles online (yes) or offline (no); default both
  --min-speed, --max-speed KMH   now: speed bounds
  --alarm-mask N     now: only vehicles with any of these alarm bits set (0x… or decimal)
  --max-vehicles N   now: at most N, 1 to 10 000 (default 1000)
`;

type Obj = Record<string, unknown>;

const VALUED = [
  '--rect',
  '--circle',
  '--polygon',
  '--from',
  '--to',
  '--format',
  '--server',
  '--token',
  '--online',
  '--min-speed',
  '--max-speed',
  '--alarm-mask',
  '--max-vehicles',
];
const NOW_ONLY = ['--online', '--min-speed', '--max-speed', '--alarm-mask', '--max-vehicles'];
/** The most vehicles an area-now answer lists (the service's bound). */
const MAX_VEHICLES_NOW = 10_000;
/** Vehicles per FindVehiclesInArea page (the service's largest). */
const WINDOW_PAGE = 10_000;

function numbers(flag: string, raw: string, count: number): number[] {
  const parts = raw.split(',').map((s) => s.trim());
  const n = parts.map(Number);
  if (parts.length !== count || parts.some((p) => p === '') || n.some((x) => !Number.isFinite(x)))
    throw new UsageError(`${flag} takes ${count} numbers separated by commas, not '${raw}'`);
  return n;
}

/** The request's `area` from the one shape flag given. */
export function areaOf(flags: Map<string, string>): Obj {
  const given = ['--rect', '--circle', '--polygon'].filter((f) => flags.has(f));
  if (given.length !== 1)
    throw new UsageError('name the area with one of --rect, --circle or --polygon');
  const flag = given[0]!;
  const raw = flags.get(flag)!;
  if (flag === '--rect') {
    const [a, b, c, d] = numbers(flag, raw, 4) as [number, number, number, number];
    // Corners in any order, so 179.5 and -179.5 would read as a box 359° wide: more than half
    // the world is never meant; it is the short way, across ±180°, which areas cannot cross.
    if (Math.abs(b - d) > 180)
      throw new UsageError(
        `--rect: longitudes ${b} and ${d} cross the antimeridian (±180°), which an area may not; split it in two`,
      );
    return {
      rectangle: {
        minLatitude: Math.min(a, c),
        minLongitude: Math.min(b, d),
        maxLatitude: Math.max(a, c),
        maxLongitude: Math.max(b, d),
      },
    };
  }
  if (flag === '--circle') {
    const [latitude, longitude, radiusM] = numbers(flag, raw, 3) as [number, number, number];
    return { circle: { latitude, longitude, radiusM } };
  }
  const vertices = raw
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((pair) => {
      const [latitude, longitude] = numbers(flag, pair, 2) as [number, number];
      return { latitude, longitude };
    });
  return { polygon: { vertices } };
}

interface AreaArgs {
  format: 'csv' | 'json';
  server: string;
  token: string;
  /** The past window's request (FindVehiclesInArea), or the area-now one. */
  window?: Obj;
  now?: Obj;
}

function parseArgs(args: string[]): AreaArgs | undefined {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') return undefined;
    if (!VALUED.includes(a))
      throw new UsageError(a.startsWith('-') ? `unknown option ${a}` : `unexpected '${a}'`);
    const v = args[++i];
    if (v === undefined) throw new UsageError(`${a} needs a value`);
    flags.set(a, v);
  }
  const area = areaOf(flags);
  const format = flags.get('--format') ?? 'csv';
  if (format !== 'csv' && format !== 'json')
    throw new UsageError(`--format takes csv or json, not '${format}'`);
  const base = {
    format: format as 'csv' | 'json',
    server: flags.get('--server') ?? 'localhost:9808',
    token: resolveToken(flags.get('--token')),
  };
  if (flags.has('--from') || flags.has('--to')) {
    const nowOnly = NOW_ONLY.filter((f) => flags.has(f));
    if (nowOnly.length > 0)
      throw new UsageError(`${nowOnly.join(', ')}: only for the area now (without --from/--to)`);
    return {
      ...base,
      window: {
        area,
        fromUnixMs: parseTime('--from', flags.get('--from')),
        toUnixMs: parseTime('--to', flags.get('--to')),
      },
    };
  }
  const now: Obj = { area };
  const online = flags.get('--online');
  if (online !== undefined) {
    if (online !== 'yes' && online !== 'no')
      throw new UsageError(`--online takes yes or no, not '${online}'`);
    now.online = online === 'yes' ? 'ONLINE_FILTER_ONLINE' : 'ONLINE_FILTER_OFFLINE';
  }
  const number = (flag: string, field: string): void => {
    const raw = flags.get(flag);
    if (raw === undefined) return;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < 0)
      throw new UsageError(`${flag} takes a number >= 0, not '${raw}'`);
    now[field] = n;
  };
  number('--min-speed', 'minSpeedKmh');
  number('--max-speed', 'maxSpeedKmh');
  number('--alarm-mask', 'alarmMask');
  const max = flags.get('--max-vehicles');
  if (max !== undefined) {
    const n = Number(max);
    if (!/^\d+$/.test(max.trim()) || n < 1 || n > MAX_VEHICLES_NOW)
      throw new UsageError(
        `--max-vehicles takes a number from 1 to ${MAX_VEHICLES_NOW}, not '${max}'`,
      );
    now.maxVehicles = n;
  }
  return { ...base, now };
}

const iso = (ms: unknown): string => new Date(Number(ms)).toISOString();

function unary(client: grpc.Client, method: string, req: Obj, md: grpc.Metadata): Promise<Obj> {
  return new Promise((resolve, reject) =>
    (
      client as unknown as Record<
        string,
        (r: Obj, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: Obj) => void) => void
      >
    )[method]!.call(client, req, md, (err, res) => (err ? reject(err) : resolve(res ?? {}))),
  );
}

/** Runs the command; the vehicles go to `out` (stdout), warnings to `err` (stderr). */
export async function runArea(
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
  try {
    if (a.window) {
      const vehicles: Obj[] = [];
      let total = 0;
      let token = '';
      do {
        const page = await unary(
          client,
          'findVehiclesInArea',
          { ...a.window, pageSize: WINDOW_PAGE, pageToken: token },
          md,
        );
        vehicles.push(...(page.vehicles as Obj[]));
        total = Number(page.totalVehicles);
        token = String(page.nextPageToken);
      } while (token !== '');
      if (vehicles.length === 0)
        err.write('fleetmesh: no vehicle had a stored position in the area during the window\n');
      if (a.format === 'json') {
        await output.write(`${JSON.stringify({ vehicles, totalVehicles: total }, null, 1)}\n`);
        return 0;
      }
      let text =
        'vehicle_id,first_inside,first_inside_unix_ms,last_inside,last_inside_unix_ms,points_inside\n';
      for (const v of vehicles)
        text += `${[
          v.vehicleId,
          iso(v.firstInsideUnixMs),
          v.firstInsideUnixMs,
          iso(v.lastInsideUnixMs),
          v.lastInsideUnixMs,
          v.pointsInside,
        ].join(',')}\n`;
      await output.write(text);
      return 0;
    }
    const res = await unary(client, 'findVehiclesInAreaNow', a.now!, md);
    const vehicles = [...(res.vehicles as Obj[])].sort((x, y) =>
      String(x.vehicleId) < String(y.vehicleId) ? -1 : 1,
    );
    if (vehicles.length === 0) err.write('fleetmesh: no vehicle in the area now matches\n');
    if (a.format === 'json')
      await output.write(
        `${JSON.stringify({ vehicles, more: res.more, partial: res.partial }, null, 1)}\n`,
      );
    else {
      let text = 'vehicle_id,latitude,longitude,speed_kmh,alarm,online,time,time_unix_ms\n';
      for (const v of vehicles)
        text += `${[
          v.vehicleId,
          v.latitude,
          v.longitude,
          v.speedKmh,
          v.alarm,
          v.online ? 1 : 0,
          iso(v.timeUnixMs),
          v.timeUnixMs,
        ].join(',')}\n`;
      await output.write(text);
      if (res.more === true)
        err.write('fleetmesh: more vehicles matched than listed (--max-vehicles)\n');
      if (res.partial === true)
        err.write('fleetmesh: a node did not answer: its vehicles are missing\n');
    }
    return 0;
  } catch (e) {
    if (output.closed) return 0;
    const se = e as Partial<grpc.ServiceError>;
    throw new Error(se.details ? `${grpc.status[se.code ?? 2]}: ${se.details}` : String(e));
  } finally {
    client.close();
  }
}
