// Stored media (0x0801 uploads in the GridFS bucket `media`, storage/mediaStore.ts) read back: a
// vehicle's files received in a range, filtered by media type, paged in (received time, id)
// order on the `vehicle_received` index of `media.files`; and one file's bytes as a stream of
// bounded chunks. Read-only.
import { GridFSBucket, type Db, type Document, type ObjectId } from 'mongodb';
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
import { MEDIA_BUCKET } from './mediaStore.js';

export const MAX_MEDIA_RANGE_MS = 366 * DAY_MS;
export const DEFAULT_MEDIA_PAGE = 100;
export const MAX_MEDIA_PAGE = 1000;
export const DEFAULT_MEDIA_CHUNK = 65_536;
export const MAX_MEDIA_CHUNK = 1_048_576;
const MAX_MEDIA_ID_LENGTH = 200;

export interface MediaQuery extends TimeRange {
  vehicleId: string;
  /** Empty: all. */
  mediaTypes: number[];
}

export function mediaQuery(req: {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
  mediaTypes?: unknown;
}): MediaQuery {
  const types = (Array.isArray(req.mediaTypes) ? (req.mediaTypes as unknown[]) : []).map(Number);
  for (const t of types)
    if (!Number.isInteger(t) || t < 0 || t > 255)
      throw new InvalidQuery(`media type ${t} is not a media type (0 image, 1 audio, 2 video)`);
  return {
    vehicleId: storedVehicleId(req.vehicleId),
    ...timeRange(req.fromUnixMs, req.toUnixMs, MAX_MEDIA_RANGE_MS),
    mediaTypes: [...new Set(types)],
  };
}

export function mediaPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_MEDIA_PAGE, MAX_MEDIA_PAGE);
}

export function mediaChunkSize(raw: unknown): number {
  const n = raw === undefined || raw === null ? 0 : Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > MAX_MEDIA_CHUNK)
    throw new InvalidQuery(`chunk_size must be from 1 to ${MAX_MEDIA_CHUNK} bytes (0: default)`);
  return n === 0 ? DEFAULT_MEDIA_CHUNK : n;
}

export function mediaId(raw: unknown): string {
  const id = typeof raw === 'string' ? raw : '';
  if (id === '' || id.length > MAX_MEDIA_ID_LENGTH)
    throw new InvalidQuery(`media_id must be 1 to ${MAX_MEDIA_ID_LENGTH} characters`);
  return id;
}

export interface MediaRecord {
  id: string;
  vehicleId: string;
  terminalMediaId: number;
  mediaType: number;
  format: number;
  event: number;
  channel: number;
  /** The position's time, else the receive time. */
  time: number;
  receivedAt: number;
  latitude?: number;
  longitude?: number;
  size: number;
  filename: string;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

export function mediaRecordOf(d: Document): MediaRecord {
  const m = (d.metadata ?? {}) as Document;
  const receivedAt = m.receivedAt instanceof Date ? m.receivedAt.getTime() : 0;
  const r: MediaRecord = {
    id: String(d._id),
    vehicleId: String(m.vehicleId ?? ''),
    terminalMediaId: num(m.mediaId),
    mediaType: num(m.mediaType),
    format: num(m.format),
    event: num(m.event),
    channel: num(m.channel),
    time: m.time instanceof Date ? m.time.getTime() : receivedAt,
    receivedAt,
    size: num(d.length),
    filename: typeof d.filename === 'string' ? d.filename : '',
  };
  if (typeof m.latitude === 'number' && typeof m.longitude === 'number') {
    r.latitude = m.latitude;
    r.longitude = m.longitude;
  }
  return r;
}

export interface MediaPage {
  media: MediaRecord[];
  nextPageToken: string;
}

/** GridFS accepts any _id (ours are strings); the driver's types only say ObjectId. */
const asFileId = (id: string): ObjectId => id as unknown as ObjectId;

export class MediaReader {
  private readonly bucket: GridFSBucket;

  constructor(private readonly db: Db) {
    this.bucket = new GridFSBucket(db, { bucketName: MEDIA_BUCKET });
  }

  private get files() {
    return this.db.collection(`${MEDIA_BUCKET}.files`);
  }

  /** One page of the vehicle's files received in the range, in (received time, id) order. */
  async page(q: MediaQuery, size: number, token: unknown): Promise<MediaPage> {
    const after = decodeCursor(token);
    const filter: Document = {
      'metadata.vehicleId': q.vehicleId,
      'metadata.receivedAt': { $gte: new Date(q.fromMs), $lt: new Date(q.toMs) },
    };
    if (q.mediaTypes.length > 0) filter['metadata.mediaType'] = { $in: q.mediaTypes };
    if (after)
      filter.$or = [
        { 'metadata.receivedAt': { $gt: new Date(after.time) } },
        { 'metadata.receivedAt': new Date(after.time), _id: { $gt: after.id ?? '' } },
      ];
    const docs = await this.files
      .find(filter, { sort: { 'metadata.receivedAt': 1, _id: 1 }, limit: size + 1 })
      .toArray();
    const media = docs.slice(0, size).map(mediaRecordOf);
    const last = media[media.length - 1];
    return {
      media,
      nextPageToken:
        docs.length > size && last ? encodeCursor({ time: last.receivedAt, id: last.id }) : '',
    };
  }

  /** A stored file's record; undefined when there is none. */
  async record(id: string): Promise<MediaRecord | undefined> {
    const d = await this.files.findOne({ _id: id } as Document);
    return d ? mediaRecordOf(d) : undefined;
  }

  /**
   * The file's bytes in chunks of exactly `chunkSize` (the last one shorter), read from GridFS
   * one stored chunk at a time: at most one stored chunk and one answer chunk held here.
   */
  async *chunks(id: string, chunkSize: number): AsyncGenerator<{ offset: number; data: Buffer }> {
    let offset = 0;
    let pending: Buffer[] = [];
    let held = 0;
    for await (const part of this.bucket.openDownloadStream(asFileId(id))) {
      let rest = part as Buffer;
      while (held + rest.length >= chunkSize) {
        const take = chunkSize - held;
        const data = Buffer.concat([...pending, rest.subarray(0, take)]);
        rest = rest.subarray(take);
        pending = [];
        held = 0;
        yield { offset, data };
        offset += data.length;
      }
      if (rest.length > 0) {
        pending.push(rest);
        held += rest.length;
      }
    }
    if (held > 0) yield { offset, data: Buffer.concat(pending) };
  }
}
