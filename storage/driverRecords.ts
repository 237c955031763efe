// Driver identity records (0x0702, the seed's "存储车辆驾驶员信息"): one document per report of an
// IC card inserted or removed, with who the driver is — name, qualification certificate code,
// issuing authority, validity, the IC read result, and the ID number (2011, 2019). Written by
// the vehicle's actor through VehicleStore.driverRecords; read back by HistoryService
// ListDriverRecords in (time, id) order, paged, on the `vehicle_time` index.
import { createHash } from 'node:crypto';
import type { Db, Document } from 'mongodb';
import type { Edition } from '../jt808/header.js';
import type { DriverIdentity } from '../jt808/messages.js';
import {
  DAY_MS,
  decodeCursor,
  encodeCursor,
  pageSize,
  storedVehicleId,
  timeRange,
  type TimeRange,
} from './historyQuery.js';
import { COLLECTIONS } from './schema.js';

export const MAX_DRIVER_RANGE_MS = 366 * DAY_MS;
export const DEFAULT_DRIVER_PAGE = 100;
export const MAX_DRIVER_PAGE = 1000;

/**
 * The stored document of a 0x0702. Its id is the vehicle, the card time and a digest of what the
 * terminal said, so a retransmission is stored once; without a valid time (2011 has none), the
 * receive time and the frame's serial.
 */
export function driverRecordDocument(
  vehicleId: string,
  body: DriverIdentity,
  edition: Edition,
  receivedAt: number,
  serial: number,
): Document {
  const valid = typeof body.time === 'number';
  const time = valid ? (body.time as number) : receivedAt;
  const digest = createHash('sha1').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  const doc: Document = {
    _id: valid ? `${vehicleId}:${time}:${digest}` : `${vehicleId}:r${receivedAt}:${serial}`,
    vehicleId,
    time: new Date(time),
    receivedAt: new Date(receivedAt),
    edition,
  };
  // 2013/2019 carry a time field; a zero or malformed one is not a time.
  if (edition !== 2011 && !valid) doc.timeInvalid = true;
  for (const k of [
    'state',
    'readResult',
    'driverName',
    'certificateCode',
    'issuingAuthority',
    'certificateValidity',
    'driverIdNumber',
  ] as const) {
    if (body[k] !== undefined) doc[k] = body[k];
  }
  return doc;
}

export interface DriverRecordQuery extends TimeRange {
  vehicleId: string;
}

export function driverRecordQuery(req: {
  vehicleId?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
}): DriverRecordQuery {
  return {
    vehicleId: storedVehicleId(req.vehicleId),
    ...timeRange(req.fromUnixMs, req.toUnixMs, MAX_DRIVER_RANGE_MS),
  };
}

export function driverPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_DRIVER_PAGE, MAX_DRIVER_PAGE);
}

export interface DriverRecord {
  id: string;
  vehicleId: string;
  time: number;
  receivedAt: number;
  timeInvalid: boolean;
  edition: number;
  /** 1 inserted, 2 removed; 0 not said. */
  state: number;
  /** -1 not said. */
  readResult: number;
  driverName: string;
  certificateCode: string;
  issuingAuthority: string;
  certificateValidity: string;
  driverIdNumber: string;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export function driverRecordOf(d: Document): DriverRecord {
  return {
    id: String(d._id),
    vehicleId: String(d.vehicleId),
    time: (d.time as Date).getTime(),
    receivedAt: d.receivedAt instanceof Date ? d.receivedAt.getTime() : 0,
    timeInvalid: d.timeInvalid === true,
    edition: typeof d.edition === 'number' ? d.edition : 0,
    state: typeof d.state === 'number' ? d.state : 0,
    readResult: typeof d.readResult === 'number' ? d.readResult : -1,
    driverName: text(d.driverName),
    certificateCode: text(d.certificateCode),
    issuingAuthority: text(d.issuingAuthority),
    certificateValidity: text(d.certificateValidity),
    driverIdNumber: text(d.driverIdNumber),
  };
}

export interface DriverRecordPage {
  records: DriverRecord[];
  nextPageToken: string;
}

export class DriverRecordReader {
  constructor(private readonly db: Db) {}

  /** One page of the vehicle's records whose time is in the range, in (time, id) order. */
  async page(q: DriverRecordQuery, size: number, token: unknown): Promise<DriverRecordPage> {
    const after = decodeCursor(token);
    const filter: Document = {
      vehicleId: q.vehicleId,
      time: { $gte: new Date(q.fromMs), $lt: new Date(q.toMs) },
    };
    if (after)
      filter.$or = [
        { time: { $gt: new Date(after.time) } },
        { time: new Date(after.time), _id: { $gt: after.id ?? '' } },
      ];
    const docs = await this.db
      .collection(COLLECTIONS.driverRecords)
      .find(filter, { sort: { time: 1, _id: 1 }, limit: size + 1 })
      .toArray();
    const records = docs.slice(0, size).map(driverRecordOf);
    const last = records[records.length - 1];
    return {
      records,
      nextPageToken:
        docs.length > size && last ? encodeCursor({ time: last.time, id: last.id }) : '',
    };
  }
}
