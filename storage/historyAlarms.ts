// Alarm history (the seed's alarm_his_infos read back): records that started in a range, with
// their start and end positions and handling, paged in start-time order; and alarm statistics
// per type, vehicle and day. Statistics are `$group` with `$sum`, which FerretDB supports; it has
// no date operators to group by day, so each day of the range is one `$match` + `$group`, run a
// few at a time.
import type { Db, Document } from 'mongodb';
import {
  DAY_MS,
  decodeCursor,
  encodeCursor,
  InvalidQuery,
  pageSize,
  ResultTooLarge,
  storedVehicleId,
  timeRange,
} from './historyQuery.js';
import { COLLECTIONS } from './schema.js';

export const MAX_ALARM_RANGE_MS = 366 * DAY_MS;
export const MAX_DAILY_STATISTICS_RANGE_MS = 92 * DAY_MS;
export const DEFAULT_ALARM_PAGE = 100;
export const MAX_ALARM_PAGE = 1000;
export const MAX_QUERY_VEHICLES = 1000;
export const MAX_STATISTICS_ROWS = 10_000;
/** Days aggregated at once (each is one pipeline on the store). */
const DAY_CONCURRENCY = 4;

export interface AlarmQuery {
  vehicleIds: string[];
  fromMs: number;
  toMs: number;
  types: number[];
  handlingStatuses: number[];
}

export interface AlarmRequestFields {
  vehicleIds?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
  types?: unknown;
  handlingStatuses?: unknown;
}

function list(raw: unknown): unknown[] {
  return Array.isArray(raw) ? (raw as unknown[]) : [];
}

function vehicleIds(raw: unknown): string[] {
  const ids = list(raw);
  if (ids.length > MAX_QUERY_VEHICLES)
    throw new InvalidQuery(`at most ${MAX_QUERY_VEHICLES} vehicle ids, not ${ids.length}`);
  return [...new Set(ids.map(storedVehicleId))];
}

export function alarmQuery(req: AlarmRequestFields, maxRangeMs = MAX_ALARM_RANGE_MS): AlarmQuery {
  const { fromMs, toMs } = timeRange(req.fromUnixMs, req.toUnixMs, maxRangeMs);
  const types = list(req.types).map(Number);
  for (const t of types)
    if (!Number.isInteger(t) || t < 0 || t > 31)
      throw new InvalidQuery(`alarm type ${t} is not an alarm bit (0 to 31)`);
  const handlingStatuses = list(req.handlingStatuses).map(Number);
  for (const s of handlingStatuses)
    if (![-1, 0, 1, 2].includes(s))
      throw new InvalidQuery(`handling status ${s} is not one of -1, 0, 1, 2`);
  return {
    vehicleIds: vehicleIds(req.vehicleIds),
    fromMs,
    toMs,
    types: [...new Set(types)],
    handlingStatuses: [...new Set(handlingStatuses)],
  };
}

export interface AlarmPointRecord {
  time: number;
  latitude: number;
  longitude: number;
  speed: number;
  direction: number;
  altitude: number;
}

export interface AlarmHistoryRecord {
  id: string;
  vehicleId: string;
  typeCode: number;
  start: AlarmPointRecord;
  /** null while open. */
  end: AlarmPointRecord | null;
  handlingStatus: number;
  /** '' and 0 when the record does not say. */
  handledBy: string;
  handledAt: number;
  needsConfirmation: boolean;
}

function pointOf(p: Document, time: unknown): AlarmPointRecord {
  return {
    time: time instanceof Date ? time.getTime() : Number(p.time ?? 0),
    latitude: Number(p.latitude ?? 0),
    longitude: Number(p.longitude ?? 0),
    speed: Number(p.speed ?? 0),
    direction: Number(p.direction ?? 0),
    altitude: Number(p.altitude ?? 0),
  };
}

function recordOf(d: Document): AlarmHistoryRecord {
  const handledAt: unknown = d.handledAt;
  return {
    id: String(d._id),
    vehicleId: String(d.vehicleId),
    typeCode: Number(d.typeCode ?? d.bit),
    start: pointOf((d.start ?? {}) as Document, d.startTime),
    end: d.end ? pointOf(d.end as Document, d.endTime) : null,
    handlingStatus: Number(d.handlingStatus ?? -1),
    handledBy: typeof d.handledBy === 'string' ? d.handledBy : '',
    handledAt:
      handledAt instanceof Date
        ? handledAt.getTime()
        : typeof handledAt === 'number'
          ? handledAt
          : 0,
    needsConfirmation: d.needsConfirmation === true,
  };
}

/** The `$match` of a query (ids are strings: a plain Document, not the driver's ObjectId filter). */
function match(q: AlarmQuery, fromMs = q.fromMs, toMs = q.toMs): Document {
  const m: Document = { startTime: { $gte: new Date(fromMs), $lt: new Date(toMs) } };
  if (q.vehicleIds.length > 0) m.vehicleId = { $in: q.vehicleIds };
  if (q.types.length > 0) m.typeCode = { $in: q.types };
  if (q.handlingStatuses.length > 0) m.handlingStatus = { $in: q.handlingStatuses };
  return m;
}

export interface AlarmHistoryPage {
  alarms: AlarmHistoryRecord[];
  nextPageToken: string;
}

export type StatisticsDimension = 'type' | 'vehicle' | 'day';

export interface StatisticsQuery extends AlarmQuery {
  groupBy: Set<StatisticsDimension>;
  utcOffsetMinutes: number;
}

export interface StatisticsRequestFields extends AlarmRequestFields {
  groupBy?: unknown;
  utcOffsetMinutes?: unknown;
}

export function statisticsQuery(req: StatisticsRequestFields): StatisticsQuery {
  const names = list(req.groupBy).map(String);
  for (const n of names)
    if (n !== 'type' && n !== 'vehicle' && n !== 'day')
      throw new InvalidQuery(`cannot group by '${n}' (type, vehicle, day)`);
  const groupBy = new Set<StatisticsDimension>(
    names.length > 0 ? (names as StatisticsDimension[]) : ['type', 'vehicle', 'day'],
  );
  const offset = Number(req.utcOffsetMinutes ?? 0);
  if (!Number.isInteger(offset) || offset < -720 || offset > 840)
    throw new InvalidQuery('utc_offset_minutes must be a whole number from -720 to 840');
  const q = alarmQuery(
    req,
    groupBy.has('day') ? MAX_DAILY_STATISTICS_RANGE_MS : MAX_ALARM_RANGE_MS,
  );
  return { ...q, groupBy, utcOffsetMinutes: offset };
}

export interface AlarmCount {
  typeCode?: number;
  vehicleId?: string;
  /** YYYY-MM-DD in the query's offset. */
  day?: string;
  count: number;
}

export interface AlarmStatistics {
  counts: AlarmCount[];
  total: number;
}

/** The local days (offset from UTC) a range touches, each cut to the range. */
export function daysOf(
  fromMs: number,
  toMs: number,
  offsetMinutes: number,
): { day: string; fromMs: number; toMs: number }[] {
  const off = offsetMinutes * 60_000;
  const out = [];
  for (
    let start = Math.floor((fromMs + off) / DAY_MS) * DAY_MS - off;
    start < toMs;
    start += DAY_MS
  )
    out.push({
      day: new Date(start + off).toISOString().slice(0, 10),
      fromMs: Math.max(fromMs, start),
      toMs: Math.min(toMs, start + DAY_MS),
    });
  return out;
}

export class AlarmHistoryReader {
  constructor(private readonly db: Db) {}

  /** One page of records that started in the range, in (startTime, id) order. */
  async page(q: AlarmQuery, size: number, token: unknown): Promise<AlarmHistoryPage> {
    const after = decodeCursor(token);
    const filter = match(q);
    if (after)
      filter.$or = [
        { startTime: { $gt: new Date(after.time) } },
        { startTime: new Date(after.time), _id: { $gt: after.id ?? '' } },
      ];
    const docs = await this.db
      .collection(COLLECTIONS.alarms)
      .find(filter, { sort: { startTime: 1, _id: 1 }, limit: size + 1 })
      .toArray();
    const alarms = docs.slice(0, size).map(recordOf);
    const last = alarms[alarms.length - 1];
    return {
      alarms,
      nextPageToken:
        docs.length > size && last ? encodeCursor({ time: last.start.time, id: last.id }) : '',
    };
  }

  /** Counts per the query's dimensions, ordered by day, vehicle, type; at most MAX_STATISTICS_ROWS. */
  async statistics(q: StatisticsQuery): Promise<AlarmStatistics> {
    const key: Document = {};
    if (q.groupBy.has('type')) key.type = '$typeCode';
    if (q.groupBy.has('vehicle')) key.vehicle = '$vehicleId';
    const slices = q.groupBy.has('day')
      ? daysOf(q.fromMs, q.toMs, q.utcOffsetMinutes)
      : [{ day: undefined, fromMs: q.fromMs, toMs: q.toMs }];
    const counts: AlarmCount[] = [];
    const alarms = this.db.collection(COLLECTIONS.alarms);
    for (let i = 0; i < slices.length; i += DAY_CONCURRENCY) {
      const results = await Promise.all(
        slices.slice(i, i + DAY_CONCURRENCY).map(async (s) => {
          const rows = await alarms
            .aggregate([
              { $match: match(q, s.fromMs, s.toMs) },
              {
                $group: {
                  _id: Object.keys(key).length > 0 ? key : null,
                  count: { $sum: 1 },
                },
              },
              { $limit: MAX_STATISTICS_ROWS + 1 },
            ])
            .toArray();
          return rows.map((r) => {
            const k = (r._id ?? {}) as Document;
            const c: AlarmCount = { count: Number(r.count) };
            if (q.groupBy.has('type')) c.typeCode = Number(k.type);
            if (q.groupBy.has('vehicle')) c.vehicleId = String(k.vehicle);
            if (s.day !== undefined) c.day = s.day;
            return c;
          });
        }),
      );
      for (const r of results) counts.push(...r);
      if (counts.length > MAX_STATISTICS_ROWS)
        throw new ResultTooLarge(
          `more than ${MAX_STATISTICS_ROWS} statistics rows: narrow the range, name vehicles or group by fewer dimensions`,
        );
    }
    counts.sort(
      (a, b) =>
        (a.day ?? '').localeCompare(b.day ?? '') ||
        (a.vehicleId ?? '').localeCompare(b.vehicleId ?? '') ||
        (a.typeCode ?? 0) - (b.typeCode ?? 0),
    );
    return { counts, total: counts.reduce((s, c) => s + c.count, 0) };
  }
}

/** Checks a page size of an alarm history request. */
export function alarmPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_ALARM_PAGE, MAX_ALARM_PAGE);
}
