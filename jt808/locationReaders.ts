// Location readers compiled from ITEM_TABLE. The profile asked for it: walking the items one by
// one cost more than the rest of the report. Devices repeat the same items in the same order
// report after report, so a layout (the ids and lengths of the items, in wire order) seen once
// is compiled into a straight-line reader that checks the layout's bytes and builds the whole
// report at once, with exactly what the item-by-item reader would make of those bytes.
// Generated source holds only the table's own expressions and integers, never input bytes.
import { bcdString } from './bytes.js';
import { readBcdTime } from './bcdTime.js';
import type { LocationReport } from './location.js';
import { ITEM_TABLE, RANK_BY_ID, SPEC_BY_ID, type ItemSpec } from './locationItems.js';

const u16 = (b: Uint8Array, p: number): number => (b[p]! << 8) | b[p + 1]!;
const u32 = (b: Uint8Array, p: number): number =>
  ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
const signMagnitude16 = (v: number): number => (v & 0x8000 ? -(v & 0x7fff) : v);

/** What generated code may call. */
const HELPERS = { u16, u32, signMagnitude16, readBcdTime, bcdString };

function compile<F>(params: string, body: string): F {
  const factory = new Function(
    ...Object.keys(HELPERS),
    `return function (${params}) {\n${body}\n};`,
  );
  return factory(...Object.values(HELPERS)) as F;
}

/** An item's read expression with its value at `offset` (source) and length `len` (source). */
const valueSource = (spec: ItemSpec, offset: string, len: string): string =>
  `(${spec.read.replaceAll('$', `(${offset})`).replace(/\blen\b/g, len)})`;

/**
 * The report object literal: every property in one order, so that all reports share one
 * hidden class whichever reader made them. `items` gives the source of the named values present.
 */
function reportLiteral(
  items: ReadonlyMap<string, string>,
  extraItems = 'undefined',
  itemOrder = 'undefined',
): string {
  const named = ITEM_TABLE.map((s) => `${s.name}: ${items.get(s.name) ?? 'undefined'},`);
  return `const status = u32(b, p + 4);
const lat = u32(b, p + 8) / 1e6;
const lon = u32(b, p + 12) / 1e6;
const time = readBcdTime(b, p + 22);
return {
  alarm: u32(b, p), status,
  latitude: (status & 4) !== 0 ? -lat : lat,
  longitude: (status & 8) !== 0 ? -lon : lon,
  altitude: u16(b, p + 16), speed: u16(b, p + 18) / 10, direction: u16(b, p + 20),
  time, timeBcd: time === null ? bcdString(b, p + 22, p + 28) : undefined,
  ${named.join('\n  ')}
  extraItems: ${extraItems}, itemOrder: ${itemOrder}, trailing: undefined,
};`;
}

/** The 28-byte basic block as a report without items (the item-by-item reader fills them in). */
export const newReport: (b: Uint8Array, p: number) => LocationReport = compile(
  'b, p',
  reportLiteral(new Map()),
);

/**
 * Reads one item into its named value; false when it stays raw (an id not in the table, a
 * length the table does not accept, or a value already set by an earlier item).
 */
export const readNamedItem: (
  loc: LocationReport,
  id: number,
  b: Uint8Array,
  v: number,
  len: number,
) => boolean = compile(
  'loc, id, b, v, len',
  `switch (id) {
${ITEM_TABLE.map(
  (s) => `  case ${s.id}:
    if ((${s.lengths.map((n) => `len === ${n}`).join(' || ')}) && loc.${s.name} === undefined) {
      loc.${s.name} = ${valueSource(s, 'v', 'len')};
      return true;
    }
    return false;`,
).join('\n')}
  default:
    return false;
}`,
);

export interface LayoutItem {
  id: number;
  len: number;
}

type LayoutReader = (b: Uint8Array, p: number, end: number) => LocationReport | undefined;

export const BASIC_BLOCK_LENGTH = 28;

/**
 * A reader for reports whose items are exactly `layout`: each item read into its named value as
 * the item-by-item reader would (a standard id, an accepted length, the first of its id), the
 * others kept raw, and the wire order kept when it is not the table's.
 */
export function compileLayout(layout: readonly LayoutItem[]): LayoutReader {
  const values = new Map<string, string>();
  const checks: string[] = [];
  const extras: string[] = [];
  const order: number[] = [];
  let inOrder = true;
  let lastRank = -1;
  let at = BASIC_BLOCK_LENGTH;
  for (const { id, len } of layout) {
    if (
      !Number.isInteger(id) ||
      !Number.isInteger(len) ||
      id < 0 ||
      id > 255 ||
      len < 0 ||
      len > 255
    )
      throw new RangeError(`not an item header: ${id}/${len}`);
    checks.push(`b[p + ${at}] !== ${id} || b[p + ${at + 1}] !== ${len}`);
    const spec = SPEC_BY_ID[id];
    if (spec !== undefined && spec.lengths.includes(len) && !values.has(spec.name)) {
      values.set(spec.name, valueSource(spec, `p + ${at + 2}`, String(len)));
      const rank = RANK_BY_ID[id]!;
      if (rank <= lastRank) inOrder = false;
      lastRank = rank;
      order.push(id);
    } else {
      extras.push(`{ id: ${id}, raw: b.subarray(p + ${at + 2}, p + ${at + 2 + len}) }`);
      inOrder = false;
      order.push(-1 - id);
    }
    at += 2 + len;
  }
  const mismatch = [`end - p !== ${at}`, ...checks].join(' ||\n  ');
  const literal = reportLiteral(
    values,
    extras.length > 0 ? `[${extras.join(', ')}]` : undefined,
    inOrder ? undefined : `[${order.join(', ')}]`,
  );
  return compile('b, p, end', `if (${mismatch}) return undefined;\n${literal}`);
}

export interface LayoutStats {
  /** Layouts compiled so far. */
  layouts: number;
  /** Reports read item by item because the layout limit was reached. */
  refused: number;
}

/**
 * The compiled layouts, found by body length (a few per length). Bounded: past `limit` layouts,
 * or `perLength` of one body length, new layouts are read item by item and counted in `refused`.
 */
export class LocationLayouts {
  private readonly byLength = new Map<number, LayoutReader[]>();
  private count = 0;
  private refusedReads = 0;

  constructor(
    readonly limit = 256,
    readonly perLength = 8,
  ) {}

  get stats(): LayoutStats {
    return { layouts: this.count, refused: this.refusedReads };
  }

  /** The report, when b[p, end) has a compiled layout; else undefined. */
  read(b: Uint8Array, p: number, end: number): LocationReport | undefined {
    const readers = this.byLength.get(end - p);
    if (readers === undefined) return undefined;
    for (let i = 0; i < readers.length; i++) {
      const r = readers[i]!(b, p, end);
      if (r !== undefined) return r;
    }
    return undefined;
  }

  /** Compiles a layout the item-by-item reader found (a body with whole items only). */
  learn(layout: readonly LayoutItem[]): void {
    const length = layout.reduce((n, it) => n + 2 + it.len, BASIC_BLOCK_LENGTH);
    let readers = this.byLength.get(length);
    if (this.count >= this.limit || (readers?.length ?? 0) >= this.perLength) {
      this.refusedReads++;
      return;
    }
    if (readers === undefined) this.byLength.set(length, (readers = []));
    readers.push(compileLayout(layout));
    this.count++;
  }
}
