// BCD[6] times (YYMMDDhhmmss) of the location block, 0x0702 and 0x8004: arithmetic both ways,
// no Date on the decode path. Pure code.

const bcdOk = (x: number): boolean => x >> 4 < 10 && (x & 15) < 10;
const bcdVal = (x: number): number => (x >> 4) * 10 + (x & 15);

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/**
 * BCD[6] YYMMDDhhmmss → ms since the epoch, or null when it is not a valid time. The standard's
 * times are GMT+8 (`offsetHours` 8); 2019's 0x8004 is UTC (0). Arithmetic only: a Date per
 * report costs more than the rest of the report.
 */
export function readBcdTime(b: Uint8Array, p: number, offsetHours = 8): number | null {
  const y0 = b[p]!;
  const m0 = b[p + 1]!;
  const d0 = b[p + 2]!;
  const h0 = b[p + 3]!;
  const i0 = b[p + 4]!;
  const s0 = b[p + 5]!;
  // A nibble above 9 needs bit 3 set: test all twelve at once, look closer only then.
  if (((y0 | m0 | d0 | h0 | i0 | s0) & 0x88) !== 0) {
    for (let i = 0; i < 6; i++) if (!bcdOk(b[p + i]!)) return null;
  }
  const yy = bcdVal(y0);
  const mo = bcdVal(m0);
  const dd = bcdVal(d0);
  const hh = bcdVal(h0);
  const mi = bcdVal(i0);
  const ss = bcdVal(s0);
  if (mo < 1 || mo > 12 || dd < 1 || dd > DAYS_IN_MONTH[mo - 1]! || hh > 23 || mi > 59 || ss > 59)
    return null;
  if (mo === 2 && dd === 29 && yy % 4 !== 0) return null;
  // 2000-01-01 is day 10957; every fourth year from 2000 is a leap year up to 2099.
  const days =
    10957 +
    yy * 365 +
    ((yy + 3) >> 2) +
    DAYS_BEFORE_MONTH[mo - 1]! +
    (mo > 2 && yy % 4 === 0 ? 1 : 0) +
    dd -
    1;
  return ((days * 24 + hh - offsetHours) * 60 + mi) * 60_000 + ss * 1000;
}

/** ms since the epoch → BCD[6] digits in GMT+8 (or another offset). */
export function timeDigits(ms: number, offsetHours = 8): string {
  const d = new Date(ms + offsetHours * 3600_000);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    two(d.getUTCFullYear() % 100) +
    two(d.getUTCMonth() + 1) +
    two(d.getUTCDate()) +
    two(d.getUTCHours()) +
    two(d.getUTCMinutes()) +
    two(d.getUTCSeconds())
  );
}
