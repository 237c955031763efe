// Message header of every edition: 2011/2013 (12 bytes, 16 with sub-package fields) and 2019
// (17/21 bytes: protocol version byte, 10-byte BCD phone). Pure code.
import { bcdString, Writer } from './bytes.js';

export type Edition = 2011 | 2013 | 2019;

export interface Header {
  messageId: number;
  bodyLength: number;
  /** Body attribute bits 10–12: 0 plain, 1 RSA, others reserved. */
  encryption: number;
  /** Header layout: 2013 (also 2011, same header) or 2019. */
  headerEdition: 2013 | 2019;
  /** Body attribute bit 14 as sent (may disagree with the layout on some devices). */
  versionFlag: boolean;
  /** 2019 protocol version byte. */
  protocolVersion?: number;
  /** BCD digits, leading zeros kept: 12 (2013) or 20 (2019). */
  phone: string;
  serial: number;
  packageTotal?: number;
  packageIndex?: number;
}

export type HeaderResult =
  | { ok: true; header: Header; headerLength: number; warnings: string[] | undefined }
  | {
      ok: false;
      reason: 'header-too-short' | 'body-length-mismatch';
      detail: string;
      header?: Header;
    };

/**
 * Parses the header of an unescaped frame whose last byte is the check code. The layout is
 * chosen by bit 14 and confirmed by the frame length: devices that set bit 14 with a 2013
 * header, or send a 2019 header without it, are read by the layout the length proves and
 * reported in `warnings`. With `lenient`, a body longer than declared is cut to the declared
 * length (a warning), and a shorter one is taken as it is (a warning).
 */
export function parseHeader(
  b: Uint8Array,
  lenient = false,
  start = 0,
  end = b.length,
): HeaderResult {
  let warnings: string[] | undefined;
  const s = start;
  const total = end - start - 1; // without the check code
  if (total < 12)
    return {
      ok: false,
      reason: 'header-too-short',
      detail: `${total} bytes before the check code, a header needs 12`,
    };
  const messageId = (b[s]! << 8) | b[s + 1]!;
  const attrs = (b[s + 2]! << 8) | b[s + 3]!;
  const bodyLength = attrs & 0x3ff;
  const encryption = (attrs >> 10) & 0x7;
  const sub = (attrs & 0x2000) !== 0;
  const versionFlag = (attrs & 0x4000) !== 0;
  const extra = sub ? 4 : 0;
  const fits = (len: number): boolean => len + extra + bodyLength === total;

  let edition: 2013 | 2019 = versionFlag ? 2019 : 2013;
  if (!fits(edition === 2019 ? 17 : 12)) {
    const other: 2013 | 2019 = edition === 2019 ? 2013 : 2019;
    if (fits(other === 2019 ? 17 : 12)) {
      (warnings ??= []).push(
        versionFlag ? 'version-flag-with-2013-header' : '2019-header-without-version-flag',
      );
      edition = other;
    }
  }
  const headerLength = (edition === 2019 ? 17 : 12) + extra;
  if (total < headerLength) {
    return {
      ok: false,
      reason: 'header-too-short',
      detail: `${total} bytes before the check code, this header needs ${headerLength}`,
    };
  }
  const header: Header = {
    messageId,
    bodyLength,
    encryption,
    headerEdition: edition,
    versionFlag,
    protocolVersion: undefined,
    phone: '',
    serial: 0,
    packageTotal: undefined,
    packageIndex: undefined,
  };
  let p: number;
  if (edition === 2019) {
    header.protocolVersion = b[s + 4]!;
    header.phone = bcdString(b, s + 5, s + 15);
    p = s + 15;
  } else {
    header.phone = phone2013(b, s);
    p = s + 10;
  }
  header.serial = (b[p]! << 8) | b[p + 1]!;
  if (sub) {
    header.packageTotal = (b[p + 2]! << 8) | b[p + 3]!;
    header.packageIndex = (b[p + 4]! << 8) | b[p + 5]!;
  }
  const actual = total - headerLength;
  if (actual !== bodyLength) {
    const detail = `body length ${bodyLength} declared, ${actual} present`;
    if (!lenient) return { ok: false, reason: 'body-length-mismatch', detail, header };
    (warnings ??= []).push(
      actual > bodyLength ? 'body-longer-than-declared' : 'body-shorter-than-declared',
    );
  }
  return { ok: true, header, headerLength, warnings };
}

// The same few hundred thousand terminals send every frame: remember their phone strings by the
// 48-bit number their six BCD bytes make (bounded: cleared when full).
const PHONE_CACHE_LIMIT = 1 << 18;
const phoneCache = new Map<number, string>();

/** The phone of a 2013 header starting at `h`. */
function phone2013(b: Uint8Array, h: number): string {
  const key =
    (((b[h + 4]! << 8) | b[h + 5]!) >>> 0) * 0x100000000 +
    (((b[h + 6]! << 24) | (b[h + 7]! << 16) | (b[h + 8]! << 8) | b[h + 9]!) >>> 0);
  let s = phoneCache.get(key);
  if (s === undefined) {
    if (phoneCache.size >= PHONE_CACHE_LIMIT) phoneCache.clear();
    s = bcdString(b, h + 4, h + 10);
    phoneCache.set(key, s);
  }
  return s;
}

// The reverse, for every frame the platform sends: a phone's BCD bytes by its digits (bounded).
const phoneBytesCache = [new Map<string, Uint8Array>(), new Map<string, Uint8Array>()];

function phoneBcd(phone: string, n: 6 | 10): Uint8Array {
  const cache = phoneBytesCache[n === 6 ? 0 : 1]!;
  let bytes = cache.get(phone);
  if (bytes === undefined) {
    bytes = new Writer(n).bcd(phone, n).finish(); // throws on anything but digits
    if (cache.size >= PHONE_CACHE_LIMIT) cache.clear();
    cache.set(phone, bytes);
  }
  return bytes;
}

/**
 * A terminal's phone → the platform's vehicle id: leading zeros dropped, so a terminal's 12-digit
 * (2011/2013) and 20-digit (2019) forms name the same vehicle.
 */
export function vehicleIdOf(phone: string): string {
  const s = phone.replace(/^0+/, '');
  return s === '' ? '0' : s;
}

export interface HeaderFields {
  messageId: number;
  phone: string;
  serial: number;
  edition: Edition;
  /** 2019 protocol version byte; default 1. */
  protocolVersion?: number;
  encryption?: number;
  packageTotal?: number;
  packageIndex?: number;
}

export const MAX_BODY_LENGTH = 1023;

/** Writes a header for a body of `bodyLength` bytes. */
export function writeHeader(
  w: Writer,
  h: Omit<HeaderFields, 'messageId'>,
  bodyLength: number,
  messageId: number,
): void {
  if (bodyLength > MAX_BODY_LENGTH)
    throw new RangeError(`body of ${bodyLength} bytes exceeds ${MAX_BODY_LENGTH}: split it`);
  const sub = h.packageTotal !== undefined;
  let attrs = bodyLength | ((h.encryption ?? 0) << 10);
  if (sub) attrs |= 0x2000;
  if (h.edition === 2019) attrs |= 0x4000;
  w.u16(messageId).u16(attrs);
  if (h.edition === 2019) {
    w.u8(h.protocolVersion ?? 1).bytes(phoneBcd(h.phone, 10));
  } else {
    w.bytes(phoneBcd(h.phone, 6));
  }
  w.u16(h.serial);
  if (sub) w.u16(h.packageTotal as number).u16(h.packageIndex as number);
}
