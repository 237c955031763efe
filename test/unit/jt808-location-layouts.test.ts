// The compiled location readers against the item-by-item reader: for any body made of whole
// items (standard, vendor, odd lengths, repeats, any order, any bytes), the reader compiled for
// its layout gives the same report, property for property and in the same property order; the
// layout cache is bounded and counts what it refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Writer } from '../../jt808/bytes.js';
import { readItemByItem, readLocation, writeLocation } from '../../jt808/location.js';
import { ITEM_TABLE } from '../../jt808/locationItems.js';
import { compileLayout, LocationLayouts, type LayoutItem } from '../../jt808/locationReaders.js';
import { location } from '../helpers/arbitraries.js';

const runs = Number(process.env.FLEETMESH_PROPERTY_RUNS ?? 300);

/** The items of a body made of whole items, in wire order. */
function layoutOf(b: Uint8Array, p: number, end: number): LayoutItem[] {
  const out: LayoutItem[] = [];
  for (let q = p + 28; q < end; q += 2 + b[q + 1]!) out.push({ id: b[q]!, len: b[q + 1]! });
  return out;
}

/** A body at a random offset inside a larger buffer: basic block, items, nothing else. */
const itemBody = fc
  .record({
    pad: fc.integer({ min: 0, max: 5 }),
    basic: fc.uint8Array({ minLength: 28, maxLength: 28 }),
    items: fc.array(
      fc.oneof(
        // a standard id with an accepted length (repeats happen: the second one stays raw)
        fc.constantFrom(...ITEM_TABLE).chain((s) =>
          fc.record({
            id: fc.constant(s.id),
            raw: fc
              .constantFrom(...s.lengths)
              .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
          }),
        ),
        // any id, any short length (odd lengths of standard ids, vendor items)
        fc.record({ id: fc.integer({ min: 0, max: 255 }), raw: fc.uint8Array({ maxLength: 8 }) }),
      ),
      { maxLength: 10 },
    ),
  })
  .map(({ pad, basic, items }) => {
    const w = new Writer(64);
    for (let i = 0; i < pad; i++) w.u8(0xee);
    w.bytes(basic);
    for (const it of items) w.u8(it.id).u8(it.raw.length).bytes(it.raw);
    w.u8(0xee); // a byte past the end, which no reader may touch
    const b = w.finish();
    return { b, p: pad, end: b.length - 1 };
  });

/** Bodies the encoder writes (every standard item, vendor items, real times). */
const encodedBody = location.map((loc) => {
  const w = new Writer(64);
  writeLocation(w, loc);
  const b = w.finish();
  return { b, p: 0, end: b.length };
});

function sameReport(b: Uint8Array, p: number, end: number): void {
  const byItem = readItemByItem(b, p, end);
  const compiled = compileLayout(layoutOf(b, p, end))(b, p, end);
  assert.ok(compiled, 'the compiled reader accepts the bytes of its own layout');
  assert.deepStrictEqual(compiled, byItem);
  // One property order: reports from either reader share a hidden class.
  assert.deepStrictEqual(Object.keys(compiled), Object.keys(byItem));
}

describe('compiled location layouts', () => {
  it('read any body of whole items exactly as the item-by-item reader does', () => {
    fc.assert(
      fc.property(itemBody, ({ b, p, end }) => sameReport(b, p, end)),
      { numRuns: runs * 3 },
    );
  });

  it('read every body the encoder writes as the item-by-item reader does', () => {
    fc.assert(
      fc.property(encodedBody, ({ b, p, end }) => sameReport(b, p, end)),
      { numRuns: runs },
    );
  });

  it('are learned from the first report of a layout and used for the next', () => {
    fc.assert(
      fc.property(itemBody, ({ b, p, end }) => {
        const layouts = new LocationLayouts();
        assert.equal(layouts.read(b, p, end), undefined);
        const first = readItemByItem(b, p, end, layouts);
        assert.equal(layouts.stats.layouts, 1);
        assert.deepStrictEqual(layouts.read(b, p, end), first);
      }),
      { numRuns: runs },
    );
  });

  it('give way to the item-by-item reader when a byte of the layout differs', () => {
    const w = new Writer(64);
    writeLocation(w, { ...baseReport, mileageKm: 12.3, signal: 20, satellites: 9 });
    const b = w.finish();
    const reader = compileLayout(layoutOf(b, 0, b.length));
    assert.ok(reader(b, 0, b.length));
    const other = b.slice();
    other[28 + 6] = 0x32; // the signal item's id (0x30) becomes a vendor's
    assert.equal(reader(other, 0, other.length), undefined);
    assert.equal(reader(b, 0, b.length - 1), undefined, 'another body length');
    const r = readLocation(other, 0, other.length);
    assert.equal(r.signal, undefined);
    assert.deepStrictEqual(r.extraItems, [{ id: 0x32, raw: Uint8Array.of(20) }]);
  });

  it('learn nothing from a body with a truncated item or trailing bytes', () => {
    const layouts = new LocationLayouts();
    const w = new Writer(64);
    writeLocation(w, { ...baseReport, mileageKm: 1 });
    const whole = w.finish();
    const truncated = whole.subarray(0, whole.length - 1);
    const trailing = Uint8Array.from([...whole, 0x01]);
    assert.equal(readItemByItem(truncated, 0, truncated.length, layouts).extraItems?.length, 1);
    assert.ok(readItemByItem(trailing, 0, trailing.length, layouts).trailing);
    assert.equal(layouts.stats.layouts, 0);
  });

  it('are bounded overall and per body length, and count the reports read item by item', () => {
    const layouts = new LocationLayouts(2, 1);
    const body = (items: [number, number[]][]): Uint8Array => {
      const w = new Writer(64);
      w.bytes(new Uint8Array(28));
      for (const [id, raw] of items) w.u8(id).u8(raw.length).bytes(Uint8Array.from(raw));
      return w.finish();
    };
    const a = body([[0x30, [1]]]);
    const sameLength = body([[0x31, [2]]]);
    const b = body([[0x01, [0, 0, 0, 1]]]);
    const c = body([
      [0x2a, [0, 1]],
      [0x30, [3]],
    ]);
    for (const x of [a, sameLength, b, c]) readItemByItem(x, 0, x.length, layouts);
    assert.deepStrictEqual(layouts.stats, { layouts: 2, refused: 2 });
    assert.ok(layouts.read(a, 0, a.length));
    assert.ok(layouts.read(b, 0, b.length));
    assert.equal(layouts.read(sameLength, 0, sameLength.length), undefined, 'per-length limit');
    assert.equal(layouts.read(c, 0, c.length), undefined, 'overall limit');
    // Refused layouts still decode, item by item.
    assert.equal(readItemByItem(c, 0, c.length, layouts).ioStatus, 1);
    assert.deepStrictEqual(layouts.stats, { layouts: 2, refused: 3 });
  });

  it('refuse to generate code from anything but item headers', () => {
    assert.throws(() => compileLayout([{ id: 1.5, len: 4 }]), RangeError);
    assert.throws(() => compileLayout([{ id: 1, len: 256 }]), RangeError);
  });
});

const baseReport = {
  alarm: 0,
  status: 0,
  latitude: 31.2,
  longitude: 121.4,
  altitude: 5,
  speed: 40,
  direction: 90,
  time: Date.UTC(2026, 10, 22, 1, 2, 3),
};
