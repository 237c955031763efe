// Stream framing: frames come out whole however TCP cuts the stream, garbage is skipped and
// counted, oversize runs are dropped within the buffer limit, and headers of both layouts parse.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import {
  FrameSplitter,
  MAX_LEGAL_FRAME_BYTES,
  checkCode,
  escapeBytes,
  frameBytes,
  unescapeFrame,
} from '../../jt808/framing.js';
import type { Message } from '../../jt808/messages.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function collect(splitter: FrameSplitter, chunks: Uint8Array[]): string[] {
  const out: string[] = [];
  for (const c of chunks) splitter.push(c, (f) => out.push(hex(f)));
  return out;
}

const location: Message = {
  type: 'LocationReport',
  body: {
    alarm: 0,
    status: 2,
    latitude: 31.2304,
    longitude: 121.4737,
    altitude: 4,
    speed: 12.6,
    direction: 126, // 0x7E: needs escaping
    time: Date.parse('2026-01-01T00:00:00Z'),
    mileageKm: 12.5,
    satellites: 9,
    signal: 0x7d,
  },
};

describe('FrameSplitter', () => {
  const frames = [0, 1, 2].map((serial) =>
    encodeFrame(location, { phone: '013912345678', serial, edition: 2013 }),
  );
  const stream = Buffer.concat(frames);

  it('gives the same frames for every way of cutting the stream', () => {
    const whole = collect(new FrameSplitter(), [stream]);
    assert.equal(whole.length, 3);
    for (let cut = 1; cut < stream.length; cut++) {
      assert.deepEqual(
        collect(new FrameSplitter(), [stream.subarray(0, cut), stream.subarray(cut)]),
        whole,
        `cut at ${cut}`,
      );
    }
    const bytewise = collect(
      new FrameSplitter(),
      [...stream].map((b) => Uint8Array.of(b)),
    );
    assert.deepEqual(bytewise, whole);
  });

  it('skips and counts garbage before the first delimiter', () => {
    const s = new FrameSplitter();
    const got = collect(s, [Buffer.from('GET / HTTP/1.1\r\n'), stream]);
    assert.equal(got.length, 3);
    assert.equal(s.stats.garbageBytes, 16);
  });

  it('frames sharing one delimiter come apart', () => {
    const shared = Buffer.concat([frames[0]!.subarray(0, -1), frames[1]!]);
    const got = collect(new FrameSplitter(), [shared]);
    assert.equal(got.length, 2);
    assert.ok(got.every((f) => decodeFrame(Buffer.from(f, 'hex')).ok));
  });

  it('drops a run longer than the limit, counts it, and resynchronises at the next delimiter', () => {
    const s = new FrameSplitter(100);
    const junk = new Uint8Array(250).fill(0x41);
    const got = collect(s, [
      Uint8Array.of(0x7e),
      junk.subarray(0, 120),
      junk.subarray(120),
      frames[0]!,
    ]);
    assert.equal(s.stats.oversizeFrames, 1);
    assert.ok(s.buffered <= 100);
    assert.deepEqual(got, [hex(frames[0]!.subarray(1, -1))]);
  });

  it('never holds more than its limit however the oversize run arrives', () => {
    const s = new FrameSplitter(64);
    s.push(Uint8Array.of(0x7e), () => undefined);
    for (let i = 0; i < 100; i++) {
      s.push(new Uint8Array(7).fill(1), () => assert.fail('no frame from an oversize run'));
      assert.ok(s.buffered <= 64);
    }
    assert.equal(s.stats.oversizeFrames, 1);
  });

  it('the default limit fits the largest legal frame', () => {
    const body = new Uint8Array(1023).fill(0x7e); // every byte escaped
    const big = encodeFrame(
      { type: 'Raw', messageId: 0x0900, body },
      { phone: '1', serial: 1, edition: 2019, packageTotal: 2, packageIndex: 1 },
    );
    assert.ok(big.length - 2 <= MAX_LEGAL_FRAME_BYTES);
    const s = new FrameSplitter();
    const got = collect(s, [big.subarray(0, 700), big.subarray(700)]);
    assert.equal(got.length, 1);
    assert.equal(s.stats.oversizeFrames, 0);
    const r = decodeFrame(Buffer.from(got[0]!, 'hex'));
    assert.ok(r.ok);
    assert.deepEqual(r.body, body);
  });
});

describe('escaping and check code', () => {
  it('escapes 7E and 7D and reverses it', () => {
    const raw = Uint8Array.of(0x30, 0x7e, 0x08, 0x7d, 0x55);
    assert.equal(hex(escapeBytes(raw)), '307d02087d0155');
    const un = unescapeFrame(escapeBytes(raw));
    assert.ok(un.ok);
    assert.deepEqual(un.bytes, raw);
  });

  it('a check code of 0x7E is sent escaped', () => {
    const raw = Uint8Array.of(0x01, 0x7f); // 0x01 ^ 0x7f = 0x7e
    assert.equal(checkCode(raw), 0x7e);
    assert.equal(hex(frameBytes(raw)), '7e017f7d027e');
  });

  it('rejects a 7D followed by anything else, with the offset', () => {
    const r = unescapeFrame(Uint8Array.of(0x01, 0x7d, 0x03));
    assert.deepEqual(r, { ok: false, at: 1, byte: 3 });
  });
});

describe('headers', () => {
  it('2013 and 2019 headers with sub-package fields round-trip', () => {
    for (const edition of [2013, 2019] as const) {
      const f = encodeFrame(
        { type: 'Heartbeat', body: {} },
        { phone: '12345678901', serial: 65535, edition, packageTotal: 3, packageIndex: 2 },
      );
      const r = decodeFrame(f.subarray(1, -1));
      assert.ok(r.ok);
      assert.equal(r.header.headerEdition, edition);
      assert.equal(r.header.phone, edition === 2019 ? '00000000012345678901' : '012345678901');
      assert.equal(r.header.serial, 65535);
      assert.equal(r.header.packageTotal, 3);
      assert.equal(r.header.packageIndex, 2);
    }
  });

  it('a 2019 flag on a 2013 header is read by the layout the length proves', () => {
    const f = encodeFrame(
      { type: 'Heartbeat', body: {} },
      { phone: '13800138000', serial: 5, edition: 2013 },
    );
    const raw = unescapeFrame(f.subarray(1, -1));
    assert.ok(raw.ok);
    const b = Uint8Array.from(raw.bytes.subarray(0, -1));
    b[2] = b[2]! | 0x40;
    const framed = frameBytes(b);
    const r = decodeFrame(framed.subarray(1, -1));
    assert.ok(r.ok);
    assert.equal(r.header.headerEdition, 2013);
    assert.equal(r.header.phone, '013800138000');
    assert.deepEqual(r.warnings, ['version-flag-with-2013-header']);
  });

  it('a body longer than 1023 bytes cannot be put in one frame', () => {
    assert.throws(
      () =>
        encodeFrame(
          { type: 'Raw', messageId: 0x0900, body: new Uint8Array(1024) },
          { phone: '1', serial: 1, edition: 2013 },
        ),
      /split/,
    );
  });
});
