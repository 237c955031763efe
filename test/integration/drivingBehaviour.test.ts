// Driving behaviour end to end: simulated terminals report speed profiles over real sockets (one
// report a second: a harsh brake and an overspeed for one vehicle, a harsh acceleration and
// fatigue for another, a day later; a report a minute: long idling for a third); each vehicle's actor detects the episodes and stores them
// when they end; HistoryService.ListDrivingBehaviour gives back exactly the episodes a
// brute-force computation over the reports sent finds, with their start and end points, page by
// page and by type, and GetDrivingBehaviourStatistics counts them per local day and type for a
// vehicle and the fleet. Bad requests are INVALID_ARGUMENT.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { BEHAVIOUR_TYPES } from '../../domain/drivingBehaviour.js';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { HISTORY_PROTO } from '../../api/historyService.js';
import type { LocalServers } from '../../devservers/localServers.js';
import { vehicleIdOf } from '../../jt808/header.js';
import type { LocationReport } from '../../jt808/location.js';
import type { FleetNode } from '../../node/node.js';
import { daysOf } from '../../storage/historyAlarms.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { bruteForce } from '../helpers/drivingBehaviourBrute.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;

const TOKEN = 'behaviour-token';
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };
const database = testDatabase('behaviour');
/** GNSS times: whole seconds (BCD on the wire). 23:59:45 in China on Nov 2nd. */
const T0 = Date.UTC(2026, 10, 2, 15, 59, 45);
const DAY = 86_400_000;
const { overspeed, fatigue, longIdling, harshAcceleration, harshBraking } = BEHAVIOUR_TYPES;

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let client: grpc.Client & Record<string, Call>;

function call(method: string, req: Obj, token = TOKEN): Promise<Obj> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (client[method] as Call).call(client, req, md, (err, res) =>
      err ? reject(err) : resolve(res ?? {}),
    );
  });
}

before(async () => {
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database, { workers: 1 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(HISTORY_PROTO, LOADER)) as Obj;
  const History = ((loaded.fleetmesh as Obj).v1 as Obj)
    .HistoryService as grpc.ServiceClientConstructor;
  client = new History(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client;
});

after(async () => {
  client?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

/**
 * One report every `stepMs` (a second) from `start`: [speed km/h, alarm word, status word] each;
 * ACC on (trackPoint's status) unless said.
 */
function profile(
  start: number,
  steps: [number, number, number?][],
  stepMs = 1000,
): LocationReport[] {
  return steps.map(([speed, alarm, status], i) => ({
    ...trackPoint(i),
    time: start + i * stepMs,
    speed,
    alarm,
    status: status ?? trackPoint(i).status,
  }));
}

/** Speeds only, no alarm. */
const plain = (speeds: number[]): [number, number][] => speeds.map((s) => [s, 0]);

/** Reports `reports` in order, each acknowledged 0 before the next. */
async function drive(phone: string, reports: LocationReport[]): Promise<void> {
  const t = new SimTerminal({ port: node.port, phone, edition: 2013 });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  for (const r of reports) assert.equal(await t.report(r), 0);
  t.close();
}

const pointMessage = (r: LocationReport): Obj => ({
  timeUnixMs: r.time,
  latitude: r.latitude,
  longitude: r.longitude,
  speedKmh: r.speed,
  directionDeg: r.direction,
  altitudeM: r.altitude,
});

/** The episodes ListDrivingBehaviour must give for a vehicle's reports (distinct times). */
function expected(vehicleId: string, reports: LocationReport[]): Obj[] {
  const byTime = new Map(reports.map((r) => [r.time, r]));
  return bruteForce(reports.map((r) => ({ ...r, time: r.time! })))
    .map(([type, start, end]) => ({
      episodeId: `${vehicleId}:${type}:${start}:${end}`,
      vehicleId,
      type,
      start: pointMessage(byTime.get(start)!),
      end: pointMessage(byTime.get(end)!),
      durationMs: end - start,
    }))
    .sort(
      (a, b) =>
        (a.start.timeUnixMs as number) - (b.start.timeUnixMs as number) ||
        (a.episodeId < b.episodeId ? -1 : 1),
    );
}

/** Every page of a request, each checked against its size bound. */
async function allPages(req: Obj, size: number): Promise<Obj[]> {
  const out: Obj[] = [];
  let token = '';
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 100, 'paging does not end');
    const page = await call('listDrivingBehaviour', { ...req, pageSize: size, pageToken: token });
    const episodes = page.episodes as Obj[];
    assert.ok(episodes.length <= size);
    out.push(...episodes);
    token = String(page.nextPageToken);
    if (token === '') return out;
  }
}

/** Counts per (day at +08:00, type) of episodes, as the statistics call orders them. */
function countsOf(episodes: Obj[]): Obj[] {
  const counts = new Map<string, number>();
  for (const e of episodes) {
    const t = (e.start as Obj).timeUnixMs as number;
    const day = daysOf(t, t + 1, 480)[0]!.day;
    const key = `${day}|${String(e.type)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([k, count]) => {
      const [day, type] = k.split('|');
      return { day, type: Number(type), count };
    })
    .sort((a, b) => a.day!.localeCompare(b.day!) || a.type - b.type);
}

describe('driving behaviour (driver_action_infos)', () => {
  const PHONE1 = '013600000101';
  const PHONE2 = '013600000102';
  const V1 = vehicleIdOf(PHONE1);
  const V2 = vehicleIdOf(PHONE2);
  // Up to 100 km/h by 10 a second (not harsh), overspeed (alarm bit 1) for 4 reports, then a
  // brake of 15 km/h a second twice (harsh) and gentler ones.
  const reports1 = profile(T0, [
    ...plain([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    [100, 0b10],
    [105, 0b10],
    [110, 0b10],
    [108, 0b10],
    ...plain([100, 85, 70, 62, 55, 48, 40, 40]),
  ]);
  // A day later: 0 → 24 km/h in 2 s (12 a second, harsh), driving tired (alarm bit 2), stopping.
  const reports2 = profile(T0 + DAY, [
    ...plain([0, 12, 24, 30]),
    [30, 0b100],
    [31, 0b100],
    ...plain([31, 25, 20]),
  ]);
  // Half a day later, a report a minute: parked with ACC off for 14 minutes (not idling), then
  // ACC on at 0 km/h for 11 minutes (long idling), then moving.
  const PHONE3 = '013600000103';
  const V3 = vehicleIdOf(PHONE3);
  const reports3 = profile(
    T0 + DAY / 2,
    [
      ...Array.from({ length: 15 }, (): [number, number, number] => [0, 0, 0x02]),
      ...plain([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 30]),
    ],
    60_000,
  );
  const want1 = expected(V1, reports1);
  const want2 = expected(V2, reports2);
  const want3 = expected(V3, reports3);

  it('the episodes stored are exactly those a brute-force computation over the reports sent finds, page by page and by type', async () => {
    // The brute force finds what the profiles were made of (and nothing else).
    assert.deepEqual(
      want1.map((e) => [e.type, (e.start as Obj).timeUnixMs, (e.end as Obj).timeUnixMs]),
      [
        [overspeed, T0 + 11_000, T0 + 15_000],
        [harshBraking, T0 + 15_000, T0 + 17_000],
      ],
    );
    assert.deepEqual(
      want2.map((e) => [e.type, (e.start as Obj).timeUnixMs, (e.end as Obj).timeUnixMs]),
      [
        [harshAcceleration, T0 + DAY, T0 + DAY + 2000],
        [fatigue, T0 + DAY + 4000, T0 + DAY + 6000],
      ],
    );
    assert.deepEqual(
      want3.map((e) => [e.type, (e.start as Obj).timeUnixMs, (e.end as Obj).timeUnixMs]),
      [[longIdling, T0 + DAY / 2 + 15 * 60_000, T0 + DAY / 2 + 27 * 60_000]],
    );
    await drive(PHONE1, reports1);
    await drive(PHONE2, reports2);
    await drive(PHONE3, reports3);
    // Episodes are written when they end, beside the acknowledgement: wait for them.
    const stored = node.client.db(database).collection(COLLECTIONS.drivingBehaviour);
    const total = want1.length + want2.length + want3.length;
    for (let polls = 0; (await stored.countDocuments({})) < total; polls++) {
      assert.ok(polls < 500, `${total} episodes stored`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await stored.countDocuments({}), total, 'nothing else stored');

    const range = { fromUnixMs: T0 - DAY, toUnixMs: T0 + 2 * DAY };
    for (const [vehicleId, want] of [
      [V1, want1],
      [V2, want2],
      [V3, want3],
    ] as const)
      for (const size of [1, 2, 1000])
        assert.deepEqual(
          await allPages({ ...range, vehicleId }, size),
          want,
          `${vehicleId}/${size}`,
        );
    assert.deepEqual(
      await allPages({ ...range, vehicleId: V1, types: [harshBraking, fatigue] }, 10),
      want1.filter((e) => e.type === harshBraking),
    );
    // The range is of start times, half-open.
    assert.deepEqual(
      await allPages({ vehicleId: V1, fromUnixMs: T0 + 11_000, toUnixMs: T0 + 15_000 }, 10),
      want1.filter((e) => e.type === overspeed),
    );
  });

  it('statistics: counts per local day and type, for a vehicle and for the fleet', async () => {
    const range = { fromUnixMs: T0 - DAY, toUnixMs: T0 + 2 * DAY, utcOffsetMinutes: 480 };
    const fleet = await call('getDrivingBehaviourStatistics', range);
    assert.deepEqual(fleet.counts, countsOf([...want1, ...want2, ...want3]));
    assert.equal(fleet.total, want1.length + want2.length + want3.length);
    // T0 is 23:59:45 in China: the overspeed starts at 23:59:56 on Nov 2nd there, the brake at
    // midnight, the first of Nov 3rd; the idling at noon, the other episodes a day later, before
    // midnight.
    assert.deepEqual(
      (fleet.counts as Obj[]).map((c) => [c.day, c.type, c.count]),
      [
        ['2026-11-02', overspeed, 1],
        ['2026-11-03', fatigue, 1],
        ['2026-11-03', longIdling, 1],
        ['2026-11-03', harshAcceleration, 1],
        ['2026-11-03', harshBraking, 1],
      ],
    );
    const one = await call('getDrivingBehaviourStatistics', { ...range, vehicleId: V2 });
    assert.deepEqual(one.counts, countsOf(want2));
    const braking = await call('getDrivingBehaviourStatistics', {
      ...range,
      types: [harshBraking],
    });
    assert.deepEqual(braking.counts, countsOf(want1.filter((e) => e.type === harshBraking)));
    assert.equal(braking.total, 1);
  });

  it('bad requests are INVALID_ARGUMENT with what is wrong; a wrong token is UNAUTHENTICATED', async () => {
    const bad = (method: string, req: Obj, message: RegExp): Promise<void> =>
      assert.rejects(call(method, req), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
        assert.match(err.details, message);
        return true;
      });
    const ok = { vehicleId: V1, fromUnixMs: T0, toUnixMs: T0 + DAY };
    const list = 'listDrivingBehaviour';
    await bad(list, { ...ok, vehicleId: 'x1' }, /vehicle id 'x1' must be 1 to 20 digits/);
    await bad(list, { ...ok, toUnixMs: T0 + 367 * DAY }, /the range is 367 days, at most 366 days/);
    await bad(list, { ...ok, types: [3] }, /behaviour type 3 is not one of the AID table/);
    await bad(list, { ...ok, pageSize: 1001 }, /page_size 1001 is over the limit of 1000/);
    await bad(list, { ...ok, pageToken: '%%' }, /page_token is not one this service handed out/);
    const stats = 'getDrivingBehaviourStatistics';
    await bad(stats, { ...ok, toUnixMs: T0 + 93 * DAY }, /the range is 93 days, at most 92 days/);
    await bad(stats, { ...ok, utcOffsetMinutes: 900 }, /utc_offset_minutes/);
    await assert.rejects(call(list, ok, 'nope'), { code: grpc.status.UNAUTHENTICATED });
  });
});
