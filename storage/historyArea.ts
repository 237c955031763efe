// Vehicles that were in an area during a past window, from stored positions. FerretDB has no
// geo index, so each position carries a coarse cell key (storage/cellGrid.ts) indexed with its
// time: the query reads the positions of the cells under the area's bounding box (one key range
// per row of cells), then tests each exactly against the shape in the history pool. Bounded: the
// box (2° x 2°), the window (7 days), the candidates read and the vehicles found.
import type { Db, Document } from 'mongodb';
import { boxCellRanges } from './cellGrid.js';
import type { HistoryPool } from './historyPool.js';
import {
  DAY_MS,
  decodeCursor,
  encodeCursor,
  pageSize,
  ResultTooLarge,
  timeRange,
} from './historyQuery.js';
import { areaShape, boundingBox, type AreaShape, type Box } from './historyShapes.js';
import { COLLECTIONS } from './schema.js';

export const MAX_AREA_RANGE_MS = 7 * DAY_MS;
export const DEFAULT_AREA_PAGE = 1000;
export const MAX_AREA_PAGE = 10_000;
/** Candidate positions one query may read. */
export const MAX_AREA_CANDIDATES = 5_000_000;
/** Distinct vehicles one query may find (every page is cut from them). */
export const MAX_AREA_VEHICLES = 100_000;
/** Cells an area may cover to be read one equality find per cell (on FerretDB). */
export const MAX_CELL_QUERIES = 256;
/** Positions tested per pool task. */
const BATCH = 5000;

export interface AreaWindowQuery {
  shape: AreaShape;
  fromMs: number;
  toMs: number;
}

export interface AreaRequestFields {
  area?: unknown;
  fromUnixMs?: unknown;
  toUnixMs?: unknown;
}

export function areaWindowQuery(req: AreaRequestFields): AreaWindowQuery {
  const shape = areaShape(req.area);
  return { shape, ...timeRange(req.fromUnixMs, req.toUnixMs, MAX_AREA_RANGE_MS) };
}

export interface VehicleInArea {
  vehicleId: string;
  firstInside: number;
  lastInside: number;
  pointsInside: number;
}

export interface AreaWindowPage {
  vehicles: VehicleInArea[];
  nextPageToken: string;
  totalVehicles: number;
}

export interface AreaWindowLimits {
  maxCandidates?: number;
  maxVehicles?: number;
  /** One find per cell (true) or one `$or` of ranges (false); default: per cell on FerretDB. */
  perCell?: boolean;
  /** Cells an area may have to be read cell by cell (default MAX_CELL_QUERIES). */
  maxCellQueries?: number;
}

export class AreaWindowReader {
  constructor(
    private readonly db: Db,
    private readonly pool: HistoryPool,
    private readonly limits: AreaWindowLimits = {},
  ) {}

  /** Every vehicle inside the shape during the window, by vehicle id. */
  async vehicles(q: AreaWindowQuery): Promise<VehicleInArea[]> {
    const maxCandidates = this.limits.maxCandidates ?? MAX_AREA_CANDIDATES;
    const maxVehicles = this.limits.maxVehicles ?? MAX_AREA_VEHICLES;
    const box = boundingBox(q.shape);
    const filters = await this.filters(box, q);
    const found = new Map<string, VehicleInArea>();
    let candidates = 0;
    const test = async (batch: Document[]): Promise<void> => {
      const lat = new Float64Array(batch.length);
      const lon = new Float64Array(batch.length);
      batch.forEach((d, i) => {
        lat[i] = Number(d.latitude);
        lon[i] = Number(d.longitude);
      });
      const inside = await this.pool.inside(lat, lon, q.shape);
      batch.forEach((d, i) => {
        if (!inside[i]) return;
        const id = String(d.vehicleId);
        const t = (d.time as Date).getTime();
        const v = found.get(id);
        if (v) {
          v.firstInside = Math.min(v.firstInside, t);
          v.lastInside = Math.max(v.lastInside, t);
          v.pointsInside++;
        } else {
          if (found.size === maxVehicles)
            throw new ResultTooLarge(
              `more than ${maxVehicles} vehicles in the area: narrow the area or the window`,
            );
          found.set(id, { vehicleId: id, firstInside: t, lastInside: t, pointsInside: 1 });
        }
      });
    };
    let batch: Document[] = [];
    // One batch in the pool while the next is read.
    let testing: Promise<void> = Promise.resolve();
    for (const filter of filters) {
      const cursor = this.db.collection(COLLECTIONS.positions).find(filter, {
        projection: { _id: 0, vehicleId: 1, time: 1, latitude: 1, longitude: 1 },
        batchSize: BATCH,
      });
      try {
        for await (const d of cursor) {
          if (++candidates > maxCandidates)
            throw new ResultTooLarge(
              `more than ${maxCandidates} stored positions under the area: narrow the area or the window`,
            );
          batch.push(d);
          if (batch.length === BATCH) {
            await testing;
            testing = test(batch);
            // Awaited before the next batch or at the end; never left unhandled if reading fails first.
            testing.catch(() => undefined);
            batch = [];
          }
        }
      } finally {
        await cursor.close();
      }
    }
    await testing;
    if (batch.length > 0) await test(batch);
    return [...found.values()].sort((a, b) => (a.vehicleId < b.vehicleId ? -1 : 1));
  }

  /**
   * The finds that read the candidates. Portable: one `$or` of a key range per row of cells,
   * time in every branch so MongoDB bounds each on the (cell, time) index. FerretDB pushes only
   * equality down to its backend and evaluates ranges, `$in` and `$or` itself, document by
   * document over the whole collection (a one-hour area over 95 000 positions: 11-21 s), so on
   * FerretDB an area of at most `maxCellQueries` cells is read as one equality find per cell
   * (the same area: 1.4-2 s).
   */
  private async filters(box: Box, q: AreaWindowQuery): Promise<Document[]> {
    const time = { $gte: new Date(q.fromMs), $lt: new Date(q.toMs) };
    const ranges = boxCellRanges(
      box.minLatitude,
      box.minLongitude,
      box.maxLatitude,
      box.maxLongitude,
    );
    const cells = ranges.reduce((n, r) => n + r.to - r.from + 1, 0);
    const perCell = this.limits.perCell ?? (await this.isFerretDb());
    if (perCell && cells <= (this.limits.maxCellQueries ?? MAX_CELL_QUERIES))
      return ranges.flatMap((r) =>
        Array.from({ length: r.to - r.from + 1 }, (_, i) => ({ cell: r.from + i, time })),
      );
    return [{ $or: ranges.map((r) => ({ cell: { $gte: r.from, $lte: r.to }, time })) }];
  }

  private ferretDb: Promise<boolean> | undefined;

  /** Whether the server is FerretDB (its buildInfo says so); asked once. */
  private isFerretDb(): Promise<boolean> {
    this.ferretDb ??= this.db.command({ buildInfo: 1 }).then(
      (info) => 'ferretdbVersion' in info,
      () => false,
    );
    return this.ferretDb;
  }

  /** One page of the vehicles, after the token's vehicle. */
  async page(q: AreaWindowQuery, size: number, token: unknown): Promise<AreaWindowPage> {
    const after = decodeCursor(token)?.id;
    const all = await this.vehicles(q);
    let start = 0;
    if (after !== undefined) while (start < all.length && all[start]!.vehicleId <= after) start++;
    const vehicles = all.slice(start, start + size);
    const last = vehicles[vehicles.length - 1];
    return {
      vehicles,
      nextPageToken:
        start + size < all.length && last ? encodeCursor({ time: 0, id: last.vehicleId }) : '',
      totalVehicles: all.length,
    };
  }
}

/** Checks a page size of an area request. */
export function areaPageSize(raw: unknown): number {
  return pageSize(raw, DEFAULT_AREA_PAGE, MAX_AREA_PAGE);
}
