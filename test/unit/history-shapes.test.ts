// The pure parts of history queries: cell keys and the ranges covering a box, shapes and their
// bounding boxes, the area-now filter, local days of a range, page tokens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { boxCellRanges, cellKey } from '../../storage/cellGrid.js';
import { daysOf } from '../../storage/historyAlarms.js';
import { decodeCursor, encodeCursor, InvalidQuery, timeRange } from '../../storage/historyQuery.js';
import {
  areaNowFilter,
  areaShape,
  boundingBox,
  contains,
  distanceM,
  type AreaShape,
} from '../../storage/historyShapes.js';
import { insideMask, simplifyKeep } from '../../storage/historyWorker.js';

const lat = fc.double({ min: -85, max: 85, noNaN: true });
const lon = fc.double({ min: -175, max: 175, noNaN: true });

describe('cell grid', () => {
  it('every point of a box has its cell key in one of the box ranges', () => {
    fc.assert(
      fc.property(
        lat,
        lon,
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, b, h, w, u, v) => {
          const maxLat = Math.min(90, a + h);
          const maxLon = Math.min(180, b + w);
          const ranges = boxCellRanges(a, b, maxLat, maxLon);
          const key = cellKey(a + u * (maxLat - a), b + v * (maxLon - b));
          assert.ok(ranges.some((r) => key >= r.from && key <= r.to));
          assert.ok(ranges.length <= 202, 'a 2° box is at most 201 rows');
        },
      ),
    );
  });

  it('keys are integers below 2^31 and differ between neighbouring cells', () => {
    assert.equal(cellKey(-90, -180), 0);
    assert.ok(cellKey(90, 180) < 2 ** 31);
    assert.notEqual(cellKey(31.2, 121.4), cellKey(31.2, 121.41));
    assert.notEqual(cellKey(31.2, 121.4), cellKey(31.21, 121.4));
  });
});

describe('shapes', () => {
  it("a circle's bounding box holds every point of the circle", () => {
    fc.assert(
      fc.property(
        lat.filter((x) => Math.abs(x) < 80),
        lon,
        fc.double({ min: 1, max: 100_000, noNaN: true }),
        fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, b, r, angle, f) => {
          const s: AreaShape = { kind: 'circle', latitude: a, longitude: b, radiusM: r };
          const box = boundingBox(s);
          // A point at distance f*r in the direction `angle` (destination formula).
          const d = (f * r) / 6_371_008.8;
          const la = (a * Math.PI) / 180;
          const lat2 = Math.asin(
            Math.sin(la) * Math.cos(d) + Math.cos(la) * Math.sin(d) * Math.cos(angle),
          );
          const lon2 =
            (b * Math.PI) / 180 +
            Math.atan2(
              Math.sin(angle) * Math.sin(d) * Math.cos(la),
              Math.cos(d) - Math.sin(la) * Math.sin(lat2),
            );
          const p = { latitude: (lat2 * 180) / Math.PI, longitude: (lon2 * 180) / Math.PI };
          assert.ok(distanceM(a, b, p.latitude, p.longitude) <= r * (1 + 1e-9) + 1e-6);
          assert.ok(
            p.latitude >= box.minLatitude && p.latitude <= box.maxLatitude,
            'latitude in the box',
          );
          assert.ok(
            p.longitude >= box.minLongitude && p.longitude <= box.maxLongitude,
            'longitude in the box',
          );
        },
      ),
    );
  });

  it('polygons by the even-odd rule; rectangles and circles include their edge', () => {
    const square: AreaShape = {
      kind: 'polygon',
      vertices: [
        { latitude: 0, longitude: 0 },
        { latitude: 0, longitude: 1 },
        { latitude: 1, longitude: 1 },
        { latitude: 1, longitude: 0 },
      ],
    };
    assert.ok(contains(square, 0.5, 0.5));
    assert.ok(!contains(square, 1.5, 0.5));
    assert.ok(!contains(square, 0.5, -0.01));
    const bowtie: AreaShape = {
      kind: 'polygon',
      vertices: [
        { latitude: 0, longitude: 0 },
        { latitude: 1, longitude: 1 },
        { latitude: 1, longitude: 0 },
        { latitude: 0, longitude: 1 },
      ],
    };
    assert.ok(contains(bowtie, 0.9, 0.5));
    assert.ok(!contains(bowtie, 0.5, 0.1));
    const rect: AreaShape = {
      kind: 'rectangle',
      minLatitude: 0,
      minLongitude: 0,
      maxLatitude: 1,
      maxLongitude: 1,
    };
    assert.ok(contains(rect, 1, 1) && contains(rect, 0, 0.5));
    const circle: AreaShape = { kind: 'circle', latitude: 0, longitude: 0, radiusM: 1000 };
    assert.ok(contains(circle, 0, 0.008)); // 890 m east
    assert.ok(!contains(circle, 0, 0.01)); // 1113 m east
    assert.deepEqual(
      [...insideMask(Float64Array.of(0.5, 2), Float64Array.of(0.5, 2), square)],
      [1, 0],
    );
  });

  it('areaShape refuses what it cannot answer, saying why', () => {
    assert.throws(() => areaShape(undefined), InvalidQuery);
    assert.throws(
      () => areaShape({ circle: { latitude: 0, longitude: 179.99, radiusM: 10_000 } }),
      /antimeridian/,
    );
    assert.throws(
      () =>
        areaShape({
          polygon: {
            vertices: [
              { latitude: 0, longitude: 0 },
              { latitude: 0, longitude: 3 },
              { latitude: 1, longitude: 0 },
            ],
          },
        }),
      /at most 2° x 2°/,
    );
  });

  it('a circle radius of 0, below 0 or past 100 km is refused with one message', () => {
    for (const radiusM of [0, -5, 100_000.5, Number.NaN])
      assert.throws(
        () => areaShape({ circle: { latitude: 31, longitude: 121, radiusM } }),
        (e: Error) =>
          e instanceof InvalidQuery &&
          e.message === `circle.radius_m must be above 0 and at most 100000 (m), not ${radiusM}`,
      );
    assert.equal(
      (
        areaShape({ circle: { latitude: 0, longitude: 121, radiusM: 100_000 } }) as {
          radiusM: number;
        }
      ).radiusM,
      100_000,
    );
  });

  it('a rectangle or polygon with longitudes on both sides of ±180° is refused as crossing the antimeridian', () => {
    const across = [
      // What `fleetmesh area --rect 22.45,179.5,22.60,-179.5` sends (corners sorted).
      {
        rectangle: {
          minLatitude: 22.45,
          minLongitude: -179.5,
          maxLatitude: 22.6,
          maxLongitude: 179.5,
        },
      },
      {
        polygon: {
          vertices: [
            { latitude: 22.45, longitude: 179.5 },
            { latitude: 22.6, longitude: -179.5 },
            { latitude: 22.6, longitude: 179.8 },
          ],
        },
      },
    ];
    for (const area of across)
      assert.throws(
        () => areaShape(area),
        /the area spans 359\.\d{3}° of longitude: an area may not cross the antimeridian \(±180°\); split it in two/,
      );
  });
});

describe('area now filter (for the actors, later)', () => {
  const states = [
    { vehicleId: '1', latitude: 31.2, longitude: 121.4, speed: 10, alarm: 0, online: true },
    { vehicleId: '2', latitude: 31.25, longitude: 121.45, speed: 80, alarm: 2, online: true },
    { vehicleId: '3', latitude: 31.22, longitude: 121.42, speed: 0, alarm: 0, online: false },
    { vehicleId: '4', latitude: 39.9, longitude: 116.4, speed: 50, alarm: 2, online: true },
  ];
  const area: AreaShape = { kind: 'circle', latitude: 31.22, longitude: 121.42, radiusM: 10_000 };

  it('filters by area, online, speed and alarm bits, and bounds its answer', () => {
    const ids = (r: { vehicles: { vehicleId: string }[] }): string[] =>
      r.vehicles.map((v) => v.vehicleId);
    assert.deepEqual(ids(areaNowFilter(states, area, {}, 10)), ['1', '2', '3']);
    assert.deepEqual(ids(areaNowFilter(states, area, { online: true }, 10)), ['1', '2']);
    assert.deepEqual(ids(areaNowFilter(states, area, { minSpeedKmh: 20 }, 10)), ['2']);
    assert.deepEqual(ids(areaNowFilter(states, area, { alarmMask: 2 }, 10)), ['2']);
    const cut = areaNowFilter(states, area, {}, 2);
    assert.deepEqual([ids(cut), cut.more], [['1', '2'], true]);
  });
});

describe('ranges, days and page tokens', () => {
  it('local days of a range, cut to it', () => {
    const d0 = Date.UTC(2026, 0, 1);
    // China (UTC+8): 2026-01-01 00:00 UTC is 08:00 local, in local day 2026-01-01 until 16:00 UTC.
    assert.deepEqual(daysOf(d0, d0 + 20 * 3_600_000, 480), [
      { day: '2026-01-01', fromMs: d0, toMs: d0 + 16 * 3_600_000 },
      { day: '2026-01-02', fromMs: d0 + 16 * 3_600_000, toMs: d0 + 20 * 3_600_000 },
    ]);
    assert.equal(daysOf(d0, d0 + 1, -300)[0]!.day, '2025-12-31');
  });

  it('page tokens round-trip; anything else is refused', () => {
    assert.deepEqual(decodeCursor(encodeCursor({ time: 5, id: 'a:1' })), { time: 5, id: 'a:1' });
    assert.deepEqual(decodeCursor(encodeCursor({ time: 7 })), { time: 7 });
    assert.equal(decodeCursor(''), undefined);
    assert.throws(() => decodeCursor('x'), InvalidQuery);
    assert.throws(() => decodeCursor(Buffer.from('[1,2]').toString('base64url')), InvalidQuery);
    assert.throws(() => timeRange(10, 5, 100), /must be after/);
  });

  it('Douglas-Peucker keeps the ends and a corner, drops points on a straight line', () => {
    const la = Float64Array.of(0, 0, 0, 0.01, 0.02);
    const lo = Float64Array.of(0, 0.01, 0.02, 0.02, 0.02);
    assert.deepEqual([...simplifyKeep(la, lo, 10)], [1, 0, 1, 0, 1]);
    assert.deepEqual([...simplifyKeep(new Float64Array(0), new Float64Array(0), 10)], []);
  });
});
