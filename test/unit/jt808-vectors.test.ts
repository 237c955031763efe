// The curated conformance vectors (../shared/conformance/jt808/vectors.json): every valid frame
// decodes with the fields its source asserts and re-encodes to the same bytes where the encoding
// is canonical; every invalid frame is rejected with the right reason; the irregular ones
// behave as the corpus describes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, encodeFrame, type DecodedFrame } from '../../jt808/codec.js';
import { escapeBytes, unescapeFrame } from '../../jt808/framing.js';
import { Writer } from '../../jt808/bytes.js';
import { writeLocation, type LocationReport } from '../../jt808/location.js';
import { content, readCorpusJson, type Vector } from '../helpers/corpus.js';

const vectors = readCorpusJson<Vector[]>('vectors.json');
const byId = new Map(vectors.map((v) => [v.id, v]));

type Loose = Record<string, unknown>;
const hex4 = (n: unknown): string => `0x${(n as number).toString(16).padStart(4, '0')}`;
/** "粤A12345 (GBK D4C1 …)" → "粤A12345": the corpus adds remarks in parentheses. */
const stripRemark = (s: string): string => s.replace(/\s*\(.*\)\s*$/, '');
const firstToken = (s: string): string => s.split(/\s/)[0] as string;

function gmt8(ms: number | null, utc = false): { iso: string; bcd: string } {
  assert.ok(typeof ms === 'number', 'a valid time');
  const t = new Date(ms + (utc ? 0 : 8 * 3600_000)).toISOString();
  const iso = `${t.slice(0, 10)} ${t.slice(11, 19)}`;
  return { iso, bcd: iso.slice(2).replace(/[-: ]/g, '') };
}

function checkTime(actual: number | null, expected: string, utc = false): void {
  const t = gmt8(actual, utc);
  const want = stripRemark(expected);
  assert.equal(/^\d{12}$/.test(want) ? t.bcd : t.iso, want);
}

/** An additional item's value as the unsigned integer its bytes spell, read off the encoded report. */
function itemUint(loc: LocationReport, id: number): number {
  const w = new Writer();
  writeLocation(w, loc);
  const b = w.finish();
  for (let q = 28; q + 2 <= b.length; q += 2 + b[q + 1]!) {
    if (b[q] === id)
      return b.subarray(q + 2, q + 2 + b[q + 1]!).reduce((acc, x) => acc * 256 + x, 0);
  }
  assert.fail(`item 0x${id.toString(16)} present`);
}

/** Checks a location's basic block against the corpus's names (raw or scaled). */
function checkLocation(loc: LocationReport, want: Loose): void {
  for (const [k, v] of Object.entries(want)) {
    switch (k) {
      case 'alarm':
        assert.equal(loc.alarm, v);
        break;
      case 'status':
        assert.equal(loc.status, v);
        break;
      case 'lat_raw':
      case 'latitude':
        assert.equal(Math.round(Math.abs(loc.latitude) * 1e6), v);
        break;
      case 'lon_raw':
      case 'longitude':
        assert.equal(Math.round(Math.abs(loc.longitude) * 1e6), v);
        break;
      case 'lat':
        assert.equal(loc.latitude, v);
        break;
      case 'lon':
        assert.equal(loc.longitude, v);
        break;
      case 'alt':
      case 'altitude':
        assert.equal(loc.altitude, v);
        break;
      case 'speed_raw':
      case 'speed': // the corpus's plain "speed" is the wire value, 1/10 km/h
        assert.equal(Math.round(loc.speed * 10), v);
        break;
      case 'dir':
      case 'direction':
        assert.equal(loc.direction, v);
        break;
      case 'time':
        checkTime(loc.time, v as string);
        break;
      case 'mileage':
        assert.equal(itemUint(loc, 0x01), v);
        assert.equal(loc.mileageKm, (v as number) / 10);
        break;
      case 'gnss_sat_num':
        assert.equal(loc.satellites, v);
        break;
      default: {
        const m = /0x([0-9a-f]{2})/i.exec(k);
        assert.ok(m && typeof v === 'number', `unmapped location field ${k}`);
        assert.equal(itemUint(loc, parseInt(m[1] as string, 16)), v, k);
      }
    }
  }
}

const LOCATION_KEYS =
  /^(alarm|status|lat_raw|lon_raw|lat|lon|latitude|longitude|altitude|speed_raw|speed|direction|time)$|0x[0-9a-f]{2}/i;

const FIELD_NAMES: Record<string, string> = {
  reply_serial: 'replySerial',
  result: 'result',
  province: 'province',
  city: 'city',
  maker: 'maker',
  'maker(11B)': 'maker',
  model: 'model',
  'model(30B)': 'model',
  terminal_id: 'terminalId',
  'terminal_id(30B)': 'terminalId',
  plate_color: 'plateColor',
  plate: 'plate',
  imei: 'imei',
  flag: 'flag',
  text: 'text',
  text_type: 'textType',
  media_id: 'mediaId',
  channel: 'channel',
  format: 'format',
  event: 'event',
  command: 'command',
  command_word: 'command',
  parameter: 'parameters',
  original_serial: 'originalSerial',
  interval: 'intervalSeconds',
  save: 'save',
  resolution: 'resolution',
  quality: 'quality',
  brightness: 'brightness',
  contrast: 'contrast',
  saturation: 'saturation',
  chroma: 'chroma',
};

/**
 * Expected fields the corpus itself gets wrong, each with the reason and the check we make
 * instead (in PROSE below).
 */
const CORPUS_ERRATA: Record<string, Record<string, string>> = {
  // The note on the vector says it: francistm's field names swap the two WORDs; by the
  // standard the first is the reply serial.
  'fran-0001': { reply_id: 'names swapped', reply_serial: 'names swapped', result: 'hex string' },
  // Body length 45 ends the plate at "苏BA6860"; the final "8" (0x38) is the check code.
  'tc-0100-2013': { plate: 'includes the check code byte' },
};

/** Per-vector checks for expectations the corpus states in prose. */
const PROSE: Record<string, (f: DecodedFrame) => void> = {
  'fran-0001': (f) => {
    assert.deepEqual(f.message?.body, { replySerial: 0x1011, replyId: 0x1213, result: 0x14 });
  },
  'tc-0100-2013': (f) => {
    assert.equal((f.message?.body as Loose).plate, '苏BA6860');
    assert.equal(f.body.length, 45);
  },
  'sc-0200-all-items': (f) => {
    const loc = f.message?.body as LocationReport;
    assert.deepEqual(loc.overspeed, { locationType: 1, areaId: 1 });
    assert.deepEqual(loc.areaAlarm, { locationType: 1, areaId: 1, direction: 1 });
    assert.deepEqual(loc.routeTime, { routeId: 2, seconds: 34, result: 1 });
    assert.deepEqual(loc.analog, { ad0: 242, ad1: 0 });
  },
  'yzh-0200-2013': (f) => {
    const loc = f.message?.body as LocationReport;
    assert.deepEqual(loc.tyrePressure?.slice(0, 4), [0x37, 0x37, 0x37, 0]);
    assert.equal(loc.tyrePressure?.length, 30);
    assert.deepEqual(loc.overspeed, { locationType: 0x42, areaId: 66 });
    assert.deepEqual(loc.areaAlarm, { locationType: 77, areaId: 77, direction: 77 });
    assert.deepEqual(loc.routeTime, { routeId: 88, seconds: 88, result: 88 });
  },
  'emqx-0200': (f) =>
    assert.deepEqual((f.message?.body as LocationReport).analog, { ad0: 0, ad1: 0 }),
  'sc-0201': (f) => {
    const ref = decodeFrame(content(byId.get('sc-0200')!.hex));
    assert.ok(ref.ok && ref.message);
    assert.deepEqual((f.message?.body as Loose).location, ref.message.body);
  },
  'yzh-0801-2013': (f) => {
    const loc = (f.message?.body as Loose).location as LocationReport;
    checkLocation(loc, {
      alarm: 1024,
      status: 2048,
      lat_raw: 116307629,
      lon_raw: 40058359,
      altitude: 312,
      speed_raw: 3,
      direction: 99,
    });
  },
  'sc-8800': (f) => {
    // The source asserts the raw bytes 01 02 03 04 of two WORD ids.
    assert.deepEqual((f.message?.body as Loose).retransmitIds, [0x0102, 0x0304]);
  },
  'sc-8800-all-received': (f) => assert.equal((f.message?.body as Loose).retransmitIds, undefined),
  'yzh-0102-2019': (f) => assert.equal((f.message?.body as Loose).softwareVersion, 'www.jtt808.cn'),
  'yzh-0704-2013': (f) => {
    const items = (f.message?.body as Loose).items as LocationReport[];
    assert.equal(items.length, 4);
    const a = {
      alarm: 1024,
      status: 2048,
      lat_raw: 116307629,
      lon_raw: 40058359,
      altitude: 312,
      speed_raw: 3,
      direction: 99,
      time: '2020-07-07 19:23:59',
    };
    const b = {
      alarm: 2048,
      status: 4096,
      lat_raw: 232615258,
      lon_raw: 80116718,
      altitude: 624,
      speed_raw: 6,
      direction: 198,
      time: '2020-07-07 19:23:59',
    };
    items.forEach((loc, i) => checkLocation(loc, i % 2 === 0 ? a : b));
  },
  'go-0704-escape': (f) => {
    const items = (f.message?.body as Loose).items as LocationReport[];
    const single = decodeFrame(content(byId.get('go-0200-escape')!.hex));
    assert.ok(single.ok);
    assert.equal(items.length, 2);
    for (const loc of items) assert.deepEqual(loc, single.message?.body);
  },
};

function checkBody(v: Vector, f: DecodedFrame): number {
  const want = v.expected.body;
  if (want === null || want === undefined) {
    if (want === null) assert.equal(f.body.length, 0, 'empty body');
    return 0;
  }
  assert.ok(f.message, 'a decoded message');
  const body = f.message.body as Loose;
  const loc: LocationReport | undefined =
    f.message.type === 'LocationReport'
      ? (body as unknown as LocationReport)
      : f.message.type === 'LocationQueryReply'
        ? (body.location as LocationReport)
        : undefined;
  let checked = 0;
  const prose = new Set([
    '0x05',
    '0x11',
    '0x12',
    '0x13',
    'position',
    'location',
    'retransmit',
    'retransmit_ids',
    'software_version',
  ]);
  for (const [k, val] of Object.entries(want as Loose)) {
    checked++;
    if (CORPUS_ERRATA[v.id]?.[k]) continue;
    if (prose.has(k) || (k === '0x2B' && typeof val === 'string')) {
      assert.ok(PROSE[v.id], `${v.id}: prose expectation ${k} needs a check`);
      continue;
    }
    if (k === 'items' && typeof val === 'string') {
      assert.ok(PROSE[v.id], `${v.id}: prose items need a check`);
      continue;
    }
    if (loc && LOCATION_KEYS.test(k)) {
      checkLocation(loc, { [k]: val });
      continue;
    }
    switch (k) {
      case 'reply_id':
        assert.equal(hex4(body.replyId), firstToken(val as string));
        continue;
      case 'fran':
        continue;
      case 'time':
        checkTime(body.time as number, val as string, f.message.type === 'ServerTime');
        continue;
      case 'auth_code':
        assert.equal(body.authCode, val === '(absent)' ? undefined : val);
        continue;
      case 'auth_code_len':
        assert.equal((body.authCode as string).length, val);
        continue;
      case 'type':
        if (f.message.type === 'LocationBatch') assert.equal(body.batchType, val);
        else if (f.message.type === 'TextMessage') assert.equal(body.textType, val);
        else if (f.message.type === 'PassThroughUp')
          assert.equal(body.passThroughType, parseInt(val as string, 16));
        else assert.equal(body.mediaType, val);
        continue;
      case 'content':
        assert.equal(Buffer.from(body.content as Uint8Array).toString('latin1'), val);
        continue;
      case 'packet':
        assert.equal(Buffer.from(body.data as Uint8Array).toString('hex'), val);
        continue;
      case 'count':
      case 'count(BYTE)':
      case 'count(WORD)': {
        const list = (body.items ??
          body.params ??
          body.packageIds ??
          body.retransmitIds) as unknown[];
        assert.equal(list.length, val);
        continue;
      }
      case 'ids':
        assert.deepEqual(body.packageIds ?? body.retransmitIds, val);
        continue;
      case 'retransmit_count':
        assert.equal(((body.retransmitIds as unknown[] | undefined) ?? []).length, val);
        continue;
      case 'params': {
        const got = body.params as { id: number; value: unknown }[];
        (val as { id: string; value: unknown }[]).forEach((p, i) => {
          assert.equal(got[i]?.id, parseInt(p.id, 16));
          assert.equal(got[i]?.value, p.value);
        });
        continue;
      }
      case 'items':
        (val as Loose[]).forEach((item, i) =>
          checkLocation((body.items as LocationReport[])[i] as LocationReport, item),
        );
        continue;
      case 'first':
      case 'second':
      case 'third':
        checkLocation(
          (body.items as LocationReport[])[
            ['first', 'second', 'third'].indexOf(k)
          ] as LocationReport,
          val as Loose,
        );
        continue;
    }
    const ours = FIELD_NAMES[k];
    assert.ok(ours, `${v.id}: no mapping for expected field ${k}`);
    assert.equal(body[ours], typeof val === 'string' ? stripRemark(val) : val, `${v.id}.${k}`);
  }
  PROSE[v.id]?.(f);
  return checked;
}

function checkHeader(v: Vector, f: DecodedFrame): void {
  const e = v.expected;
  const c = v.checked;
  const id = (e.msg_id ?? c.msg_id) as string | undefined;
  if (id) assert.equal(hex4(f.header.messageId), firstToken(id));
  if (typeof e.phone === 'string') assert.equal(f.header.phone, firstToken(e.phone));
  if (typeof c.phone === 'string' && c.v2019 === (f.header.headerEdition === 2019))
    assert.equal(f.header.phone, c.phone);
  if (typeof e.serial === 'number') assert.equal(f.header.serial, e.serial);
  if (typeof e.body_len === 'number') assert.equal(f.header.bodyLength, e.body_len);
  if (typeof e.version === 'string') assert.equal(f.edition, Number(firstToken(e.version)));
  if (typeof e.proto_ver === 'number') assert.equal(f.header.protocolVersion, e.proto_ver);
  if (typeof e.subpackage === 'string') {
    const [index, total] = e.subpackage.split('/').map(Number);
    assert.equal(f.header.packageIndex, index);
    assert.equal(f.header.packageTotal, total);
  }
  if (c.v2019 !== undefined) assert.equal(f.header.headerEdition === 2019, c.v2019);
}

describe('conformance vectors: valid frames', () => {
  let fields = 0;
  for (const v of vectors.filter((x) => x.kind === 'valid')) {
    it(`${v.id} decodes as its source asserts`, () => {
      const r = decodeFrame(content(v.hex));
      assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
      assert.deepEqual(
        r.warnings.filter((w) => w !== 'encrypted-body'),
        [],
      );
      checkHeader(v, r);
      fields += checkBody(v, r);
      if (typeof v.expected.same_body_as === 'string') {
        const other = decodeFrame(content(byId.get(v.expected.same_body_as)!.hex));
        assert.ok(other.ok);
        assert.deepEqual(r.message?.body, other.message?.body);
      }
      // Re-encode where the encoding is canonical: our encoder pads fixed strings at the end,
      // so a 2019 device that front-pads (as the 2019 text asks) cannot come back byte for byte.
      if (r.message && v.id !== 'tc-0100-2019') {
        const again = encodeFrame(r.message, {
          phone: r.header.phone,
          serial: r.header.serial,
          edition: r.edition,
          ...(r.header.protocolVersion !== undefined
            ? { protocolVersion: r.header.protocolVersion }
            : {}),
        });
        assert.equal(Buffer.from(again).toString('hex'), v.hex.toLowerCase());
      }
    });
  }
  it('checked a substantial number of asserted body fields', () => {
    assert.ok(fields >= 150, `only ${fields} body fields checked`);
  });
  it('tc-0100-2019 (model front-padded with 0x00) still reads its fields', () => {
    const r = decodeFrame(content(byId.get('tc-0100-2019')!.hex));
    assert.ok(r.ok && r.message?.type === 'Register');
    assert.equal(r.message.body.model, 'MD300');
    assert.equal(r.message.body.terminalId, '866496077582164');
  });
});

describe('conformance vectors: invalid frames are rejected with the right reason', () => {
  const reasonFor = (error: string): string => {
    if (/check code/i.test(error)) return 'bad-check-code';
    if (/body length/i.test(error)) return 'body-length-mismatch';
    if (/too short/i.test(error)) return 'header-too-short';
    if (/0x7D followed/i.test(error)) return 'bad-escape';
    throw new Error(`no reason known for "${error}"`);
  };
  for (const v of vectors.filter((x) => x.kind === 'invalid')) {
    it(`${v.id}: ${String(v.expected.error)}`, () => {
      const r = decodeFrame(content(v.hex));
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.reason, reasonFor(v.expected.error as string));
        assert.ok(r.detail.length > 0);
      }
    });
  }
});

describe('conformance vectors: irregular frames', () => {
  it('go-tolerated-raw-7d: strict rejects the unescaped 0x7D, lenient reads the heartbeat', () => {
    const v = byId.get('go-tolerated-raw-7d')!;
    const strict = decodeFrame(content(v.hex));
    assert.ok(!strict.ok && strict.reason === 'bad-escape');
    const lenient = decodeFrame(content(v.hex), { lenient: true });
    assert.ok(lenient.ok && lenient.message?.type === 'Heartbeat');
    assert.deepEqual(lenient.warnings, ['raw-0x7d']);
    assert.equal(lenient.header.phone, v.checked.phone);
  });

  it('fran-0200-trailing-bytes: strict rejects the length lie, lenient trusts the header length', () => {
    const v = byId.get('fran-0200-trailing-bytes')!;
    const strict = decodeFrame(content(v.hex));
    assert.ok(!strict.ok && strict.reason === 'body-length-mismatch');
    const lenient = decodeFrame(content(v.hex), { lenient: true });
    assert.ok(lenient.ok && lenient.message?.type === 'LocationReport');
    assert.ok(lenient.warnings.includes('body-longer-than-declared'));
    assert.equal(lenient.body.length, 60);
    assert.equal(lenient.message.body.satellites, 20);
  });

  it('sc-issue26-8104-no-version-bit: a 2019 header without bit 14 is read as 2019', () => {
    const v = byId.get('sc-issue26-8104-no-version-bit')!;
    const r = decodeFrame(content(v.hex));
    assert.ok(r.ok, 'accepted in strict mode: the length proves the layout');
    assert.equal(r.header.headerEdition, 2019);
    assert.equal(r.header.phone, '00000000012345678910');
    assert.equal(r.header.serial, 1);
    assert.equal(r.message?.type, 'QueryAllParameters');
    assert.deepEqual(r.warnings, ['2019-header-without-version-flag']);
  });

  it('tc-frame-escape: the standard example escapes and unescapes', () => {
    const v = byId.get('tc-frame-escape')!;
    const expected = content(v.expected.unescaped as string);
    const un = unescapeFrame(content(v.hex));
    assert.ok(un.ok);
    assert.deepEqual(Buffer.from(un.bytes), Buffer.from(expected));
    assert.equal(
      Buffer.from(escapeBytes(expected)).toString('hex'),
      Buffer.from(content(v.hex)).toString('hex'),
    );
  });

  it('every irregular vector has a test here', () => {
    const covered = [
      'go-tolerated-raw-7d',
      'fran-0200-trailing-bytes',
      'sc-issue26-8104-no-version-bit',
    ];
    assert.deepEqual(
      vectors
        .filter((x) => x.kind === 'irregular')
        .map((x) => x.id)
        .sort(),
      covered.sort(),
    );
  });
});
