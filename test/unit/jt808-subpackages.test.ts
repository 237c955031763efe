// Sub-packages: the corpus's three real sets reassemble (the photo to its exact JPEG), the
// reassembler's limits hold, and outbound splitting round-trips through it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeBody, decodeFrame, type DecodedFrame } from '../../jt808/codec.js';
import { FrameSplitter } from '../../jt808/framing.js';
import {
  mediaReplyFor,
  retransmitRequestFor,
  SubpackageReassembler,
  type PackageInfo,
} from '../../jt808/reassembly.js';
import { splitMessage } from '../../jt808/split.js';
import { content, readCorpusFrames } from '../helpers/corpus.js';

function pkg(f: DecodedFrame): PackageInfo {
  return {
    phone: f.header.phone,
    messageId: f.header.messageId,
    serial: f.header.serial,
    packageTotal: f.header.packageTotal as number,
    packageIndex: f.header.packageIndex as number,
  };
}

function decodeAll(file: string, lenient = false): DecodedFrame[] {
  return readCorpusFrames(file).map((b) => {
    const r = decodeFrame(content(b), { lenient });
    assert.ok(r.ok, r.ok ? '' : r.reason);
    return r;
  });
}

describe('reassembling the corpus sets', () => {
  it('0x0104: 2 packets with serials 1233 and 1250 give a 107-parameter reply', () => {
    const frames = decodeAll('subpkg_0104_2_packets.txt');
    assert.deepEqual(
      frames.map((f) => f.header.serial),
      [1233, 1250],
    );
    const re = new SubpackageReassembler();
    assert.equal(re.add(pkg(frames[0]!), frames[0]!.body, 0).status, 'incomplete');
    const done = re.add(pkg(frames[1]!), frames[1]!.body, 1);
    assert.ok(done.status === 'complete');
    assert.equal(done.body.length, 1219);
    assert.equal(done.firstSerial, 1233);
    assert.equal(done.lastSerial, 1250);
    const msg = decodeBody(0x0104, done.body, 2013);
    assert.ok(msg.ok && msg.message.type === 'ParametersReply');
    assert.equal(msg.message.body.replySerial, 0);
    assert.equal(msg.message.body.params.length, 107);
    assert.equal(msg.unread, 0);
    assert.equal(msg.message.body.params.find((p) => p.id === 0x0013)?.value, '222.184.26.22');
    assert.equal(re.openSets, 0);
    assert.equal(re.bytesHeld, 0);
  });

  it('0x1205: 2 packets give a 986-byte body (reply serial 346, 35 items of 28 bytes), kept raw', () => {
    const frames = decodeAll('subpkg_1205_2_packets.txt');
    const re = new SubpackageReassembler();
    // Arrival order does not matter.
    re.add(pkg(frames[1]!), frames[1]!.body, 0);
    const done = re.add(pkg(frames[0]!), frames[0]!.body, 0);
    assert.ok(done.status === 'complete');
    assert.equal(done.body.length, 986);
    assert.equal((done.body[0]! << 8) | done.body[1]!, 346);
    assert.equal(
      (done.body[2]! << 24) | (done.body[3]! << 16) | (done.body[4]! << 8) | done.body[5]!,
      35,
    );
    const msg = decodeBody(0x1205, done.body, 2013);
    assert.ok(msg.ok && msg.message.type === 'Raw');
  });

  it('0x0801: 10 photo packets (wrong check codes: lenient) give the exact JPEG', () => {
    const frames = readCorpusFrames('subpkg_0801_photo_10_packets.txt').map((b) =>
      decodeFrame(content(b)),
    );
    assert.ok(
      frames.every((f) => !f.ok && f.reason === 'bad-check-code'),
      'strict mode rejects every package',
    );
    const lenient = decodeAll('subpkg_0801_photo_10_packets.txt', true);
    assert.ok(lenient.every((f) => f.warnings.includes('bad-check-code')));
    assert.deepEqual(
      lenient.map((f) => f.body.length),
      [804, 768, 768, 768, 768, 768, 768, 768, 768, 23],
    );
    const re = new SubpackageReassembler();
    let done;
    for (const f of lenient) done = re.add(pkg(f), f.body, 0);
    assert.ok(done?.status === 'complete');
    assert.equal(done.body.length, 6971);
    assert.equal(done.firstSerial, 8241);
    const msg = decodeBody(0x0801, done.body, 2013);
    assert.ok(msg.ok && msg.message.type === 'MediaData');
    const jpeg = msg.message.body.data;
    assert.equal(jpeg.length, 6935);
    assert.equal(Buffer.from(jpeg.subarray(0, 2)).toString('hex'), 'ffd8');
    assert.equal(Buffer.from(jpeg.subarray(-2)).toString('hex'), 'ffd9');
    assert.equal(
      createHash('sha256').update(jpeg).digest('hex'),
      '243a7d5c15b096bc55373d72f2782cdaa78f66a70ba7e056f370e92d96c78d34',
    );
  });

  it('a missing photo package is listed for 0x8800 and the set completes when it is resent', () => {
    const frames = decodeAll('subpkg_0801_photo_10_packets.txt', true);
    const re = new SubpackageReassembler({ expiryMs: 10_000 });
    for (const f of frames)
      if (f.header.packageIndex !== 4 && f.header.packageIndex !== 7) re.add(pkg(f), f.body, 1000);
    assert.deepEqual(re.expire(5000), [], 'not expired yet');
    const [pending] = re.pending();
    assert.deepEqual(pending?.missing, [4, 7]);
    assert.equal(pending?.firstSerial, 8241);
    assert.deepEqual(mediaReplyFor(1, pending!.missing), { mediaId: 1, retransmitIds: [4, 7] });
    assert.deepEqual(retransmitRequestFor(pending!, 2013), {
      originalSerial: 8241,
      packageIds: [4, 7],
    });
    re.add(pkg(frames[3]!), frames[3]!.body, 2000);
    const done = re.add(pkg(frames[6]!), frames[6]!.body, 2000);
    assert.equal(done.status, 'complete');
  });
});

describe('reassembler limits', () => {
  const part = (
    phone: string,
    index: number,
    total: number,
    serial = index,
    messageId = 0x0801,
  ): PackageInfo => ({
    phone,
    messageId,
    serial,
    packageTotal: total,
    packageIndex: index,
  });
  const body = (n: number): Uint8Array => new Uint8Array(n).fill(7);

  it('duplicates are counted and do not complete a set', () => {
    const re = new SubpackageReassembler();
    re.add(part('1', 1, 2), body(10), 0);
    assert.equal(re.add(part('1', 1, 2), body(10), 0).status, 'duplicate');
    assert.equal(re.stats.duplicates, 1);
    assert.equal(re.openSets, 1);
  });

  it('a package index outside 1..total, or a total over the limit, is rejected', () => {
    const re = new SubpackageReassembler({ maxPackagesPerSet: 100 });
    assert.deepEqual(re.add(part('1', 0, 2), body(1), 0).status, 'rejected');
    assert.deepEqual(re.add(part('1', 3, 2), body(1), 0).status, 'rejected');
    const big = re.add(part('1', 1, 101), body(1), 0);
    assert.ok(big.status === 'rejected' && big.reason === 'too-many-packages');
    assert.equal(re.openSets, 0);
    assert.equal(re.stats.rejected, 3);
  });

  it('a terminal over its open-set limit loses its oldest set', () => {
    const re = new SubpackageReassembler({ maxSetsPerTerminal: 2 });
    re.add(part('1', 1, 2, 1, 0x0801), body(5), 0);
    re.add(part('1', 1, 3, 1, 0x0801), body(5), 1);
    re.add(part('2', 1, 2, 1, 0x0801), body(5), 1);
    re.add(part('1', 1, 4, 1, 0x0801), body(5), 2);
    assert.equal(re.stats.evicted, 1);
    assert.deepEqual(
      re
        .pending()
        .map((s) => `${s.phone}/${s.packageTotal}`)
        .sort(),
      ['1/3', '1/4', '2/2'],
    );
  });

  it('the bytes held never exceed the global limit: the oldest sets go first', () => {
    const re = new SubpackageReassembler({ maxTotalBytes: 1000 });
    for (let t = 0; t < 10; t++) {
      re.add(part(String(t), 1, 2), body(300), t);
      assert.ok(re.bytesHeld <= 1000, `${re.bytesHeld} bytes held`);
    }
    assert.equal(re.openSets, 3);
    assert.equal(re.stats.evicted, 7);
    assert.deepEqual(
      re.pending().map((s) => s.phone),
      ['7', '8', '9'],
    );
  });

  it('idle sets expire with their missing indexes and first serial', () => {
    const re = new SubpackageReassembler({ expiryMs: 30_000 });
    re.add(part('9', 2, 3, 101), body(4), 0);
    re.add(part('8', 1, 2, 5), body(4), 20_000);
    const expired = re.expire(30_000);
    assert.deepEqual(expired, [
      { phone: '9', messageId: 0x0801, packageTotal: 3, firstSerial: 100, missing: [1, 3] },
    ]);
    assert.equal(re.stats.expired, 1);
    assert.equal(re.openSets, 1);
    assert.equal(re.bytesHeld, 4);
  });

  it('2013 asks for at most 255 packages in one 0x8003, 2019 for more', () => {
    const set = {
      phone: '1',
      messageId: 0x0104,
      packageTotal: 400,
      firstSerial: 1,
      missing: Array.from({ length: 300 }, (_, i) => i + 1),
    };
    assert.equal(retransmitRequestFor(set, 2013).packageIds.length, 255);
    assert.equal(retransmitRequestFor(set, 2019).packageIds.length, 300);
    assert.equal(mediaReplyFor(5, set.missing).retransmitIds?.length, 125);
  });
});

describe('outbound splitting', () => {
  it('a body over one frame is split with consecutive serials; the reply comes on the last', () => {
    const bodyBytes = new Uint8Array(2500).map((_, i) => (i * 31) & 0xff);
    const split = splitMessage(0x8103, bodyBytes, {
      phone: '13800138000',
      serial: 0xfffe,
      edition: 2013,
    });
    assert.equal(split.frames.length, 3);
    assert.deepEqual(split.serials, [0xfffe, 0xffff, 0]);
    assert.equal(split.replySerial, 0);
    // Through the framer and reassembler again, the body comes back whole.
    const splitter = new FrameSplitter();
    const re = new SubpackageReassembler();
    let whole: Uint8Array | undefined;
    for (const frame of split.frames) {
      splitter.push(frame, (esc) => {
        const r = decodeFrame(esc);
        assert.ok(r.ok);
        assert.ok(r.body.length <= 1023);
        const res = re.add(pkg(r), r.body, 0);
        if (res.status === 'complete') whole = res.body;
      });
    }
    assert.deepEqual(whole, bodyBytes);
  });

  it('a body that fits is sent as one frame without package fields', () => {
    const split = splitMessage(0x8300, new Uint8Array(10), {
      phone: '1',
      serial: 7,
      edition: 2019,
    });
    assert.equal(split.frames.length, 1);
    assert.equal(split.replySerial, 7);
    const r = decodeFrame(content(split.frames[0]!));
    assert.ok(r.ok);
    assert.equal(r.header.packageTotal, undefined);
    assert.equal(r.header.headerEdition, 2019);
  });
});
