// A simulated JT/T 808 terminal over a real TCP connection: register, authenticate, report,
// and wait for the platform's answers, recording each acknowledgement's latency. Used by the
// integration tests and by the simulator.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { decodeFrame, encodeBody, encodeFrame, type DecodedFrame } from '../jt808/codec.js';
import { FrameSplitter } from '../jt808/framing.js';
import { MAX_BODY_LENGTH, type Edition } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import type { Message } from '../jt808/messages.js';
import { splitMessage } from '../jt808/split.js';

export interface TerminalOptions {
  host?: string;
  port: number;
  phone: string;
  edition?: Edition;
  /** How long to wait for an answer (ms). */
  timeoutMs?: number;
}

interface Waiter {
  match(f: DecodedFrame): boolean;
  resolve(f: DecodedFrame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Photos one 0x8801 makes a simulated terminal take at most (a device has its own limits). */
const MAX_PHOTOS_PER_COMMAND = 8;

export class SimTerminal {
  /**
   * Terminals of this process answer a 0x8801 as a device does: the 0x0805 names a media id per
   * photo, then each photo goes up with 0x0801 (in sub-packages when larger than a packet). The
   * simulator turns it on; tests that upload by hand leave it off (then only the 0x0805 goes).
   */
  static uploadsPhotos = false;
  /** Body bytes per packet of an upload (at most MAX_BODY_LENGTH). */
  static packetBytes = MAX_BODY_LENGTH;
  private socket: Socket | undefined;
  private readonly splitter = new FrameSplitter();
  private readonly waiters = new Set<Waiter>();
  private serial = 0;
  readonly received: DecodedFrame[] = [];
  readonly ackLatenciesMs: number[] = [];
  authCode: string | undefined;
  closed = false;
  /** Commands answered by `answerCommands` (by message type). */
  readonly answered = new Map<string, number>();
  /** Photos uploaded after a 0x8801 and answered 0x8800 with nothing missing. */
  mediaUploaded = 0;
  /** Photo uploads not answered so (refused, timed out, connection lost). */
  mediaFailed = 0;
  private nextMediaId = 1;
  private answering: (() => LocationReport) | undefined;

  constructor(readonly options: TerminalOptions) {}

  get edition(): Edition {
    return this.options.edition ?? 2013;
  }

  async connect(): Promise<void> {
    this.closed = false;
    const socket = connect({ host: this.options.host ?? '127.0.0.1', port: this.options.port });
    socket.setNoDelay(true);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
    } catch (err) {
      // Refused: closed, so a later request fails at once instead of waiting out its timeout.
      this.closed = true;
      socket.destroy();
      throw err;
    }
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters) {
        clearTimeout(w.timer);
        w.reject(new Error('connection closed'));
      }
      this.waiters.clear();
    });
    socket.on('data', (chunk: Buffer) =>
      this.splitter.push(chunk, (escaped) => {
        const r = decodeFrame(escaped, { edition: this.edition });
        if (!r.ok) return;
        this.received.push(r);
        if (this.answering && r.message) this.answer(r, this.answering);
        for (const w of this.waiters) {
          if (w.match(r)) {
            clearTimeout(w.timer);
            this.waiters.delete(w);
            w.resolve(r);
            break;
          }
        }
      }),
    );
    this.socket = socket;
  }

  /** Sends a message; returns the serial it used. */
  send(message: Message, serial = this.nextSerial()): number {
    this.writeRaw(
      encodeFrame(message, { phone: this.options.phone, serial, edition: this.edition }),
    );
    return serial;
  }

  writeRaw(bytes: Uint8Array): void {
    this.socket?.write(bytes);
  }

  nextSerial(): number {
    const s = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    return s;
  }

  /** Waits for the first frame from the platform that `match` accepts. */
  waitFor(match: (f: DecodedFrame) => boolean): Promise<DecodedFrame> {
    return new Promise((resolve, reject) => {
      // Nothing comes on a closed connection: waiting out the timeout would only hide that.
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      const w: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new Error(`no answer within ${this.options.timeoutMs ?? 10_000} ms`));
        }, this.options.timeoutMs ?? 10_000),
      };
      this.waiters.add(w);
    });
  }

  /** Sends and waits for the general response (0x8001) to it; resolves with its result code. */
  async request(message: Message, serial = this.nextSerial()): Promise<number> {
    const t0 = performance.now();
    const wait = this.waitFor(
      (f) =>
        f.message?.type === 'PlatformResponse' &&
        f.message.body.replySerial === serial &&
        f.message.body.replyId === encodeIdOf(message),
    );
    this.send(message, serial);
    const f = await wait;
    this.ackLatenciesMs.push(performance.now() - t0);
    return (f.message as Extract<Message, { type: 'PlatformResponse' }>).body.result;
  }

  async register(plate = '粤A12345'): Promise<number> {
    const serial = this.nextSerial();
    const wait = this.waitFor(
      (f) => f.message?.type === 'RegisterReply' && f.message.body.replySerial === serial,
    );
    this.send(
      {
        type: 'Register',
        body: {
          province: 44,
          city: 100,
          maker: 'FLEET',
          model: 'SIM-1',
          terminalId: this.options.phone.slice(-7),
          plateColor: 1,
          plate,
        },
      },
      serial,
    );
    const f = await wait;
    const body = (f.message as Extract<Message, { type: 'RegisterReply' }>).body;
    if (body.result === 0) this.authCode = body.authCode;
    return body.result;
  }

  authenticate(code = this.authCode ?? ''): Promise<number> {
    const body =
      this.edition === 2019
        ? { authCode: code, imei: '860000000000000', softwareVersion: 'sim-1' }
        : { authCode: code };
    return this.request({ type: 'Authenticate', body });
  }

  /**
   * Answers platform commands from now on as a device does: 0x8104/0x8106 with 0x0104, 0x8201
   * with 0x0201 (the position `where()` gives), 0x8801 with 0x0805, any
   * other command with 0x0001 result 0. Platform answers (0x8001, 0x8100, …) are not commands.
   */
  answerCommands(where: () => LocationReport): void {
    this.answering = where;
  }

  private answer(f: DecodedFrame, where: () => LocationReport): void {
    const m = f.message;
    if (!m || f.header.messageId < 0x8000) return;
    const replySerial = f.header.serial;
    let reply: Message;
    switch (m.type) {
      case 'PlatformResponse':
      case 'RegisterReply':
      case 'ServerTime':
      case 'RetransmitRequest':
      case 'MediaDataReply':
        return;
      case 'QueryAllParameters':
      case 'QueryParameters':
        reply = {
          type: 'ParametersReply',
          body: {
            replySerial,
            params: (m.type === 'QueryParameters' ? m.body.ids : [0x0001, 0x0029]).map((id) => ({
              id,
              value: 30,
            })),
          },
        };
        break;
      case 'LocationQuery':
        reply = { type: 'LocationQueryReply', body: { replySerial, location: where() } };
        break;
      case 'TakePhoto': {
        if (!SimTerminal.uploadsPhotos || this.edition === 2011) {
          reply = { type: 'PhotoReply', body: { replySerial, result: 0, mediaIds: [replySerial] } };
          break;
        }
        // Count 0 stops taking pictures, 0xFFFF records video: neither uploads a photo here.
        const count =
          m.body.command === 0xffff ? 0 : Math.min(m.body.command, MAX_PHOTOS_PER_COMMAND);
        const mediaIds = Array.from({ length: count }, () => this.nextMediaId++ >>> 0);
        this.answered.set(m.type, (this.answered.get(m.type) ?? 0) + 1);
        this.send({ type: 'PhotoReply', body: { replySerial, result: 0, mediaIds } });
        void this.uploadPhotos(mediaIds, m.body.channel, where);
        return;
      }
      default:
        reply = {
          type: 'TerminalResponse',
          body: { replySerial, replyId: f.header.messageId, result: 0 },
        };
    }
    this.answered.set(m.type, (this.answered.get(m.type) ?? 0) + 1);
    this.send(reply);
  }

  /** One after the other, as a device does: each waits for its 0x8800 before the next. */
  private async uploadPhotos(
    mediaIds: number[],
    channel: number,
    where: () => LocationReport,
  ): Promise<void> {
    for (const mediaId of mediaIds) {
      try {
        const missing = await this.uploadMedia({
          mediaId,
          mediaType: 0,
          format: 0,
          event: 0,
          channel,
          location: where(),
          data: jpegLike(),
        });
        if (missing === 0) this.mediaUploaded++;
        else this.mediaFailed++;
      } catch {
        this.mediaFailed++;
        if (this.closed) return;
      }
    }
  }

  /**
   * Uploads one media item (0x0801, 2013/2019 body) in packets of at most `packetBytes` body
   * bytes; resolves with the packets the platform's 0x8800 says are missing (0: all received).
   */
  async uploadMedia(
    body: Extract<Message, { type: 'MediaData' }>['body'] & { location: LocationReport },
  ): Promise<number> {
    const encoded = encodeBody({ type: 'MediaData', body }, this.edition);
    const first = this.nextSerial();
    const split = splitMessage(
      0x0801,
      encoded,
      { phone: this.options.phone, serial: first, edition: this.edition },
      SimTerminal.packetBytes,
    );
    for (let i = 1; i < split.serials.length; i++) this.nextSerial();
    const reply = this.waitFor(
      (f) => f.message?.type === 'MediaDataReply' && f.message.body.mediaId === body.mediaId,
    );
    for (const frame of split.frames) this.writeRaw(frame);
    const f = await reply;
    const answer = (f.message as Extract<Message, { type: 'MediaDataReply' }>).body;
    return answer.retransmitIds?.length ?? 0;
  }

  /** A driver's IC card inserted or removed (0x0702); resolves with its general response's result. */
  driverCard(inserted: boolean, driver: number, at = Date.now()): Promise<number> {
    return this.request(driverCardMessage(inserted, driver, this.edition, at));
  }

  report(loc: LocationReport, serial?: number): Promise<number> {
    return this.request({ type: 'LocationReport', body: loc }, serial);
  }

  close(): void {
    this.socket?.destroy();
  }
}

const IDS: Partial<Record<Message['type'], number>> = {
  Authenticate: 0x0102,
  LocationReport: 0x0200,
  LocationBatch: 0x0704,
  Heartbeat: 0x0002,
  Logout: 0x0003,
  TerminalResponse: 0x0001,
  DriverIdentity: 0x0702,
};

/**
 * 0x0702 for driver number `driver`: the card inserted (name, certificate, authority, validity;
 * 2019 adds the ID number) or removed, at `at` (whole seconds, as the BCD time carries).
 */
export function driverCardMessage(
  inserted: boolean,
  driver: number,
  edition: Edition,
  at = Date.now(),
): Message {
  const time = Math.floor(at / 1000) * 1000;
  if (edition === 2011)
    return {
      type: 'DriverIdentity',
      body: {
        driverName: `司机${driver}`,
        driverIdNumber: `44030119900101${String(driver % 10_000).padStart(4, '0')}`,
        certificateCode: String(driver).padStart(20, '0'),
        issuingAuthority: '深圳市交通运输局',
      },
    };
  if (!inserted) return { type: 'DriverIdentity', body: { state: 2, time } };
  return {
    type: 'DriverIdentity',
    body: {
      state: 1,
      time,
      readResult: 0,
      driverName: `司机${driver}`,
      certificateCode: String(driver).padStart(20, '0'),
      issuingAuthority: '深圳市交通运输局',
      certificateValidity: '20301231',
      ...(edition === 2019
        ? { driverIdNumber: `44030119900101${String(driver % 10_000).padStart(4, '0')}` }
        : {}),
    },
  };
}

/** A small JPEG-like image: SOI and APP0 markers, 2 to 6 KB of noise, EOI. */
function jpegLike(): Uint8Array {
  const size = 2048 + Math.floor(Math.random() * 4096);
  return Buffer.concat([
    Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]),
    randomBytes(size),
    Buffer.from([0xff, 0xd9]),
  ]);
}

function encodeIdOf(m: Message): number {
  if (m.type === 'Raw') return m.messageId;
  const id = IDS[m.type];
  if (id === undefined) throw new Error(`no request id for ${m.type}`);
  return id;
}

/** A plausible report: a point moving east from a start, one per `step`. */
export function trackPoint(
  step: number,
  opts: { start?: number; alarm?: number; lat?: number; lon?: number } = {},
): LocationReport {
  return {
    alarm: opts.alarm ?? 0,
    status: 0x0003,
    latitude: Math.round(((opts.lat ?? 31.2304) + step * 0.0001) * 1e6) / 1e6,
    longitude: Math.round(((opts.lon ?? 121.4737) + step * 0.0002) * 1e6) / 1e6,
    altitude: 12,
    speed: 42.5,
    direction: 90,
    time: (opts.start ?? Date.UTC(2026, 10, 1, 0, 0, 0)) + step * 10_000,
    mileageKm: 1000 + step / 10,
    satellites: 12,
    signal: 25,
  };
}
