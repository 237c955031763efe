// `fleetmesh track` and `fleetmesh area` as a person runs them: the real command in a process of
// its own (its stdout, stderr and exit code), over a real socket to a node's HistoryService on
// the real store. What the user reported: fake zeros for fields not asked for and missing
// columns, a CSV header left on stdout by a refused request, an EPIPE stack trace under
// `| head`, and uneven limits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Db, Document } from 'mongodb';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { HISTORY_PROTO } from '../../api/historyService.js';
import { projectRoot, type LocalServers } from '../../devservers/localServers.js';
import type { LocationReport } from '../../jt808/location.js';
import type { FleetNode } from '../../node/node.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { positionDocument } from '../../storage/vehicleStore.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

type Obj = Record<string, unknown>;

const bin = join(projectRoot, 'bin', 'fleetmesh.js');
const TOKEN = 'history-cli-token';
const DAY0 = Date.UTC(2026, 9, 1);
const DAY = 86_400_000;
/** A vehicle-day at one point per 10 s (well over two pipe buffers of CSV). */
const BUSY = '13900000501';
const POINTS = 8640;
const FROM = new Date(DAY0).toISOString();
const TO = String(DAY0 + DAY);

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let db: Db;
/** BUSY's stored points in time order, as read back from the store. */
let stored: Document[];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `fleetmesh ARGS` against the test node (async: the server answers from this process).
 * `readFirst`: read the first chunk of stdout, then close it, as `| head -2` does; `closeAtOnce`:
 * close it before the command can print anything (its answer needs this process's event loop,
 * which closes the pipe first), as `| true` does.
 */
function cli(
  args: string[],
  opts: { readFirst?: boolean; closeAtOnce?: boolean; token?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [bin, ...args, '--server', `127.0.0.1:${api.port}`, '--token', opts.token ?? TOKEN],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const run: Run = { code: null, signal: null, stdout: '', stderr: '' };
    // Bounded: a command that hangs fails the test instead of the run.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      run.stdout += s;
      if (opts.readFirst) child.stdout.destroy();
    });
    child.stderr.on('data', (s: string) => (run.stderr += s));
    if (opts.closeAtOnce) child.stdout.destroy();
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      Object.assign(run, { code, signal });
      resolve(run);
    });
  });
}

function csv(text: string): { header: string[]; rows: Record<string, string>[] } {
  const [head, ...lines] = text.trimEnd().split('\n');
  const header = head!.split(',');
  return {
    header,
    rows: lines.map((l) => {
      const cells = l.split(',');
      assert.equal(cells.length, header.length, l);
      return Object.fromEntries(header.map((h, i) => [h, cells[i]!]));
    }),
  };
}

const cellOf = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

before(async () => {
  servers = await startMongoForTests();
  const database = testDatabase('historycli');
  node = await startTestNode(servers.mongodbUri, database, { workers: 1 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  db = node.client.db(database);
  const docs: Document[] = [];
  for (let i = 0; i < POINTS; i++) {
    const time = DAY0 + i * 10_000;
    const loc: LocationReport = {
      alarm: i % 7 === 0 ? 1 : 0,
      status: 3,
      latitude: 31.2 + i * 1e-5,
      longitude: 121.4 + i * 2e-5,
      altitude: i % 50,
      speed: (i % 900) / 10,
      direction: i % 360,
      time,
      mileageKm: 1000 + i / 10,
      // Some points without satellites, signal or fuel: empty cells, not zeros.
      ...(i % 3 === 0 ? {} : { satellites: 5 + (i % 10), signal: i % 32, fuelL: 40 + (i % 5) }),
    };
    docs.push(positionDocument(BUSY, loc, i % 11 === 0 ? 'blind-area' : 'live', time + 3000, i));
  }
  await db.collection(COLLECTIONS.positions).insertMany(docs, { ordered: false });
  stored = await db
    .collection(COLLECTIONS.positions)
    .find({ vehicleId: BUSY })
    .sort({ time: 1, _id: 1 })
    .toArray();
  assert.equal(stored.length, POINTS);
});

after(async () => {
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('fleetmesh track: fields', () => {
  it('CSV --fields speed: exactly time, speed and the marks; no fake coordinates', async () => {
    const r = await cli(['track', BUSY, '--from', FROM, '--to', TO, '--fields', 'speed']);
    assert.equal(r.code, 0, r.stderr);
    const { header, rows } = csv(r.stdout);
    assert.deepEqual(header, ['time', 'time_unix_ms', 'speed_kmh', 'blind_area', 'time_invalid']);
    assert.deepEqual(
      rows.map((c) => [Number(c.time_unix_ms), Number(c.speed_kmh), c.blind_area]),
      stored.map((d) => [
        (d.time as Date).getTime(),
        d.speed,
        d.source === 'blind-area' ? '1' : '0',
      ]),
    );
  });

  it('CSV --fields satellites,signal,received_at,fuel_l: every one a column, empty where not stored', async () => {
    const r = await cli([
      'track',
      BUSY,
      '--from',
      FROM,
      '--to',
      TO,
      '--fields',
      'satellites,signal,received_at,fuel_l',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { header, rows } = csv(r.stdout);
    assert.deepEqual(header, [
      'time',
      'time_unix_ms',
      'satellites',
      'signal',
      'received_at',
      'received_at_unix_ms',
      'fuel_l',
      'blind_area',
      'time_invalid',
    ]);
    assert.deepEqual(
      rows.map((c) => [c.satellites, c.signal, c.received_at, c.received_at_unix_ms, c.fuel_l]),
      stored.map((d) => [
        cellOf(d.satellites),
        cellOf(d.signal),
        (d.receivedAt as Date).toISOString(),
        String((d.receivedAt as Date).getTime()),
        cellOf(d.fuelL),
      ]),
    );
    assert.ok(rows.some((c) => c.satellites === '') && rows.some((c) => c.satellites !== ''));
  });

  it('CSV by default: every field the service offers, the same set as GeoJSON', async () => {
    const r = await cli(['track', BUSY, '--from', FROM, '--to', String(DAY0 + 600_000)]);
    assert.equal(r.code, 0, r.stderr);
    const { header, rows } = csv(r.stdout);
    assert.deepEqual(header, [
      'time',
      'time_unix_ms',
      'latitude',
      'longitude',
      'altitude_m',
      'speed_kmh',
      'direction_deg',
      'alarm',
      'status',
      'mileage_km',
      'fuel_l',
      'satellites',
      'signal',
      'received_at',
      'received_at_unix_ms',
      'source',
      'blind_area',
      'time_invalid',
    ]);
    assert.equal(rows.length, 60);
    rows.forEach((c, i) => {
      const d = stored[i]!;
      assert.deepEqual(
        [c.latitude, c.longitude, c.altitude_m, c.direction_deg, c.alarm, c.status, c.source],
        [d.latitude, d.longitude, d.altitude, d.direction, d.alarm, d.status, d.source].map(cellOf),
      );
    });
    const g = await cli([
      'track',
      BUSY,
      '--from',
      FROM,
      '--to',
      String(DAY0 + 600_000),
      '--format',
      'geojson',
    ]);
    const fc = JSON.parse(g.stdout) as { features: { properties: Obj }[] };
    // Every property GeoJSON has (a point with all of them) is a CSV column.
    const props = Object.keys(fc.features[1]!.properties).sort();
    assert.deepEqual(props, [
      'alarm',
      'altitudeM',
      'blindArea',
      'directionDeg',
      'fuelL',
      'mileageKm',
      'receivedUnixMs',
      'satellites',
      'signal',
      'source',
      'speedKmh',
      'status',
      'time',
      'timeInvalid',
      'timeUnixMs',
    ]);
  });

  it('GeoJSON --fields speed: real coordinates always, only the chosen field as a property', async () => {
    const r = await cli([
      'track',
      BUSY,
      '--from',
      FROM,
      '--to',
      TO,
      '--fields',
      'speed',
      '--format',
      'geojson',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const fc = JSON.parse(r.stdout) as {
      features: { geometry: { coordinates: number[] }; properties: Obj }[];
    };
    assert.deepEqual(
      fc.features.map((f) => [
        ...f.geometry.coordinates,
        f.properties.speedKmh,
        Object.keys(f.properties).sort().join(','),
      ]),
      stored.map((d) => [
        d.longitude,
        d.latitude,
        d.speed,
        'blindArea,speedKmh,time,timeInvalid,timeUnixMs',
      ]),
    );
  });

  it('GetTrack leaves the fields not asked for unset (proto3 optional), not 0', async () => {
    const History = grpc.loadPackageDefinition(
      protoLoader.loadSync(HISTORY_PROTO, {
        keepCase: false,
        longs: Number,
        enums: String,
        defaults: true,
        oneofs: true,
      }),
    ) as unknown as { fleetmesh: { v1: { HistoryService: grpc.ServiceClientConstructor } } };
    const client = new History.fleetmesh.v1.HistoryService(
      `127.0.0.1:${api.port}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${TOKEN}`);
      const page = await new Promise<Obj>((resolve, reject) =>
        (
          client as unknown as Record<
            string,
            (r: Obj, m: grpc.Metadata, cb: (e: Error | null, r?: Obj) => void) => void
          >
        ).getTrack!.call(
          client,
          {
            vehicleId: BUSY,
            fromUnixMs: DAY0,
            toUnixMs: DAY0 + 100_000,
            fields: ['speed'],
          },
          md,
          (e, res) => (e ? reject(e) : resolve(res!)),
        ),
      );
      const points = page.points as Obj[];
      assert.equal(points.length, 10);
      for (const p of points) {
        assert.equal(typeof p.speedKmh, 'number');
        for (const k of ['latitude', 'longitude', 'altitudeM', 'alarm', 'status', 'source'])
          assert.equal(p[k], undefined, k);
      }
    } finally {
      client.close();
    }
  });
});

describe('fleetmesh track: errors and empty ranges', () => {
  it('a refused request prints nothing on stdout, the error on stderr, exit 1', async () => {
    const cases: [string[], RegExp, string?][] = [
      [['track', 'abc', '--from', FROM, '--to', TO], /INVALID_ARGUMENT: .*1 to 20 digits/],
      [
        ['track', BUSY, '--from', FROM, '--to', String(DAY0 + 32 * DAY)],
        /INVALID_ARGUMENT: .*at most 31 days/,
      ],
      [
        ['track', BUSY, '--from', FROM, '--to', TO, '--fields', 'speed,colour'],
        /INVALID_ARGUMENT: unknown track field 'colour'/,
      ],
      [['track', BUSY, '--from', FROM, '--to', TO], /UNAUTHENTICATED/, 'wrong'],
      [
        ['track', BUSY, '--from', FROM, '--to', TO, '--format', 'geojson', '--fields', 'colour'],
        /INVALID_ARGUMENT: unknown track field 'colour'/,
      ],
    ];
    for (const [args, message, token] of cases) {
      const r = await cli(args, token ? { token } : {});
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, message);
      assert.equal(r.code, 1, args.join(' '));
    }
  });

  it('no points in the range: said on stderr, exit 0 (CSV header only, an empty collection)', async () => {
    const empty = ['--from', String(DAY0 + 5 * DAY), '--to', String(DAY0 + 6 * DAY)];
    const r = await cli(['track', BUSY, ...empty, '--fields', 'speed']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'time,time_unix_ms,speed_kmh,blind_area,time_invalid\n');
    assert.equal(
      r.stderr,
      `fleetmesh: no points for ${BUSY} in ${new Date(DAY0 + 5 * DAY).toISOString()} – ${new Date(DAY0 + 6 * DAY).toISOString()}\n`,
    );
    const g = await cli(['track', BUSY, ...empty, '--format', 'geojson']);
    assert.equal(g.code, 0);
    assert.deepEqual(JSON.parse(g.stdout), { type: 'FeatureCollection', features: [] });
    assert.match(g.stderr, /no points for/);
  });
});

describe('a reader that goes away (| head -2)', () => {
  it('track: a closed stdout ends the command quietly, exit 0, no EPIPE stack', async () => {
    for (const format of ['csv', 'geojson']) {
      const r = await cli(['track', BUSY, '--from', FROM, '--to', TO, '--format', format], {
        readFirst: true,
      });
      assert.equal(r.stderr, '', format);
      assert.equal(r.code, 0, format);
      assert.ok(r.stdout.length > 0 && r.stdout.length < 8640 * 50, format);
    }
  });

  it('area (and track) with stdout closed before they print: quiet, exit 0', async () => {
    const r = await cli(
      ['area', '--rect', '31.1,121.3,31.4,121.7', '--from', FROM, '--to', TO, '--format', 'json'],
      { closeAtOnce: true },
    );
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const t = await cli(['track', BUSY, '--from', FROM, '--to', TO], { closeAtOnce: true });
    assert.equal(t.stderr, '');
    assert.equal(t.code, 0);
  });
});

describe('fleetmesh area: errors and limits', () => {
  it('a refused request prints nothing on stdout, the error on stderr, exit 1', async () => {
    const r = await cli(['area', '--circle', '31.2,121.4,1000', '--from', FROM, '--to', TO], {
      token: 'wrong',
    });
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /UNAUTHENTICATED/);
    assert.equal(r.code, 1);
  });

  it('--max-vehicles 0 (or past 10 000) is refused, not read as the default', async () => {
    for (const n of ['0', '10001', '1.5']) {
      const r = await cli(['area', '--rect', '31.1,121.3,31.4,121.7', '--max-vehicles', n]);
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        new RegExp(`--max-vehicles takes a number from 1 to 10000, not '${n}'`),
      );
      assert.equal(r.code, 2);
    }
  });

  it('a rectangle across the antimeridian is refused as such, not as 359° wide', async () => {
    const r = await cli(['area', '--rect', '22.45,179.5,22.60,-179.5']);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--rect: longitudes 179.5 and -179.5 cross the antimeridian/);
    assert.doesNotMatch(r.stderr, /359/);
    assert.equal(r.code, 2);
  });

  it('circles of radius 0 and -5 get the same message', async () => {
    for (const radius of ['0', '-5']) {
      const r = await cli(['area', '--circle', `31.2,121.4,${radius}`, '--from', FROM, '--to', TO]);
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        new RegExp(
          `INVALID_ARGUMENT: circle.radius_m must be above 0 and at most 100000 \\(m\\), not ${radius}\\n`,
        ),
      );
      assert.equal(r.code, 1);
    }
  });
});
