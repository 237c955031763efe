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
  /** GNSS time in ms since the epoch (the wire carries GMT+8 BCD); null when not a valid time. */
  time: number | null;
  /** The BCD time as sent, kept only when it is not a valid time. */
  timeBcd?: string;
  /** Items not read into a named value above (unknown and vendor ids, odd lengths, repeats, a truncated last item), raw. */
  extraItems?: LocationItem[];
  /**
   * The additional items in wire order, so re-encoding keeps the device's order: an id for an
   * item read into its named value, -1 - id for the next raw item of that id in extraItems.
   */
  itemOrder?: number[];
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
const rdSigned = (v: number): number => (v & 0x8000 ? -(v & 0x7fff) : v);
const rd32 = (b: Uint8Array, p: number): number =>
  ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

const tenths = (
  id: number,
  name: 'mileageKm' | 'fuelL' | 'recorderSpeedKmh',
  size: 2 | 4,
): ItemSpec<typeof name> => ({
  id,
  name,
  lengths: [size],
  read: (b, p) => (size === 4 ? rd32(b, p) : rd16(b, p)) / 10,
  write: (w, v) => void (size === 4 ? w.u32(Math.round(v * 10)) : w.u16(Math.round(v * 10))),
});

const plain = (
  id: number,
  name: 'alarmEventId' | 'vehicleSignal' | 'ioStatus' | 'signal' | 'satellites',
  size: 1 | 2 | 4,
): ItemSpec<typeof name> => ({
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
    read: (b, p) => rdSigned(rd16(b, p)),
    // sign-magnitude: 0x8000 is a negative zero, and comes back as one
    write: (w, v) => void w.u16(v < 0 || Object.is(v, -0) ? 0x8000 | (-v & 0x7fff) : v & 0x7fff),
  } satisfies ItemSpec<'compartmentTemperatureC'>,
  {
    id: 0x11,
    name: 'overspeed',
    lengths: [1, 5],
    read: (b, p, len) =>
      len === 5 ? { locationType: b[p]!, areaId: rd32(b, p + 1) } : { locationType: b[p]! },
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
const RANK_BY_ID: number[] = [];
ITEM_TABLE.forEach((s, i) => {
  SPEC_BY_ID[s.id] = s;
  RANK_BY_ID[s.id] = i;
});

export const BASIC_BLOCK_LENGTH = 28;

const bcdOk = (x: number): boolean => x >> 4 < 10 && (x & 15) < 10;
const bcdVal = (x: number): number => (x >> 4) * 10 + (x & 15);

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * BCD[6] YYMMDDhhmmss → ms since the epoch, or null when it is not a valid time. The standard's
 * times are GMT+8 (`offsetHours` 8); 2019's 0x8004 is UTC (0). Arithmetic only: a Date per
 * report costs more than the rest of the report.
 */
export function readBcdTime(b: Uint8Array, p: number, offsetHours = 8): number | null {
  const y0 = b[p]!;
  const m0 = b[p + 1]!;
  const d0 = b[p + 2]!;
  const h0 = b[p + 3]!;
  const i0 = b[p + 4]!;
  const s0 = b[p + 5]!;
  // A nibble above 9 needs bit 3 set: test all twelve at once, look closer only then.
  if (((y0 | m0 | d0 | h0 | i0 | s0) & 0x88) !== 0) {
    for (let i = 0; i < 6; i++) if (!bcdOk(b[p + i]!)) return null;
  }
  const yy = bcdVal(y0);
  const mo = bcdVal(m0);
  const dd = bcdVal(d0);
  const hh = bcdVal(h0);
  const mi = bcdVal(i0);
  const ss = bcdVal(s0);
  if (mo < 1 || mo > 12 || dd < 1 || dd > DAYS_IN_MONTH[mo - 1]! || hh > 23 || mi > 59 || ss > 59)
    return null;
  if (mo === 2 && dd === 29 && yy % 4 !== 0) return null;
  // 2000-01-01 is day 10957; every fourth year from 2000 is a leap year up to 2099.
  const days =
    10957 +
    yy * 365 +
    ((yy + 3) >> 2) +
    DAYS_BEFORE_MONTH[mo - 1]! +
    (mo > 2 && yy % 4 === 0 ? 1 : 0) +
    dd -
    1;
  return ((days * 24 + hh - offsetHours) * 60 + mi) * 60_000 + ss * 1000;
}

const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/** ms since the epoch → BCD[6] digits in GMT+8 (or another offset). */
export function timeDigits(ms: number, offsetHours = 8): string {
  const d = new Date(ms + offsetHours * 3600_000);
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
  // Every property is created here, in one order, so all reports share one hidden class.
  const loc: LocationReport = {
    alarm: rd32(b, p),
    status,
    latitude: status & 0x4 ? -lat : lat,
    longitude: status & 0x8 ? -lon : lon,
    altitude: rd16(b, p + 16),
    speed: rd16(b, p + 18) / 10,
    direction: rd16(b, p + 20),
    time: readBcdTime(b, p + 22),
    timeBcd: undefined,
    mileageKm: undefined,
    fuelL: undefined,
    recorderSpeedKmh: undefined,
    alarmEventId: undefined,
    tyrePressure: undefined,
    compartmentTemperatureC: undefined,
    overspeed: undefined,
    areaAlarm: undefined,
    routeTime: undefined,
    vehicleSignal: undefined,
    ioStatus: undefined,
    analog: undefined,
    signal: undefined,
    satellites: undefined,
    extraItems: undefined,
    itemOrder: undefined,
    trailing: undefined,
  };
  if (loc.time === null) loc.timeBcd = bcdString(b.subarray(p + 22, p + 28));
  let q = p + BASIC_BLOCK_LENGTH;
  // itemOrder is only needed when the items are not in table order (the encoder's default);
  // most devices send them in order, so most reports skip the array.
  let lastRank = -1;
  let inOrder = true;
  let count = 0;
  while (q + 2 <= end) {
    const id = b[q]!;
    const len = b[q + 1]!;
    const v = q + 2;
    if (v + len > end) {
      addExtra(loc, { id, raw: b.subarray(v, end), declaredLength: len });
      q = end;
      break;
    }
    // The item table compiled by hand (the profile asked for it); the round-trip property test
    // holds it to ITEM_TABLE.
    let named = true;
    switch (id) {
      case 0x01:
        if (len === 4 && loc.mileageKm === undefined) loc.mileageKm = rd32(b, v) / 10;
        else named = false;
        break;
      case 0x02:
        if (len === 2 && loc.fuelL === undefined) loc.fuelL = rd16(b, v) / 10;
        else named = false;
        break;
      case 0x03:
        if (len === 2 && loc.recorderSpeedKmh === undefined) loc.recorderSpeedKmh = rd16(b, v) / 10;
        else named = false;
        break;
      case 0x04:
        if (len === 2 && loc.alarmEventId === undefined) loc.alarmEventId = rd16(b, v);
        else named = false;
        break;
      case 0x06:
        if (len === 2 && loc.compartmentTemperatureC === undefined)
          loc.compartmentTemperatureC = rdSigned(rd16(b, v));
        else named = false;
        break;
      case 0x25:
        if (len === 4 && loc.vehicleSignal === undefined) loc.vehicleSignal = rd32(b, v);
        else named = false;
        break;
      case 0x2a:
        if (len === 2 && loc.ioStatus === undefined) loc.ioStatus = rd16(b, v);
        else named = false;
        break;
      case 0x30:
        if (len === 1 && loc.signal === undefined) loc.signal = b[v]!;
        else named = false;
        break;
      case 0x31:
        if (len === 1 && loc.satellites === undefined) loc.satellites = b[v]!;
        else named = false;
        break;
      case 0x2b:
        if (len === 4 && loc.analog === undefined)
          loc.analog = { ad0: rd16(b, v + 2), ad1: rd16(b, v) };
        else named = false;
        break;
      default: {
        const spec = SPEC_BY_ID[id];
        const view = loc as unknown as Record<string, unknown>;
        if (spec !== undefined && spec.lengths.includes(len) && view[spec.name] === undefined)
          view[spec.name] = spec.read(b, v, len);
        else named = false;
      }
    }
    if (named) {
      const rank = RANK_BY_ID[id]!;
      if (inOrder && rank <= lastRank) {
        inOrder = false;
        loc.itemOrder = namedIdsBefore(b, p + BASIC_BLOCK_LENGTH, count);
      }
      lastRank = rank;
      if (!inOrder) loc.itemOrder!.push(id);
      count++;
    } else {
      if (inOrder) {
        inOrder = false;
        loc.itemOrder = namedIdsBefore(b, p + BASIC_BLOCK_LENGTH, count);
      }
      addExtra(loc, { id, raw: b.subarray(v, v + len) });
      count++;
    }
    q = v + len;
  }
  if (q < end) loc.trailing = b.subarray(q, end);
  return loc;
}

/** The ids of the first `count` items (all read into named values), from the wire. */
function namedIdsBefore(b: Uint8Array, q: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(b[q]!);
    q += 2 + b[q + 1]!;
  }
  return out;
}

function addExtra(loc: LocationReport, item: LocationItem): void {
  (loc.extraItems ??= []).push(item);
  (loc.itemOrder ??= []).push(-1 - item.id);
}

function writeNamed(w: Writer, spec: ItemSpec<ItemName>, value: unknown): void {
  const start = w.pos;
  w.u8(spec.id).u8(0);
  (spec.write as (w: Writer, v: unknown) => void)(w, value);
  w.patchU8(start + 1, w.pos - start - 2);
}

/**
 * Encodes a location body: named values and extra items in `itemOrder` when there is one (a
 * decoded report comes back byte for byte), then any named value not in it, in table order.
 */
export function writeLocation(w: Writer, loc: LocationReport): void {
  writeBasicBlock(w, loc);
  const values = loc as unknown as Record<string, unknown>;
  const done = new Set<number>();
  const extras = loc.extraItems ?? [];
  const used = new Set<LocationItem>();
  const writeExtra = (it: LocationItem): void => {
    used.add(it);
    w.u8(it.id)
      .u8(it.declaredLength ?? it.raw.length)
      .bytes(it.raw);
  };
  for (const entry of loc.itemOrder ?? []) {
    if (entry >= 0) {
      const spec = SPEC_BY_ID[entry];
      if (spec && values[spec.name] !== undefined && !done.has(entry)) {
        writeNamed(w, spec, values[spec.name]);
        done.add(entry);
      }
    } else {
      const it = extras.find((x) => x.id === -1 - entry && !used.has(x));
      if (it) writeExtra(it);
    }
  }
  for (const spec of ITEM_TABLE) {
    if (!done.has(spec.id) && values[spec.name] !== undefined)
      writeNamed(w, spec, values[spec.name]);
  }
  for (const it of extras) if (!used.has(it)) writeExtra(it);
  if (loc.trailing) w.bytes(loc.trailing);
}

/** The 28-byte basic block alone (0x0801 carries only this). */
export function writeBasicBlock(w: Writer, loc: LocationReport): void {
  w.u32(loc.alarm)
    .u32(loc.status)
    .u32(Math.round(Math.abs(loc.latitude) * 1e6))
    .u32(Math.round(Math.abs(loc.longitude) * 1e6))
    .u16(loc.altitude)
    .u16(Math.round(loc.speed * 10))
    .u16(loc.direction);
  if (loc.time !== null && loc.time !== undefined) w.bcd(timeDigits(loc.time), 6);
  else w.bcd(loc.timeBcd ?? '000000000000', 6);
}
