// The CPU-heavy parts of history queries, run in a piscina pool (storage/historyPool.ts) so
// that simplifying a month of track or testing a million points against a polygon never holds
// up a gateway, vehicle or gRPC thread. Points cross as Float64Arrays (transferred, not copied);
// answers come back as one byte per point. The functions are pure and exported for the tests.
import { contains, EARTH_RADIUS_M, type AreaShape } from './historyShapes.js';

const RAD = Math.PI / 180;

/**
 * Distance in metres from point p to the segment a-b, on a local equirectangular projection
 * around a (exact enough for the few-kilometre segments of a track, and cheap).
 */
export function segmentDistanceM(
  pLat: number,
  pLon: number,
  aLat: number,
  aLon: number,
  bLat: number,
  bLon: number,
): number {
  const k = Math.cos(((aLat + bLat) / 2) * RAD) * RAD * EARTH_RADIUS_M;
  const m = RAD * EARTH_RADIUS_M;
  const bx = (bLon - aLon) * k;
  const by = (bLat - aLat) * m;
  const px = (pLon - aLon) * k;
  const py = (pLat - aLat) * m;
  const len2 = bx * bx + by * by;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, (px * bx + py * by) / len2));
  return Math.hypot(px - t * bx, py - t * by);
}

/**
 * Douglas-Peucker: 1 for each point kept. The first and last points are kept; a point between
 * two kept points is dropped only when it and every point dropped with it lie within
 * `toleranceM` of the segment between them. An explicit stack, not recursion: a month of track
 * is 270 000 points.
 */
export function simplifyKeep(
  latitude: Float64Array,
  longitude: Float64Array,
  toleranceM: number,
): Uint8Array {
  const n = latitude.length;
  const keep = new Uint8Array(n);
  if (n === 0) return keep;
  keep[0] = 1;
  keep[n - 1] = 1;
  const stack: number[] = [0, n - 1];
  while (stack.length > 0) {
    const last = stack.pop()!;
    const first = stack.pop()!;
    let worst = -1;
    let worstD = toleranceM;
    for (let i = first + 1; i < last; i++) {
      const d = segmentDistanceM(
        latitude[i]!,
        longitude[i]!,
        latitude[first]!,
        longitude[first]!,
        latitude[last]!,
        longitude[last]!,
      );
      if (d > worstD) {
        worstD = d;
        worst = i;
      }
    }
    if (worst >= 0) {
      keep[worst] = 1;
      stack.push(first, worst, worst, last);
    }
  }
  return keep;
}

/** 1 for each point inside the shape. */
export function insideMask(
  latitude: Float64Array,
  longitude: Float64Array,
  shape: AreaShape,
): Uint8Array {
  const out = new Uint8Array(latitude.length);
  for (let i = 0; i < out.length; i++)
    out[i] = contains(shape, latitude[i]!, longitude[i]!) ? 1 : 0;
  return out;
}

export type HistoryTask =
  | { kind: 'simplify'; latitude: Float64Array; longitude: Float64Array; toleranceM: number }
  | { kind: 'inside'; latitude: Float64Array; longitude: Float64Array; shape: AreaShape };

/** piscina's entry point. */
export default function run(task: HistoryTask): Uint8Array {
  return task.kind === 'simplify'
    ? simplifyKeep(task.latitude, task.longitude, task.toleranceM)
    : insideMask(task.latitude, task.longitude, task.shape);
}
