// Track playback: a vehicle's stored positions over a range of up to 31 days, in time order,
// with the fields asked for, optionally downsampled (first point per time bucket, or
// Douglas-Peucker in the history pool). Blind-area re-uploads are ordinary positions of the
// same collection with source 'blind-area', so sorting by time merges them where they belong;
// each point says whether it is one. Read in pages or chunks of bounded size from one sorted
// cursor on the (vehicleId, time) index; ties in time are ordered by _id so a page token
// (time, _id) resumes exactly.
import type { Db, Document } from 'mongodb';
import type { HistoryPool } from './historyPool.js';
import {
  DAY_MS,
  decodeCursor,
  encodeCursor,
  InvalidQuery,
  pageSize,
  ResultTooLarge,
  storedVehicleId,
  timeRange,
  type PageCursor,
} from './historyQuery.js';
import { COLLECTIONS } from './schema.js';

export const MAX_TRACK_RANGE_MS = 31 * DAY_MS;
export const DEFAULT_TRACK_PAGE = 1000;
export const MAX_TRACK_PAGE = 10_000;
/** Points a Douglas-Peucker query may read: a month at one point per 10 s, with room. */
export const MAX_SIMPLIFY_POINTS = 300_000;

/** Request field name -> stored field name. */
export const TRACK_FIELDS = {
  latitude: 'latitude',
  longitude: 'longitude',
  altitude: 'altitude',
  speed: 'speed',
  direction: 'direction',
  alarm: 'alarm',
  status: 'status',
  mileage_km: 'mileageKm',
  fuel_l: 'fuelL',
  satellites: 'satellites',
  signal: 'signal',
  received_at: 'receivedAt',
  source: 'source',
} as const;
export type TrackField = keyof typeof TRACK_FIELDS;
type StoredField = (typeof TRACK_FIELDS)[TrackField];

export type Downsampling =
  | { kind: 'none' }
  | { kind: 'time-bucket'; bucketMs: number }
  | { kind: 'douglas-peucker'; toleranceM: number };

export interface TrackQuery {
  vehicleId: string;
  fromMs: number;
  toMs: number;
  /** Stored fields to return (all when the request named none). */
  fields: StoredField[];
  downsampling: Downsampling;
}

/** One point of a track: always its time and marks, then the fields asked for. */
export interface TrackPoint {
  id: string;
  time: number;
  blindArea: boolean;
  timeInvalid: boolean;
  latitude?: number;
  longitude?: number;
  altitude?: number;
  speed?: number;
  direction?: number;
  alarm?: number;
  status?: number;
  mileageKm?: number;
  fuelL?: number;
  satellites?: number;
  signal?: number;
  receivedAt?: number;
  source?: string;
}

export interface TrackRequestFields {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
  fields?: unknown;
  downsampling?: unknown;
  bucketMs?: unknown;
  toleranceM?: unknown;
}

/** The request checked and read into a TrackQuery; InvalidQuery says what is wrong. */
export function trackQuery(req: TrackRequestFields): TrackQuery {
  const vehicleId = storedVehicleId(req.vehicleId);
  const { fromMs, toMs } = timeRange(req.fromUnixMs, req.toUnixMs, MAX_TRACK_RANGE_MS);
  const names = Array.isArray(req.fields) ? (req.fields as unknown[]).map(String) : [];
  const fields: StoredField[] = [];
  for (const n of names) {
    if (!Object.hasOwn(TRACK_FIELDS, n))
      throw new InvalidQuery(
        `unknown track field '${n}' (fields: ${Object.keys(TRACK_FIELDS).join(', ')})`,
      );
    fields.push(TRACK_FIELDS[n as TrackField]);
  }
  let downsampling: Downsampling;
  const kind = req.downsampling ?? 'DOWNSAMPLING_NONE';
  if (kind === 'DOWNSAMPLING_NONE' || kind === 0) downsampling = { kind: 'none' };
  else if (kind === 'DOWNSAMPLING_TIME_BUCKET' || kind === 1) {
    const bucketMs = Number(req.bucketMs);
    if (!Number.isSafeInteger(bucketMs) || bucketMs < 1000 || bucketMs > DAY_MS)
      throw new InvalidQuery('bucket_ms must be from 1000 (1 s) to 86400000 (1 day)');
    downsampling = { kind: 'time-bucket', bucketMs };
  } else if (kind === 'DOWNSAMPLING_DOUGLAS_PEUCKER' || kind === 2) {
    const toleranceM = Number(req.toleranceM);
    if (!Number.isFinite(toleranceM) || toleranceM <= 0 || toleranceM > 100_000)
      throw new InvalidQuery('tolerance_m must be above 0 and at most 100000 (100 km)');
    downsampling = { kind: 'douglas-peucker', toleranceM };
  } else throw new InvalidQuery(`unknown downsampling ${String(kind)}`);
  return {
    vehicleId,
    fromMs,
    toMs,
    fields: fields.length > 0 ? [...new Set(fields)] : Object.values(TRACK_FIELDS),
    downsampling,
  };
}

export interface TrackPage {
  points: TrackPoint[];
  /** '' on the last page. */
  nextPageToken: string;
}

function pointOf(d: Document, fields: readonly StoredField[]): TrackPoint {
  const p: TrackPoint = {
    id: String(d._id),
    time: (d.time as Date).getTime(),
    blindArea: d.source === 'blind-area',
    timeInvalid: d.timeInvalid === true,
  };
  for (const f of fields) {
    const v: unknown = d[f];
    if (v === undefined || v === null) continue;
    if (f === 'receivedAt') p.receivedAt = (v as Date).getTime();
    else if (f === 'source') p.source = String(v);
    else if (typeof v === 'number') p[f] = v;
  }
  return p;
}

/** Reads tracks from the positions collection; CPU work goes to the pool. */
export class TrackReader {
  constructor(
    private readonly db: Db,
    private readonly pool: HistoryPool,
    /** Points a Douglas-Peucker query may read (default MAX_SIMPLIFY_POINTS). */
    private readonly maxSimplifyPoints = MAX_SIMPLIFY_POINTS,
  ) {}

  private filter(q: TrackQuery, after: PageCursor | undefined): Document {
    // A plain Document: position ids are strings, not the driver's default ObjectId.
    const f: Document = {
      vehicleId: q.vehicleId,
      time: {
        $gte: new Date(after && after.id === undefined ? Math.max(after.time, q.fromMs) : q.fromMs),
        $lt: new Date(q.toMs),
      },
    };
    if (after?.id !== undefined)
      f.$or = [
        { time: { $gt: new Date(after.time) } },
        { time: new Date(after.time), _id: { $gt: after.id } },
      ];
    return f;
  }

  private cursor(q: TrackQuery, after: PageCursor | undefined, batchSize: number) {
    // All fields: no projection (FerretDB applies one document by document, and it cost ~20 %
    // of a vehicle-day's read in bench/queries.ts); a few fields: only those cross the wire.
    const all = q.fields.length === Object.keys(TRACK_FIELDS).length;
    const projection: Document = { _id: 1, time: 1, source: 1, timeInvalid: 1 };
    for (const f of q.fields) projection[f] = 1;
    if (q.downsampling.kind === 'douglas-peucker') projection.latitude = projection.longitude = 1;
    return this.db.collection(COLLECTIONS.positions).find(this.filter(q, after), {
      ...(all ? {} : { projection }),
      sort: { time: 1, _id: 1 },
      batchSize,
    });
  }

  /**
   * The track after `after` (from the start when undefined), in chunks of at most `chunkSize`
   * points. Stopping early (return/break) closes the cursor.
   */
  async *chunks(
    q: TrackQuery,
    chunkSize: number,
    after?: PageCursor,
  ): AsyncGenerator<TrackPoint[], void, undefined> {
    if (q.downsampling.kind === 'douglas-peucker') {
      const points = await this.simplified(q, q.downsampling.toleranceM);
      let i = 0;
      if (after) {
        // The whole range is simplified every time (Douglas-Peucker is global); resume after the cursor.
        while (i < points.length && !isAfter(points[i]!, after)) i++;
      }
      for (; i < points.length; i += chunkSize) yield points.slice(i, i + chunkSize);
      return;
    }
    const bucketMs = q.downsampling.kind === 'time-bucket' ? q.downsampling.bucketMs : 0;
    const cursor = this.cursor(q, after, Math.max(chunkSize + 1, bucketMs ? 1000 : 0));
    try {
      let chunk: TrackPoint[] = [];
      let lastBucket = -1;
      for await (const d of cursor) {
        if (bucketMs) {
          const b = Math.floor(((d.time as Date).getTime() - q.fromMs) / bucketMs);
          if (b === lastBucket) continue;
          lastBucket = b;
        }
        chunk.push(pointOf(d, q.fields));
        if (chunk.length === chunkSize) {
          yield chunk;
          chunk = [];
        }
      }
      if (chunk.length > 0) yield chunk;
    } finally {
      await cursor.close();
    }
  }

  /** One page of at most `size` points after the token's cursor. */
  async page(q: TrackQuery, size: number, token: unknown): Promise<TrackPage> {
    const after = decodeCursor(token);
    const points: TrackPoint[] = [];
    let more = false;
    // One point past the page tells whether there is a next one.
    for await (const chunk of this.chunks(q, size + 1, after)) {
      points.push(...chunk);
      if (points.length > size) {
        more = true;
        points.length = size;
        break;
      }
    }
    if (!more || points.length === 0) return { points, nextPageToken: '' };
    const last = points[points.length - 1]!;
    const next: PageCursor =
      q.downsampling.kind === 'time-bucket'
        ? {
            // The rest of the last point's bucket is skipped: resume at the next bucket.
            time:
              q.fromMs +
              (Math.floor((last.time - q.fromMs) / q.downsampling.bucketMs) + 1) *
                q.downsampling.bucketMs,
          }
        : { time: last.time, id: last.id };
    return { points, nextPageToken: encodeCursor(next) };
  }

  /** The whole range, Douglas-Peucker simplified in the pool; refused past maxSimplifyPoints. */
  private async simplified(q: TrackQuery, toleranceM: number): Promise<TrackPoint[]> {
    const docs = await this.cursor(q, undefined, 10_000)
      .limit(this.maxSimplifyPoints + 1)
      .toArray();
    if (docs.length > this.maxSimplifyPoints)
      throw new ResultTooLarge(
        `more than ${this.maxSimplifyPoints} points to simplify: narrow the range`,
      );
    const lat = new Float64Array(docs.length);
    const lon = new Float64Array(docs.length);
    docs.forEach((d, i) => {
      lat[i] = Number(d.latitude);
      lon[i] = Number(d.longitude);
    });
    const keep = await this.pool.simplify(lat, lon, toleranceM);
    const out: TrackPoint[] = [];
    docs.forEach((d, i) => {
      if (keep[i]) out.push(pointOf(d, q.fields));
    });
    return out;
  }
}

function isAfter(p: TrackPoint, c: PageCursor): boolean {
  return p.time > c.time || (p.time === c.time && (c.id === undefined || p.id > c.id));
}

/** Checks a page or chunk size of a track request. */
export function trackPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_TRACK_PAGE, MAX_TRACK_PAGE);
}
