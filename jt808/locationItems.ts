// The additional items of a location report (2013/2019 table 27), as data: one row per standard
// item with its id, name, accepted lengths, how to read it and how to write it. The readers in
// locationReaders.ts are compiled from this table; the writer in location.ts walks it.
import type { Writer } from './bytes.js';

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

export type ItemName = keyof LocationItemValues;

export interface ItemSpec<N extends ItemName = ItemName> {
  id: number;
  name: N;
  /** Accepted lengths; an item of another length is kept raw only. */
  lengths: readonly number[];
  /**
   * The value, as a JavaScript expression over the body bytes `b`, the value's offset `$` and the
   * item's length `len`, using the helpers `u16(b, o)` and `u32(b, o)` (big-endian) and
   * `signMagnitude16(v)`. The readers are compiled from it, so the hot path is straight-line
   * code while this table stays the one description; the round-trip property tests hold each
   * expression to its `write`.
   */
  read: string;
  write(w: Writer, v: NonNullable<LocationItemValues[N]>): void;
}

const item = <N extends ItemName>(spec: ItemSpec<N>): ItemSpec => spec as unknown as ItemSpec;

/** The standard items, in the order the encoder writes them. */
export const ITEM_TABLE: readonly ItemSpec[] = [
  item({
    id: 0x01,
    name: 'mileageKm',
    lengths: [4],
    read: 'u32(b, $) / 10',
    write: (w, v) => void w.u32(Math.round(v * 10)),
  }),
  item({
    id: 0x02,
    name: 'fuelL',
    lengths: [2],
    read: 'u16(b, $) / 10',
    write: (w, v) => void w.u16(Math.round(v * 10)),
  }),
  item({
    id: 0x03,
    name: 'recorderSpeedKmh',
    lengths: [2],
    read: 'u16(b, $) / 10',
    write: (w, v) => void w.u16(Math.round(v * 10)),
  }),
  item({
    id: 0x04,
    name: 'alarmEventId',
    lengths: [2],
    read: 'u16(b, $)',
    write: (w, v) => void w.u16(v),
  }),
  item({
    id: 0x05,
    name: 'tyrePressure',
    lengths: [30],
    read: 'Array.from(b.subarray($, $ + len))',
    write: (w, v) => void w.fixed(Uint8Array.from(v), 30),
  }),
  item({
    id: 0x06,
    name: 'compartmentTemperatureC',
    lengths: [2],
    read: 'signMagnitude16(u16(b, $))',
    // 0x8000 is a negative zero, and comes back as one
    write: (w, v) => void w.u16(v < 0 || Object.is(v, -0) ? 0x8000 | (-v & 0x7fff) : v & 0x7fff),
  }),
  item({
    id: 0x11,
    name: 'overspeed',
    lengths: [1, 5],
    read: 'len === 5 ? { locationType: b[$], areaId: u32(b, $ + 1) } : { locationType: b[$] }',
    write: (w, v) => {
      w.u8(v.locationType);
      if (v.areaId !== undefined) w.u32(v.areaId);
    },
  }),
  item({
    id: 0x12,
    name: 'areaAlarm',
    lengths: [6],
    read: '{ locationType: b[$], areaId: u32(b, $ + 1), direction: b[$ + 5] }',
    write: (w, v) => void w.u8(v.locationType).u32(v.areaId).u8(v.direction),
  }),
  item({
    id: 0x13,
    name: 'routeTime',
    lengths: [7],
    read: '{ routeId: u32(b, $), seconds: u16(b, $ + 4), result: b[$ + 6] }',
    write: (w, v) => void w.u32(v.routeId).u16(v.seconds).u8(v.result),
  }),
  item({
    id: 0x25,
    name: 'vehicleSignal',
    lengths: [4],
    read: 'u32(b, $)',
    write: (w, v) => void w.u32(v),
  }),
  item({
    id: 0x2a,
    name: 'ioStatus',
    lengths: [2],
    read: 'u16(b, $)',
    write: (w, v) => void w.u16(v),
  }),
  item({
    id: 0x2b,
    name: 'analog',
    lengths: [4],
    // bits 0–15 AD0, 16–31 AD1
    read: '{ ad0: u16(b, $ + 2), ad1: u16(b, $) }',
    write: (w, v) => void w.u16(v.ad1).u16(v.ad0),
  }),
  item({ id: 0x30, name: 'signal', lengths: [1], read: 'b[$]', write: (w, v) => void w.u8(v) }),
  item({ id: 0x31, name: 'satellites', lengths: [1], read: 'b[$]', write: (w, v) => void w.u8(v) }),
];

export const SPEC_BY_ID: readonly (ItemSpec | undefined)[] = (() => {
  const out: (ItemSpec | undefined)[] = [];
  for (const s of ITEM_TABLE) out[s.id] = s;
  return out;
})();

/** Each item's place in ITEM_TABLE, by id (undefined for ids not in it). */
export const RANK_BY_ID: readonly (number | undefined)[] = (() => {
  const out: (number | undefined)[] = [];
  ITEM_TABLE.forEach((s, i) => (out[s.id] = i));
  return out;
})();
