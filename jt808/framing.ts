// Stream framing: TCP chunks in, escaped frame contents (the bytes between two 0x7E) out.
// Escaping (7D 01 → 7D, 7D 02 → 7E) and the XOR check code are here too. Pure code.

/** Largest legal frame: 21-byte 2019 sub-package header + 1023-byte body + check code, all escaped. */
export const MAX_LEGAL_FRAME_BYTES = (21 + 1023 + 1) * 2;

export interface FrameSplitterStats {
  frames: number;
  /** Bytes before the first delimiter, and any run dropped while skipping an oversize frame. */
  garbageBytes: number;
  oversizeFrames: number;
}

/**
 * Splits a byte stream at 0x7E. Every non-empty run between two delimiters is a frame
 * candidate (devices that share one 0x7E between frames work too); leading bytes before the
 * first delimiter are garbage. A run longer than `maxFrameBytes` is dropped and counted, and
 * framing resumes at the next 0x7E, so the buffer it holds never exceeds that limit.
 */
export class FrameSplitter {
  readonly stats: FrameSplitterStats = { frames: 0, garbageBytes: 0, oversizeFrames: 0 };
  /** Only while a frame spans chunks: an idle connection holds no buffer (memory per terminal). */
  private pending: Uint8Array | undefined;
  private pendingLen = 0;
  private synced = false; // seen a delimiter
  private skipping = false; // inside an oversize run

  constructor(readonly maxFrameBytes = MAX_LEGAL_FRAME_BYTES) {}

  /** Bytes held for a frame not yet closed. */
  get buffered(): number {
    return this.pendingLen;
  }

  /**
   * Feeds one chunk. `onFrame` gets each frame's escaped content: a view into `chunk` when the
   * frame lies inside it, else a copy of the splitter's own buffer, so a frame stays
   * valid as long as the chunk does.
   */
  push(chunk: Uint8Array, onFrame: (escaped: Uint8Array) => void): void {
    this.pushRanges(chunk, (bytes, start, end) =>
      onFrame(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end)),
    );
  }

  /**
   * Feeds one chunk; `onFrame` gets each frame's escaped content as bytes[start, end): `chunk`
   * itself when the frame lies inside it, else a copy of the splitter's own buffer. For the
   * gateway, where a view per frame would cost more than reading the frame's header.
   */
  pushRanges(
    chunk: Uint8Array,
    onFrame: (bytes: Uint8Array, start: number, end: number) => void,
  ): void {
    let start = 0;
    const n = chunk.length;
    while (start < n) {
      const idx = chunk.indexOf(0x7e, start);
      const end = idx < 0 ? n : idx;
      if (!this.synced) {
        this.stats.garbageBytes += end - start;
      } else if (this.skipping) {
        this.stats.garbageBytes += end - start;
      } else if (end > start) {
        const len = end - start;
        if (this.pendingLen + len > this.maxFrameBytes) {
          this.stats.oversizeFrames++;
          this.stats.garbageBytes += this.pendingLen + len;
          this.pendingLen = 0;
          this.pending = undefined;
          this.skipping = true;
        } else if (idx >= 0 && this.pendingLen === 0) {
          // Whole frame inside this chunk: no copy.
          this.stats.frames++;
          onFrame(chunk, start, end);
          start = end + 1;
          continue;
        } else {
          (this.pending ??= new Uint8Array(this.maxFrameBytes)).set(
            chunk.subarray(start, end),
            this.pendingLen,
          );
          this.pendingLen += len;
        }
      }
      if (idx < 0) break;
      // A delimiter: close what is pending, and open the next frame.
      if (this.pendingLen > 0 && this.pending) {
        this.stats.frames++;
        const frame = this.pending.slice(0, this.pendingLen);
        this.pendingLen = 0;
        this.pending = undefined;
        onFrame(frame, 0, frame.length);
      }
      this.synced = true;
      this.skipping = false;
      start = idx + 1;
    }
  }

  reset(): void {
    this.pendingLen = 0;
    this.pending = undefined;
    this.synced = false;
    this.skipping = false;
  }
}

export type UnescapeResult =
  | {
      ok: true;
      /** The frame is bytes[start, end): the input itself when it held no escape, else a copy. */
      bytes: Uint8Array;
      start: number;
      end: number;
      rawEscapes: number;
      /** XOR of every unescaped byte, check code included: 0 when it verifies. */ xor: number;
    }
  | { ok: false; at: number; byte: number };

/**
 * Reverses the escaping of escaped[start, end). Returns the input itself when it holds no 0x7D.
 * A 0x7D followed by anything but 01/02 is an error; in lenient mode it is kept as a literal
 * 0x7D (some devices send raw 0x7D) and counted in `rawEscapes`.
 */
export function unescapeFrame(
  escaped: Uint8Array,
  lenient = false,
  start = 0,
  end = escaped.length,
): UnescapeResult {
  // A plain loop: TypedArray#indexOf costs more than the scan on frames this small.
  // One pass finds the first 0x7D and computes the check code; frames rarely hold escapes.
  let i = start;
  let x = 0;
  for (; i < end; i++) {
    const b = escaped[i]!;
    if (b === 0x7d) break;
    x ^= b;
  }
  if (i === end) return { ok: true, bytes: escaped, start, end, rawEscapes: 0, xor: x };
  const out = new Uint8Array(end - start);
  for (let k = start; k < i; k++) out[k - start] = escaped[k]!;
  let o = i - start;
  let rawEscapes = 0;
  while (i < end) {
    let b = escaped[i]!;
    if (b !== 0x7d) {
      i++;
    } else {
      const next = i + 1 < end ? escaped[i + 1]! : -1;
      if (next === 0x01) {
        i += 2;
      } else if (next === 0x02) {
        b = 0x7e;
        i += 2;
      } else if (lenient) {
        rawEscapes++;
        i++;
      } else {
        return { ok: false, at: i - start, byte: next };
      }
    }
    out[o++] = b;
    x ^= b;
  }
  // Rare (escapes): the view costs little here, and `bytes` is then exactly the frame.
  return { ok: true, bytes: out.subarray(0, o), start: 0, end: o, rawEscapes, xor: x };
}

/** XOR of bytes [start, end). */
export function checkCode(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let x = 0;
  for (let i = start; i < end; i++) x ^= bytes[i]!;
  return x;
}

/** Escapes 0x7D and 0x7E (no delimiters, no check code). */
export function escapeBytes(raw: Uint8Array): Uint8Array {
  const framed = frameBytesWith(raw, raw.length, false);
  return framed.subarray(1, framed.length - 1);
}

/** Appends the check code to unescaped[0, length), escapes, and adds both delimiters. */
export function frameBytes(unescaped: Uint8Array, length = unescaped.length): Uint8Array {
  return frameBytesWith(unescaped, length, true);
}

function frameBytesWith(unescaped: Uint8Array, n: number, withCheckCode: boolean): Uint8Array {
  // Most frames have nothing to escape: copy and check in one pass into a frame of that size,
  // and start over with the escapes counted only when one turns up.
  let out = new Uint8Array(n + (withCheckCode ? 3 : 2));
  let cc = 0;
  let i = 0;
  for (; i < n; i++) {
    const b = unescaped[i]!;
    if (b === 0x7e || b === 0x7d) break;
    cc ^= b;
    out[i + 1] = b;
  }
  let extra = 0;
  if (i < n) {
    for (let k = i; k < n; k++) {
      const b = unescaped[k]!;
      cc ^= b;
      if (b === 0x7e || b === 0x7d) extra++;
    }
  }
  const ccEscaped = withCheckCode && (cc === 0x7e || cc === 0x7d);
  if (extra > 0 || ccEscaped) {
    const bigger = new Uint8Array(out.length + extra + (ccEscaped ? 1 : 0));
    for (let k = 1; k <= i; k++) bigger[k] = out[k]!;
    out = bigger;
  }
  let o = i + 1;
  for (; i < n; i++) {
    const b = unescaped[i]!;
    if (b === 0x7e || b === 0x7d) {
      out[o++] = 0x7d;
      out[o++] = b === 0x7e ? 0x02 : 0x01;
    } else {
      out[o++] = b;
    }
  }
  if (withCheckCode) {
    if (ccEscaped) {
      out[o++] = 0x7d;
      out[o++] = cc === 0x7e ? 0x02 : 0x01;
    } else {
      out[o++] = cc;
    }
  }
  out[0] = 0x7e;
  out[o] = 0x7e;
  return out;
}
