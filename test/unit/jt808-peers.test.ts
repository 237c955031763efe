// Frames from other implementations' test suites: Traccar's 113 decoder cases and yezhihao's
// 138 hex ⇄ JSON pairs. Traccar never verifies check codes, so its malformed frames must decode
// in lenient mode and be rejected, with a reason, in strict mode.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, type DecodedFrame } from '../../jt808/codec.js';
import { FrameSplitter } from '../../jt808/framing.js';
import type { LocationReport } from '../../jt808/location.js';
import { content, readCorpusJson } from '../helpers/corpus.js';

interface TraccarCase {
  assert: string;
  hex?: string;
  text?: string;
  expect?: string;
  checked?: {
    msg_id?: string;
    phone?: string;
    serial?: number;
    checksum_ok?: boolean;
    len_ok?: boolean;
    error?: string;
    v2019?: boolean;
  };
}

const traccar = readCorpusJson<TraccarCase[]>('traccar_cases.json');

function locationsOf(f: DecodedFrame): LocationReport[] {
  const m = f.message;
  if (m?.type === 'LocationReport') return [m.body];
  if (m?.type === 'LocationQueryReply') return [m.body.location];
  if (m?.type === 'LocationBatch') return m.body.items;
  return [];
}

describe("Traccar's JT/T 808 cases", () => {
  const framed = traccar.filter((c) => c.hex && c.hex.toLowerCase().startsWith('7e'));
  const wellFormed = framed.filter(
    (c) => c.checked?.checksum_ok && c.checked.len_ok && !c.checked.error,
  );
  const malformed = framed.filter((c) => !wellFormed.includes(c));

  it('the corpus has the cases this test expects', () => {
    assert.equal(traccar.length, 113);
    assert.equal(wellFormed.length, 93);
  });

  it('every well-formed frame decodes in strict mode, with the header the checker read', () => {
    for (const c of wellFormed) {
      const r = decodeFrame(content(c.hex as string));
      assert.ok(r.ok, `${c.hex}: ${r.ok ? '' : r.reason}`);
      assert.equal(`0x${r.header.messageId.toString(16).padStart(4, '0')}`, c.checked?.msg_id);
      assert.equal(r.header.phone, c.checked?.phone);
      assert.equal(r.header.serial, c.checked?.serial);
    }
  });

  it('every framed case decodes in lenient mode; malformed ones say what was wrong', () => {
    for (const c of framed) {
      const r = decodeFrame(content(c.hex as string), { lenient: true });
      assert.ok(r.ok, `${c.hex}: ${r.ok ? '' : `${r.reason} ${r.detail}`}`);
      if (malformed.includes(c))
        assert.ok(r.warnings.length > 0, `${c.hex} decoded without a warning`);
    }
  });

  it('every malformed frame is rejected in strict mode with the reason that fits it', () => {
    for (const c of malformed) {
      const r = decodeFrame(content(c.hex as string));
      assert.equal(r.ok, false, c.hex);
      if (r.ok) continue;
      const ch = c.checked ?? {};
      const expected = ch.error?.startsWith('bad escape')
        ? 'bad-escape'
        : ch.len_ok === false
          ? 'body-length-mismatch'
          : 'bad-check-code';
      assert.equal(r.reason, expected, c.hex);
    }
  });

  it('ASCII messages of the vendor protocol yield no frame: the framer counts them as garbage', () => {
    const others = traccar.filter((c) => !framed.includes(c));
    assert.equal(others.length, 2);
    for (const c of others) {
      const bytes = new Uint8Array(
        Buffer.from(c.hex ?? Buffer.from(c.text as string).toString('hex'), 'hex'),
      );
      const splitter = new FrameSplitter();
      let frames = 0;
      splitter.push(bytes, () => frames++);
      assert.equal(frames, 0);
      assert.equal(splitter.stats.garbageBytes, bytes.length);
    }
  });

  it('positions Traccar verifies come out as locations with a valid time and coordinates', () => {
    let n = 0;
    for (const c of wellFormed.filter(
      (x) => x.assert === 'verifyPosition' || x.assert === 'verifyPositions',
    )) {
      const r = decodeFrame(content(c.hex as string));
      assert.ok(r.ok);
      const locs = locationsOf(r);
      if (r.message?.type === 'Raw' || r.message?.type === 'PassThroughUp') continue; // vendor payloads
      assert.ok(locs.length > 0, c.hex);
      for (const loc of locs) {
        assert.ok(typeof loc.time === 'number', `${c.hex}: time`);
        assert.ok(Math.abs(loc.latitude) <= 90 && Math.abs(loc.longitude) <= 180, c.hex);
        n++;
      }
    }
    assert.ok(n >= 20, `${n} positions checked`);
  });

  it('the standard attributes Traccar asserts match ours', () => {
    const find = (expect: string): TraccarCase[] => wellFormed.filter((c) => c.expect === expect);
    for (const c of find('Position.KEY_SATELLITES, 14')) {
      const r = decodeFrame(content(c.hex as string));
      assert.ok(r.ok);
      assert.equal(locationsOf(r)[0]?.satellites, 14);
    }
    const iccid = find('Position.KEY_ICCID, "89883030000131882455"')[0];
    assert.ok(iccid);
    const p = decodeFrame(content(iccid.hex as string));
    assert.ok(p.ok && p.message?.type === 'PropertiesReply');
    assert.equal(p.message.body.iccid, '89883030000131882455');
    const driver = find('Position.KEY_DRIVER_UNIQUE_ID, "10218094"')[0];
    assert.ok(driver);
    const d = decodeFrame(content(driver.hex as string));
    assert.ok(d.ok && d.message?.type === 'PassThroughUp');
    assert.ok(Buffer.from(d.message.body.content).toString('latin1').includes('10218094'));
  });
});

interface Pair {
  hex: string;
  json: Record<string, unknown>;
}

const pairs = readCorpusJson<Pair[]>('yezhihao_pairs.json');

/** yezhihao's field names → ours, where the meaning is the same. */
const NAMES: Record<string, string> = {
  responseSerialNo: 'replySerial',
  responseMessageId: 'replyId',
  resultCode: 'result',
  result: 'result',
  token: 'authCode',
  imei: 'imei',
  softwareVersion: 'softwareVersion',
  provinceId: 'province',
  cityId: 'city',
  makerId: 'maker',
  deviceModel: 'model',
  deviceId: 'terminalId',
  plateColor: 'plateColor',
  plateNo: 'plate',
  deviceType: 'terminalType',
  iccid: 'iccid',
  hardwareVersion: 'hardwareVersion',
  firmwareVersion: 'firmwareVersion',
  gnssAttribute: 'gnssModule',
  networkAttribute: 'commModule',
  warnBit: 'alarm',
  statusBit: 'status',
  altitude: 'altitude',
  direction: 'direction',
  status: 'state',
  cardStatus: 'readResult',
  name: 'driverName',
  licenseNo: 'certificateCode',
  institution: 'issuingAuthority',
  licenseValidPeriod: 'certificateValidity',
  mediaId: 'mediaId',
  format: 'format',
  event: 'event',
  channelId: 'channel',
  command: 'command',
  parameter: 'parameters',
  brightness: 'brightness',
  contrast: 'contrast',
  saturation: 'saturation',
  chroma: 'chroma',
  quality: 'quality',
  resolution: 'resolution',
  save: 'save',
  interval: 'intervalSeconds',
  validityPeriod: 'validitySeconds',
  sign: 'flag',
  content: 'text',
};

/** Fields whose name means something else in one message. */
function ourName(messageId: number, theirs: string): string | undefined {
  if (messageId === 0x8003 && theirs === 'responseSerialNo') return 'originalSerial';
  if (messageId === 0x8203 && theirs === 'responseSerialNo') return 'alarmSerial';
  if (messageId === 0x8203 && theirs === 'type') return 'alarmType';
  if (messageId === 0x8801 && theirs === 'time') return 'intervalSeconds';
  if ((messageId === 0x0800 || messageId === 0x0801) && theirs === 'id') return 'mediaId';
  if ((messageId === 0x0800 || messageId === 0x0801) && theirs === 'type') return 'mediaType';
  if (messageId === 0x0704 && theirs === 'type') return 'batchType';
  if (messageId === 0x8105 && theirs === 'command') return 'command';
  return NAMES[theirs];
}

function compareLocation(ours: LocationReport, theirs: Record<string, unknown>): number {
  assert.equal(ours.alarm, theirs.warnBit);
  assert.equal(ours.status, theirs.statusBit);
  assert.equal(Math.round(Math.abs(ours.latitude) * 1e6), theirs.latitude);
  assert.equal(Math.round(Math.abs(ours.longitude) * 1e6), theirs.longitude);
  assert.equal(ours.altitude, theirs.altitude);
  assert.equal(Math.round(ours.speed * 10), theirs.speed);
  assert.equal(ours.direction, theirs.direction);
  // deviceTime is the wire's local (GMT+8) time without a zone.
  const local = new Date((ours.time as number) + 8 * 3600_000).toISOString().slice(0, 19);
  assert.equal(local, theirs.deviceTime);
  return 8;
}

describe("yezhihao's hex ⇄ JSON pairs", () => {
  it('every frame decodes with the header yezhihao read', () => {
    for (const p of pairs) {
      const r = decodeFrame(content(p.hex));
      assert.ok(r.ok, `${p.hex.slice(0, 40)}: ${r.ok ? '' : r.reason}`);
      assert.equal(r.header.messageId, p.json.messageId);
      assert.equal(r.header.phone, p.json.clientId);
      assert.equal(r.header.serial, p.json.serialNo);
      assert.equal(r.header.protocolVersion ?? 0, p.json.protocolVersion);
    }
  });

  it('the body fields that map to ours agree', () => {
    let compared = 0;
    let messages = 0;
    for (const p of pairs) {
      const r = decodeFrame(content(p.hex));
      assert.ok(r.ok && r.message);
      if (r.message.type === 'Raw') continue;
      messages++;
      const id = r.header.messageId;
      const body = r.message.body as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(p.json)) {
        if (id === 0x0200 || id === 0x0201) {
          const loc = (id === 0x0201 ? body.location : body) as LocationReport;
          if (k === 'warnBit') compared += compareLocation(loc, p.json);
          continue;
        }
        if (k === 'items' && id === 0x0704) {
          (v as Record<string, unknown>[]).forEach(
            (item, i) =>
              (compared += compareLocation(
                (body.items as LocationReport[])[i] as LocationReport,
                item,
              )),
          );
          continue;
        }
        if (k === 'location' && id === 0x0801) {
          compared += compareLocation(
            body.location as LocationReport,
            v as Record<string, unknown>,
          );
          continue;
        }
        if (k === 'packet' || k === 'body') {
          const ours = (body.data ?? body.content) as Uint8Array;
          assert.equal(
            Buffer.from(ours).toString('hex'),
            typeof v === 'string' ? v : Buffer.from(v as number[]).toString('hex'),
          );
          compared++;
          continue;
        }
        if (k === 'id' && Array.isArray(v)) {
          assert.deepEqual(body.packageIds ?? body.retransmitIds ?? body.mediaIds ?? body.ids, v);
          compared++;
          continue;
        }
        if (k === 'type' && id === 0x8300) {
          if (r.edition === 2019) assert.equal(body.textType, v);
          continue;
        }
        if (k === 'dateTime' && id === 0x0702) {
          const local = new Date((body.time as number) + 8 * 3600_000).toISOString();
          assert.equal(local.slice(2, 19).replace(/[-T:]/g, ''), v);
          compared++;
          continue;
        }
        if (k === 'idCard' && v === '') continue; // an empty 2019 ID number: we omit it
        const name = ourName(id, k);
        if (name === undefined || !(name in body)) continue;
        assert.equal(body[name], v, `0x${id.toString(16)}.${k}`);
        compared++;
      }
    }
    assert.ok(messages >= 50, `${messages} typed messages`);
    assert.ok(compared >= 250, `only ${compared} fields compared`);
  });
});
