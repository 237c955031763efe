// Location report body (0x0200, and inside 0x0201, 0x0704, 0x0801): the 28-byte basic block and
// the additional items (ITEM_TABLE, locationItems.ts). This is the hot path of the whole system:
// the readers are compiled from the table (locationReaders.ts), and a report whose item layout
// was seen before is read by one straight-line function.
//
// Never throws on items: unknown and vendor items are kept raw, a truncated item is kept raw
// with a flag, and decoding stops at the body's end. Only a basic block shorter than 28 bytes
// is an error (Truncated).
import { timeDigits } from './bcdTime.js';
import { Truncated, Writer } from './bytes.js';
import {
  ITEM_TABLE,
  RANK_BY_ID,
  SPEC_BY_ID,
  type ItemSpec,
  type LocationItem,
  type LocationItemValues,
} from './locationItems.js';
import {
  BASIC_BLOCK_LENGTH,
  LocationLayouts,
  newReport,
  readNamedItem,
  type LayoutItem,
  type LayoutStats,
} from './locationReaders.js';

export { BASIC_BLOCK_LENGTH };
export { readBcdTime, timeDigits } from './bcdTime.js';
export type { LocationItem, LocationItemValues } from './locationItems.js';

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

// One per thread, shared by every connection: devices of one model share their layouts.
const layouts = new LocationLayouts();

/** How many item layouts are compiled, and reports read item by item past the limit. */
export function locationLayoutStats(): LayoutStats {
  return layouts.stats;
}

/** Decodes a location body in b[start, end). Throws Truncated only for a short basic block. */
export function readLocation(b: Uint8Array, start: number, end: number): LocationReport {
  // No layout is shorter than the basic block: a short body falls through to the Truncated below.
  return layouts.read(b, start, end) ?? readItemByItem(b, start, end, layouts);
}

/**
 * Decodes a location body item by item (any layout: unknown, odd, repeated, out-of-order and
 * truncated items). With `learn`, the layout of a body made of whole items is compiled there
 * for the next report. Exported so that tests hold the compiled readers to it.
 */
export function readItemByItem(
  b: Uint8Array,
  start: number,
  end: number,
  learn?: LocationLayouts,
): LocationReport {
  if (end - start < BASIC_BLOCK_LENGTH) throw new Truncated(BASIC_BLOCK_LENGTH, end - start);
  const p = start;
  const loc = newReport(b, p);
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
    if (readNamedItem(loc, id, b, v, len)) {
      const rank = RANK_BY_ID[id]!;
      if (inOrder && rank <= lastRank) {
        inOrder = false;
        loc.itemOrder = namedIdsBefore(b, p + BASIC_BLOCK_LENGTH, count);
      }
      lastRank = rank;
      if (!inOrder) loc.itemOrder!.push(id);
    } else {
      if (inOrder) {
        inOrder = false;
        loc.itemOrder = namedIdsBefore(b, p + BASIC_BLOCK_LENGTH, count);
      }
      addExtra(loc, { id, raw: b.subarray(v, v + len) });
    }
    count++;
    q = v + len;
  }
  if (q < end) loc.trailing = b.subarray(q, end);
  else if (learn && loc.extraItems?.some((it) => it.declaredLength !== undefined) !== true)
    learn.learn(layoutAt(b, p + BASIC_BLOCK_LENGTH, count));
  return loc;
}

function layoutAt(b: Uint8Array, q: number, count: number): LayoutItem[] {
  const out: LayoutItem[] = [];
  for (let i = 0; i < count; i++) {
    const len = b[q + 1]!;
    out.push({ id: b[q]!, len });
    q += 2 + len;
  }
  return out;
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

function writeNamed(w: Writer, spec: ItemSpec, value: unknown): void {
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
