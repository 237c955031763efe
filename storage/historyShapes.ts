// Areas asked about (rectangle, circle, polygon): checked once when a request arrives, then
// tested point by point, exactly. The same predicate serves the stored-window query (after the
// cell index narrowed the candidates) and, later, "vehicles in an area now" over the actors'
// last states (areaNowFilter). Pure: no I/O.
import { InvalidQuery } from './historyQuery.js';

export interface LatLon {
  latitude: number;
  longitude: number;
}

export type AreaShape =
  | {
      kind: 'rectangle';
      minLatitude: number;
      minLongitude: number;
      maxLatitude: number;
      maxLongitude: number;
    }
  | { kind: 'circle'; latitude: number; longitude: number; radiusM: number }
  | { kind: 'polygon'; vertices: LatLon[] };

export interface Box {
  minLatitude: number;
  minLongitude: number;
  maxLatitude: number;
  maxLongitude: number;
}

/** Mean Earth radius (IUGG), m: the one radius every distance here uses. */
export const EARTH_RADIUS_M = 6_371_008.8;
export const MAX_BOX_DEGREES = 2;
export const MAX_RADIUS_M = 100_000;
export const MAX_POLYGON_VERTICES = 1000;

const RAD = Math.PI / 180;

/** Great-circle distance in metres (haversine). */
export function distanceM(aLat: number, aLon: number, bLat: number, bLon: number): number {
  const dLat = (bLat - aLat) * RAD;
  const dLon = (bLon - aLon) * RAD;
  const h =
    Math.sin(dLat / 2) ** 2 + Math.cos(aLat * RAD) * Math.cos(bLat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

function finite(v: unknown, name: string, min: number, max: number): number {
  const n = typeof v === 'number' ? v : NaN;
  if (!Number.isFinite(n) || n < min || n > max)
    throw new InvalidQuery(`${name} must be a number from ${min} to ${max}, not ${String(v)}`);
  return n;
}

/** A circle's radius: one message for every refusal (0 and negative alike). */
function radius(v: unknown): number {
  const n = typeof v === 'number' ? v : NaN;
  if (!Number.isFinite(n) || n <= 0 || n > MAX_RADIUS_M)
    throw new InvalidQuery(
      `circle.radius_m must be above 0 and at most ${MAX_RADIUS_M} (m), not ${String(v)}`,
    );
  return n;
}

const lat = (v: unknown, name: string): number => finite(v, name, -90, 90);
const lon = (v: unknown, name: string): number => finite(v, name, -180, 180);

/**
 * The shape of a request (the proto's Area with its oneof as `shape`), checked: coordinates in
 * range, no antimeridian crossing, a bounding box of at most 2° x 2° (so the cell ranges a query
 * reads stay bounded), a circle of at most 100 km, a polygon of 3 to 1000 vertices.
 */
export function areaShape(area: unknown): AreaShape {
  const a = (area ?? {}) as Record<string, unknown>;
  let shape: AreaShape;
  if (a.rectangle) {
    const r = a.rectangle as Record<string, unknown>;
    shape = {
      kind: 'rectangle',
      minLatitude: lat(r.minLatitude, 'rectangle.min_latitude'),
      minLongitude: lon(r.minLongitude, 'rectangle.min_longitude'),
      maxLatitude: lat(r.maxLatitude, 'rectangle.max_latitude'),
      maxLongitude: lon(r.maxLongitude, 'rectangle.max_longitude'),
    };
    if (shape.minLatitude > shape.maxLatitude)
      throw new InvalidQuery('rectangle.min_latitude is above max_latitude');
    if (shape.minLongitude > shape.maxLongitude)
      throw new InvalidQuery(
        'rectangle.min_longitude is east of max_longitude (an area may not cross the antimeridian)',
      );
  } else if (a.circle) {
    const c = a.circle as Record<string, unknown>;
    shape = {
      kind: 'circle',
      latitude: lat(c.latitude, 'circle.latitude'),
      longitude: lon(c.longitude, 'circle.longitude'),
      radiusM: radius(c.radiusM),
    };
  } else if (a.polygon) {
    const raw = (a.polygon as Record<string, unknown>).vertices;
    const list = Array.isArray(raw) ? (raw as Record<string, unknown>[]) : [];
    if (list.length < 3 || list.length > MAX_POLYGON_VERTICES)
      throw new InvalidQuery(
        `polygon.vertices must be 3 to ${MAX_POLYGON_VERTICES} points, not ${list.length}`,
      );
    shape = {
      kind: 'polygon',
      vertices: list.map((v, i) => ({
        latitude: lat(v.latitude, `polygon.vertices[${i}].latitude`),
        longitude: lon(v.longitude, `polygon.vertices[${i}].longitude`),
      })),
    };
  } else {
    throw new InvalidQuery('area needs one of rectangle, circle or polygon');
  }
  const box = boundingBox(shape);
  if (
    box.minLongitude < -180 ||
    box.maxLongitude > 180 ||
    box.minLatitude < -90 ||
    box.maxLatitude > 90
  )
    throw new InvalidQuery('the circle reaches past a pole or the antimeridian');
  const h = box.maxLatitude - box.minLatitude;
  const w = box.maxLongitude - box.minLongitude;
  if (w > 180)
    // Longitudes on both sides of ±180: meant across the antimeridian, which the cell key (and
    // every box here) cannot express.
    throw new InvalidQuery(
      `the area spans ${w.toFixed(3)}° of longitude: an area may not cross the antimeridian (±180°); split it in two`,
    );
  if (h > MAX_BOX_DEGREES || w > MAX_BOX_DEGREES)
    throw new InvalidQuery(
      `the area spans ${h.toFixed(3)}° x ${w.toFixed(3)}°, at most ${MAX_BOX_DEGREES}° x ${MAX_BOX_DEGREES}°`,
    );
  return shape;
}

/** A box holding every point of the shape (a circle's with a small margin, never too small). */
export function boundingBox(s: AreaShape): Box {
  switch (s.kind) {
    case 'rectangle':
      return s;
    case 'circle': {
      const angular = s.radiusM / EARTH_RADIUS_M; // radians
      const dLat = angular / RAD;
      const cos = Math.cos(s.latitude * RAD);
      const sinA = Math.sin(angular);
      // The widest a circle reaches in longitude is asin(sin(r) / cos(lat)); past a pole it
      // wraps: reported as out of range so areaShape refuses it.
      const dLon = sinA >= cos ? 360 : Math.asin(sinA / cos) / RAD;
      const m = 1e-9 + dLat * 1e-6;
      return {
        minLatitude: s.latitude - dLat - m,
        maxLatitude: s.latitude + dLat + m,
        minLongitude: s.longitude - dLon - m,
        maxLongitude: s.longitude + dLon + m,
      };
    }
    case 'polygon': {
      let minLatitude = 90;
      let maxLatitude = -90;
      let minLongitude = 180;
      let maxLongitude = -180;
      for (const v of s.vertices) {
        minLatitude = Math.min(minLatitude, v.latitude);
        maxLatitude = Math.max(maxLatitude, v.latitude);
        minLongitude = Math.min(minLongitude, v.longitude);
        maxLongitude = Math.max(maxLongitude, v.longitude);
      }
      return { minLatitude, minLongitude, maxLatitude, maxLongitude };
    }
  }
}

/**
 * Whether the point is in the shape. Rectangle and circle include their boundary; a polygon is
 * tested by the even-odd rule on latitude/longitude as planar coordinates (its edges are straight
 * lines on the map, as an operator draws them).
 */
export function contains(s: AreaShape, latitude: number, longitude: number): boolean {
  switch (s.kind) {
    case 'rectangle':
      return (
        latitude >= s.minLatitude &&
        latitude <= s.maxLatitude &&
        longitude >= s.minLongitude &&
        longitude <= s.maxLongitude
      );
    case 'circle':
      return distanceM(s.latitude, s.longitude, latitude, longitude) <= s.radiusM;
    case 'polygon': {
      const v = s.vertices;
      let inside = false;
      for (let i = 0, j = v.length - 1; i < v.length; j = i++) {
        const a = v[i]!;
        const b = v[j]!;
        if (
          a.latitude > latitude !== b.latitude > latitude &&
          longitude <
            ((b.longitude - a.longitude) * (latitude - a.latitude)) / (b.latitude - a.latitude) +
              a.longitude
        )
          inside = !inside;
      }
      return inside;
    }
  }
}

/** What "vehicles in an area now" filters on, besides the area. */
export interface AreaNowFilter {
  /** Only vehicles online (true) or offline (false); undefined: both. */
  online?: boolean;
  minSpeedKmh?: number;
  maxSpeedKmh?: number;
  /** Only vehicles with any of these alarm bits set (0 or undefined: any). */
  alarmMask?: number;
}

export interface LiveVehicleState {
  vehicleId: string;
  latitude: number;
  longitude: number;
  speed: number;
  alarm: number;
  online: boolean;
}

/**
 * The vehicles of `states` inside the shape that pass the filter, at most `limit` (the caller
 * learns there were more from `more`). For "vehicles in an area now": each worker runs it over
 * its actors' last states and the node gathers the answers (not wired yet: routing is changing).
 */
export function areaNowFilter<T extends LiveVehicleState>(
  states: Iterable<T>,
  shape: AreaShape,
  filter: AreaNowFilter,
  limit: number,
): { vehicles: T[]; more: boolean } {
  const box = boundingBox(shape);
  const out: T[] = [];
  for (const s of states) {
    if (filter.online !== undefined && s.online !== filter.online) continue;
    if (filter.minSpeedKmh !== undefined && s.speed < filter.minSpeedKmh) continue;
    if (filter.maxSpeedKmh !== undefined && s.speed > filter.maxSpeedKmh) continue;
    if (filter.alarmMask && (s.alarm & filter.alarmMask) === 0) continue;
    // The box first: most vehicles are far away, and the exact test costs more.
    if (
      s.latitude < box.minLatitude ||
      s.latitude > box.maxLatitude ||
      s.longitude < box.minLongitude ||
      s.longitude > box.maxLongitude ||
      !contains(shape, s.latitude, s.longitude)
    )
      continue;
    if (out.length === limit) return { vehicles: out, more: true };
    out.push(s);
  }
  return { vehicles: out, more: false };
}
