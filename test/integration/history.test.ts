// fleetmesh.v1.HistoryService over a real socket against the real store: every answer equals a
// brute-force computation over the same stored documents (read back with one unfiltered find),
// for random vehicles, ranges, page sizes, downsamplings, alarm filters, groupings and shapes.
// Bad requests are INVALID_ARGUMENT; every page, chunk and result set stays within its bound.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import type { Db, Document } from 'mongodb';
import { Writable } from 'node:stream';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { runArea } from '../../cli/area.js';
import { runTrack } from '../../cli/track.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { addHistoryService, HISTORY_PROTO } from '../../api/historyService.js';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import type { LocationReport } from '../../jt808/location.js';
import { cellKey } from '../../storage/cellGrid.js';
import { AreaWindowReader } from '../../storage/historyArea.js';
import { HistoryPool } from '../../storage/historyPool.js';
import { ResultTooLarge } from '../../storage/historyQuery.js';
import {
  parseRetention,
  RETENTION_COLLECTIONS,
  RetentionSweeper,
  sweepRetention,
  type RetentionPolicy,
  type SweepResult,
} from '../../storage/historyRetention.js';
import { contains, type AreaShape } from '../../storage/historyShapes.js';
import { TrackReader, trackQuery } from '../../storage/historyTrack.js';
import { segmentDistanceM, simplifyKeep } from '../../storage/historyWorker.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { positionDocument, type PositionSource } from '../../storage/vehicleStore.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;

const require = createRequire(import.meta.url);
const TOKEN = 'history-token';
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };
const DAY = 86_400_000;
const DAY0 = Date.UTC(2026, 9, 1);
const VEHICLES = ['13900000001', '13900000002', '13900000003', '13900000004', '13900000005'];
const FAR_VEHICLE = '13900000099';
const TYPES = [0, 1, 2, 19, 20];

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let db: Db;
let client: grpc.Client & Record<string, Call>;
/** Every stored position and alarm, read back once after seeding: what brute force runs on. */
let positions: Document[];
let alarms: Document[];

function auth(token = TOKEN): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

function loadService(path: string, name: string): grpc.ServiceClientConstructor {
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(path, LOADER));
  let o: unknown = loaded;
  for (const part of name.split('.')) o = (o as Record<string, unknown>)[part];
  return o as grpc.ServiceClientConstructor;
}

function call(method: string, req: Obj, md = auth(), c = client): Promise<Obj> {
  return new Promise((resolve, reject) => {
    const fn = c[method] as Call;
    fn.call(c, req, md, (err, res) => (err ? reject(err) : resolve(res ?? {})));
  });
}

function stream(req: Obj): Promise<Obj[]> {
  return new Promise((resolve, reject) => {
    const s = (
      client as unknown as Record<
        string,
        (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
      >
    ).streamTrack!.call(client, req, auth());
    const chunks: Obj[] = [];
    s.on('data', (c: Obj) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => resolve(chunks));
  });
}

async function rejectsWith(
  p: Promise<unknown>,
  code: grpc.status,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, err.details);
    if (message) assert.match(err.details, message);
    return true;
  });
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

/** Three days of positions per vehicle: a random walk, some blind-area, some in the same second. */
function seedPositions(rnd: () => number): Document[] {
  const docs: Document[] = [];
  const add = (v: string, loc: LocationReport, source: PositionSource, serial: number): void => {
    docs.push(positionDocument(v, loc, source, (loc.time ?? DAY0) + 5000, serial));
  };
  for (const v of [...VEHICLES, FAR_VEHICLE]) {
    let lat = v === FAR_VEHICLE ? 39.9 : 31.2 + rnd() * 0.2;
    let lon = v === FAR_VEHICLE ? 116.4 : 121.4 + rnd() * 0.2;
    const times = Array.from({ length: 300 }, () => DAY0 + Math.floor(rnd() * 3 * 86_400) * 1000);
    times.sort((a, b) => a - b);
    times.forEach((time, i) => {
      lat += (rnd() - 0.5) * 0.01;
      lon += (rnd() - 0.5) * 0.01;
      const loc: LocationReport = {
        alarm: 0,
        status: 3,
        latitude: round6(lat),
        longitude: round6(lon),
        altitude: Math.floor(rnd() * 100),
        speed: Math.floor(rnd() * 1200) / 10,
        direction: Math.floor(rnd() * 360),
        time,
        mileageKm: 1000 + i,
        ...(rnd() < 0.5 ? { satellites: 10 } : {}),
      };
      add(v, loc, rnd() < 0.2 ? 'blind-area' : 'live', i);
      // A second, different report in the same second (an alarm right after a periodic one).
      if (rnd() < 0.05) add(v, { ...loc, alarm: 1, speed: loc.speed + 1 }, 'live', i + 10_000);
    });
  }
  return docs;
}

function seedAlarms(rnd: () => number): Document[] {
  const docs = new Map<string, Document>();
  for (const v of VEHICLES) {
    for (let i = 0; i < 40; i++) {
      const bit = TYPES[Math.floor(rnd() * TYPES.length)]!;
      const start = DAY0 + Math.floor(rnd() * 3 * 86_400) * 1000;
      const open = rnd() < 0.2;
      const end = start + Math.floor(rnd() * 3_600_000);
      const point = (t: number): Document => ({
        time: t,
        latitude: 31.2,
        longitude: 121.4,
        speed: 40,
        direction: 90,
        altitude: 10,
      });
      const status = [-1, 0, 1, 2][Math.floor(rnd() * 4)]!;
      const doc: Document = {
        _id: `${v}:${bit}:${start}`,
        vehicleId: v,
        bit,
        typeCode: bit,
        source: 1,
        startTime: new Date(start),
        start: point(start),
        endTime: open ? null : new Date(end),
        end: open ? null : point(end),
        handlingStatus: status,
        needsConfirmation: bit === 0,
      };
      if (status === 2) {
        doc.handledBy = `operator-${Math.floor(rnd() * 3)}`;
        doc.handledAt = new Date(start + 60_000);
      }
      docs.set(doc._id as string, doc);
    }
  }
  return [...docs.values()];
}

const byTimeThenId =
  (field: string) =>
  (a: Document, b: Document): number =>
    (a[field] as Date).getTime() - (b[field] as Date).getTime() ||
    (String(a._id) < String(b._id) ? -1 : String(a._id) > String(b._id) ? 1 : 0);

/** A stored position as GetTrack shows it with every field. */
function expectedPoint(d: Document): Obj {
  const p: Obj = {
    timeUnixMs: (d.time as Date).getTime(),
    blindArea: d.source === 'blind-area',
    timeInvalid: d.timeInvalid === true,
    latitude: d.latitude,
    longitude: d.longitude,
    altitudeM: d.altitude,
    speedKmh: d.speed,
    directionDeg: d.direction,
    alarm: d.alarm,
    status: d.status,
    receivedUnixMs: (d.receivedAt as Date).getTime(),
    source: d.source,
    mileageKm: d.mileageKm ?? null,
    fuelL: d.fuelL ?? null,
    satellites: d.satellites ?? null,
    signal: d.signal ?? null,
  };
  return p;
}

/** A point as received, with unset optional fields as null (proto-loader leaves them out). */
function received(p: Obj): Obj {
  const out: Obj = { ...p };
  for (const k of ['mileageKm', 'fuelL', 'satellites', 'signal']) out[k] = p[k] ?? null;
  // proto-loader's marks of which optional field is set.
  for (const k of Object.keys(out)) if (k.startsWith('_')) delete out[k];
  return out;
}

function storedTrack(vehicleId: string, fromMs: number, toMs: number): Document[] {
  return positions
    .filter((d) => {
      const t = (d.time as Date).getTime();
      return d.vehicleId === vehicleId && t >= fromMs && t < toMs;
    })
    .sort(byTimeThenId('time'));
}

/** Every page of a GetTrack request, each checked against its size bound. */
async function allPages(req: Obj, size: number): Promise<Obj[]> {
  const points: Obj[] = [];
  let token = '';
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10_000, 'paging does not end');
    const page = await call('getTrack', { ...req, pageSize: size, pageToken: token });
    const got = page.points as Obj[];
    assert.ok(got.length <= size, `a page of ${got.length} points for page_size ${size}`);
    points.push(...got.map(received));
    token = String(page.nextPageToken);
    if (token === '') return points;
    assert.equal(got.length, size, 'only the last page may be short');
  }
}

const vehicleArb = fc.constantFrom(...VEHICLES);
const rangeArb = fc
  .tuple(fc.integer({ min: -3600, max: 3 * 86_400 }), fc.integer({ min: 1, max: 3 * 86_400 }))
  .map(([start, length]) => ({
    fromUnixMs: DAY0 + start * 1000,
    toUnixMs: DAY0 + (start + length) * 1000,
  }));

before(async () => {
  servers = await startMongoForTests();
  const database = testDatabase('history');
  node = await startTestNode(servers.mongodbUri, database, { workers: 1 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  db = node.client.db(database);
  const rnd = random(13);
  await db.collection(COLLECTIONS.positions).insertMany(seedPositions(rnd), { ordered: false });
  await db.collection(COLLECTIONS.alarms).insertMany(seedAlarms(rnd), { ordered: false });
  positions = await db.collection(COLLECTIONS.positions).find({}).toArray();
  alarms = await db.collection(COLLECTIONS.alarms).find({}).toArray();
  const History = loadService(HISTORY_PROTO, 'fleetmesh.v1.HistoryService');
  client = new History(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client;
});

after(async () => {
  client?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('track playback', () => {
  it('pages of every size give exactly the stored points of the range, in (time, id) order', async () => {
    await fc.assert(
      fc.asyncProperty(
        vehicleArb,
        rangeArb,
        fc.integer({ min: 1, max: 400 }),
        async (v, r, size) => {
          const got = await allPages({ vehicleId: v, ...r }, size);
          const want = storedTrack(v, r.fromUnixMs, r.toUnixMs).map(expectedPoint);
          assert.deepEqual(got, want);
        },
      ),
      { numRuns: 20, seed: 808 },
    );
  });

  it('the whole three days stream in chunks of at most page_size, the same points as the pages', async () => {
    const r = { fromUnixMs: DAY0 - DAY, toUnixMs: DAY0 + 4 * DAY };
    for (const v of VEHICLES.slice(0, 2)) {
      const chunks = await stream({ vehicleId: v, ...r, pageSize: 37 });
      for (const c of chunks) assert.ok((c.points as Obj[]).length <= 37);
      const got = chunks.flatMap((c) => (c.points as Obj[]).map(received));
      const want = storedTrack(v, r.fromUnixMs, r.toUnixMs);
      assert.ok(want.length > 300, 'the range spans the three days');
      assert.deepEqual(got, want.map(expectedPoint));
      // Blind-area points are merged in time order and marked.
      assert.ok(got.some((p) => p.blindArea) && got.some((p) => !p.blindArea));
    }
  });

  it('time buckets: the first stored point of each bucket, also across pages', async () => {
    await fc.assert(
      fc.asyncProperty(
        vehicleArb,
        rangeArb,
        fc.integer({ min: 1, max: 7200 }),
        fc.integer({ min: 1, max: 50 }),
        async (v, r, bucketS, size) => {
          const bucketMs = bucketS * 1000;
          const req = { vehicleId: v, ...r, downsampling: 'DOWNSAMPLING_TIME_BUCKET', bucketMs };
          const seen = new Set<number>();
          const want = storedTrack(v, r.fromUnixMs, r.toUnixMs).filter((d) => {
            const b = Math.floor(((d.time as Date).getTime() - r.fromUnixMs) / bucketMs);
            if (seen.has(b)) return false;
            seen.add(b);
            return true;
          });
          assert.deepEqual(await allPages(req, size), want.map(expectedPoint));
        },
      ),
      { numRuns: 15, seed: 809 },
    );
  });

  it('Douglas-Peucker: what the pool keeps equals simplifying the stored track, and no dropped point is off by more than the tolerance', async () => {
    await fc.assert(
      fc.asyncProperty(
        vehicleArb,
        rangeArb,
        fc.integer({ min: 1, max: 2000 }),
        fc.integer({ min: 1, max: 100 }),
        async (v, r, toleranceM, size) => {
          const req = {
            vehicleId: v,
            ...r,
            downsampling: 'DOWNSAMPLING_DOUGLAS_PEUCKER',
            toleranceM,
          };
          const stored = storedTrack(v, r.fromUnixMs, r.toUnixMs);
          const lat = Float64Array.from(stored.map((d) => d.latitude as number));
          const lon = Float64Array.from(stored.map((d) => d.longitude as number));
          const keep = simplifyKeep(lat, lon, toleranceM);
          const got = await allPages(req, size);
          assert.deepEqual(got, stored.filter((_, i) => keep[i]).map(expectedPoint));
          // Soundness, independent of the implementation: each dropped point lies within the
          // tolerance of the segment between the kept points around it.
          let prev = 0;
          for (let i = 1; i < stored.length; i++) {
            if (!keep[i]) continue;
            for (let j = prev + 1; j < i; j++)
              assert.ok(
                segmentDistanceM(lat[j]!, lon[j]!, lat[prev]!, lon[prev]!, lat[i]!, lon[i]!) <=
                  toleranceM,
              );
            prev = i;
          }
          if (stored.length > 0) assert.ok(keep[0] && keep[stored.length - 1]);
        },
      ),
      { numRuns: 15, seed: 810 },
    );
  });

  it('only the fields asked for are filled; time and marks always', async () => {
    const v = VEHICLES[0]!;
    const r = { fromUnixMs: DAY0, toUnixMs: DAY0 + DAY };
    const page = await call('getTrack', { vehicleId: v, ...r, fields: ['speed', 'mileage_km'] });
    const want = storedTrack(v, r.fromUnixMs, r.toUnixMs);
    const got = page.points as Obj[];
    assert.equal(got.length, want.length);
    got.forEach((p, i) => {
      assert.equal(p.timeUnixMs, (want[i]!.time as Date).getTime());
      assert.equal(p.blindArea, want[i]!.source === 'blind-area');
      assert.equal(p.speedKmh, want[i]!.speed);
      assert.equal(p.mileageKm, want[i]!.mileageKm);
      // Not asked for: unset (proto3 optional), not a fake 0 or ''.
      for (const k of [
        'latitude',
        'longitude',
        'altitudeM',
        'directionDeg',
        'alarm',
        'status',
        'receivedUnixMs',
        'source',
        'satellites',
        'fuelL',
        'signal',
      ])
        assert.equal(p[k], undefined, k);
    });
  });

  it("a terminal's blind-area re-upload comes back merged in time order and marked, with its cell key stored", async () => {
    const phone = '13900000777';
    const t = new SimTerminal({ port: node.port, phone });
    await t.connect();
    try {
      assert.equal(await t.register(), 0);
      assert.equal(await t.authenticate(), 0);
      const start = DAY0 + 10 * DAY;
      for (const step of [0, 2, 4]) assert.equal(await t.report(trackPoint(step, { start })), 0);
      const backlog = [1, 3].map((step) => trackPoint(step, { start }));
      assert.equal(
        await t.request({ type: 'LocationBatch', body: { batchType: 1, items: backlog } }),
        0,
      );
      await node.flush();
      const page = await call('getTrack', {
        vehicleId: phone,
        fromUnixMs: start,
        toUnixMs: start + DAY,
      });
      const got = page.points as Obj[];
      assert.deepEqual(
        got.map((p) => [p.timeUnixMs, p.blindArea, p.source]),
        [0, 1, 2, 3, 4].map((s) => [
          start + s * 10_000,
          s % 2 === 1,
          s % 2 === 1 ? 'blind-area' : 'live',
        ]),
      );
      for (const d of await db
        .collection(COLLECTIONS.positions)
        .find({ vehicleId: phone })
        .toArray())
        assert.equal(d.cell, cellKey(d.latitude as number, d.longitude as number));
    } finally {
      t.close();
    }
  });

  it('bad requests are INVALID_ARGUMENT with a message saying what is wrong', async () => {
    const ok = { vehicleId: VEHICLES[0], fromUnixMs: DAY0, toUnixMs: DAY0 + DAY };
    const cases: [Obj, RegExp][] = [
      [{ ...ok, toUnixMs: DAY0 }, /must be after/],
      [{ ...ok, toUnixMs: DAY0 + 32 * DAY }, /at most 31 days/],
      [{ ...ok, vehicleId: 'abc' }, /1 to 20 digits/],
      [{ ...ok, pageSize: 10_001 }, /over the limit of 10000/],
      [{ ...ok, pageToken: 'not-a-token' }, /page_token/],
      [{ ...ok, fields: ['speed', 'colour'] }, /unknown track field 'colour'/],
      [{ ...ok, downsampling: 'DOWNSAMPLING_TIME_BUCKET', bucketMs: 10 }, /bucket_ms/],
      [{ ...ok, downsampling: 'DOWNSAMPLING_DOUGLAS_PEUCKER', toleranceM: 0 }, /tolerance_m/],
    ];
    for (const [req, message] of cases) {
      await rejectsWith(call('getTrack', req), grpc.status.INVALID_ARGUMENT, message);
      await rejectsWith(stream(req), grpc.status.INVALID_ARGUMENT, message);
    }
  });

  it('a Douglas-Peucker query past its point bound is refused, not cut short', async () => {
    const pool = new HistoryPool({ threads: 1 });
    try {
      const reader = new TrackReader(db, pool, 10);
      const q = trackQuery({
        vehicleId: VEHICLES[0],
        fromUnixMs: DAY0,
        toUnixMs: DAY0 + DAY,
        downsampling: 'DOWNSAMPLING_DOUGLAS_PEUCKER',
        toleranceM: 5,
      });
      await assert.rejects(reader.page(q, 100, ''), ResultTooLarge);
    } finally {
      await pool.close();
    }
  });
});

describe('alarm history and statistics', () => {
  const filterArb = fc.record({
    vehicleIds: fc.subarray(VEHICLES),
    types: fc.subarray(TYPES),
    handlingStatuses: fc.subarray([-1, 0, 1, 2]),
  });

  function storedAlarms(
    f: { vehicleIds: string[]; types: number[]; handlingStatuses: number[] },
    r: { fromUnixMs: number; toUnixMs: number },
  ): Document[] {
    return alarms.filter((a) => {
      const t = (a.startTime as Date).getTime();
      return (
        t >= r.fromUnixMs &&
        t < r.toUnixMs &&
        (f.vehicleIds.length === 0 || f.vehicleIds.includes(a.vehicleId as string)) &&
        (f.types.length === 0 || f.types.includes(a.typeCode as number)) &&
        (f.handlingStatuses.length === 0 || f.handlingStatuses.includes(a.handlingStatus as number))
      );
    });
  }

  it('pages give exactly the stored records that started in the range, with handling', async () => {
    await fc.assert(
      fc.asyncProperty(filterArb, rangeArb, fc.integer({ min: 1, max: 60 }), async (f, r, size) => {
        const got: Obj[] = [];
        let token = '';
        do {
          const page = await call('listAlarms', { ...f, ...r, pageSize: size, pageToken: token });
          const list = page.alarms as Obj[];
          assert.ok(list.length <= size);
          got.push(...list);
          token = String(page.nextPageToken);
        } while (token !== '');
        const want = storedAlarms(f, r).sort(byTimeThenId('startTime'));
        assert.deepEqual(
          got.map((a) => [
            a.alarmId,
            a.vehicleId,
            a.typeCode,
            (a.start as Obj).timeUnixMs,
            a.end === null || a.end === undefined ? null : (a.end as Obj).timeUnixMs,
            a.handlingStatus,
            a.handledBy,
            a.handledUnixMs,
            a.needsConfirmation,
          ]),
          want.map((a) => [
            a._id,
            a.vehicleId,
            a.typeCode,
            (a.startTime as Date).getTime(),
            a.endTime ? (a.endTime as Date).getTime() : null,
            a.handlingStatus,
            a.handledBy ?? '',
            a.handledAt ? (a.handledAt as Date).getTime() : 0,
            a.needsConfirmation,
          ]),
        );
      }),
      { numRuns: 20, seed: 811 },
    );
  });

  it('statistics per type, vehicle and day ($group with $sum) equal counting the stored records', async () => {
    await fc.assert(
      fc.asyncProperty(
        filterArb,
        rangeArb,
        fc.subarray(['type', 'vehicle', 'day']),
        fc.constantFrom(0, 480, -300),
        async (f, r, groupBy, offset) => {
          const res = await call('getAlarmStatistics', {
            ...f,
            ...r,
            groupBy,
            utcOffsetMinutes: offset,
          });
          const dims = new Set(groupBy.length > 0 ? groupBy : ['type', 'vehicle', 'day']);
          const counts = new Map<string, number>();
          for (const a of storedAlarms(f, r)) {
            const local = new Date((a.startTime as Date).getTime() + offset * 60_000);
            const key = JSON.stringify([
              dims.has('day') ? local.toISOString().slice(0, 10) : '',
              dims.has('vehicle') ? a.vehicleId : '',
              dims.has('type') ? a.typeCode : null,
            ]);
            counts.set(key, (counts.get(key) ?? 0) + 1);
          }
          const want = [...counts]
            .map(([k, n]) => [...(JSON.parse(k) as unknown[]), n])
            .sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
          const got = (res.counts as Obj[])
            .map((c) => [c.day, c.vehicleId, c.typeCode ?? null, c.count])
            .sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
          assert.deepEqual(got, want);
          assert.equal(res.total, storedAlarms(f, r).length);
        },
      ),
      { numRuns: 15, seed: 812 },
    );
  });

  it('bad alarm requests are INVALID_ARGUMENT', async () => {
    const r = { fromUnixMs: DAY0, toUnixMs: DAY0 + DAY };
    await rejectsWith(
      call('listAlarms', { ...r, types: [40] }),
      grpc.status.INVALID_ARGUMENT,
      /0 to 31/,
    );
    await rejectsWith(
      call('listAlarms', { ...r, handlingStatuses: [3] }),
      grpc.status.INVALID_ARGUMENT,
      /handling status 3/,
    );
    await rejectsWith(
      call('listAlarms', { ...r, pageSize: 1001 }),
      grpc.status.INVALID_ARGUMENT,
      /1000/,
    );
    await rejectsWith(
      call('listAlarms', {
        ...r,
        vehicleIds: Array.from({ length: 1001 }, (_, i) => String(i + 1)),
      }),
      grpc.status.INVALID_ARGUMENT,
      /at most 1000 vehicle ids/,
    );
    await rejectsWith(
      call('getAlarmStatistics', { ...r, groupBy: ['colour'] }),
      grpc.status.INVALID_ARGUMENT,
      /cannot group by 'colour'/,
    );
    await rejectsWith(
      call('getAlarmStatistics', { fromUnixMs: DAY0, toUnixMs: DAY0 + 93 * DAY }),
      grpc.status.INVALID_ARGUMENT,
      /at most 92 days/,
    );
    await rejectsWith(
      call('getAlarmStatistics', { ...r, utcOffsetMinutes: 900 }),
      grpc.status.INVALID_ARGUMENT,
      /utc_offset_minutes/,
    );
  });
});

describe('vehicles in an area during a past window', () => {
  const lat = fc.double({ min: 31.1, max: 31.5, noNaN: true });
  const lon = fc.double({ min: 121.3, max: 121.7, noNaN: true });
  const shapeArb: fc.Arbitrary<Obj> = fc.oneof(
    fc.tuple(lat, lon, lat, lon).map(([a, b, c, d]) => ({
      rectangle: {
        minLatitude: Math.min(a, c),
        minLongitude: Math.min(b, d),
        maxLatitude: Math.max(a, c),
        maxLongitude: Math.max(b, d),
      },
    })),
    fc.tuple(lat, lon, fc.integer({ min: 100, max: 30_000 })).map(([a, b, r]) => ({
      circle: { latitude: a, longitude: b, radiusM: r },
    })),
    fc
      .tuple(
        lat,
        lon,
        fc.array(
          fc.tuple(
            fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
            fc.double({ min: 0.005, max: 0.2, noNaN: true }),
          ),
          { minLength: 3, maxLength: 9 },
        ),
      )
      .map(([a, b, spokes]) => ({
        polygon: {
          vertices: spokes
            .sort((x, y) => x[0] - y[0])
            .map(([angle, r]) => ({
              latitude: a + r * Math.sin(angle),
              longitude: b + r * Math.cos(angle),
            })),
        },
      })),
  );

  function shapeOf(area: Obj): AreaShape {
    if (area.rectangle) return { kind: 'rectangle', ...(area.rectangle as Obj) } as AreaShape;
    if (area.circle) return { kind: 'circle', ...(area.circle as Obj) } as AreaShape;
    return { kind: 'polygon', vertices: (area.polygon as Obj).vertices } as AreaShape;
  }

  it('every page together equals testing every stored position of the window against the shape', async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb,
        rangeArb,
        fc.integer({ min: 1, max: 4 }),
        async (area, r, size) => {
          const shape = shapeOf(area);
          const want = new Map<string, Obj>();
          for (const d of positions) {
            const t = (d.time as Date).getTime();
            if (t < r.fromUnixMs || t >= r.toUnixMs) continue;
            if (!contains(shape, d.latitude as number, d.longitude as number)) continue;
            const v = want.get(d.vehicleId as string);
            if (v) {
              v.firstInsideUnixMs = Math.min(v.firstInsideUnixMs as number, t);
              v.lastInsideUnixMs = Math.max(v.lastInsideUnixMs as number, t);
              v.pointsInside = (v.pointsInside as number) + 1;
            } else
              want.set(d.vehicleId as string, {
                vehicleId: d.vehicleId,
                firstInsideUnixMs: t,
                lastInsideUnixMs: t,
                pointsInside: 1,
              });
          }
          const got: Obj[] = [];
          let token = '';
          do {
            const page = await call('findVehiclesInArea', {
              area,
              ...r,
              pageSize: size,
              pageToken: token,
            });
            assert.ok((page.vehicles as Obj[]).length <= size);
            assert.equal(page.totalVehicles, want.size);
            got.push(...(page.vehicles as Obj[]));
            token = String(page.nextPageToken);
          } while (token !== '');
          assert.deepEqual(
            got,
            [...want.values()].sort((a, b) => (String(a.vehicleId) < String(b.vehicleId) ? -1 : 1)),
          );
        },
      ),
      { numRuns: 30, seed: 813 },
    );
  });

  it('read cell by cell (FerretDB) or as one $or of cell ranges (portable), the answer is the same', async () => {
    const pool = new HistoryPool({ threads: 1 });
    try {
      const perCell = new AreaWindowReader(db, pool, { perCell: true, maxCellQueries: 100_000 });
      const ranges = new AreaWindowReader(db, pool, { perCell: false });
      await fc.assert(
        fc.asyncProperty(shapeArb, rangeArb, async (area, r) => {
          const q = { shape: shapeOf(area), fromMs: r.fromUnixMs, toMs: r.toUnixMs };
          assert.deepEqual(await perCell.vehicles(q), await ranges.vehicles(q));
        }),
        { numRuns: 5, seed: 814 },
      );
    } finally {
      await pool.close();
    }
  });

  it('the far vehicle is found in its own area and nowhere near the others', async () => {
    const r = { fromUnixMs: DAY0, toUnixMs: DAY0 + 3 * DAY };
    const page = await call('findVehiclesInArea', {
      area: { circle: { latitude: 39.9, longitude: 116.4, radiusM: 50_000 } },
      ...r,
    });
    assert.deepEqual(
      (page.vehicles as Obj[]).map((v) => v.vehicleId),
      [FAR_VEHICLE],
    );
  });

  it('bad shapes and windows are INVALID_ARGUMENT with a message saying what is wrong', async () => {
    const r = { fromUnixMs: DAY0, toUnixMs: DAY0 + DAY };
    const cases: [Obj, RegExp][] = [
      [{}, /one of rectangle, circle or polygon/],
      [
        {
          rectangle: {
            minLatitude: 31.3,
            maxLatitude: 31.2,
            minLongitude: 121,
            maxLongitude: 121.1,
          },
        },
        /min_latitude is above/,
      ],
      [
        {
          rectangle: { minLatitude: 31, maxLatitude: 31.1, minLongitude: 121.1, maxLongitude: 121 },
        },
        /antimeridian/,
      ],
      [
        { rectangle: { minLatitude: 31, maxLatitude: 34, minLongitude: 121, maxLongitude: 121.1 } },
        /at most 2° x 2°/,
      ],
      // One message for every radius refused.
      ...[0, -5, 200_000].map((radiusM): [Obj, RegExp] => [
        { circle: { latitude: 31, longitude: 121, radiusM } },
        new RegExp(`circle.radius_m must be above 0 and at most 100000 \\(m\\), not ${radiusM}$`),
      ]),
      [{ circle: { latitude: 89.9, longitude: 121, radiusM: 50_000 } }, /pole or the antimeridian/],
      [{ circle: { latitude: 95, longitude: 121, radiusM: 10 } }, /circle.latitude/],
      [
        {
          polygon: {
            vertices: [
              { latitude: 31, longitude: 121 },
              { latitude: 31.1, longitude: 121 },
            ],
          },
        },
        /3 to 1000 points, not 2/,
      ],
    ];
    for (const [area, message] of cases)
      await rejectsWith(
        call('findVehiclesInArea', { area, ...r }),
        grpc.status.INVALID_ARGUMENT,
        message,
      );
    const area = { circle: { latitude: 31, longitude: 121, radiusM: 10 } };
    await rejectsWith(
      call('findVehiclesInArea', { area, fromUnixMs: DAY0, toUnixMs: DAY0 + 8 * DAY }),
      grpc.status.INVALID_ARGUMENT,
      /at most 7 days/,
    );
    await rejectsWith(
      call('findVehiclesInArea', { area, ...r, pageSize: 10_001 }),
      grpc.status.INVALID_ARGUMENT,
      /10000/,
    );
  });

  it('past its bound on vehicles or candidates a query is refused, not cut short', async () => {
    const pool = new HistoryPool({ threads: 1 });
    try {
      const q = {
        shape: {
          kind: 'rectangle',
          minLatitude: 30.5,
          minLongitude: 120.5,
          maxLatitude: 32,
          maxLongitude: 122,
        } as AreaShape,
        fromMs: DAY0,
        toMs: DAY0 + 3 * DAY,
      };
      assert.equal((await new AreaWindowReader(db, pool).vehicles(q)).length, VEHICLES.length);
      await assert.rejects(
        new AreaWindowReader(db, pool, { maxVehicles: VEHICLES.length - 1 }).vehicles(q),
        ResultTooLarge,
      );
      await assert.rejects(
        new AreaWindowReader(db, pool, { maxCandidates: 100 }).vehicles(q),
        ResultTooLarge,
      );
    } finally {
      await pool.close();
    }
  });
});

describe('vehicles in an area now', () => {
  it('lists the live vehicles whose last report is inside, filtered and bounded', async () => {
    const at = (i: number): LocationReport =>
      trackPoint(0, { lat: 30.5 + i * 0.01, lon: 114.3, start: Date.UTC(2026, 10, 20) });
    const terminals: SimTerminal[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const t = new SimTerminal({ port: node.port, phone: `01377700000${i}` });
        await t.connect();
        assert.equal(await t.register(), 0);
        assert.equal(await t.authenticate(), 0);
        assert.equal(await t.report({ ...at(i), alarm: i === 3 ? 1 : 0 }), 0);
        terminals.push(t);
      }
      // A 1.5 km circle around the second: the first and third are 1.1 km from it, the fourth 2.2.
      const area = { circle: { latitude: 30.51, longitude: 114.3, radiusM: 1500 } };
      const all = await call('findVehiclesInAreaNow', { area });
      assert.deepEqual((all.vehicles as Obj[]).map((v) => v.vehicleId).sort(), [
        '13777000000',
        '13777000001',
        '13777000002',
      ]);
      const first = (all.vehicles as Obj[]).find((v) => v.vehicleId === '13777000001')!;
      assert.equal(first.online, true);
      assert.equal(first.latitude, 30.51);
      const wide = { circle: { latitude: 30.51, longitude: 114.3, radiusM: 5000 } };
      const alarmed = await call('findVehiclesInAreaNow', { area: wide, alarmMask: 1 });
      assert.deepEqual(
        (alarmed.vehicles as Obj[]).map((v) => v.vehicleId),
        ['13777000003'],
      );
      const two = await call('findVehiclesInAreaNow', { area: wide, maxVehicles: 2 });
      assert.equal((two.vehicles as Obj[]).length, 2);
      assert.equal(two.more, true);
      await rejectsWith(
        call('findVehiclesInAreaNow', { area: wide, maxVehicles: 10_001 }),
        grpc.status.INVALID_ARGUMENT,
        /max_vehicles/,
      );
      await rejectsWith(
        call('findVehiclesInAreaNow', { area: wide, minSpeedKmh: 50, maxSpeedKmh: 10 }),
        grpc.status.INVALID_ARGUMENT,
        /min_speed_kmh is above/,
      );
      await rejectsWith(
        call('findVehiclesInAreaNow', { area: {} }),
        grpc.status.INVALID_ARGUMENT,
        /one of rectangle, circle or polygon/,
      );
    } finally {
      for (const t of terminals) t.close();
    }
  });
});

describe('the service', () => {
  it('wants the bearer token, and reports SERVING on the health service', async () => {
    const req = { vehicleId: VEHICLES[0], fromUnixMs: DAY0, toUnixMs: DAY0 + DAY };
    await rejectsWith(call('getTrack', req, new grpc.Metadata()), grpc.status.UNAUTHENTICATED);
    await rejectsWith(call('getTrack', req, auth('wrong')), grpc.status.UNAUTHENTICATED);
    const Health = loadService(
      require('grpc-health-check').protoPath as string,
      'grpc.health.v1.Health',
    );
    const health = new Health(
      `127.0.0.1:${api.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & Record<string, Call>;
    try {
      const res = await call(
        'check',
        { service: 'fleetmesh.v1.HistoryService' },
        new grpc.Metadata(),
        health,
      );
      assert.equal(res.status, 'SERVING');
    } finally {
      health.close();
    }
  });

  it('reflection publishes it: a client built from what grpcurl reads calls GetTrack', async () => {
    const proto = join(
      require.resolve('@grpc/reflection').replace(/build[/\\]src[/\\]index\.js$/, ''),
      'build/proto/grpc/reflection/v1/reflection.proto',
    );
    const Reflection = loadService(proto, 'grpc.reflection.v1.ServerReflection');
    const r = new Reflection(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure());
    const ask = async (req: Obj): Promise<Obj> => {
      const s = (
        r as unknown as Record<string, () => grpc.ClientDuplexStream<Obj, Obj>>
      ).serverReflectionInfo!.call(r);
      const answer = new Promise<Obj>((resolve, reject) => {
        s.once('data', resolve);
        s.once('error', reject);
      });
      s.write(req);
      const res = await answer;
      s.end();
      return res;
    };
    try {
      const listed = await ask({ listServices: '*' });
      const names = ((listed.listServicesResponse as Obj).service as Obj[]).map((x) => x.name);
      assert.ok(names.includes('fleetmesh.v1.HistoryService'), String(names));
      const res = await ask({ fileContainingSymbol: 'fleetmesh.v1.HistoryService' });
      const files = (res.fileDescriptorResponse as Obj).fileDescriptorProto as Buffer[];
      const desc = protoLoader.loadSync('google/protobuf/descriptor.proto');
      const File = desc['google.protobuf.FileDescriptorProto'] as protoLoader.MessageTypeDefinition<
        Obj,
        Obj
      >;
      const Set = desc['google.protobuf.FileDescriptorSet'] as protoLoader.MessageTypeDefinition<
        Obj,
        Obj
      >;
      const def = protoLoader.loadFileDescriptorSetFromBuffer(
        Set.serialize({ file: files.map((f) => File.deserialize(f)) }),
        LOADER,
      );
      const History = (
        grpc.loadPackageDefinition(def) as unknown as {
          fleetmesh: { v1: { HistoryService: grpc.ServiceClientConstructor } };
        }
      ).fleetmesh.v1.HistoryService;
      const c = new History(
        `127.0.0.1:${api.port}`,
        grpc.credentials.createInsecure(),
      ) as typeof client;
      try {
        // As grpcurl sends it: the published (snake_case) field names.
        const page = await call(
          'GetTrack',
          { vehicle_id: VEHICLES[0], from_unix_ms: DAY0, to_unix_ms: DAY0 + DAY, page_size: 5 },
          auth(),
          c,
        );
        assert.equal((page.points as Obj[]).length, 5);
      } finally {
        c.close();
      }
    } finally {
      r.close();
    }
  });

  it('a stream the client cancels stops reading the track and frees its place', async () => {
    const server = new grpc.Server();
    const history = addHistoryService(server, db, () => true);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const History = loadService(HISTORY_PROTO, 'fleetmesh.v1.HistoryService');
    const c = new History(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const s = (
        c as unknown as Record<
          string,
          (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
        >
      ).streamTrack!.call(
        c,
        { vehicleId: VEHICLES[1], fromUnixMs: DAY0, toUnixMs: DAY0 + 3 * DAY, pageSize: 1 },
        auth(),
      );
      s.on('error', () => undefined); // CANCELLED, expected
      const first = await new Promise<Obj>((resolve) => s.once('data', resolve));
      assert.equal((first.points as Obj[]).length, 1);
      assert.equal(history.running, 1);
      s.cancel();
      await until(() => history.running === 0, 'the cancelled stream to end on the server');
    } finally {
      c.close();
      server.forceShutdown();
      await history.stop();
    }
  });

  it('past its limit of queries at once a call gets RESOURCE_EXHAUSTED', async () => {
    const server = new grpc.Server();
    const history = addHistoryService(server, db, () => true, { maxQueries: 0 });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const History = loadService(HISTORY_PROTO, 'fleetmesh.v1.HistoryService');
    const c = new History(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
    try {
      await rejectsWith(
        call(
          'getTrack',
          { vehicleId: VEHICLES[0], fromUnixMs: DAY0, toUnixMs: DAY0 + DAY },
          auth(),
          c,
        ),
        grpc.status.RESOURCE_EXHAUSTED,
        /history queries are running/,
      );
    } finally {
      c.close();
      server.forceShutdown();
      await history.stop();
    }
  });
});

describe('fleetmesh track', () => {
  /** Runs the command against the test node's server; its output as text. */
  async function track(args: string[]): Promise<string> {
    let text = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString('utf8');
        done();
      },
    });
    const code = await runTrack(
      [...args, '--server', `127.0.0.1:${api.port}`, '--token', TOKEN],
      out,
    );
    assert.equal(code, 0);
    return text;
  }
  const v = VEHICLES[2]!;
  const from = new Date(DAY0 + 3_600_000).toISOString();
  const to = String(DAY0 + 2 * DAY);
  const want = (): Document[] => storedTrack(v, DAY0 + 3_600_000, DAY0 + 2 * DAY);

  it('CSV: one line per stored point in time order, blind-area points marked', async () => {
    const lines = (await track([v, '--from', from, '--to', to])).trimEnd().split('\n');
    const header = lines[0]!.split(',');
    const col = (name: string): number => header.indexOf(name);
    assert.deepEqual(
      lines.slice(1).map((l) => {
        const c = l.split(',');
        return [
          Number(c[col('time_unix_ms')]),
          Number(c[col('latitude')]),
          Number(c[col('longitude')]),
          c[col('blind_area')] === '1',
          c[col('source')],
        ];
      }),
      want().map((d) => [
        (d.time as Date).getTime(),
        d.latitude,
        d.longitude,
        d.source === 'blind-area',
        d.source,
      ]),
    );
  });

  it('GeoJSON: a FeatureCollection of the same points, [longitude, latitude]', async () => {
    const fc = JSON.parse(await track([v, '--from', from, '--to', to, '--format', 'geojson'])) as {
      type: string;
      features: { geometry: { coordinates: number[] }; properties: Obj }[];
    };
    assert.equal(fc.type, 'FeatureCollection');
    assert.deepEqual(
      fc.features.map((f) => [
        f.properties.timeUnixMs,
        ...f.geometry.coordinates,
        f.properties.blindArea,
      ]),
      want().map((d) => [
        (d.time as Date).getTime(),
        d.longitude,
        d.latitude,
        d.source === 'blind-area',
      ]),
    );
  });

  it("a bad range is the service's INVALID_ARGUMENT; bad options are usage errors", async () => {
    await assert.rejects(track([v, '--from', to, '--to', from]), /INVALID_ARGUMENT: to_unix_ms/);
    await assert.rejects(
      track([v, '--from', from, '--to', to, '--format', 'kml']),
      /csv or geojson/,
    );
    await assert.rejects(track([v, '--from', 'yesterday', '--to', to]), /not a time/);
    await assert.rejects(track([v, '--to', to]), /--from is required/);
  });
});

describe('fleetmesh area', () => {
  /** Runs the command against the test node's server; its output and warnings as text. */
  async function area(args: string[]): Promise<{ out: string; err: string }> {
    const text = { out: '', err: '' };
    const sink = (k: 'out' | 'err'): Writable =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          text[k] += chunk.toString('utf8');
          done();
        },
      });
    const code = await runArea(
      [...args, '--server', `127.0.0.1:${api.port}`, '--token', TOKEN],
      sink('out'),
      sink('err'),
    );
    assert.equal(code, 0);
    return text;
  }

  /** Brute force: every stored position of the window tested against the shape. */
  function inside(shape: AreaShape, fromMs: number, toMs: number): (string | number)[][] {
    const want = new Map<string, [string, number, number, number]>();
    for (const d of positions) {
      const t = (d.time as Date).getTime();
      if (t < fromMs || t >= toMs) continue;
      if (!contains(shape, d.latitude as number, d.longitude as number)) continue;
      const v = want.get(d.vehicleId as string);
      if (v) {
        v[1] = Math.min(v[1], t);
        v[2] = Math.max(v[2], t);
        v[3]++;
      } else want.set(d.vehicleId as string, [d.vehicleId as string, t, t, 1]);
    }
    return [...want.values()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  const from = new Date(DAY0 + 6 * 3_600_000).toISOString();
  const to = String(DAY0 + 2 * DAY);
  const window = (shape: AreaShape): (string | number)[][] =>
    inside(shape, DAY0 + 6 * 3_600_000, DAY0 + 2 * DAY);

  it('a past window as CSV: one line per vehicle with a stored position inside, for each shape', async () => {
    const shapes: [string[], AreaShape][] = [
      [
        ['--circle', '31.3,121.5,9000'],
        { kind: 'circle', latitude: 31.3, longitude: 121.5, radiusM: 9000 },
      ],
      [
        // Corners in any order.
        ['--rect', '31.38,121.55,31.25,121.42'],
        {
          kind: 'rectangle',
          minLatitude: 31.25,
          minLongitude: 121.42,
          maxLatitude: 31.38,
          maxLongitude: 121.55,
        },
      ],
      [
        ['--polygon', '31.2,121.4; 31.45,121.45;31.3,121.65'],
        {
          kind: 'polygon',
          vertices: [
            { latitude: 31.2, longitude: 121.4 },
            { latitude: 31.45, longitude: 121.45 },
            { latitude: 31.3, longitude: 121.65 },
          ],
        },
      ],
    ];
    for (const [flags, shape] of shapes) {
      const want = window(shape);
      assert.ok(want.length > 0, `${flags.join(' ')} finds someone`);
      const lines = (await area([...flags, '--from', from, '--to', to])).out.trimEnd().split('\n');
      assert.equal(
        lines[0],
        'vehicle_id,first_inside,first_inside_unix_ms,last_inside,last_inside_unix_ms,points_inside',
      );
      assert.deepEqual(
        lines.slice(1).map((l) => {
          const c = l.split(',');
          assert.equal(c[1], new Date(Number(c[2])).toISOString());
          return [c[0]!, Number(c[2]), Number(c[4]), Number(c[5])];
        }),
        want,
        flags.join(' '),
      );
    }
  });

  it('a past window as JSON: the vehicles and their total', async () => {
    const shape: AreaShape = { kind: 'circle', latitude: 31.3, longitude: 121.5, radiusM: 9000 };
    const got = JSON.parse(
      (await area(['--circle', '31.3,121.5,9000', '--from', from, '--to', to, '--format', 'json']))
        .out,
    ) as { vehicles: Obj[]; totalVehicles: number };
    const want = window(shape);
    assert.equal(got.totalVehicles, want.length);
    assert.deepEqual(
      got.vehicles.map((v) => [
        v.vehicleId,
        v.firstInsideUnixMs,
        v.lastInsideUnixMs,
        v.pointsInside,
      ]),
      want,
    );
  });

  it('without --from/--to: the live vehicles inside now, filtered, as CSV and JSON', async () => {
    const terminals: SimTerminal[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const t = new SimTerminal({ port: node.port, phone: `01378800000${i}` });
        await t.connect();
        assert.equal(await t.register(), 0);
        assert.equal(await t.authenticate(), 0);
        const at = trackPoint(0, {
          lat: 22.5 + i * 0.01,
          lon: 114.05,
          start: Date.UTC(2026, 10, 21),
        });
        assert.equal(await t.report({ ...at, alarm: i === 2 ? 4 : 0 }), 0);
        terminals.push(t);
      }
      const circle = ['--circle', '22.51,114.05,5000'];
      const lines = (await area(circle)).out.trimEnd().split('\n');
      assert.equal(
        lines[0],
        'vehicle_id,latitude,longitude,speed_kmh,alarm,online,time,time_unix_ms',
      );
      assert.deepEqual(
        lines.slice(1).map((l) => l.split(',').slice(0, 6)),
        [0, 1, 2].map((i) => [
          `1378800000${i}`,
          String(22.5 + i * 0.01),
          '114.05',
          '42.5',
          i === 2 ? '4' : '0',
          '1',
        ]),
      );
      const alarmed = JSON.parse(
        (await area([...circle, '--alarm-mask', '4', '--format', 'json'])).out,
      ) as {
        vehicles: Obj[];
        more: boolean;
        partial: boolean;
      };
      assert.deepEqual(
        alarmed.vehicles.map((v) => v.vehicleId),
        ['13788000002'],
      );
      assert.equal(alarmed.more, false);
      assert.equal(alarmed.partial, false);
      const none = await area([...circle, '--online', 'no']);
      assert.deepEqual(none.out.trimEnd().split('\n').length, 1);
      assert.equal(none.err, 'fleetmesh: no vehicle in the area now matches\n');
      const one = await area([...circle, '--max-vehicles', '1']);
      assert.equal(one.out.trimEnd().split('\n').length, 2);
      assert.match(one.err, /more vehicles matched than listed/);
    } finally {
      for (const t of terminals) t.close();
    }
  });

  it('bad options are usage errors; a shape the service refuses is its INVALID_ARGUMENT; --help', async () => {
    await assert.rejects(
      area(['--from', from, '--to', to]),
      /one of --rect, --circle or --polygon/,
    );
    await assert.rejects(
      area(['--circle', '31,121,10', '--rect', '31,121,32,122']),
      /one of --rect, --circle or --polygon/,
    );
    await assert.rejects(area(['--circle', '31,121']), /--circle takes 3 numbers/);
    await assert.rejects(area(['--circle', '31,121,10', '--from', from]), /--to is required/);
    await assert.rejects(
      area(['--circle', '31,121,10', '--from', from, '--to', to, '--online', 'yes']),
      /--online: only for the area now/,
    );
    await assert.rejects(area(['--circle', '31,121,10', '--online', 'maybe']), /yes or no/);
    await assert.rejects(area(['--circle', '31,121,10', '--format', 'kml']), /csv or json/);
    await assert.rejects(
      area(['--circle', '31,121,10', '--colour', 'red']),
      /unknown option --colour/,
    );
    await assert.rejects(
      area(['--rect', '30,120,33,121', '--from', from, '--to', to]),
      /INVALID_ARGUMENT: the area spans 3.000° x 1.000°, at most 2° x 2°/,
    );
    await assert.rejects(
      area(['--polygon', '31,121;31.1,121.1']),
      /INVALID_ARGUMENT: polygon.vertices must be 3 to 1000 points, not 2/,
    );
    const help = await area(['--help']);
    assert.match(help.out, /^usage: fleetmesh area /);
    assert.match(help.out, /--polygon/);
  });
});

describe('retention', () => {
  const NOW = DAY0 + 400 * DAY;
  const AGE: Record<keyof RetentionPolicy, string> = {
    positions: 'time',
    alarms: 'endTime',
    sessions: 'at',
    commands: 'at',
    driverRecords: 'time',
    drivingBehaviour: 'endTime',
    media: 'uploadDate',
  };

  /**
   * A database of its own with 60 documents per collection aged 0 to 500 days (some alarms open;
   * each media file with two chunks).
   */
  async function aged(rnd: () => number): Promise<{ db: Db; docs: Record<string, Document[]> }> {
    const own = node.client.db(testDatabase('retention'));
    const docs: Record<string, Document[]> = {};
    for (const name of Object.keys(AGE) as (keyof RetentionPolicy)[]) {
      docs[name] = Array.from({ length: 60 }, (_, i) => {
        const at = new Date(NOW - Math.floor(rnd() * 500 * DAY));
        const d: Document = { _id: `${name}:${i}`, vehicleId: VEHICLES[i % VEHICLES.length] };
        if (name === 'alarms') {
          d.startTime = at;
          d.endTime = i % 5 === 0 ? null : at; // every fifth open, whatever its age
        } else d[AGE[name]] = at;
        return d;
      });
      await own.collection(RETENTION_COLLECTIONS[name]).insertMany(docs[name]);
      if (name === 'media')
        await own
          .collection<Document & { _id: string }>('media.chunks')
          .insertMany(
            docs[name].flatMap((f) =>
              [0, 1].map((n) => ({ _id: `${String(f._id)}#${n}`, files_id: f._id, n })),
            ),
          );
    }
    return { db: own, docs };
  }

  const kept = (policy: RetentionPolicy, name: keyof RetentionPolicy, d: Document): boolean => {
    const t = d[AGE[name]] as Date | null;
    return policy[name] === 0 || t === null || t.getTime() >= NOW - policy[name] * DAY;
  };

  it('sweeps delete exactly what is older than each collection keeps, in bounded sweeps', async () => {
    const { db: own, docs } = await aged(random(14));
    const policy = parseRetention('positions=180,alarms=365,sessions=90,commands=0');
    let sweeps = 0;
    let r: SweepResult;
    do {
      r = await sweepRetention(own, policy, NOW, { batch: 7, maxPerSweep: 20 });
      for (const n of Object.values(r.deleted)) assert.ok(n <= 20, `${n} deleted in one sweep`);
      assert.ok(++sweeps < 20, 'sweeps do not end');
    } while (r.more.length > 0);
    assert.ok(sweeps > 1, 'the bound made it take more than one sweep');
    for (const name of Object.keys(AGE) as (keyof RetentionPolicy)[]) {
      const left = (await own.collection(RETENTION_COLLECTIONS[name]).find({}).toArray()).map(
        (d) => d._id,
      );
      const want = docs[name]!.filter((d) => kept(policy, name, d)).map((d) => d._id);
      assert.deepEqual(left.sort(), want.sort(), name);
      if (name === 'media') {
        const chunksOf = (await own.collection('media.chunks').find({}).toArray()).map(
          (c) => c.files_id as string,
        );
        assert.deepEqual(
          chunksOf.sort(),
          want.flatMap((id) => [id, id]).sort(),
          'the chunks of the files kept, and only those',
        );
      }
      if (name !== 'commands') assert.ok(want.length < 60, `${name}: something was old enough`);
    }
    await own.dropDatabase();
  });

  it('the sweeper runs on its timer until stopped', async () => {
    const { db: own } = await aged(random(15));
    const policy = parseRetention('positions=1');
    let sweeper: RetentionSweeper | undefined;
    const swept = new Promise<SweepResult>((resolve) => {
      sweeper = new RetentionSweeper(own, policy, { now: () => NOW, onSweep: resolve });
      sweeper.start(0);
    });
    const r = await swept;
    await sweeper!.stop();
    assert.ok(r.deleted.positions > 0);
    assert.equal(
      await own
        .collection(COLLECTIONS.positions)
        .countDocuments({ time: { $lt: new Date(NOW - DAY) } }),
      0,
    );
    await own.dropDatabase();
  });

  it('a sweeper told another process sweeps deletes nothing', async () => {
    const { db: own } = await aged(random(16));
    const before = await own.collection(COLLECTIONS.positions).countDocuments();
    const sweeper = new RetentionSweeper(own, parseRetention('positions=1'), {
      now: () => NOW,
      shouldSweep: () => false,
    });
    assert.equal(await sweeper.sweep(), undefined);
    await sweeper.stop();
    assert.equal(await own.collection(COLLECTIONS.positions).countDocuments(), before);
    await own.dropDatabase();
  });

  it('a bad policy is refused with what is wrong', () => {
    assert.throws(() => parseRetention('tracks=10'), /unknown collection 'tracks'/);
    assert.throws(() => parseRetention('positions=-1'), /whole days/);
    assert.deepEqual(parseRetention('').positions, 180);
  });
});
