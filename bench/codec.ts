// Codec benchmark: frames/s on one core and hdr ns/op for decoding a 0x0200 with the usual
// items, a 10-item 0x0704, a 0x0100, and encoding a 0x8001 — each beside a minimal
// hand-written decoder of the 0x0200 basic block run in the same process, as the limit.
//   npm run bench -- codec [--seconds S]
import { decodeFrame, decodeFrameIn, encodeFrame } from '../jt808/codec.js';
import { FrameBatchBuilder } from '../hosting/frameBatch.js';
import { FrameSplitter, unescapeFrame } from '../jt808/framing.js';
import { readItemByItem, readLocation, type LocationReport } from '../jt808/location.js';
import {
  MEASUREMENT_COLUMNS,
  keep,
  sideBySide,
  sideBySideRow,
  sinkValue,
  type Operation,
  type SideBySide,
} from './harness.js';
import type { BenchContext } from './report.js';

const phone = '013912345678';

function location(i: number): LocationReport {
  return {
    alarm: 0,
    status: 0x000c0003,
    latitude: 31.230416 + i * 1e-5,
    longitude: 121.473701 + i * 1e-5,
    altitude: 12,
    speed: 63.5,
    direction: 271,
    time: Date.UTC(2026, 10, 22, 1, 2, i % 60),
    mileageKm: 12345.6,
    fuelL: 41.2,
    vehicleSignal: 3,
    ioStatus: 0,
    analog: { ad0: 12, ad1: 0 },
    signal: 23,
    satellites: 14,
  };
}

const content = (frame: Uint8Array): Uint8Array => frame.subarray(1, frame.length - 1);

const frames0200 = Array.from({ length: 64 }, (_, i) =>
  content(
    encodeFrame({ type: 'LocationReport', body: location(i) }, { phone, serial: i, edition: 2013 }),
  ),
);
const frame0704 = content(
  encodeFrame(
    {
      type: 'LocationBatch',
      body: { batchType: 1, items: Array.from({ length: 10 }, (_, i) => location(i)) },
    },
    { phone, serial: 9, edition: 2013 },
  ),
);
const frame0100 = content(
  encodeFrame(
    {
      type: 'Register',
      body: {
        province: 31,
        city: 100,
        maker: '70107',
        model: 'HB-R03GBD',
        terminalId: '2366104',
        plateColor: 2,
        plate: '沪A12345',
      },
    },
    { phone, serial: 1, edition: 2013 },
  ),
);

/** The limit: read a 2013 frame's 0x0200 basic block, nothing else (no unescape, no checks). */
function minimalBasicBlock(b: Uint8Array): {
  alarm: number;
  status: number;
  lat: number;
  lon: number;
  alt: number;
  speed: number;
  dir: number;
  time: number;
} {
  const p = 12;
  const u32 = (o: number): number =>
    ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  const u16 = (o: number): number => (b[o]! << 8) | b[o + 1]!;
  const bcd = (o: number): number => (b[o]! >> 4) * 10 + (b[o]! & 15);
  return {
    alarm: u32(p),
    status: u32(p + 4),
    lat: u32(p + 8) / 1e6,
    lon: u32(p + 12) / 1e6,
    alt: u16(p + 16),
    speed: u16(p + 18) / 10,
    dir: u16(p + 20),
    time: Date.UTC(
      2000 + bcd(p + 22),
      bcd(p + 23) - 1,
      bcd(p + 24),
      bcd(p + 25) - 8,
      bcd(p + 26),
      bcd(p + 27),
    ),
  };
}

// The unescaped frames, for the rows that decode a body alone.
const unescaped0200 = frames0200.map((f) => {
  const u = unescapeFrame(f);
  if (!u.ok) throw new Error('bench frame does not unescape');
  return u.bytes;
});

// The minimal decoder cannot unescape: give it frames without escapes.
const plainFrames = frames0200.filter((f) => !f.includes(0x7d));

const baseline: Operation = {
  name: 'limit: minimal 0x0200 basic-block reader',
  run: (i) => keep(minimalBasicBlock(plainFrames[i % plainFrames.length]!)).dir,
};

const batch = new FrameBatchBuilder();

const ops: Operation[] = [
  {
    name: 'decode 0x0200 (frame: unescape, check, header, items)',
    run: (i) => {
      const r = keep(decodeFrame(frames0200[i & 63]!));
      return r.ok ? r.header.serial : -1;
    },
  },
  {
    // What every correct decoder adds to the minimal reader: find escapes, XOR every byte.
    name: 'verification alone: 0x7D scan and XOR check code',
    run: (i) => (keep(unescapeFrame(frames0200[i & 63]!)).ok ? 1 : 0),
  },
  {
    // The least a correct decoder does: the two above together (the full decode's fair limit).
    name: 'minimal reader with verification (unescape, check code, basic block)',
    run: (i) => {
      const u = unescapeFrame(frames0200[i & 63]!);
      return u.ok && u.xor === 0 ? keep(minimalBasicBlock(u.bytes)).dir : -1;
    },
  },
  {
    // The body alone, as a vehicle worker decodes it (the layout compiled after its first report).
    name: 'location body 0x0200 with 7 items',
    run: (i) => {
      const f = unescaped0200[i & 63]!;
      return keep(readLocation(f, 12, f.length - 1)).direction;
    },
  },
  {
    // The first report of a layout, and layouts past the compiled-layout limit.
    name: 'location body 0x0200 with 7 items, item by item',
    run: (i) => {
      const f = unescaped0200[i & 63]!;
      return keep(readItemByItem(f, 12, f.length - 1)).direction;
    },
  },
  {
    // What the gateway thread does per frame when bodies are decoded in the vehicle workers.
    name: 'gateway path 0x0200: unescape, check, header (body to a worker)',
    run: (i) => {
      const r = keep(decodeFrame(frames0200[i & 63]!, { skipBody: true }));
      return r.ok ? r.header.serial : -1;
    },
  },
  {
    // The same, with the frame's record written into the batch for its worker (body copied).
    name: 'gateway path 0x0200 into a worker batch record',
    run: (i) => {
      const f = frames0200[i & 63]!;
      const r = decodeFrameIn(f, 0, f.length, { skipBody: true });
      if (!r.ok) return -1;
      batch.uplink(1, 0, r.header, r.edition, r.body);
      if (batch.count === 1024) keep(batch.take());
      return r.header.serial;
    },
  },
  {
    name: 'decode 0x0704 with 10 locations',
    run: () => {
      const r = keep(decodeFrame(frame0704));
      return r.ok && r.message?.type === 'LocationBatch' ? r.message.body.items.length : -1;
    },
  },
  {
    name: 'decode 0x0100 register',
    run: () => {
      const r = keep(decodeFrame(frame0100));
      return r.ok ? r.header.serial : -1;
    },
  },
  {
    name: 'encode 0x8001 platform response (framed)',
    run: (i) =>
      encodeFrame(
        { type: 'PlatformResponse', body: { replySerial: i & 0xffff, replyId: 0x0200, result: 0 } },
        { phone, serial: i & 0xffff, edition: 2013 },
      ).length,
  },
];

/** Framing + decoding of a TCP-like stream in 64 KiB chunks, per frame. */
function streamOp(): Operation {
  const stream = Buffer.concat(
    frames0200.map((f) => Buffer.concat([Buffer.of(0x7e), f, Buffer.of(0x7e)])),
  );
  const chunks: Buffer[] = [];
  const big = Buffer.concat(Array.from({ length: Math.ceil(65536 / stream.length) }, () => stream));
  for (let at = 0; at < big.length; at += 65536) chunks.push(big.subarray(at, at + 65536));
  const splitter = new FrameSplitter();
  const perChunk = frames0200.length * Math.ceil(65536 / stream.length);
  let acc = 0;
  // As the gateway does it: frames as ranges of the chunk, decoded in place.
  const onFrame = (bytes: Uint8Array, from: number, to: number): void => {
    const r = keep(decodeFrameIn(bytes, from, to));
    acc ^= r.ok ? r.header.serial : 1;
  };
  return {
    name: `framer + decode 0x0200 stream (per ${perChunk}-frame buffer)`,
    run: () => {
      for (const c of chunks) splitter.pushRanges(c, onFrame);
      return acc;
    },
  };
}

/**
 * `seconds`: per operation, split into 7 rounds each beside the baseline. Hands the reporter
 * the rows (ns/op, frames/s for the stream) and the full decode's share of the fair limit.
 */
export function runCodecBench(ctx: BenchContext, seconds = 2): void {
  const rounds = 7;
  const perRound = (seconds * 1000) / rounds;
  const total = (ops.length + 1) * rounds;
  let done = 0;
  const onRound = (): void => ctx.progress('codec', ++done, total);
  const measured: SideBySide[] = ops.map((op) =>
    sideBySide(op, baseline, rounds, perRound, onRound),
  );
  const stream = streamOp();
  const perBuffer =
    frames0200.length * Math.ceil(65536 / frames0200.reduce((a, f) => a + f.length + 2, 0));
  const s = sideBySide(stream, baseline, rounds, perRound, onRound);
  // The stream in frames: per-buffer figures divided by the frames in a buffer.
  const perFrame = (n: number): number => n / perBuffer;
  const streamRow = sideBySideRow(s);
  streamRow.name = `${stream.name}, per frame`;
  streamRow.figures = {
    opsPerSec: s.candidate.opsPerSec * perBuffer,
    p50: perFrame(s.candidate.p50),
    p99: perFrame(s.candidate.p99),
    p999: perFrame(s.candidate.p999),
  };
  streamRow.ratio = {
    column: 'opsPerSec',
    value: s.ratio * perBuffer,
    range: [s.ratioRange[0] * perBuffer, s.ratioRange[1] * perBuffer],
  };
  streamRow.timeline = s.candidate.timeline.map((p) => ({ ...p, perSec: p.perSec * perBuffer }));
  streamRow.percentiles = s.candidate.percentiles.map((p) => ({ ...p, value: perFrame(p.value) }));
  const rows = [...measured.map(sideBySideRow), streamRow];
  ctx.table({
    title:
      'codec: one core; ns/op are batch means; baseline: the minimal basic-block reader run alongside (ratio: median of paired rounds)',
    columns: MEASUREMENT_COLUMNS,
    rows,
    timelineUnit: 'ops/s',
    percentileUnit: 'ns/op',
  });
  const ratioOf = (prefix: string): number | undefined =>
    rows.find((row) => row.name.startsWith(prefix))?.ratio?.value;
  const full = ratioOf('decode 0x0200 (frame');
  const verifying = ratioOf('minimal reader with verification');
  if (full !== undefined && verifying !== undefined)
    ctx.table({
      title: 'codec: the full decode against the fair limit',
      columns: [{ key: 'percent', label: '%', digits: 0 }],
      rows: [
        {
          name: 'full 0x0200 decode ÷ minimal reader with verification',
          figures: { percent: (full / verifying) * 100 },
        },
      ],
    });
  // Keeps the work observable (never dead code); printed so nothing can optimise it away.
  ctx.step(`sink ${sinkValue() & 1}`);
}
