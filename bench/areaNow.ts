// "Vehicles in an area now" at fleet size: the filter every vehicle thread runs over its actors'
// last states (storage/historyShapes.ts areaNowFilter: the box, then the exact shape) over
// 100 000 vehicles, beside the floor of any such scan: a loop that reads the same states' two
// coordinates and compares them to the box. Goal: ≤ 100 ms for 100 000 actors. Not included:
// walking the actor map, and gathering the threads' and nodes' answers (a few small messages).
//   npm run bench -- areanow [--vehicles N] [--rounds R]
import hdr from 'hdr-histogram-js';
import { areaNowFilter, type AreaShape, type LiveVehicleState } from '../storage/historyShapes.js';
import { percentileCurve, type BenchContext } from './report.js';

export interface AreaNowBenchOptions {
  vehicles: number;
  rounds: number;
}

/** Deterministic pseudo-random numbers (mulberry32): the same fleet every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function runAreaNowBench(
  ctx: BenchContext,
  o: AreaNowBenchOptions,
): Record<string, unknown> {
  const rand = random(2026);
  // A city-sized fleet: 1 degree by 1 degree around Shanghai.
  const states: LiveVehicleState[] = Array.from({ length: o.vehicles }, (_, i) => ({
    vehicleId: String(13900000000 + i),
    latitude: 30.7 + rand(),
    longitude: 121 + rand(),
    speed: rand() * 100,
    alarm: rand() < 0.01 ? 1 : 0,
    online: rand() < 0.9,
  }));
  // A 3 km circle, a district-sized polygon: what an operator draws.
  const shapes: { name: string; shape: AreaShape }[] = [
    {
      name: 'circle r 3 km',
      shape: { kind: 'circle', latitude: 31.2, longitude: 121.5, radiusM: 3000 },
    },
    {
      name: 'polygon, 6 vertices, ~10 km',
      shape: {
        kind: 'polygon',
        vertices: [
          { latitude: 31.15, longitude: 121.45 },
          { latitude: 31.15, longitude: 121.55 },
          { latitude: 31.2, longitude: 121.6 },
          { latitude: 31.25, longitude: 121.55 },
          { latitude: 31.25, longitude: 121.45 },
          { latitude: 31.2, longitude: 121.4 },
        ],
      },
    },
  ];
  const floor = (box: { a: number; b: number; c: number; d: number }): number => {
    let n = 0;
    for (const s of states)
      if (
        s.latitude >= box.a &&
        s.latitude <= box.b &&
        s.longitude >= box.c &&
        s.longitude <= box.d
      )
        n++;
    return n;
  };
  const histogram = () =>
    hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 1e9,
      numberOfSignificantValueDigits: 3,
    });
  const result: Record<string, unknown> = {};
  const rows = shapes.map(({ name, shape }, k) => {
    const candidate = histogram();
    const baseline = histogram();
    const ratios: number[] = [];
    let found = 0;
    for (let r = 0; r < o.rounds; r++) {
      ctx.progress('area now', k * o.rounds + r, shapes.length * o.rounds);
      const t0 = process.hrtime.bigint();
      found = areaNowFilter(states, shape, { online: true }, 10_000).vehicles.length;
      const t1 = process.hrtime.bigint();
      floor({ a: 31.15, b: 31.25, c: 121.4, d: 121.6 });
      const t2 = process.hrtime.bigint();
      candidate.recordValue(Math.max(1, Number(t1 - t0) / 1000));
      baseline.recordValue(Math.max(1, Number(t2 - t1) / 1000));
      ratios.push(Number(t1 - t0) / Math.max(1, Number(t2 - t1)));
    }
    ratios.sort((a, b) => a - b);
    const figures = (h: ReturnType<typeof histogram>) => ({
      p50Ms: h.getValueAtPercentile(50) / 1000,
      p99Ms: h.getValueAtPercentile(99) / 1000,
      maxMs: h.maxValue / 1000,
    });
    const row = {
      name: `${name}: ${found} of ${o.vehicles} vehicles`,
      figures: figures(candidate),
      baseline: { name: 'a loop reading each state against the box', figures: figures(baseline) },
      ratio: {
        column: 'p50Ms',
        value: ratios[Math.floor(ratios.length / 2)]!,
        range: [ratios[0]!, ratios[ratios.length - 1]!] as [number, number],
      },
      percentiles: percentileCurve(candidate, 1 / 1000),
      baselinePercentiles: percentileCurve(baseline, 1 / 1000),
    };
    result[name] = {
      found,
      ...row.figures,
      baseline: row.baseline.figures,
      ratio: row.ratio.value,
    };
    candidate.destroy();
    baseline.destroy();
    return row;
  });
  ctx.table({
    title: `area now: the filter each vehicle thread runs over ${o.vehicles} last states, online only, ${o.rounds} rounds (goal ≤ 100 ms for 100 000 actors; ratio: median of paired rounds against the floor loop)`,
    columns: [
      { key: 'p50Ms', label: 'p50 ms', digits: 2 },
      { key: 'p99Ms', label: 'p99 ms', digits: 2 },
      { key: 'maxMs', label: 'max ms', digits: 2 },
    ],
    rows,
    percentileUnit: 'ms per query',
  });
  return result;
}
