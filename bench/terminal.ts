// A simulated JT/T 808 terminal over a real TCP connection: register, authenticate, report,
// and wait for the platform's answers, recording each acknowledgement's latency. Used by the
// integration tests and by the simulator.
import { connect, type Socket } from 'node:net';
import { decodeFrame, encodeFrame, type DecodedFrame } from '../jt808/codec.js';
import { FrameSplitter } from '../jt808/framing.js';
import type { Edition } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import type { Message } from '../jt808/messages.js';

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

export class SimTerminal {
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
      case 'TakePhoto':
        reply = { type: 'PhotoReply', body: { replySerial, result: 0, mediaIds: [replySerial] } };
        break;
      default:
        reply = {
          type: 'TerminalResponse',
          body: { replySerial, replyId: f.header.messageId, result: 0 },
        };
    }
    this.answered.set(m.type, (this.answered.get(m.type) ?? 0) + 1);
    this.send(reply);
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
};

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
