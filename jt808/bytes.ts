// Big-endian byte reading and writing with the JT/T 808 data types (BYTE, WORD, DWORD, BCD[n],
// GBK STRING). A read past the end throws Truncated, which the frame decoder turns into a
// rejection reason; nothing here knows about frames.
import iconv from 'iconv-lite';

export class Truncated extends Error {
  constructor(
    readonly needed: number,
    readonly available: number,
  ) {
    super(`needed ${needed} more byte(s), ${available} left`);
  }
}

const gbkDecoder = new TextDecoder('gbk');

export function decodeGbk(bytes: Uint8Array): string {
  // ASCII fast path: most fields (auth codes, models, ids) are plain ASCII.
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  return gbkDecoder.decode(bytes);
}

export function encodeGbk(text: string): Uint8Array {
  return iconv.encode(text, 'gbk');
}

/** Strips 0x00 padding on both sides (2013 pads at the end, 2019's text says at the front). */
export function trimZeros(bytes: Uint8Array): Uint8Array {
  let a = 0;
  let b = bytes.length;
  while (a < b && bytes[a] === 0) a++;
  while (b > a && bytes[b - 1] === 0) b--;
  return bytes.subarray(a, b);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw new Truncated(n, this.end - this.pos);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  rest(): Uint8Array {
    return this.bytes(this.end - this.pos);
  }

  /** BCD[n] as its decimal digits, leading zeros kept. */
  bcd(n: number): string {
    return bcdString(this.bytes(n));
  }

  /** Fixed-size GBK STRING, 0x00 padding removed. */
  gbk(n: number): string {
    return decodeGbk(trimZeros(this.bytes(n)));
  }
}

const HEX_DIGITS = '0123456789abcdef';

/** BCD digits of bytes[start, end) (hex nibbles above 9 are kept as a–f, losslessly). */
export function bcdString(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const codes: number[] = [];
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    codes.push(NIBBLE_CODES[b >> 4]!, NIBBLE_CODES[b & 15]!);
  }
  // One flat string (not a rope of 2-character pieces): phones become map keys at once.
  return String.fromCharCode.apply(null, codes);
}

const NIBBLE_CODES = Array.from(HEX_DIGITS, (c) => c.charCodeAt(0));

/** The value of digit `i` of a BCD string (0 before its start); hex digits are accepted. */
function nibble(s: string, i: number): number {
  if (i < 0) return 0;
  const c = s.charCodeAt(i);
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  throw new RangeError(`not BCD digits: ${s}`);
}

export class Writer {
  private buf: Uint8Array;
  pos = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf[this.pos++] = (v >>> 24) & 0xff;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Fixed-size field: truncated when longer, 0x00-padded at the end when shorter. */
  fixed(b: Uint8Array, n: number): this {
    this.ensure(n);
    const len = Math.min(b.length, n);
    this.buf.set(b.subarray(0, len), this.pos);
    this.buf.fill(0, this.pos + len, this.pos + n);
    this.pos += n;
    return this;
  }

  /** BCD[n] from decimal digits, left-padded with zeros. */
  bcd(digits: string, n: number): this {
    // Right-aligned: missing leading digits are zeros, extra leading digits are cut.
    this.ensure(n);
    const len = digits.length;
    for (let i = 0; i < n; i++) {
      const hi = len - 2 * (n - i);
      this.buf[this.pos++] = (nibble(digits, hi) << 4) | nibble(digits, hi + 1);
    }
    return this;
  }

  gbk(text: string, n?: number): this {
    const b = encodeGbk(text);
    return n === undefined ? this.bytes(b) : this.fixed(b, n);
  }

  /** Overwrites a BYTE already written (lengths known only later). */
  patchU8(at: number, v: number): void {
    this.buf[at] = v & 0xff;
  }

  /** Overwrites a WORD already written (lengths known only later). */
  patchU16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /**
   * The buffer written so far, without a copy: bytes [0, pos) are the content (valid until the
   * next write). For framing, which copies anyway: a subarray costs more than a small frame.
   */
  get written(): Uint8Array {
    return this.buf;
  }

  /** Leaves `n` bytes to be written later (a header whose length field follows the body). */
  skip(n: number): this {
    this.ensure(n);
    this.pos += n;
    return this;
  }
}
