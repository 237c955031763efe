// The gateway↔worker data plane: every record kind comes back out of a batch as it went in,
// in order, across a buffer that had to grow; strings too long are cut, never overflow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AUTHENTICATED,
  CLOSE,
  FrameBatchBuilder,
  LINK_CLOSED,
  LINK_NAME,
  PLATFORM_MESSAGE,
  readFrameBatch,
  SEND,
  UPLINK,
  type BatchRecord,
} from '../../hosting/frameBatch.js';
import type { Header } from '../../jt808/header.js';

function readAll(batch: ArrayBuffer): BatchRecord[] {
  const out: BatchRecord[] = [];
  readFrameBatch(batch, (r) => out.push(r));
  return out;
}

const header = fc
  .record({
    messageId: fc.integer({ min: 0, max: 0xffff }),
    bodyLength: fc.integer({ min: 0, max: 1023 }),
    encryption: fc.integer({ min: 0, max: 7 }),
    headerEdition: fc.constantFrom(2013 as const, 2019 as const),
    versionFlag: fc.boolean(),
    phone: fc.stringMatching(/^[0-9]{12}$|^[0-9]{20}$/),
    serial: fc.integer({ min: 0, max: 0xffff }),
    protocolVersion: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    package: fc.option(
      fc.record({
        total: fc.integer({ min: 1, max: 0xffff }),
        index: fc.integer({ min: 1, max: 0xffff }),
      }),
      { nil: undefined },
    ),
  })
  .map(({ package: pkg, protocolVersion, ...h }): Header => {
    const out: Header = { ...h };
    if (protocolVersion !== undefined) out.protocolVersion = protocolVersion;
    if (pkg) {
      out.packageTotal = pkg.total;
      out.packageIndex = pkg.index;
    }
    return out;
  });

const record = fc.oneof(
  fc.record({
    kind: fc.constant(UPLINK),
    link: fc.integer({ min: 0, max: 0xffffffff }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    receivedAt: fc.integer({ min: 0, max: 2 ** 45 }),
    header,
    edition: fc.constantFrom(2011 as const, 2013 as const, 2019 as const),
    body: fc.uint8Array({ maxLength: 2000 }),
  }),
  fc.record({
    kind: fc.constant(LINK_CLOSED),
    link: fc.nat(),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    at: fc.integer({ min: 0, max: 2 ** 45 }),
    reason: fc.string({ maxLength: 40 }),
    vehicleId: fc.stringMatching(/^[1-9][0-9]{0,19}$/),
    linkId: fc.string({ maxLength: 60 }),
  }),
  fc.record({
    kind: fc.constant(PLATFORM_MESSAGE),
    link: fc.nat(),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    edition: fc.constantFrom(2011 as const, 2013 as const, 2019 as const),
    messageId: fc.integer({ min: 0x8000, max: 0xffff }),
    phone: fc.stringMatching(/^[0-9]{12}$|^[0-9]{20}$/),
    vehicleId: fc.stringMatching(/^[1-9][0-9]{0,19}$/),
    body: fc.uint8Array({ maxLength: 1100 }),
  }),
  fc.record({
    kind: fc.constant(LINK_NAME),
    link: fc.nat(),
    id: fc.string({ maxLength: 60 }),
    node: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
  }),
  fc.record({ kind: fc.constant(SEND), link: fc.nat(), frame: fc.uint8Array({ maxLength: 3000 }) }),
  fc.record({ kind: fc.constant(CLOSE), link: fc.nat(), reason: fc.string({ maxLength: 40 }) }),
  fc.record({
    kind: fc.constant(AUTHENTICATED),
    link: fc.nat(),
    edition: fc.constantFrom(2011 as const, 2013 as const, 2019 as const),
    vehicleId: fc.stringMatching(/^[1-9][0-9]{0,19}$/),
  }),
) as fc.Arbitrary<BatchRecord>;

function write(b: FrameBatchBuilder, r: BatchRecord): void {
  switch (r.kind) {
    case UPLINK:
      return b.uplink(r.link, r.receivedAt, r.header, r.edition, r.body, r.seq);
    case LINK_CLOSED:
      return b.linkClosed(r.link, r.at, r.reason, r.vehicleId, r.seq, r.linkId);
    case PLATFORM_MESSAGE:
      return b.platformMessage(r.link, r.edition, r.messageId, r.phone, r.vehicleId, r.body, r.seq);
    case LINK_NAME:
      return b.linkName(r.link, r.id, r.node);
    case SEND:
      return b.send(r.link, r.frame);
    case CLOSE:
      return b.close(r.link, r.reason);
    case AUTHENTICATED:
      return b.authenticated(r.link, r.edition, r.vehicleId);
  }
}

const plain = (r: BatchRecord): unknown =>
  JSON.parse(
    JSON.stringify(r, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    ),
  );

describe('frame batches between the gateway and the workers', () => {
  it('every record comes back as written, in order, whatever the mix and sizes', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 40 }), (records) => {
        const b = new FrameBatchBuilder(64); // tiny: the buffer must grow
        for (const r of records) write(b, r);
        assert.equal(b.count, records.length);
        const back = readAll(b.take());
        assert.deepEqual(back.map(plain), records.map(plain));
        assert.equal(b.count, 0);
        assert.equal(b.bytes, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('take() hands over a standalone buffer: the next batch does not overwrite it', () => {
    const b = new FrameBatchBuilder(64);
    b.send(1, Uint8Array.of(1, 2, 3));
    const first = b.take();
    b.send(2, Uint8Array.of(9, 9, 9, 9));
    const second = b.take();
    assert.deepEqual(readAll(first).map(plain), [{ kind: SEND, link: 1, frame: '010203' }]);
    assert.deepEqual(readAll(second).map(plain), [{ kind: SEND, link: 2, frame: '09090909' }]);
  });

  it('a reason longer than 256 characters is cut, not overflowed', () => {
    const b = new FrameBatchBuilder(16);
    b.close(7, 'é'.repeat(5000));
    const [r] = readAll(b.take());
    assert.equal(r?.kind, CLOSE);
    assert.equal(r?.kind === CLOSE ? r.reason : '', 'é'.repeat(256));
  });

  it('an unknown record kind is an error naming the offset, not a silent skip', () => {
    assert.throws(() => readAll(Uint8Array.of(99).buffer), /unknown record kind 99 at 0/);
  });
});
