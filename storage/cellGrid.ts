// A coarse spatial cell on every stored position. FerretDB has no geo index, so a past-window
// area query narrows the positions by an ordinary compound index on (cell, time), which both
// FerretDB and MongoDB build, and then tests each candidate exactly. Pure: no I/O.

/** Cell edge in degrees: 0.01° is about 1.1 km north-south. */
export const CELL_DEGREES = 0.01;
const PER_DEGREE = 100; // 1 / CELL_DEGREES, kept exact for the arithmetic below
const ROWS = 180 * PER_DEGREE;
const COLUMNS = 360 * PER_DEGREE;

/** The cell's row (south to north); monotonic in latitude, so a bounding box maps to a row range. */
export function cellRow(latitude: number): number {
  return Math.min(ROWS - 1, Math.max(0, Math.floor((latitude + 90) * PER_DEGREE)));
}

/** The cell's column (west to east); monotonic in longitude. */
export function cellColumn(longitude: number): number {
  return Math.min(COLUMNS - 1, Math.max(0, Math.floor((longitude + 180) * PER_DEGREE)));
}

/**
 * The cell key stored on a position: row * 36 000 + column, an integer below 2^31. Cells of one
 * row are consecutive integers, so a box's cells are one key range per row.
 */
export function cellKey(latitude: number, longitude: number): number {
  return cellRow(latitude) * COLUMNS + cellColumn(longitude);
}

export interface CellRange {
  /** Inclusive bounds of consecutive cell keys (one row of a box). */
  from: number;
  to: number;
}

/** The cell keys covering a latitude/longitude box, as one key range per row. */
export function boxCellRanges(
  minLatitude: number,
  minLongitude: number,
  maxLatitude: number,
  maxLongitude: number,
): CellRange[] {
  const c0 = cellColumn(minLongitude);
  const c1 = cellColumn(maxLongitude);
  const out: CellRange[] = [];
  for (let r = cellRow(minLatitude); r <= cellRow(maxLatitude); r++)
    out.push({ from: r * COLUMNS + c0, to: r * COLUMNS + c1 });
  return out;
}
