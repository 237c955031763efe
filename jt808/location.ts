// Location report body (0x0200, and inside 0x0201, 0x0704, 0x0801): the 28-byte basic block and
// the additional items. This is the hot path of the whole system, so it is written against the
// byte array directly; the additional items are still described as data (ITEM_TABLE), which
// drives both the decoded views and the builder used by encoders.
//
// Never throws on items: unknown and vendor items are kept raw, a truncated item is kept raw
// with a flag, and decoding stops at the body's end. Only a basic block shorter than 28 bytes
// is an error (Truncated).
import { Truncated, Writer, bcdString } from './bytes.js';

export interface LocationItem {
  id: number;
  raw: Uint8Array;
  /** Set when the item's length byte promised more than the body held. */
  declaredLength?: number;
}

export interface Overspeed {
  locationType: number;
  areaId?: number;
}
export interface AreaAlarm {
  locationType: number;
  areaId: number;
  direction: number;
}
export interface RouteTime {
  routeId: number;
  seconds: number;
  result: number;
}
export interface Analog {
  ad0: number;
  ad1: number;
}

/** Decoded views of the standard additional items (2013 table 27, 2019 table 27). */
export interface LocationItemValues {
  mileageKm?: number; // 0x01, 1/10 km
  fuelL?: number; // 0x02, 1/10 L
  recorderSpeedKmh?: number; // 0x03, 1/10 km/h
  alarmEventId?: number; // 0x04
  tyrePressure?: number[]; // 0x05, Pa per tyre, 0xFF invalid
  compartmentTemperatureC?: number; // 0x06, sign-magnitude
  overspeed?: Overspeed; // 0x11
  areaAlarm?: AreaAlarm; // 0x12
  routeTime?: RouteTime; // 0x13
  vehicleSignal?: number; // 0x25
  ioStatus?: number; // 0x2A
  analog?: Analog; // 0x2B
  signal?: number; // 0x30
  satellites?: number; // 0x31
}

export interface LocationReport extends LocationItemValues {
  alarm: number;
  status: number;
  /** Degrees; negative when status bit 2 (south) is set. */
  latitude: number;
  /** Degrees; negative when status bit 3 (west) is set. */
  longitude: number;
  altitude: number;
  /** km/h (the wire carries 1/10 km/h). */
  speed: number;
  direction: number;
  /** GNSS time (the wire carries GMT+8 BCD); null when the BCD is not a valid time. */
  time: Date | null;
  /** The BCD time as sent, kept only when it is not a valid time. */
  timeBcd?: string;
  /** Additional items in wire order, raw: the lossless record used when re-encoding. */
  items: LocationItem[];
  /** Bytes after the last whole item that do not form an item header. */
  trailing?: Uint8Array;
}

type ItemName = keyof LocationItemValues;

interface ItemSpec<N extends ItemName> {
  id: number;
  name: N;
  /** Accepted lengths; an item of another length is kept raw only. */
  lengths: readonly number[];
  read(b: Uint8Array, p: number, len: number): NonNullable<LocationItemValues[N]>;
  write(w: Writer, v: NonNullable<LocationItemValues[N]>): void;
}

const rd16 = (b: Uint8Array, p: number): number => (b[p]! << 8) | b[p + 1]!;
const rd32 = (b: Uint8Array, p: number): number =>
  ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

const tenths = (id: number, name: 'mileageKm' | 'fuelL' | 'recorderSpeedKmh', size: 2 | 4): ItemSpec<typeof name> => ({
  id,
  name,
  lengths: [size],
  read: (b, p) => (size === 4 ? rd32(b, p) : rd16(b, p)) / 10,
  write: (w, v) => void (size === 4 ? w.u32(Math.round(v * 10)) : w.u16(Math.round(v * 10))),
});

const plain = (id: number, name: 'alarmEventId' | 'vehicleSignal' | 'ioStatus' | 'signal' | 'satellites', size: 1 | 2 | 4): ItemSpec<typeof name> => ({
  id,
  name,
  lengths: [size],
  read: (b, p) => (size === 4 ? rd32(b, p) : size === 2 ? rd16(b, p) : b[p]!),
  write: (w, v) => void (size === 4 ? w.u32(v) : size === 2 ? w.u16(v) : w.u8(v)),
});

/** The standard items, as data. */
export const ITEM_TABLE: readonly ItemSpec<ItemName>[] = [
  tenths(0x01, 'mileageKm', 4),
  tenths(0x02, 'fuelL', 2),
  tenths(0x03, 'recorderSpeedKmh', 2),
  plain(0x04, 'alarmEventId', 2),
  {
    id: 0x05,
    name: 'tyrePressure',
    lengths: [30],
    read: (b, p, len) => Array.from(b.subarray(p, p + len)),
    write: (w, v) => void w.fixed(Uint8Array.from(v), 30),
  } satisfies ItemSpec<'tyrePressure'>,
  {
    id: 0x06,
    name: 'compartmentTemperatureC',
    lengths: [2],
    read: (b, p) => {
      const v = rd16(b, p);
      return v & 0x8000 ? -(v & 0x7fff) : v;
    },
    write: (w, v) => void w.u16(v < 0 ? 0x8000 | (-v & 0x7fff) : v & 0x7fff),
  } satisfies ItemSpec<'compartmentTemperatureC'>,
  {
    id: 0x11,
    name: 'overspeed',
    lengths: [1, 5],
    read: (b, p, len) => (len === 5 ? { locationType: b[p]!, areaId: rd32(b, p + 1) } : { locationType: b[p]! }),
    write: (w, v) => {
      w.u8(v.locationType);
      if (v.areaId !== undefined) w.u32(v.areaId);
    },
  } satisfies ItemSpec<'overspeed'>,
  {
    id: 0x12,
    name: 'areaAlarm',
    lengths: [6],
    read: (b, p) => ({ locationType: b[p]!, areaId: rd32(b, p + 1), direction: b[p + 5]! }),
    write: (w, v) => void w.u8(v.locationType).u32(v.areaId).u8(v.direction),
  } satisfies ItemSpec<'areaAlarm'>,
  {
    id: 0x13,
    name: 'routeTime',
    lengths: [7],
    read: (b, p) => ({ routeId: rd32(b, p), seconds: rd16(b, p + 4), result: b[p + 6]! }),
    write: (w, v) => void w.u32(v.routeId).u16(v.seconds).u8(v.result),
  } satisfies ItemSpec<'routeTime'>,
  plain(0x25, 'vehicleSignal', 4),
  plain(0x2a, 'ioStatus', 2),
  {
    id: 0x2b,
    name: 'analog',
    lengths: [4],
    // bits 0–15 AD0, 16–31 AD1
    read: (b, p) => ({ ad0: rd16(b, p + 2), ad1: rd16(b, p) }),
    write: (w, v) => void w.u16(v.ad1).u16(v.ad0),
  } satisfies ItemSpec<'analog'>,
  plain(0x30, 'signal', 1),
  plain(0x31, 'satellites', 1),
] as readonly ItemSpec<ItemName>[];

const SPEC_BY_ID: (ItemSpec<ItemName> | undefined)[] = [];
for (const s of ITEM_TABLE) SPEC_BY_ID[s.id] = s;

export const BASIC_BLOCK_LENGTH = 28;

const bcdOk = (x: number): boolean => (x >> 4) < 10 && (x & 15) < 10;
const bcdVal = (x: number): number => (x >> 4) * 10 + (x & 15);

/** BCD[6] YYMMDDhhmmss in GMT+8 → Date, or null when it is not a valid time. */
export function readGmt8Time(b: Uint8Array, p: number): Date | null {
  for (let i = 0; i < 6; i++) if (!bcdOk(b[p + i]!)) return null;
  const yy = bcdVal(b[p]!);
  const mo = bcdVal(b[p + 1]!);
  const dd = bcdVal(b[p + 2]!);
  const hh = bcdVal(b[p + 3]!);
  const mi = bcdVal(b[p + 4]!);
  const ss = bcdVal(b[p + 5]!);
  if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59) return null;
  return new Date(Date.UTC(2000 + yy, mo - 1, dd, hh - 8, mi, ss));
}

/** Date → BCD[6] digits in GMT+8 (or UTC when `utc`). */
export function timeDigits(t: Date, utc = false): string {
  const d = new Date(t.getTime() + (utc ? 0 : 8 * 3600_000));
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    two(d.getUTCFullYear() % 100) +
    two(d.getUTCMonth() + 1) +
    two(d.getUTCDate()) +
    two(d.getUTCHours()) +
    two(d.getUTCMinutes()) +
    two(d.getUTCSeconds())
  );
}

/** Decodes a location body in b[start, end). Throws Truncated only for a short basic block. */
export function readLocation(b: Uint8Array, start: number, end: number): LocationReport {
  if (end - start < BASIC_BLOCK_LENGTH) throw new Truncated(BASIC_BLOCK_LENGTH, end - start);
  const p = start;
  const status = rd32(b, p + 4);
  const lat = rd32(b, p + 8) / 1e6;
  const lon = rd32(b, p + 12) / 1e6;
  const time = readGmt8Time(b, p + 22);
  const loc: LocationReport = {
    alarm: rd32(b, p),
    status,
    latitude: status & 0x4 ? -lat : lat,
    longitude: status & 0x8 ? -lon : lon,
    altitude: rd16(b, p + 16),
    speed: rd16(b, p + 18) / 10,
    direction: rd16(b, p + 20),
    time,
    items: [],
  };
  if (time === null) loc.timeBcd = bcdString(b.subarray(p + 22, p + 28));
  let q = p + BASIC_BLOCK_LENGTH;
  const items = loc.items;
  const view = loc as unknown as Record<string, unknown>;
  while (q + 2 <= end) {
    const id = b[q]!;
    const len = b[q + 1]!;
    const vStart = q + 2;
    if (vStart + len > end) {
      items.push({ id, raw: b.subarray(vStart, end), declaredLength: len });
      q = end;
      break;
    }
    items.push({ id, raw: b.subarray(vStart, vStart + len) });
    const spec = SPEC_BY_ID[id];
    if (spec !== undefined && spec.lengths.includes(len)) view[spec.name] = spec.read(b, vStart, len);
    q = vStart + len;
  }
  if (q < end) loc.trailing = b.subarray(q, end);
  return loc;
}

/** Encodes a location body; items come from `items` (raw, lossless). */
export function writeLocation(w: Writer, loc: LocationReport): void {
  w.u32(loc.alarm)
    .u32(loc.status)
    .u32(Math.round(Math.abs(loc.latitude) * 1e6))
    .u32(Math.round(Math.abs(loc.longitude) * 1e6))
    .u16(loc.altitude)
    .u16(Math.round(loc.speed * 10))
    .u16(loc.direction);
  if (loc.time) w.bcd(timeDigits(loc.time), 6);
  else w.bcd(loc.timeBcd ?? '000000000000', 6);
  for (const it of loc.items) {
    w.u8(it.id).u8(it.declaredLength ?? it.raw.length).bytes(it.raw);
  }
  if (loc.trailing) w.bytes(loc.trailing);
}

/** Builds raw items from named values, in the table's order (for encoders and simulators). */
export function buildLocationItems(values: LocationItemValues): LocationItem[] {
  const out: LocationItem[] = [];
  for (const spec of ITEM_TABLE) {
    const v = values[spec.name];
    if (v === undefined) continue;
    const w = new Writer(32);
    (spec.write as (w: Writer, v: unknown) => void)(w, v);
    out.push({ id: spec.id, raw: w.finish() });
  }
  return out;
}
