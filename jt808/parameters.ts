// Terminal parameters (0x8103 set, 0x0104 reply): items {id DWORD, length BYTE, value}. The value
// type of each standard id comes from 2013 table 12 / 2019 table 13; unknown and vendor ids,
// and values whose length does not fit their type, stay raw bytes so nothing is lost.
import { Reader, Writer, decodeGbk, encodeGbk } from './bytes.js';
import { custom, type Codec } from './schema.js';

export type ParamType = 'u8' | 'u16' | 'u32' | 'string';

function ids(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

const TYPES = new Map<number, ParamType>();
const define = (type: ParamType, list: number[]): void => list.forEach((id) => TYPES.set(id, type));
define('u32', [...ids(0x0001, 0x0007), 0x0018, 0x0019, 0x001b, 0x001c, ...ids(0x0020, 0x0022)]);
define('u32', [
  ...ids(0x0027, 0x0030),
  0x0045,
  0x0046,
  0x0047,
  ...ids(0x0050, 0x005a),
  0x0064,
  0x0065,
]);
define('u32', [...ids(0x0070, 0x0074), 0x0080, 0x0093, 0x0095, 0x0100, 0x0102]);
define('u16', [0x0031, ...ids(0x005b, 0x005e), 0x0081, 0x0082, 0x0101, 0x0103]);
define('u8', [0x0084, 0x0090, 0x0091, 0x0092, 0x0094]);
define('string', [
  ...ids(0x0010, 0x0017),
  0x001a,
  0x001d,
  ...ids(0x0040, 0x0044),
  0x0048,
  0x0049,
  0x0083,
]);

export interface Parameter {
  id: number;
  /** number for numeric ids, string for STRING ids, raw bytes otherwise. */
  value: number | string | Uint8Array;
}

const SIZE = { u8: 1, u16: 2, u32: 4 } as const;

function readValue(id: number, raw: Uint8Array): Parameter['value'] {
  const t = TYPES.get(id);
  if (t === 'string') {
    const s = decodeGbk(raw);
    // Keep raw when the text would not encode back to the same bytes.
    return Buffer.compare(Buffer.from(encodeGbk(s)), Buffer.from(raw)) === 0 ? s : raw;
  }
  if (t !== undefined && raw.length === SIZE[t]) {
    return new Reader(raw)[t]();
  }
  return raw;
}

function writeValue(w: Writer, p: Parameter): void {
  const v = p.value;
  let raw: Uint8Array;
  if (typeof v === 'string') raw = encodeGbk(v);
  else if (typeof v === 'number') {
    const t = TYPES.get(p.id);
    const size = t && t !== 'string' ? SIZE[t] : 4;
    const ww = new Writer(4);
    if (size === 1) ww.u8(v);
    else if (size === 2) ww.u16(v);
    else ww.u32(v);
    raw = ww.finish();
  } else raw = v;
  if (raw.length > 255)
    throw new RangeError(
      `parameter 0x${p.id.toString(16)} value of ${raw.length} bytes exceeds 255`,
    );
  w.u32(p.id).u8(raw.length).bytes(raw);
}

export const parameter: Codec<Parameter> = custom(
  (r) => {
    const id = r.u32();
    const len = r.u8();
    return { id, value: readValue(id, r.bytes(len)) };
  },
  (w, p) => writeValue(w, p),
);
