// Every message body we know, as data: one entry per message id, one table per edition where
// the editions differ. Names say what the message is in the domain; the comments give the
// standard's tables (2013 numbering unless said otherwise).
import {
  BASIC_BLOCK_LENGTH,
  readBcdTime,
  readLocation,
  timeDigits,
  writeBasicBlock,
  writeLocation,
  type LocationReport,
} from './location.js';
import { parameter } from './parameters.js';
import {
  bcd,
  byEdition,
  custom,
  empty,
  list,
  optional,
  restBytes,
  restStr,
  str,
  str8,
  struct,
  u16,
  u32,
  u8,
  type Codec,
  type Infer,
} from './schema.js';
import {
  CONNECT_TO_SERVER,
  formatConnectToServer,
  parseConnectToServer,
  type ConnectToServer,
} from './terminalControl.js';

/** The whole rest of the body as one location report. */
const location: Codec<LocationReport> = custom(
  (r) => {
    const loc = readLocation(r.buf, r.pos, r.end);
    r.pos = r.end;
    return loc;
  },
  (w, v) => writeLocation(w, v),
);

/** Only the 28-byte basic block (0x0801's position). */
const basicLocation: Codec<LocationReport> = custom(
  (r) => {
    r.need(BASIC_BLOCK_LENGTH);
    const loc = readLocation(r.buf, r.pos, r.pos + BASIC_BLOCK_LENGTH);
    r.pos += BASIC_BLOCK_LENGTH;
    return loc;
  },
  (w, v) => writeBasicBlock(w, v),
);

export interface LocationBatch {
  /** 0 normal batch, 1 blind-area re-upload. */
  batchType: number;
  items: LocationReport[];
  /** Items whose length prefix disagreed with the body; parsed as far as they were sound. */
  malformedItems?: number;
  /** The count field, when it disagreed with the items present. */
  declaredCount?: number;
}

/** 0x0704 (2013 tables 76–77): count WORD, type BYTE, items {length WORD, location}. */
const locationBatch: Codec<LocationBatch> = custom(
  (r) => {
    const count = r.u16();
    const batchType = r.u8();
    const items: LocationReport[] = [];
    let malformed = 0;
    while (r.remaining >= 2) {
      const len = r.u16();
      let end = r.pos + len;
      if (len < BASIC_BLOCK_LENGTH || end > r.end) {
        malformed++;
        end = r.end; // take what is there
      }
      if (end - r.pos >= BASIC_BLOCK_LENGTH) items.push(readLocation(r.buf, r.pos, end));
      r.pos = end;
    }
    if (r.remaining > 0) {
      malformed++;
      r.pos = r.end;
    }
    const out: LocationBatch = { batchType, items };
    if (malformed > 0) out.malformedItems = malformed;
    if (count !== items.length) out.declaredCount = count;
    return out;
  },
  (w, v) => {
    w.u16(v.items.length).u8(v.batchType);
    for (const item of v.items) {
      const start = w.pos;
      w.u16(0);
      writeLocation(w, item);
      w.patchU16(start, w.pos - start - 2);
    }
  },
);

export interface Register {
  province: number;
  city: number;
  maker: string;
  model: string;
  terminalId: string;
  /** 0: no plate, `plate` then holds the VIN. */
  plateColor: number;
  plate: string;
}

const registerFields = (maker: number, model: number, terminalId: number): Codec<Register> =>
  struct({
    province: u16,
    city: u16,
    maker: str(maker),
    model: str(model),
    terminalId: str(terminalId),
    plateColor: u8,
    plate: restStr,
  });
const register2011 = registerFields(5, 8, 7);
const register2013 = registerFields(5, 20, 7);

/** 0x0100. 2011 and 2013 share a header; the 2011 body is 12 bytes shorter (model BYTE[8]). */
const register: Codec<Register> = byEdition({
  2011: register2011,
  2013: custom(
    (r, ctx) => {
      // 2013's fixed part after province/city is 33 bytes; a shorter body can only be 2011.
      if (r.remaining - 4 < 33) {
        ctx.edition = 2011;
        return register2011.read(r, ctx);
      }
      return register2013.read(r, ctx);
    },
    (w, v, ctx) => register2013.write(w, v, ctx),
  ),
  2019: registerFields(11, 30, 30),
});

export interface RegisterReply {
  replySerial: number;
  /** 0 ok, 1 vehicle already registered, 2 no such vehicle, 3 terminal already registered, 4 no such terminal. */
  result: number;
  /** Present only when result is 0. */
  authCode?: string;
}

const registerReply: Codec<RegisterReply> = custom(
  (r) => {
    const replySerial = r.u16();
    const result = r.u8();
    const out: RegisterReply = { replySerial, result };
    if (result === 0) out.authCode = restStr.read(r, { edition: 2013 });
    return out;
  },
  (w, v) => {
    w.u16(v.replySerial).u8(v.result);
    if (v.result === 0) w.gbk(v.authCode ?? '');
  },
);

export interface TerminalProperties {
  terminalType: number;
  maker: string;
  model: string;
  terminalId: string;
  iccid: string;
  hardwareVersion: string;
  firmwareVersion: string;
  gnssModule: number;
  commModule: number;
  /** 2019 devices send the maker as 5 bytes (table 20) or 11; set when it was 11. */
  makerLength?: 11;
}

const propertiesTail = struct({
  iccid: bcd(10),
  hardwareVersion: str8,
  firmwareVersion: str8,
  gnssModule: u8,
  commModule: u8,
});

/** 0x0107 (2013 table 20; 2019 table 20, maker 5 or 11 bytes in the wild). */
const properties: Codec<TerminalProperties> = custom(
  (r, ctx) => {
    const terminalType = r.u16();
    let makerLen = 5;
    if (ctx.edition === 2019) {
      // Which maker length makes the rest of the body add up exactly?
      const fits = (m: number): boolean => {
        const hw = r.pos + m + 60 + 10;
        if (hw >= r.end) return false;
        const fw = hw + 1 + r.buf[hw]!;
        if (fw >= r.end) return false;
        return fw + 1 + r.buf[fw]! + 2 === r.end;
      };
      if (!fits(5) && fits(11)) makerLen = 11;
    }
    const modelLen = ctx.edition === 2019 ? 30 : 20;
    const idLen = ctx.edition === 2019 ? 30 : 7;
    const out: TerminalProperties = {
      terminalType,
      maker: r.gbk(makerLen),
      model: r.gbk(modelLen),
      terminalId: r.gbk(idLen),
      ...propertiesTail.read(r, ctx),
    };
    if (makerLen === 11) out.makerLength = 11;
    return out;
  },
  (w, v, ctx) => {
    const v19 = ctx.edition === 2019;
    w.u16(v.terminalType)
      .gbk(v.maker, v19 ? (v.makerLength ?? 5) : 5)
      .gbk(v.model, v19 ? 30 : 20)
      .gbk(v.terminalId, v19 ? 30 : 7);
    propertiesTail.write(w, v, ctx);
  },
);

export interface TerminalControl {
  command: number;
  /** The ';'-joined parameter STRING as sent. */
  parameters: string;
  /** Command word 2 read into named fields. */
  connectToServer?: ConnectToServer;
}

/** 0x8105 (2013 tables 17–19). */
const terminalControl: Codec<TerminalControl> = custom(
  (r, ctx) => {
    const command = r.u8();
    const parameters = restStr.read(r, ctx);
    const out: TerminalControl = { command, parameters };
    if (command === CONNECT_TO_SERVER) {
      const c = parseConnectToServer(parameters);
      if (c) out.connectToServer = c;
    }
    return out;
  },
  (w, v) => {
    w.u8(v.command);
    const params =
      v.parameters || (v.connectToServer ? formatConnectToServer(v.connectToServer) : '');
    w.gbk(params);
  },
);

export interface DriverIdentity {
  /** 1 card inserted (driver on duty), 2 removed. */
  state?: number;
  /** ms since the epoch (GMT+8 on the wire); null when not a valid time. */
  time?: number | null;
  /** 0 read ok; 1–4 read failures. */
  readResult?: number;
  driverName?: string;
  /** 2011 and 2019 only. */
  driverIdNumber?: string;
  certificateCode?: string;
  issuingAuthority?: string;
  /** YYYYMMDD. */
  certificateValidity?: string;
}

/** 0x0702: 2011 table 64; 2013 table 75; 2019 adds the driver's ID number. */
const driverIdentity: Codec<DriverIdentity> = custom(
  (r, ctx) => {
    if (ctx.edition === 2011) {
      const driverName = str8.read(r, ctx);
      return {
        driverName,
        driverIdNumber: r.gbk(20),
        certificateCode: r.gbk(40),
        issuingAuthority: str8.read(r, ctx),
      };
    }
    const state = r.u8();
    const raw = r.bytes(6);
    const out: DriverIdentity = { state, time: readBcdTime(raw, 0) };
    // The standard fills the rest only for state 1 and read result 0; some devices always send
    // it, so read whatever is there.
    if (r.remaining === 0) return out;
    out.readResult = r.u8();
    if (r.remaining === 0) return out;
    out.driverName = str8.read(r, ctx);
    out.certificateCode = r.gbk(20);
    out.issuingAuthority = str8.read(r, ctx);
    out.certificateValidity = r.bcd(4);
    if (ctx.edition === 2019 && r.remaining >= 20) out.driverIdNumber = r.gbk(20);
    return out;
  },
  (w, v, ctx) => {
    if (ctx.edition === 2011) {
      str8.write(w, v.driverName ?? '', ctx);
      w.gbk(v.driverIdNumber ?? '', 20).gbk(v.certificateCode ?? '', 40);
      str8.write(w, v.issuingAuthority ?? '', ctx);
      return;
    }
    w.u8(v.state ?? 1).bcd(typeof v.time === 'number' ? timeDigits(v.time) : '000000000000', 6);
    if (v.readResult === undefined) return;
    w.u8(v.readResult);
    if (v.driverName === undefined) return;
    str8.write(w, v.driverName ?? '', ctx);
    w.gbk(v.certificateCode ?? '', 20);
    str8.write(w, v.issuingAuthority ?? '', ctx);
    w.bcd(v.certificateValidity ?? '00000000', 4);
    if (ctx.edition === 2019) w.gbk(v.driverIdNumber ?? '', 20);
  },
);

/** 2019 0x8004: BCD[6] in UTC (unlike every other time in the standard); ms since the epoch. */
const utcTime: Codec<number | null> = custom(
  (r) => readBcdTime(r.bytes(6), 0, 0),
  (w, v) => void w.bcd(v === null ? '000000000000' : timeDigits(v, 0), 6),
);

const mediaHeader = { mediaId: u32, mediaType: u8, format: u8, event: u8, channel: u8 };

/** 0x8003 / 0x0005: the count is a BYTE in 2013 and a WORD in 2019 (2019 table 7). */
const retransmitRequest = byEdition({
  2013: struct({ originalSerial: u16, packageIds: list(u8, u16) }),
  2019: struct({ originalSerial: u16, packageIds: list(u16, u16) }),
});

const generalResponse = struct({ replySerial: u16, replyId: u16, result: u8 });

/** The message table: name → id and body. */
export const MESSAGES = {
  TerminalResponse: { id: 0x0001, body: generalResponse }, // 2013 table 4
  Heartbeat: { id: 0x0002, body: empty },
  Logout: { id: 0x0003, body: empty },
  QueryServerTime: { id: 0x0004, body: empty }, // 2019
  TerminalRetransmitRequest: { id: 0x0005, body: retransmitRequest }, // 2019
  Register: { id: 0x0100, body: register }, // table 8
  Authenticate: {
    id: 0x0102,
    body: byEdition({
      2013: struct({ authCode: restStr }),
      2019: struct({ authCode: str8, imei: str(15), softwareVersion: str(20) }), // 2019 table 10
    }),
  },
  ParametersReply: { id: 0x0104, body: struct({ replySerial: u16, params: list(u8, parameter) }) }, // table 16
  PropertiesReply: { id: 0x0107, body: properties },
  LocationReport: { id: 0x0200, body: location }, // tables 23–27
  LocationQueryReply: { id: 0x0201, body: struct({ replySerial: u16, location }) },
  DriverIdentity: { id: 0x0702, body: driverIdentity },
  LocationBatch: { id: 0x0704, body: locationBatch },
  CanBusData: {
    id: 0x0705, // table 78
    body: custom(
      (r) => {
        const count = r.u16();
        const receiveTime = r.bcd(5);
        const items: { canId: number; data: Uint8Array }[] = [];
        for (let i = 0; i < count; i++) items.push({ canId: r.u32(), data: r.bytes(8) });
        return { receiveTime, items };
      },
      (w, v) => {
        w.u16(v.items.length).bcd(v.receiveTime, 5);
        for (const it of v.items) w.u32(it.canId).fixed(it.data, 8);
      },
    ),
  },
  MediaEvent: { id: 0x0800, body: struct(mediaHeader) }, // table 80
  MediaData: {
    id: 0x0801,
    body: byEdition({
      2011: struct({ ...mediaHeader, packageTotal: u32, packageId: u32, data: restBytes }), // 2011 table 66
      2013: struct({ ...mediaHeader, location: basicLocation, data: restBytes }), // table 81
    }),
  },
  PhotoReply: {
    id: 0x0805,
    body: struct({ replySerial: u16, result: u8, mediaIds: optional(list(u16, u32)) }),
  }, // table 84
  PassThroughUp: { id: 0x0900, body: struct({ passThroughType: u8, content: restBytes }) }, // table 91
  CompressedUpload: {
    id: 0x0901,
    body: custom(
      (r) => ({ data: r.bytes(r.u32()) }),
      (w, v) => void w.u32(v.data.length).bytes(v.data),
    ),
  },

  PlatformResponse: { id: 0x8001, body: generalResponse }, // table 5; result 4 = alarm confirmed
  RetransmitRequest: { id: 0x8003, body: retransmitRequest },
  ServerTime: { id: 0x8004, body: struct({ time: utcTime }) }, // 2019 table 6
  RegisterReply: { id: 0x8100, body: registerReply }, // table 9
  SetParameters: { id: 0x8103, body: struct({ params: list(u8, parameter) }) }, // table 10
  QueryAllParameters: { id: 0x8104, body: empty },
  TerminalControl: { id: 0x8105, body: terminalControl },
  QueryParameters: { id: 0x8106, body: struct({ ids: list(u8, u32) }) }, // table 14
  QueryProperties: { id: 0x8107, body: empty },
  LocationQuery: { id: 0x8201, body: empty },
  TemporaryTracking: { id: 0x8202, body: struct({ intervalSeconds: u16, validitySeconds: u32 }) }, // table 28
  AlarmConfirm: { id: 0x8203, body: struct({ alarmSerial: u16, alarmType: u32 }) }, // table 29
  TextMessage: {
    id: 0x8300,
    body: byEdition({
      2013: struct({ flag: u8, text: restStr }), // tables 37–38
      2019: struct({ flag: u8, textType: u8, text: restStr }), // 2019 tables 37–38
    }),
  },
  MediaDataReply: {
    id: 0x8800,
    body: byEdition({
      2011: struct({ replySerial: u16, mediaId: u32, retransmitIds: optional(list(u8, u16)) }), // 2011 table 67
      2013: struct({ mediaId: u32, retransmitIds: optional(list(u8, u16)) }), // table 82
    }),
  },
  TakePhoto: {
    id: 0x8801, // table 83
    body: struct({
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
    }),
  },
  PassThroughDown: { id: 0x8900, body: struct({ passThroughType: u8, content: restBytes }) }, // table 93
} as const satisfies Record<string, { id: number; body: Codec<unknown> }>;

export type MessageName = keyof typeof MESSAGES;
export type BodyOf<N extends MessageName> = Infer<(typeof MESSAGES)[N]['body']>;

/** A decoded message: a typed body, or the raw body of an id we do not know. */
export type Message =
  | { [N in MessageName]: { type: N; body: BodyOf<N> } }[MessageName]
  | { type: 'Raw'; messageId: number; body: Uint8Array };

const BY_ID = new Map<number, MessageName>();
for (const [name, m] of Object.entries(MESSAGES)) BY_ID.set(m.id, name as MessageName);

export function messageName(id: number): MessageName | undefined {
  return BY_ID.get(id);
}

export function messageIdOf(m: Message): number {
  return m.type === 'Raw' ? m.messageId : MESSAGES[m.type].id;
}
