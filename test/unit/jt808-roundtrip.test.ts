// Property: any message of any type and edition, encoded (split when it does not fit one
// frame), cut into random TCP chunks, framed, decoded and reassembled, is the message again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeBody, decodeFrame, decodeFrameIn, encodeBody } from '../../jt808/codec.js';
import { FrameSplitter } from '../../jt808/framing.js';
import type { Edition } from '../../jt808/header.js';
import { messageIdOf, type Message } from '../../jt808/messages.js';
import { SubpackageReassembler } from '../../jt808/reassembly.js';
import { splitMessage } from '../../jt808/split.js';
import { edition as anyEdition, message, phone } from '../helpers/arbitraries.js';

/** Plain objects and plain Uint8Arrays (fast-check makes null-prototype records; sockets give Buffers). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (v instanceof Date || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(plain);
  // A decoded report spells out absent optional fields as undefined; a generated one omits them.
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [k, plain(x)]),
  );
}

const runs = Number(process.env.FLEETMESH_PROPERTY_RUNS ?? 300);

function roundTrip(
  msg: Message,
  edition: Edition,
  tel: string,
  serial: number,
  cuts: number[],
): Message[] {
  const body = encodeBody(msg, edition);
  const split = splitMessage(messageIdOf(msg), body, { phone: tel, serial, edition });
  const stream = Buffer.concat(split.frames);
  const splitter = new FrameSplitter();
  const re = new SubpackageReassembler();
  const out: Message[] = [];
  let at = 0;
  for (const cut of [
    ...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b),
    stream.length,
  ]) {
    // The gateway's way: frames as ranges of the chunk, decoded in place; the same frame as a
    // view must decode to the same thing.
    splitter.pushRanges(stream.subarray(at, Math.max(at, cut)), (bytes, from, to) => {
      const r = decodeFrameIn(bytes, from, to, { edition });
      const copy = decodeFrame(bytes.slice(from, to), { edition });
      const seen = (d: typeof r): unknown =>
        d.ok ? plain([d.header, d.edition, d.message, d.warnings, d.body]) : plain(d);
      assert.deepEqual(seen(r), seen(copy));
      assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
      assert.deepEqual(r.warnings, []);
      assert.equal(r.header.phone, tel);
      if (r.header.packageTotal === undefined) {
        out.push(r.message as Message);
        return;
      }
      const res = re.add(
        {
          phone: r.header.phone,
          messageId: r.header.messageId,
          serial: r.header.serial,
          packageTotal: r.header.packageTotal,
          packageIndex: r.header.packageIndex as number,
        },
        r.body,
        0,
      );
      if (res.status === 'complete') {
        assert.equal(res.lastSerial, split.replySerial);
        const d = decodeBody(r.header.messageId, res.body, edition);
        assert.ok(d.ok);
        out.push(d.message);
      }
    });
    at = Math.max(at, cut);
  }
  return out;
}

describe('round trips', () => {
  for (const e of [2011, 2013, 2019] as const) {
    it(`every message type survives encode → chunks → frame → decode (${e})`, () => {
      fc.assert(
        fc.property(
          message(e),
          phone(e),
          fc.integer({ min: 0, max: 0xffff }),
          fc.array(fc.nat(), { maxLength: 4 }),
          (msg, tel, serial, cuts) => {
            const got = roundTrip(msg, e, tel, serial, cuts);
            assert.equal(got.length, 1);
            assert.deepEqual(plain(got[0]), plain(msg));
          },
        ),
        { numRuns: runs },
      );
    });
  }

  it('a stream of mixed editions and types comes out in order', () => {
    fc.assert(
      fc.property(
        anyEdition.chain((e) =>
          fc.tuple(fc.constant(e), fc.array(message(e), { minLength: 1, maxLength: 6 }), phone(e)),
        ),
        ([e, msgs, tel]) => {
          const got = msgs.flatMap((m, i) => roundTrip(m, e, tel, i, []));
          assert.deepEqual(plain(got), plain(msgs));
        },
      ),
      { numRuns: Math.ceil(runs / 5) },
    );
  });
});
