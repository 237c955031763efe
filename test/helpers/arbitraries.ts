// fast-check generators for every message type and edition, biased towards bytes that need
// escaping (0x7E, 0x7D). Shared by the round-trip property tests and the fuzzer.
import fc from 'fast-check';
import { encodeGbk } from '../../jt808/bytes.js';
import type { Edition } from '../../jt808/header.js';
import type { LocationReport } from '../../jt808/location.js';
import { ITEM_TABLE, type LocationItemValues } from '../../jt808/locationItems.js';

const ITEM_IDS = ITEM_TABLE.map((s) => s.id);
const ITEM_NAMES: Record<number, string> = Object.fromEntries(
  ITEM_TABLE.map((s) => [s.id, s.name]),
);
import type { Message } from '../../jt808/messages.js';
import { formatConnectToServer, type ConnectToServer } from '../../jt808/terminalControl.js';

const escapey = [0x7e, 0x7d, 0x7e7d, 0x7d7e, 0x7e7e7e7e, 0x7d7d7d7d];
const uint = (bits: 8 | 16 | 32): fc.Arbitrary<number> => {
  const max = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  return fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max }) },
    { weight: 1, arbitrary: fc.constantFrom(...escapey.map((v) => v & max)) },
  );
};
export const u8 = uint(8);
export const u16 = uint(16);
export const u32 = uint(32);

const chars = fc.constantFrom(
  ...'abcXYZ019 ;~-_.@#粤京测试终端车辆'.split('').filter((c) => c !== ';'),
);
const safeChars = fc.constantFrom(...'abcXYZ019~-_.@粤京测试'.split(''));

/** A GBK string of at most `maxBytes` bytes with no 0x00 (padding would eat it). */
export const gbk = (maxBytes: number, c = chars): fc.Arbitrary<string> =>
  fc
    .array(c, { maxLength: maxBytes })
    .map((a) => a.join(''))
    .filter((s) => encodeGbk(s).length <= maxBytes && s.trim() === s);

export const bytes = (max: number): fc.Arbitrary<Uint8Array> =>
  fc
    .uint8Array({ maxLength: max })
    .chain((b) => fc.constantFrom(b, Uint8Array.from([...b, 0x7e, 0x7d])));

const digits = (n: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: n, maxLength: n }).map((a) => a.join(''));

/** Whole seconds between 2000 and 2099 (GMT+8), as the BCD time can carry. */
export const time = fc
  .integer({
    min: Date.UTC(2000, 0, 1, 0, 0, 0) - 8 * 3600_000,
    max: Date.UTC(2099, 11, 31, 15, 59, 59),
  })
  .map((ms) => Math.floor(ms / 1000) * 1000);

/** Whole seconds between 2000 and 2099 UTC (2019 0x8004 carries UTC). */
export const utcTime = fc
  .integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2099, 11, 31, 23, 59, 59) })
  .map((ms) => Math.floor(ms / 1000) * 1000);

const itemValues: fc.Arbitrary<LocationItemValues> = fc.record(
  {
    mileageKm: u32.map((v) => v / 10),
    fuelL: u16.map((v) => v / 10),
    recorderSpeedKmh: u16.map((v) => v / 10),
    alarmEventId: u16,
    tyrePressure: fc.array(u8, { minLength: 30, maxLength: 30 }),
    compartmentTemperatureC: fc.integer({ min: -32767, max: 32767 }),
    overspeed: fc.oneof(
      fc.record({ locationType: fc.constant(0) }),
      fc.record({ locationType: fc.integer({ min: 1, max: 4 }), areaId: u32 }),
    ),
    areaAlarm: fc.record({ locationType: u8, areaId: u32, direction: u8 }),
    routeTime: fc.record({ routeId: u32, seconds: u16, result: u8 }),
    vehicleSignal: u32,
    ioStatus: u16,
    analog: fc.record({ ad0: u16, ad1: u16 }),
    signal: u8,
    satellites: u8,
  },
  { requiredKeys: [] },
);

/** A location report as the decoder returns it (named views included). */
export const location: fc.Arbitrary<LocationReport> = fc
  .record({
    alarm: u32,
    status: u32,
    lat: fc.integer({ min: 0, max: 90_000_000 }),
    lon: fc.integer({ min: 0, max: 180_000_000 }),
    altitude: u16,
    speed: u16,
    direction: fc.integer({ min: 0, max: 359 }),
    time,
    values: itemValues,
    vendor: fc.array(fc.record({ id: fc.integer({ min: 0xe1, max: 0xff }), raw: bytes(20) }), {
      maxLength: 2,
    }),
  })
  .map((r) => {
    const loc: LocationReport = {
      alarm: r.alarm,
      status: r.status,
      latitude: r.status & 4 ? -r.lat / 1e6 : r.lat / 1e6,
      longitude: r.status & 8 ? -r.lon / 1e6 : r.lon / 1e6,
      altitude: r.altitude,
      speed: r.speed / 10,
      direction: r.direction,
      time: r.time,
      ...r.values,
    };
    if (r.vendor.length > 0) loc.extraItems = r.vendor;
    // What the decoder records once the order is not the table's: named items (in table order, as
    // the encoder writes them), then the vendor ones.
    if (r.vendor.length > 0)
      loc.itemOrder = [
        ...ITEM_IDS.filter(
          (id) => (r.values as Record<string, unknown>)[ITEM_NAMES[id]!] !== undefined,
        ),
        ...r.vendor.map((v) => -1 - v.id),
      ];
    return loc;
  });

const basicLocation = location.map((l): LocationReport => ({
  alarm: l.alarm,
  status: l.status,
  latitude: l.latitude,
  longitude: l.longitude,
  altitude: l.altitude,
  speed: l.speed,
  direction: l.direction,
  time: l.time,
}));

const parameter = fc.oneof(
  fc.record({
    id: fc.constantFrom(0x0001, 0x0002, 0x0029, 0x0055, 0x0080),
    value: u32 as fc.Arbitrary<number | string | Uint8Array>,
  }),
  fc.record({
    id: fc.constantFrom(0x0031, 0x0081, 0x0082),
    value: u16 as fc.Arbitrary<number | string | Uint8Array>,
  }),
  fc.record({ id: fc.constant(0x0084), value: u8 as fc.Arbitrary<number | string | Uint8Array> }),
  fc.record({
    id: fc.constantFrom(0x0010, 0x0013, 0x0083),
    value: gbk(40) as fc.Arbitrary<number | string | Uint8Array>,
  }),
  fc.record({
    id: fc.constantFrom(0xf364, 0x0075, 0x12345678),
    value: bytes(30) as fc.Arbitrary<number | string | Uint8Array>,
  }),
);

const connectToServer: fc.Arbitrary<ConnectToServer> = fc.oneof(
  fc.constant<ConnectToServer>({ connectionControl: 1 }),
  fc
    .record(
      {
        authCode: gbk(12, safeChars).filter(Boolean),
        apn: gbk(12, safeChars).filter(Boolean),
        dialUser: gbk(8, safeChars).filter(Boolean),
        dialPassword: gbk(8, safeChars).filter(Boolean),
        address: fc.ipV4(),
        tcpPort: fc.integer({ min: 1, max: 65535 }),
        udpPort: fc.integer({ min: 1, max: 65535 }),
        timeLimitMinutes: fc.integer({ min: 0, max: 1440 }),
      },
      { requiredKeys: [] },
    )
    .map((c): ConnectToServer => ({ connectionControl: 0, ...c })),
);

const mediaHeader = { mediaId: u32, mediaType: u8, format: u8, event: u8, channel: u8 };

/** Every message type, shaped for `edition`, as the decoder will return it. */
export function message(edition: Edition): fc.Arbitrary<Message> {
  const m = <T extends Message>(x: fc.Arbitrary<T>): fc.Arbitrary<Message> =>
    x as fc.Arbitrary<Message>;
  const v19 = edition === 2019;
  const generalResponse = fc.record({ replySerial: u16, replyId: u16, result: u8 });
  const retransmit = fc.record({
    originalSerial: u16,
    packageIds: fc.array(u16, { maxLength: 40 }),
  });
  const register = fc.record({
    province: u16,
    city: u16,
    maker: gbk(v19 ? 11 : 5),
    model: gbk(edition === 2011 ? 8 : v19 ? 30 : 20),
    terminalId: gbk(v19 ? 30 : 7),
    plateColor: u8,
    plate: gbk(17),
  });
  const all: fc.Arbitrary<Message>[] = [
    m(generalResponse.map((body) => ({ type: 'TerminalResponse' as const, body }))),
    m(fc.constant({ type: 'Heartbeat' as const, body: {} })),
    m(fc.constant({ type: 'Logout' as const, body: {} })),
    m(fc.constant({ type: 'QueryServerTime' as const, body: {} })),
    m(retransmit.map((body) => ({ type: 'TerminalRetransmitRequest' as const, body }))),
    m(register.map((body) => ({ type: 'Register' as const, body }))),
    m(
      (v19
        ? fc.record({ authCode: gbk(60), imei: digits(15), softwareVersion: gbk(20) })
        : fc.record({ authCode: gbk(60) })
      ).map((body) => ({ type: 'Authenticate' as const, body })),
    ),
    m(
      fc
        .record({ replySerial: u16, params: fc.array(parameter, { maxLength: 8 }) })
        .map((body) => ({ type: 'ParametersReply' as const, body })),
    ),
    m(
      fc
        .record({
          terminalType: u16,
          maker: gbk(5),
          model: gbk(v19 ? 30 : 20),
          terminalId: gbk(v19 ? 30 : 7),
          iccid: digits(20),
          hardwareVersion: gbk(20),
          firmwareVersion: gbk(20),
          gnssModule: u8,
          commModule: u8,
        })
        .map((body) => ({ type: 'PropertiesReply' as const, body })),
    ),
    m(location.map((body) => ({ type: 'LocationReport' as const, body }))),
    m(
      fc
        .record({ replySerial: u16, location })
        .map((body) => ({ type: 'LocationQueryReply' as const, body })),
    ),
    m(
      (edition === 2011
        ? fc.record({
            driverName: gbk(20),
            driverIdNumber: gbk(20),
            certificateCode: gbk(40),
            issuingAuthority: gbk(40),
          })
        : fc.oneof(
            fc.record({ state: fc.constant(2), time }),
            fc.record({ state: fc.constant(1), time, readResult: fc.integer({ min: 1, max: 4 }) }),
            fc
              .record({
                state: fc.constant(1),
                time,
                readResult: fc.constant(0),
                driverName: gbk(20),
                certificateCode: gbk(20),
                issuingAuthority: gbk(40),
                certificateValidity: digits(8),
                ...(v19 ? { driverIdNumber: gbk(20) } : {}),
              })
              .map((x) => x),
          )
      ).map((body) => ({ type: 'DriverIdentity' as const, body })),
    ),
    m(
      fc
        .record({
          batchType: fc.constantFrom(0, 1),
          items: fc.array(location, { minLength: 1, maxLength: 5 }),
        })
        .map((body) => ({ type: 'LocationBatch' as const, body })),
    ),
    m(
      fc
        .record({
          receiveTime: digits(10),
          items: fc.array(
            fc.record({ canId: u32, data: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
            { maxLength: 10 },
          ),
        })
        .map((body) => ({ type: 'CanBusData' as const, body })),
    ),
    m(fc.record(mediaHeader).map((body) => ({ type: 'MediaEvent' as const, body }))),
    m(
      (edition === 2011
        ? fc.record({ ...mediaHeader, packageTotal: u32, packageId: u32, data: bytes(200) })
        : fc.record({ ...mediaHeader, location: basicLocation, data: bytes(200) })
      ).map((body) => ({ type: 'MediaData' as const, body })),
    ),
    m(
      fc
        .record({
          replySerial: u16,
          result: u8,
          mediaIds: fc.option(fc.array(u32, { maxLength: 10 }), { nil: undefined }),
        })
        .map((body) => ({ type: 'PhotoReply' as const, body })),
    ),
    m(
      fc
        .record({ passThroughType: u8, content: bytes(200) })
        .map((body) => ({ type: 'PassThroughUp' as const, body })),
    ),
    m(fc.record({ data: bytes(200) }).map((body) => ({ type: 'CompressedUpload' as const, body }))),
    m(generalResponse.map((body) => ({ type: 'PlatformResponse' as const, body }))),
    m(retransmit.map((body) => ({ type: 'RetransmitRequest' as const, body }))),
    m(fc.record({ time: utcTime }).map((body) => ({ type: 'ServerTime' as const, body }))),
    m(
      fc
        .oneof(
          fc.record({ replySerial: u16, result: fc.constant(0), authCode: gbk(40) }),
          fc.record({ replySerial: u16, result: fc.integer({ min: 1, max: 4 }) }),
        )
        .map((body) => ({ type: 'RegisterReply' as const, body })),
    ),
    m(
      fc
        .record({ params: fc.array(parameter, { maxLength: 8 }) })
        .map((body) => ({ type: 'SetParameters' as const, body })),
    ),
    m(fc.constant({ type: 'QueryAllParameters' as const, body: {} })),
    m(
      fc
        .oneof(
          fc.record({ command: fc.constantFrom(1, 3, 4, 5, 6, 7, 0xf0), parameters: gbk(60) }),
          connectToServer.map((c) => ({
            command: 2,
            parameters: formatConnectToServer(c),
            connectToServer: c,
          })),
        )
        .map((body) => ({ type: 'TerminalControl' as const, body })),
    ),
    m(
      fc
        .record({ ids: fc.array(u32, { maxLength: 20 }) })
        .map((body) => ({ type: 'QueryParameters' as const, body })),
    ),
    m(fc.constant({ type: 'QueryProperties' as const, body: {} })),
    m(fc.constant({ type: 'LocationQuery' as const, body: {} })),
    m(
      fc
        .record({ intervalSeconds: u16, validitySeconds: u32 })
        .map((body) => ({ type: 'TemporaryTracking' as const, body })),
    ),
    m(
      fc
        .record({ alarmSerial: u16, alarmType: u32 })
        .map((body) => ({ type: 'AlarmConfirm' as const, body })),
    ),
    m(
      (v19
        ? fc.record({ flag: u8, textType: fc.constantFrom(1, 2), text: gbk(200) })
        : fc.record({ flag: u8, text: gbk(200) })
      ).map((body) => ({
        type: 'TextMessage' as const,
        body,
      })),
    ),
    m(
      (edition === 2011
        ? fc.record({
            replySerial: u16,
            mediaId: u32,
            retransmitIds: fc.option(fc.array(u16, { maxLength: 125 }), { nil: undefined }),
          })
        : fc.record({
            mediaId: u32,
            retransmitIds: fc.option(fc.array(u16, { maxLength: 125 }), { nil: undefined }),
          })
      ).map((body) => ({ type: 'MediaDataReply' as const, body })),
    ),
    m(
      fc
        .record({
          channel: u8,
          command: u16,
          intervalSeconds: u16,
          save: u8,
          resolution: u8,
          quality: u8,
          brightness: u8,
          contrast: u8,
          saturation: u8,
          chroma: u8,
        })
        .map((body) => ({ type: 'TakePhoto' as const, body })),
    ),
    m(
      fc
        .record({ passThroughType: u8, content: bytes(200) })
        .map((body) => ({ type: 'PassThroughDown' as const, body })),
    ),
    m(
      fc
        .record({ messageId: fc.constantFrom(0x0108, 0x1205, 0x9101, 0xf001), body: bytes(300) })
        .map((x) => ({ type: 'Raw' as const, ...x })),
    ),
  ];
  return fc.oneof(...all);
}

export const edition: fc.Arbitrary<Edition> = fc.constantFrom(2011, 2013, 2019);
export const phone = (e: Edition): fc.Arbitrary<string> => digits(e === 2019 ? 20 : 12);
