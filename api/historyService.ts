// fleetmesh.v1.HistoryService (proto/fleetmesh/v1/history.proto): the history queries of
// storage/history*.ts served beside VehicleService on the node's gRPC server, with the same
// bearer-token check. Requests are checked here into the storage layer's queries; its
// refusals become INVALID_ARGUMENT (bad request) or RESOURCE_EXHAUSTED (answer or load past a
// bound). CPU work runs in the history pool, which this service owns.
import { once } from 'node:events';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Db } from 'mongodb';
import { projectRoot } from '../devservers/localServers.js';
import {
  AlarmHistoryReader,
  alarmPageSize,
  alarmQuery,
  statisticsQuery,
} from '../storage/historyAlarms.js';
import type { AlarmHistoryRecord, AlarmPointRecord } from '../storage/historyAlarms.js';
import { areaPageSize, areaWindowQuery, AreaWindowReader } from '../storage/historyArea.js';
import { HistoryPool, PoolBusy, type HistoryPoolOptions } from '../storage/historyPool.js';
import { DriverRecordReader, driverPageSize, driverRecordQuery } from '../storage/driverRecords.js';
import {
  BehaviourReader,
  behaviourPageSize,
  behaviourQuery,
  behaviourStatisticsQuery,
} from '../storage/drivingBehaviour.js';
import { decodeCursor, InvalidQuery, ResultTooLarge } from '../storage/historyQuery.js';
import {
  MediaReader,
  mediaChunkSize,
  mediaId,
  mediaPageSize,
  mediaQuery,
  type MediaRecord,
} from '../storage/mediaHistory.js';
import { areaShape, type AreaNowFilter, type AreaShape } from '../storage/historyShapes.js';
import type { VehicleNow } from '../hosting/vehicleThread.js';
import {
  TrackReader,
  trackPageSize,
  trackQuery,
  type TrackPoint,
} from '../storage/historyTrack.js';

export const HISTORY_SERVICE = 'fleetmesh.v1.HistoryService';
export const HISTORY_PROTO = join(projectRoot, 'proto', 'fleetmesh', 'v1', 'history.proto');

/** History queries running at once (unary and streams); more get RESOURCE_EXHAUSTED. */
export const MAX_HISTORY_QUERIES = 64;

type Obj = Record<string, unknown>;

export interface HistoryServiceOptions {
  pool?: HistoryPoolOptions;
  maxQueries?: number;
  /** Vehicles in an area now, from the live vehicles (FleetNode.inArea); absent: UNIMPLEMENTED. */
  vehiclesNow?: (
    shape: AreaShape,
    filter: AreaNowFilter,
    limit: number,
  ) => Promise<{ vehicles: VehicleNow[]; more: boolean; partial?: boolean }>;
  /**
   * A streaming caller (StreamTrack, DownloadMedia) that reads nothing for this long loses its
   * stream (DEADLINE_EXCEEDED) and gives its query slot back (default 60 s).
   */
  stalledReaderMs?: number;
}

/**
 * Waits until the caller has read what is buffered: false when it went away, an error when it
 * read nothing for `ms` (a paused reader must not hold a query slot for ever).
 */
async function readerCaughtUp(
  call: grpc.ServerWritableStream<Obj, Obj>,
  gone: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => {
    timer = setTimeout(() => resolve('stalled'), ms);
  });
  try {
    const r = await Promise.race([once(call, 'drain').then(() => 'drain' as const), gone, stalled]);
    if (r === 'stalled')
      throw grpcError(
        grpc.status.DEADLINE_EXCEEDED,
        `the stream's reader took nothing for ${ms} ms: it is ended`,
      );
    return r === 'drain';
  } finally {
    clearTimeout(timer);
  }
}

/** Vehicles an area-now answer lists at most (and by default). */
export const MAX_AREA_NOW_VEHICLES = 10_000;
const DEFAULT_AREA_NOW_VEHICLES = 1000;

/** The filter of an AreaNowRequest, checked. */
export function areaNowRequest(req: Obj): {
  shape: AreaShape;
  filter: AreaNowFilter;
  limit: number;
} {
  const shape = areaShape(req.area);
  const filter: AreaNowFilter = {};
  if (req.online === 'ONLINE_FILTER_ONLINE') filter.online = true;
  else if (req.online === 'ONLINE_FILTER_OFFLINE') filter.online = false;
  const speed = (v: unknown, name: string): number | undefined => {
    const n = Number(v ?? 0);
    if (!Number.isFinite(n) || n < 0 || n > 1000)
      throw new InvalidQuery(`${name} must be from 0 to 1000 km/h`);
    return n === 0 ? undefined : n;
  };
  const min = speed(req.minSpeedKmh, 'min_speed_kmh');
  const max = speed(req.maxSpeedKmh, 'max_speed_kmh');
  if (min !== undefined) filter.minSpeedKmh = min;
  if (max !== undefined) filter.maxSpeedKmh = max;
  if (min !== undefined && max !== undefined && min > max)
    throw new InvalidQuery('min_speed_kmh is above max_speed_kmh');
  const mask = Number(req.alarmMask ?? 0) >>> 0;
  if (mask !== 0) filter.alarmMask = mask;
  // proto3 cannot tell 0 from unset: 0 is the default (documented in the proto).
  const asked = Number(req.maxVehicles ?? 0);
  if (!Number.isInteger(asked) || asked < 0 || asked > MAX_AREA_NOW_VEHICLES)
    throw new InvalidQuery(
      `max_vehicles must be from 1 to ${MAX_AREA_NOW_VEHICLES} (0: the default, ${DEFAULT_AREA_NOW_VEHICLES})`,
    );
  return { shape, filter, limit: asked === 0 ? DEFAULT_AREA_NOW_VEHICLES : asked };
}

export interface HistoryServiceHandle {
  /** Queries running now. */
  readonly running: number;
  /** Ends the pool's threads; call after the server has stopped. */
  stop(): Promise<void>;
}

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** A query's failure as the caller sees it. */
function statusOf(err: unknown): grpc.ServiceError {
  if (err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number')
    return err as grpc.ServiceError; // already a status (UNIMPLEMENTED, …)
  if (err instanceof InvalidQuery) return grpcError(grpc.status.INVALID_ARGUMENT, err.message);
  if (err instanceof ResultTooLarge || err instanceof PoolBusy)
    return grpcError(grpc.status.RESOURCE_EXHAUSTED, err.message);
  return grpcError(grpc.status.INTERNAL, err instanceof Error ? err.message : String(err));
}

/**
 * A point as TrackPoint: time and marks always, every other field only when asked for and
 * stored (the proto's fields are `optional`: unset is not 0).
 */
export function trackPointMessage(p: TrackPoint): Obj {
  const m: Obj = { timeUnixMs: p.time, blindArea: p.blindArea, timeInvalid: p.timeInvalid };
  const set = (key: string, v: unknown): void => {
    if (v !== undefined) m[key] = v;
  };
  set('latitude', p.latitude);
  set('longitude', p.longitude);
  set('altitudeM', p.altitude);
  set('speedKmh', p.speed);
  set('directionDeg', p.direction);
  set('alarm', p.alarm);
  set('status', p.status);
  set('mileageKm', p.mileageKm);
  set('fuelL', p.fuelL);
  set('satellites', p.satellites);
  set('signal', p.signal);
  set('receivedUnixMs', p.receivedAt);
  set('source', p.source);
  return m;
}

function alarmPointMessage(p: AlarmPointRecord): Obj {
  return {
    timeUnixMs: p.time,
    latitude: p.latitude,
    longitude: p.longitude,
    speedKmh: p.speed,
    directionDeg: p.direction,
    altitudeM: p.altitude,
  };
}

function mediaMessage(m: MediaRecord): Obj {
  const out: Obj = {
    mediaId: m.id,
    vehicleId: m.vehicleId,
    terminalMediaId: m.terminalMediaId,
    mediaType: m.mediaType,
    format: m.format,
    event: m.event,
    channel: m.channel,
    timeUnixMs: m.time,
    receivedUnixMs: m.receivedAt,
    sizeBytes: m.size,
    filename: m.filename,
  };
  if (m.latitude !== undefined) out.latitude = m.latitude;
  if (m.longitude !== undefined) out.longitude = m.longitude;
  return out;
}

function alarmMessage(a: AlarmHistoryRecord): Obj {
  const m: Obj = {
    alarmId: a.id,
    vehicleId: a.vehicleId,
    typeCode: a.typeCode,
    start: alarmPointMessage(a.start),
    handlingStatus: a.handlingStatus,
    handledBy: a.handledBy,
    handledUnixMs: a.handledAt,
    needsConfirmation: a.needsConfirmation,
  };
  if (a.end) m.end = alarmPointMessage(a.end);
  return m;
}

/**
 * Adds HistoryService to `server` (before it binds). `authorized` is the server's bearer-token
 * check, so both services accept the same tokens.
 */
export function addHistoryService(
  server: grpc.Server,
  db: Db,
  authorized: (md: grpc.Metadata) => boolean,
  opts: HistoryServiceOptions = {},
): HistoryServiceHandle {
  const loaded = grpc.loadPackageDefinition(
    protoLoader.loadSync(HISTORY_PROTO, LOADER_OPTIONS),
  ) as unknown as { fleetmesh: { v1: { HistoryService: grpc.ServiceClientConstructor } } };
  const pool = new HistoryPool(opts.pool);
  const tracks = new TrackReader(db, pool);
  const alarms = new AlarmHistoryReader(db);
  const areas = new AreaWindowReader(db, pool);
  const drivers = new DriverRecordReader(db);
  const behaviours = new BehaviourReader(db);
  const media = new MediaReader(db);
  const maxQueries = opts.maxQueries ?? MAX_HISTORY_QUERIES;
  const stalledReaderMs = opts.stalledReaderMs ?? 60_000;
  let running = 0;

  /** The token and load checks every call passes; undefined when the call may run. */
  const refusal = (md: grpc.Metadata): grpc.ServiceError | undefined => {
    if (!authorized(md))
      return grpcError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required');
    if (running >= maxQueries)
      return grpcError(
        grpc.status.RESOURCE_EXHAUSTED,
        `${maxQueries} history queries are running: try again later`,
      );
    return undefined;
  };

  const unary =
    (fn: (req: Obj) => Promise<Obj>): grpc.handleUnaryCall<Obj, Obj> =>
    (call, callback) => {
      const refused = refusal(call.metadata);
      if (refused) return callback(refused);
      running++;
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (res) => callback(null, res),
          (err: unknown) => callback(statusOf(err)),
        )
        .finally(() => running--);
    };

  const streamTrack = async (call: grpc.ServerWritableStream<Obj, Obj>): Promise<void> => {
    const q = trackQuery(call.request);
    const size = trackPageSize(call.request.pageSize);
    const after = decodeCursor(call.request.pageToken);
    let cancelled = false;
    call.on('cancelled', () => (cancelled = true));
    const gone = once(call, 'cancelled');
    gone.catch(() => undefined);
    for await (const chunk of tracks.chunks(q, size, after)) {
      if (cancelled) break;
      // Backpressure: at most one chunk beyond the socket's buffer is held here.
      if (!call.write({ points: chunk.map(trackPointMessage), nextPageToken: '' }))
        await readerCaughtUp(call, gone, stalledReaderMs);
    }
    if (!cancelled) call.end();
  };

  const downloadMedia = async (call: grpc.ServerWritableStream<Obj, Obj>): Promise<void> => {
    const id = mediaId(call.request.mediaId);
    const size = mediaChunkSize(call.request.chunkSize);
    const record = await media.record(id);
    if (!record) throw grpcError(grpc.status.NOT_FOUND, `no media '${id}'`);
    let cancelled = false;
    call.on('cancelled', () => (cancelled = true));
    const gone = once(call, 'cancelled');
    gone.catch(() => undefined);
    let first: Obj | undefined = mediaMessage(record);
    for await (const chunk of media.chunks(id, size)) {
      if (cancelled) break;
      const message: Obj = { offset: chunk.offset, data: chunk.data };
      if (first) message.media = first;
      first = undefined;
      // Backpressure: at most one chunk beyond the socket's buffer is held here.
      if (!call.write(message)) await readerCaughtUp(call, gone, stalledReaderMs);
    }
    if (cancelled) return;
    // An empty file: its record alone.
    if (first) call.write({ offset: 0, data: Buffer.alloc(0), media: first });
    call.end();
  };

  const handlers: grpc.UntypedServiceImplementation = {
    getTrack: unary(async (req) => {
      const q = trackQuery(req);
      const page = await tracks.page(q, trackPageSize(req.pageSize), req.pageToken);
      return { points: page.points.map(trackPointMessage), nextPageToken: page.nextPageToken };
    }),
    streamTrack: (call: grpc.ServerWritableStream<Obj, Obj>) => {
      const refused = refusal(call.metadata);
      if (refused) {
        call.emit('error', refused);
        return;
      }
      running++;
      streamTrack(call)
        .catch((err: unknown) => call.emit('error', statusOf(err)))
        .finally(() => running--);
    },
    listAlarms: unary(async (req) => {
      const page = await alarms.page(alarmQuery(req), alarmPageSize(req.pageSize), req.pageToken);
      return { alarms: page.alarms.map(alarmMessage), nextPageToken: page.nextPageToken };
    }),
    getAlarmStatistics: unary(async (req) => {
      const s = await alarms.statistics(statisticsQuery(req));
      return {
        counts: s.counts.map((c) => ({
          ...(c.typeCode !== undefined ? { typeCode: c.typeCode } : {}),
          vehicleId: c.vehicleId ?? '',
          day: c.day ?? '',
          count: c.count,
        })),
        total: s.total,
      };
    }),
    findVehiclesInAreaNow: unary(async (req) => {
      const { shape, filter, limit } = areaNowRequest(req);
      if (!opts.vehiclesNow)
        throw grpcError(grpc.status.UNIMPLEMENTED, 'this server has no live vehicles to ask');
      const r = await opts.vehiclesNow(shape, filter, limit);
      return {
        vehicles: r.vehicles.map((v) => ({
          vehicleId: v.vehicleId,
          latitude: v.latitude,
          longitude: v.longitude,
          speedKmh: v.speed,
          alarm: v.alarm >>> 0,
          online: v.online,
          timeUnixMs: v.time,
        })),
        more: r.more,
        partial: r.partial ?? false,
      };
    }),
    listDriverRecords: unary(async (req) => {
      const page = await drivers.page(
        driverRecordQuery(req),
        driverPageSize(req.pageSize),
        req.pageToken,
      );
      return {
        records: page.records.map((r) => ({
          recordId: r.id,
          vehicleId: r.vehicleId,
          timeUnixMs: r.time,
          receivedUnixMs: r.receivedAt,
          timeInvalid: r.timeInvalid,
          edition: r.edition,
          cardState: r.state,
          readResult: r.readResult,
          driverName: r.driverName,
          certificateCode: r.certificateCode,
          issuingAuthority: r.issuingAuthority,
          certificateValidity: r.certificateValidity,
          driverIdNumber: r.driverIdNumber,
        })),
        nextPageToken: page.nextPageToken,
      };
    }),
    listMedia: unary(async (req) => {
      // The standard's three kinds (JT/T 808 table 0x0800); another number matches nothing.
      for (const t of Array.isArray(req.mediaTypes) ? (req.mediaTypes as unknown[]) : [])
        if (Number(t) > 2)
          throw new InvalidQuery(
            `media type ${String(t)} is not a media type (0 image, 1 audio, 2 video)`,
          );
      const page = await media.page(mediaQuery(req), mediaPageSize(req.pageSize), req.pageToken);
      return { media: page.media.map(mediaMessage), nextPageToken: page.nextPageToken };
    }),
    downloadMedia: (call: grpc.ServerWritableStream<Obj, Obj>) => {
      const refused = refusal(call.metadata);
      if (refused) {
        call.emit('error', refused);
        return;
      }
      running++;
      downloadMedia(call)
        .catch((err: unknown) => call.emit('error', statusOf(err)))
        .finally(() => running--);
    },
    listDrivingBehaviour: unary(async (req) => {
      const page = await behaviours.page(
        behaviourQuery(req),
        behaviourPageSize(req.pageSize),
        req.pageToken,
      );
      return {
        episodes: page.episodes.map((e) => ({
          episodeId: e.id,
          vehicleId: e.vehicleId,
          type: e.type,
          start: alarmPointMessage(e.start),
          end: alarmPointMessage(e.end),
          durationMs: e.durationMs,
        })),
        nextPageToken: page.nextPageToken,
      };
    }),
    getDrivingBehaviourStatistics: unary(async (req) =>
      behaviours.statistics(behaviourStatisticsQuery(req)),
    ),
    findVehiclesInArea: unary(async (req) => {
      const q = areaWindowQuery(req);
      const page = await areas.page(q, areaPageSize(req.pageSize), req.pageToken);
      return {
        vehicles: page.vehicles.map((v) => ({
          vehicleId: v.vehicleId,
          firstInsideUnixMs: v.firstInside,
          lastInsideUnixMs: v.lastInside,
          pointsInside: v.pointsInside,
        })),
        nextPageToken: page.nextPageToken,
        totalVehicles: page.totalVehicles,
      };
    }),
  };
  server.addService(loaded.fleetmesh.v1.HistoryService.service, handlers);
  return {
    get running() {
      return running;
    },
    stop: () => pool.close(),
  };
}
