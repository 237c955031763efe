// A small deterministic fuzzer for the codec: mutates valid frames (bit flips, inserted 0x7D /
// 0x7E, truncation, lying lengths, recomputed check codes so bodies get parsed) and feeds them
// through the framer, the decoder in both modes, the body decoders and the reassembler.
// Used by the bounded test and by `npm run fuzz`.
import { decodeBody, decodeFrame, type RejectReason } from '../../jt808/codec.js';
import { FrameSplitter, checkCode, frameBytes, unescapeFrame } from '../../jt808/framing.js';
import { MESSAGES } from '../../jt808/messages.js';
import { SubpackageReassembler } from '../../jt808/reassembly.js';

export class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  next(): number {
    // xorshift32
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)] as T;
  }
}

export interface FuzzStats {
  frames: number;
  accepted: number;
  rejected: Partial<Record<RejectReason, number>>;
  bodies: number;
  maxSplitterBuffered: number;
  maxReassemblyBytes: number;
}

const KNOWN_IDS = Object.values(MESSAGES).map((m) => m.id);

function mutate(rng: Rng, seed: Uint8Array): Uint8Array {
  const un = unescapeFrame(seed.subarray(1, seed.length - 1), true);
  let b = Array.from(un.ok ? un.bytes.subarray(0, -1) : seed);
  const ops = 1 + rng.int(4);
  for (let i = 0; i < ops; i++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (rng.int(9)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        b.splice(at, 0, rng.pick([0x7e, 0x7d, 0x00, 0xff]));
        break;
      case 2:
        b.splice(at, 1 + rng.int(8));
        break;
      case 3:
        b = b.slice(0, at);
        break;
      case 4:
        b.splice(at, 0, ...b.slice(rng.int(Math.max(1, b.length)), rng.int(Math.max(1, b.length))));
        break;
      case 5: // lie about the body length, keep the flags
        if (b.length > 3) {
          b[2] = (b[2]! & 0xfc) | rng.int(4);
          b[3] = rng.int(256);
        }
        break;
      case 6: // toggle sub-package / version bits
        if (b.length > 3) b[2] = b[2]! ^ rng.pick([0x20, 0x40, 0x04]);
        break;
      case 7: // another message id over the same body
        if (b.length > 2) {
          const id = rng.pick(KNOWN_IDS);
          b[0] = id >> 8;
          b[1] = id & 0xff;
        }
        break;
      default:
        for (let k = 0; k < 1 + rng.int(16); k++) b.splice(rng.int(b.length + 1), 0, rng.int(256));
    }
  }
  const raw = Uint8Array.from(b);
  // Mostly give it a valid check code, so the decoder gets past it and into the body.
  if (rng.int(4) !== 0) return frameBytes(raw);
  return Uint8Array.from([0x7e, ...raw, checkCode(raw) ^ 1, 0x7e]);
}

/** Runs `iterations` mutated frames; throws only if the code under test throws. */
export function fuzz(seeds: Uint8Array[], iterations: number, seed = 1): FuzzStats {
  const rng = new Rng(seed);
  const stats: FuzzStats = {
    frames: 0,
    accepted: 0,
    rejected: {},
    bodies: 0,
    maxSplitterBuffered: 0,
    maxReassemblyBytes: 0,
  };
  const splitter = new FrameSplitter(512);
  const reassembler = new SubpackageReassembler({
    maxTotalBytes: 64 * 1024,
    maxSetsPerTerminal: 2,
  });
  const onFrame = (frame: Uint8Array): void => {
    stats.frames++;
    for (const lenient of [false, true]) {
      const r = decodeFrame(frame, { lenient, edition: rng.pick([2011, 2013, 2019] as const) });
      if (!r.ok) {
        stats.rejected[r.reason] = (stats.rejected[r.reason] ?? 0) + 1;
        continue;
      }
      stats.accepted++;
      if (r.header.packageTotal !== undefined && r.header.packageIndex !== undefined) {
        const res = reassembler.add(
          { ...r.header, packageTotal: r.header.packageTotal, packageIndex: r.header.packageIndex },
          r.body,
          stats.frames,
        );
        if (res.status === 'complete') decodeBody(r.header.messageId, res.body, r.edition);
        stats.maxReassemblyBytes = Math.max(stats.maxReassemblyBytes, reassembler.bytesHeld);
      }
    }
  };
  for (let i = 0; i < iterations; i++) {
    const input =
      rng.int(10) === 0
        ? Uint8Array.from({ length: rng.int(600) }, () => rng.int(256))
        : mutate(rng, rng.pick(seeds));
    // Random TCP chunking.
    let at = 0;
    while (at < input.length) {
      const n = 1 + rng.int(64);
      splitter.push(input.subarray(at, at + n), onFrame);
      stats.maxSplitterBuffered = Math.max(stats.maxSplitterBuffered, splitter.buffered);
      at += n;
    }
    // Bodies of known ids straight from random bytes, every edition.
    const body = Uint8Array.from({ length: rng.int(80) }, () => rng.int(256));
    decodeBody(rng.pick(KNOWN_IDS), body, rng.pick([2011, 2013, 2019] as const));
    stats.bodies++;
    if (i % 1000 === 0) reassembler.expire(stats.frames + 1_000_000);
  }
  return stats;
}
