// Driving-behaviour episodes (the seed's driver_action_infos): one document per episode the
// vehicle's detector (actors/drivingBehaviour.ts) closed — overspeed, fatigue, long idling, harsh
// acceleration, harsh braking — with its type (the seed's AID), start and end points. Written by
// the vehicle's actor through VehicleStore.drivingBehaviour when an episode ends; read back by
// HistoryService ListDrivingBehaviour in (startTime, id) order on the `vehicle_start` index, and
// counted per type and day by GetDrivingBehaviourStatistics (`$group` with `$sum`, one pipeline
// per day: FerretDB has no date operators).
import type { Db, Document } from 'mongodb';
import {
  ALL_TYPES,
  type BehaviourCode,
  type BehaviourEpisode,
} from '../domain/drivingBehaviour.js';
import type { AlarmPoint } from '../domain/vehicle.js';
import { daysOf } from './historyAlarms.js';
import {
  DAY_MS,
  decodeCursor,
  encodeCursor,
  InvalidQuery,
  pageSize,
  storedVehicleId,
  timeRange,
  type TimeRange,
} from './historyQuery.js';
import { COLLECTIONS } from './schema.js';

export const MAX_BEHAVIOUR_RANGE_MS = 366 * DAY_MS;
/** Statistics are per day, one pipeline each: at most this range. */
export const MAX_BEHAVIOUR_STATISTICS_RANGE_MS = 92 * DAY_MS;
export const DEFAULT_BEHAVIOUR_PAGE = 100;
export const MAX_BEHAVIOUR_PAGE = 1000;
/** Days aggregated at once. */
const DAY_CONCURRENCY = 4;

/**
 * The stored document of an episode; its id is the vehicle, the type, the start and the end
 * time (the same episode stored again is one document; a condition that flips within one
 * report time gives two episodes with one start, both kept).
 */
export function behaviourDocument(vehicleId: string, e: BehaviourEpisode): Document {
  return {
    _id: `${vehicleId}:${e.type}:${e.start.time}:${e.end.time}`,
    vehicleId,
    type: e.type,
    startTime: new Date(e.start.time),
    start: e.start,
    endTime: new Date(e.end.time),
    end: e.end,
    durationMs: e.end.time - e.start.time,
  };
}

function list(raw: unknown): unknown[] {
  return Array.isArray(raw) ? (raw as unknown[]) : [];
}

/** Behaviour type codes of a request (empty: all), each one of the AID table. */
export function behaviourTypes(raw: unknown): BehaviourCode[] {
  const types = list(raw).map(Number);
  for (const t of types)
    if (!ALL_TYPES.includes(t as BehaviourCode))
      throw new InvalidQuery(
        `behaviour type ${t} is not one of the AID table (${ALL_TYPES.join(', ')})`,
      );
  return [...new Set(types)] as BehaviourCode[];
}

export interface BehaviourQuery extends TimeRange {
  vehicleId: string;
  types: BehaviourCode[];
}

export function behaviourQuery(req: {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
  types?: unknown;
}): BehaviourQuery {
  return {
    vehicleId: storedVehicleId(req.vehicleId),
    ...timeRange(req.fromUnixMs, req.toUnixMs, MAX_BEHAVIOUR_RANGE_MS),
    types: behaviourTypes(req.types),
  };
}

export function behaviourPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_BEHAVIOUR_PAGE, MAX_BEHAVIOUR_PAGE);
}

export interface BehaviourRecord {
  id: string;
  vehicleId: string;
  type: number;
  start: AlarmPoint;
  end: AlarmPoint;
  durationMs: number;
}

function pointOf(p: unknown, time: unknown): AlarmPoint {
  const d = (p ?? {}) as Document;
  return {
    time: time instanceof Date ? time.getTime() : Number(d.time ?? 0),
    latitude: Number(d.latitude ?? 0),
    longitude: Number(d.longitude ?? 0),
    speed: Number(d.speed ?? 0),
    direction: Number(d.direction ?? 0),
    altitude: Number(d.altitude ?? 0),
  };
}

export function behaviourRecordOf(d: Document): BehaviourRecord {
  const start = pointOf(d.start, d.startTime);
  const end = pointOf(d.end, d.endTime);
  return {
    id: String(d._id),
    vehicleId: String(d.vehicleId),
    type: Number(d.type),
    start,
    end,
    durationMs: end.time - start.time,
  };
}

export interface BehaviourPage {
  episodes: BehaviourRecord[];
  nextPageToken: string;
}

export interface BehaviourStatisticsQuery extends TimeRange {
  /** undefined: the whole fleet. */
  vehicleId: string | undefined;
  types: BehaviourCode[];
  utcOffsetMinutes: number;
}

export function behaviourStatisticsQuery(req: {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
  types?: unknown;
  utcOffsetMinutes?: unknown;
}): BehaviourStatisticsQuery {
  const offset = Number(req.utcOffsetMinutes ?? 0);
  if (!Number.isInteger(offset) || offset < -720 || offset > 840)
    throw new InvalidQuery('utc_offset_minutes must be a whole number from -720 to 840');
  return {
    vehicleId:
      req.vehicleId === undefined || req.vehicleId === ''
        ? undefined
        : storedVehicleId(req.vehicleId),
    ...timeRange(req.fromUnixMs, req.toUnixMs, MAX_BEHAVIOUR_STATISTICS_RANGE_MS),
    types: behaviourTypes(req.types),
    utcOffsetMinutes: offset,
  };
}

export interface BehaviourCount {
  /** YYYY-MM-DD in the query's offset. */
  day: string;
  type: number;
  count: number;
}

function match(
  vehicleId: string | undefined,
  types: BehaviourCode[],
  fromMs: number,
  toMs: number,
): Document {
  const m: Document = { startTime: { $gte: new Date(fromMs), $lt: new Date(toMs) } };
  if (vehicleId !== undefined) m.vehicleId = vehicleId;
  if (types.length > 0) m.type = { $in: types };
  return m;
}

export class BehaviourReader {
  constructor(private readonly db: Db) {}

  /** One page of the vehicle's episodes that started in the range, in (startTime, id) order. */
  async page(q: BehaviourQuery, size: number, token: unknown): Promise<BehaviourPage> {
    const after = decodeCursor(token);
    const filter = match(q.vehicleId, q.types, q.fromMs, q.toMs);
    if (after)
      filter.$or = [
        { startTime: { $gt: new Date(after.time) } },
        { startTime: new Date(after.time), _id: { $gt: after.id ?? '' } },
      ];
    const docs = await this.db
      .collection(COLLECTIONS.drivingBehaviour)
      .find(filter, { sort: { startTime: 1, _id: 1 }, limit: size + 1 })
      .toArray();
    const episodes = docs.slice(0, size).map(behaviourRecordOf);
    const last = episodes[episodes.length - 1];
    return {
      episodes,
      nextPageToken:
        docs.length > size && last ? encodeCursor({ time: last.start.time, id: last.id }) : '',
    };
  }

  /**
   * Episodes that started in the range, counted per local day and type (a vehicle's, or the
   * fleet's), ordered by day then type; days and types without any are not listed. At most
   * 93 days × 6 types rows.
   */
  async statistics(
    q: BehaviourStatisticsQuery,
  ): Promise<{ counts: BehaviourCount[]; total: number }> {
    const slices = daysOf(q.fromMs, q.toMs, q.utcOffsetMinutes);
    const collection = this.db.collection(COLLECTIONS.drivingBehaviour);
    const counts: BehaviourCount[] = [];
    for (let i = 0; i < slices.length; i += DAY_CONCURRENCY) {
      const results = await Promise.all(
        slices.slice(i, i + DAY_CONCURRENCY).map(async (s) => {
          const rows = await collection
            .aggregate([
              { $match: match(q.vehicleId, q.types, s.fromMs, s.toMs) },
              { $group: { _id: '$type', count: { $sum: 1 } } },
            ])
            .toArray();
          return rows.map((r) => ({ day: s.day, type: Number(r._id), count: Number(r.count) }));
        }),
      );
      for (const r of results) counts.push(...r);
    }
    counts.sort((a, b) => a.day.localeCompare(b.day) || a.type - b.type);
    return { counts, total: counts.reduce((s, c) => s + c.count, 0) };
  }
}
