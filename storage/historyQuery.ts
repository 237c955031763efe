// What every history query shares: its two refusals (a bad request, an answer past its bound),
// time ranges and opaque page tokens. Pure: no I/O.
import { vehicleIdOf } from '../jt808/header.js';

/** The request itself is wrong (range, shape, field, page token): the message says what. */
export class InvalidQuery extends Error {
  override name = 'InvalidQuery';
}

/** The answer would pass its bound: the caller must narrow the query. */
export class ResultTooLarge extends Error {
  override name = 'ResultTooLarge';
}

export const DAY_MS = 86_400_000;

export interface TimeRange {
  fromMs: number;
  toMs: number;
}

/** A half-open [from, to) range of Unix ms, at most `maxMs` long. */
export function timeRange(from: unknown, to: unknown, maxMs: number): TimeRange {
  const fromMs = Number(from);
  const toMs = Number(to);
  if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs < 0)
    throw new InvalidQuery('from_unix_ms and to_unix_ms must be Unix milliseconds (>= 0)');
  if (toMs <= fromMs)
    throw new InvalidQuery(`to_unix_ms (${toMs}) must be after from_unix_ms (${fromMs})`);
  if (toMs - fromMs > maxMs)
    throw new InvalidQuery(
      `the range is ${formatDuration(toMs - fromMs)}, at most ${formatDuration(maxMs)}`,
    );
  return { fromMs, toMs };
}

function formatDuration(ms: number): string {
  if (ms % DAY_MS === 0) return `${ms / DAY_MS} days`;
  return ms >= DAY_MS ? `${(ms / DAY_MS).toFixed(2)} days` : `${(ms / 3_600_000).toFixed(2)} hours`;
}

/** A page or chunk size: `fallback` when 0 or absent, refused past `max`. */
export function pageSize(raw: unknown, fallback: number, max: number): number {
  const n = raw === undefined || raw === null ? 0 : Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidQuery('page_size must be a whole number');
  if (n > max) throw new InvalidQuery(`page_size ${n} is over the limit of ${max}`);
  return n === 0 ? fallback : n;
}

/** Where the next page starts: after (time, id), or at `time` when there is no id. */
export interface PageCursor {
  time: number;
  id?: string;
}

export function encodeCursor(c: PageCursor): string {
  return Buffer.from(JSON.stringify(c.id === undefined ? [c.time] : [c.time, c.id])).toString(
    'base64url',
  );
}

/** The cursor of a token this service handed out (undefined for ''); refuses anything else. */
export function decodeCursor(token: unknown): PageCursor | undefined {
  if (token === undefined || token === null || token === '') return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(String(token), 'base64url').toString('utf8'));
    if (Array.isArray(v) && Number.isSafeInteger(v[0])) {
      if (v.length === 1) return { time: v[0] as number };
      if (v.length === 2 && typeof v[1] === 'string') return { time: v[0] as number, id: v[1] };
    }
  } catch {
    // fall through to the refusal
  }
  throw new InvalidQuery('page_token is not one this service handed out');
}

/** A vehicle id as the store keeps it: 1 to 20 digits, leading zeros dropped (as vehicleIdOf). */
export function storedVehicleId(raw: unknown): string {
  const id = typeof raw === 'string' ? raw : '';
  if (!/^\d{1,20}$/.test(id)) throw new InvalidQuery(`vehicle id '${id}' must be 1 to 20 digits`);
  return vehicleIdOf(id);
}
