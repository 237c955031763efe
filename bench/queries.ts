// Queries benchmark (issue 13): one vehicle-day of track (8 640 points at 10 s) read through
// fleetmesh.v1.HistoryService — GetTrack (one page), StreamTrack (chunks of 1000), and the two
// downsamplings — against the raw `find` of the same points on the same server in the same run
// (the driver's find + sort + toArray, no gRPC). Other vehicles' days are stored beside it so
// both have to select. Each round runs every kind once in a rotating order; the ratio is the
// median over rounds of a kind's time ÷ the raw find's time in that round (goal ≤ 1.2 for the
// plain track). Beside them, FindVehiclesInArea (a 2 km circle, one hour) against the raw find of
// the positions of the same cells and hour. Store: the local one (FerretDB on its default
// backend), or MONGODB_URI.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import hdr from 'hdr-histogram-js';
import { startGrpcServer } from '../api/grpcServer.js';
import { HISTORY_PROTO } from '../api/historyService.js';
import { startLocalServers } from '../devservers/localServers.js';
import { startNode } from '../node/node.js';
import type { LocationReport } from '../jt808/location.js';
import { boxCellRanges } from '../storage/cellGrid.js';
import { areaShape, boundingBox } from '../storage/historyShapes.js';
import { COLLECTIONS } from '../storage/schema.js';
import { positionDocument } from '../storage/vehicleStore.js';
import { percentileCurve, type BenchContext, type PercentilePoint, type Row } from './report.js';

export interface QueriesBenchOptions {
  /** Other vehicles with a day of track each (default 10). */
  vehicles: number;
  /** Rounds, each running every kind once (default 20). */
  rounds: number;
}

const TOKEN = 'bench-queries';
const DAY0 = Date.UTC(2026, 10, 1);
const POINTS = 8640;
const VEHICLE = '13900000001';

type Obj = Record<string, unknown>;

interface Kind {
  name: string;
  /** Index of the kind it is measured against (none: it is a baseline). */
  baseline?: number;
  run(): Promise<number>;
}

interface Measured {
  name: string;
  baseline?: number;
  points: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  perSecond: number;
  percentiles: PercentilePoint[];
  /** Per round: mean ÷ the raw find's mean. */
  ratios: number[];
}

function dayOf(vehicleId: string, seed: number): Obj[] {
  const docs: Obj[] = [];
  for (let i = 0; i < POINTS; i++) {
    const loc: LocationReport = {
      alarm: 0,
      status: 3,
      latitude: Math.round((31 + seed * 0.01 + Math.sin(i / 300) * 0.05) * 1e6) / 1e6,
      longitude: Math.round((121 + i * 0.00005) * 1e6) / 1e6,
      altitude: 10,
      speed: 40 + (i % 30),
      direction: 90,
      time: DAY0 + i * 10_000,
      mileageKm: 1000 + i / 10,
      satellites: 12,
      signal: 25,
    };
    docs.push(
      positionDocument(vehicleId, loc, i % 50 === 0 ? 'blind-area' : 'live', loc.time! + 500, i),
    );
  }
  return docs;
}

export async function runQueriesBench(
  ctx: BenchContext,
  o: QueriesBenchOptions,
): Promise<Record<string, unknown>> {
  const servers = await startLocalServers({
    external: {
      etcdEndpoints: ['http://unused:1'],
      ...(process.env.MONGODB_URI ? { mongodbUri: process.env.MONGODB_URI } : {}),
    },
  });
  const database = `fleetmesh_bench_queries_${process.pid}`;
  const store = servers.storeBackend ? `local FerretDB on ${servers.storeBackend}` : 'MONGODB_URI';
  const node = await startNode({ mongodbUri: servers.mongodbUri, database, workers: 1 });
  const api = await startGrpcServer(node, { tokens: [TOKEN] });
  const loaded = grpc.loadPackageDefinition(
    protoLoader.loadSync(HISTORY_PROTO, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    }),
  ) as unknown as { fleetmesh: { v1: { HistoryService: grpc.ServiceClientConstructor } } };
  const client = new loaded.fleetmesh.v1.HistoryService(
    `127.0.0.1:${api.port}`,
    grpc.credentials.createInsecure(),
    { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  ) as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  try {
    const db = node.client.db(database);
    const positions = db.collection(COLLECTIONS.positions);
    const ids = [VEHICLE, ...Array.from({ length: o.vehicles }, (_, i) => String(13900000100 + i))];
    for (const [i, id] of ids.entries()) {
      ctx.progress('storing vehicle-days', i, ids.length);
      const docs = dayOf(id, i);
      for (let k = 0; k < docs.length; k += 1000)
        await positions.insertMany(docs.slice(k, k + 1000), { ordered: false });
    }
    ctx.progress('storing vehicle-days', ids.length, ids.length);
    const range = { fromUnixMs: DAY0, toUnixMs: DAY0 + 86_400_000 };
    const track = (req: Obj): Promise<number> =>
      new Promise((resolve, reject) =>
        (
          client.getTrack as (
            r: Obj,
            m: grpc.Metadata,
            cb: (e: Error | null, r?: Obj) => void,
          ) => void
        ).call(client, req, md, (e, r) =>
          e ? reject(e) : resolve((r!.points as unknown[]).length),
        ),
      );
    const streamed = (req: Obj): Promise<number> =>
      new Promise((resolve, reject) => {
        const s = (
          client.streamTrack as (r: Obj, m: grpc.Metadata) => grpc.ClientReadableStream<Obj>
        ).call(client, req, md);
        let n = 0;
        s.on('data', (c: Obj) => (n += (c.points as unknown[]).length));
        s.on('error', reject);
        s.on('end', () => resolve(n));
      });
    const raw: Kind = {
      name: 'raw find (driver, same server)',
      run: async () =>
        (
          await positions
            .find({
              vehicleId: VEHICLE,
              time: { $gte: new Date(DAY0), $lt: new Date(DAY0 + 86_400_000) },
            })
            .sort({ time: 1 })
            .toArray()
        ).length,
    };
    // Area during one hour: a 2 km circle where the vehicles pass at noon.
    const area = { circle: { latitude: 31.1, longitude: 121.216, radiusM: 2000 } };
    const hour = { fromUnixMs: DAY0 + 12 * 3_600_000, toUnixMs: DAY0 + 13 * 3_600_000 };
    const box = boundingBox(areaShape(area));
    const rawArea: Kind = {
      name: 'raw find of the cells under the area, one hour',
      run: async () =>
        (
          await positions
            .find({
              $or: boxCellRanges(
                box.minLatitude,
                box.minLongitude,
                box.maxLatitude,
                box.maxLongitude,
              ).map((r) => ({
                cell: { $gte: r.from, $lte: r.to },
                time: { $gte: new Date(hour.fromUnixMs), $lt: new Date(hour.toUnixMs) },
              })),
            })
            .toArray()
        ).length,
    };
    const inArea = (): Promise<number> =>
      new Promise((resolve, reject) =>
        (
          client.findVehiclesInArea as (
            r: Obj,
            m: grpc.Metadata,
            cb: (e: Error | null, r?: Obj) => void,
          ) => void
        ).call(client, { area, ...hour }, md, (e, r) =>
          e ? reject(e) : resolve((r!.vehicles as unknown[]).length),
        ),
      );
    const kinds: Kind[] = [
      raw,
      rawArea,
      {
        name: 'FindVehiclesInArea, 2 km circle, one hour',
        baseline: 1,
        run: inArea,
      },
      {
        name: 'GetTrack, one page of 10 000',
        baseline: 0,
        run: () => track({ vehicleId: VEHICLE, ...range, pageSize: 10_000 }),
      },
      {
        name: 'StreamTrack, chunks of 1000',
        baseline: 0,
        run: () => streamed({ vehicleId: VEHICLE, ...range }),
      },
      {
        name: 'StreamTrack, 60 s buckets',
        baseline: 0,
        run: () =>
          streamed({
            vehicleId: VEHICLE,
            ...range,
            downsampling: 'DOWNSAMPLING_TIME_BUCKET',
            bucketMs: 60_000,
          }),
      },
      {
        name: 'StreamTrack, Douglas-Peucker 10 m',
        baseline: 0,
        run: () =>
          streamed({
            vehicleId: VEHICLE,
            ...range,
            downsampling: 'DOWNSAMPLING_DOUGLAS_PEUCKER',
            toleranceM: 10,
          }),
      },
    ];
    const hist = kinds.map(() =>
      hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: 1e9,
        numberOfSignificantValueDigits: 3,
      }),
    );
    const totals = kinds.map(() => ({ ms: 0, n: 0, points: 0 }));
    const ratios: number[][] = kinds.map(() => []);
    // Warm-up: one of each (JIT, connections, the pool's first thread).
    for (const k of kinds) await k.run();
    // Each round runs every kind once, starting one further along each time; a kind's ratio in
    // a round is its time ÷ the raw find's in the same round (the machine's load changes slower).
    for (let r = 0; r < o.rounds; r++) {
      const times: number[] = kinds.map(() => 0);
      for (let k = 0; k < kinds.length; k++) {
        const i = (r + k) % kinds.length;
        const t0 = process.hrtime.bigint();
        const points = await kinds[i]!.run();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        hist[i]!.recordValue(Math.max(1, Math.round(ms * 1000)));
        times[i] = ms;
        totals[i]!.ms += ms;
        totals[i]!.n++;
        totals[i]!.points = points;
      }
      kinds.forEach((k, i) => ratios[i]!.push(times[i]! / times[k.baseline ?? i]!));
      ctx.progress('queries', r + 1, o.rounds);
    }
    const measured: Measured[] = kinds.map((k, i) => {
      const h = hist[i]!;
      const m: Measured = {
        name: k.name,
        ...(k.baseline !== undefined ? { baseline: k.baseline } : {}),
        points: totals[i]!.points,
        meanMs: totals[i]!.ms / totals[i]!.n,
        p50Ms: h.getValueAtPercentile(50) / 1000,
        p99Ms: h.getValueAtPercentile(99) / 1000,
        p999Ms: h.getValueAtPercentile(99.9) / 1000,
        perSecond: (1000 * totals[i]!.n) / totals[i]!.ms,
        percentiles: percentileCurve(h, 1 / 1000),
        ratios: [...ratios[i]!].sort((a, b) => a - b),
      };
      h.destroy();
      return m;
    });
    const figures = (m: Measured): Record<string, number> => ({
      points: m.points,
      perSecond: m.perSecond,
      meanMs: m.meanMs,
      p50Ms: m.p50Ms,
      p99Ms: m.p99Ms,
      p999Ms: m.p999Ms,
    });
    ctx.table({
      title: `queries: one vehicle-day (${POINTS} points at 10 s) among ${ids.length} on ${store}; baseline: the raw find of the same points (area: of the same cells and hour); results: points or vehicles; ratio: median over rounds of time ÷ raw (goal ≤ 1.2 for the plain track)`,
      columns: [
        { key: 'points', label: 'results', digits: 0 },
        { key: 'perSecond', label: 'queries/s', digits: 1 },
        { key: 'meanMs', label: 'mean ms', digits: 1 },
        { key: 'p50Ms', label: 'p50 ms', digits: 1 },
        { key: 'p99Ms', label: 'p99 ms', digits: 1 },
        { key: 'p999Ms', label: 'p99.9 ms', digits: 1 },
      ],
      rows: measured.flatMap((m): Row[] => {
        if (m.baseline === undefined) return [];
        const base = measured[m.baseline]!;
        return [
          {
            name: m.name,
            figures: figures(m),
            baseline: { name: base.name, figures: figures(base) },
            ratio: {
              column: 'meanMs',
              value: m.ratios[Math.floor(m.ratios.length / 2)]!,
              range: [m.ratios[0]!, m.ratios[m.ratios.length - 1]!],
            },
            percentiles: m.percentiles,
            baselinePercentiles: base.percentiles,
          },
        ];
      }),
      percentileUnit: 'ms per query',
    });
    return { store, measured: measured.map(({ percentiles: _p, ...m }) => m) };
  } finally {
    client.close();
    await api.stop();
    await node.client
      .db(database)
      .dropDatabase()
      .catch(() => undefined);
    await node.stop();
    await servers.stop();
  }
}
