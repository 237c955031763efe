// A vehicle's downlink command queue, as pure logic (the VehicleActor drives it with the time
// and the terminal's frames). Commands wait while the terminal is offline and go out, one at a
// time and in order, once it has authenticated. The reply is matched by serial: a general
// response 0x0001 naming the command's message id, or the command's specific reply (0x0104 for
// 0x8104/0x8106, 0x0201 for 0x8201, 0x0805 for 0x8801, 0x0107 for 0x8107). An unanswered
// command is sent again after T(N+1) = T(N) × (N+1) (2013 §6.1; 2019 p.5), up to the retry
// count, then it times out. The queue is bounded: a command beyond the limit is refused.
import type { Command, CommandEvent } from '../domain/vehicle.js';
import { messageIdOf, type Message } from '../jt808/messages.js';

export type { Command, CommandEvent, CommandState } from '../domain/vehicle.js';

export interface CommandQueueOptions {
  /** Commands waiting or in flight per vehicle. */
  maxQueued?: number;
  /** First reply timeout (ms); parameter 0x0002 of the terminal. */
  timeoutMs?: number;
  /** Retransmissions after the first send; parameter 0x0003. */
  retries?: number;
}

/** The reply message type that answers each command type (besides 0x0001). */
const SPECIFIC_REPLY: Partial<Record<Message['type'], Message['type']>> = {
  QueryAllParameters: 'ParametersReply',
  QueryParameters: 'ParametersReply',
  LocationQuery: 'LocationQueryReply',
  TakePhoto: 'PhotoReply',
  QueryProperties: 'PropertiesReply',
};

interface InFlight {
  command: Command;
  serial: number;
  attempt: number;
  deadline: number;
}

export class CommandQueue {
  private readonly waiting: Command[] = [];
  private inFlight: InFlight | undefined;
  private readonly maxQueued: number;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(options: CommandQueueOptions = {}) {
    this.maxQueued = options.maxQueued ?? 64;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
  }

  get size(): number {
    return this.waiting.length + (this.inFlight ? 1 : 0);
  }

  /** Commands not yet answered, in order (for persisting them). */
  pending(): Command[] {
    return [...(this.inFlight ? [this.inFlight.command] : []), ...this.waiting];
  }

  /** Queues a command; refused (and reported so) when the queue is full. */
  enqueue(command: Command, now: number): CommandEvent {
    if (this.size >= this.maxQueued) {
      return {
        commandId: command.id,
        state: 'refused',
        at: now,
        detail: `queue full (${this.maxQueued})`,
      };
    }
    this.waiting.push(command);
    return { commandId: command.id, state: 'queued', at: now };
  }

  /**
   * The next command to send now, if the terminal is online and nothing is in flight;
   * `serial` is the downlink serial the caller will send it with.
   */
  next(
    online: boolean,
    now: number,
    serial: () => number,
  ): { command: Command; serial: number; event: CommandEvent } | undefined {
    if (!online || this.inFlight || this.waiting.length === 0) return undefined;
    const command = this.waiting.shift() as Command;
    const s = serial();
    this.inFlight = { command, serial: s, attempt: 1, deadline: now + this.timeoutMs };
    return {
      command,
      serial: s,
      event: { commandId: command.id, state: 'sent', at: now, attempt: 1, serial: s },
    };
  }

  /** When the in-flight command's reply is due (for the actor's timer). */
  get deadline(): number | undefined {
    return this.inFlight?.deadline;
  }

  /**
   * Time passed: an unanswered command is resent (returned with a new serial) or times out.
   * The standard resends the same message; a new serial keeps replies to different attempts
   * apart.
   */
  tick(
    online: boolean,
    now: number,
    serial: () => number,
  ): { resend?: { command: Command; serial: number }; event?: CommandEvent } {
    const f = this.inFlight;
    if (!f || now < f.deadline) return {};
    if (f.attempt > this.retries) {
      this.inFlight = undefined;
      return {
        event: { commandId: f.command.id, state: 'timed-out', at: now, attempt: f.attempt },
      };
    }
    if (!online) {
      // Offline: it goes back to the front of the queue and is sent afresh after authentication.
      this.inFlight = undefined;
      this.waiting.unshift(f.command);
      return {
        event: { commandId: f.command.id, state: 'queued', at: now, detail: 'terminal offline' },
      };
    }
    f.attempt++;
    f.serial = serial();
    f.deadline = now + this.timeoutMs * f.attempt;
    return {
      resend: { command: f.command, serial: f.serial },
      event: {
        commandId: f.command.id,
        state: 'sent',
        at: now,
        attempt: f.attempt,
        serial: f.serial,
      },
    };
  }

  /** The terminal went offline: an unanswered command goes back to the front, to be sent afresh. */
  offline(now: number): CommandEvent | undefined {
    const f = this.inFlight;
    if (!f) return undefined;
    this.inFlight = undefined;
    this.waiting.unshift(f.command);
    return { commandId: f.command.id, state: 'queued', at: now, detail: 'terminal offline' };
  }

  /** A message from the terminal: the in-flight command's reply settles it. */
  reply(message: Message, now: number): CommandEvent | undefined {
    const f = this.inFlight;
    if (!f) return undefined;
    const type = f.command.message.type;
    let matched = false;
    let failed = false;
    if (message.type === 'TerminalResponse') {
      matched =
        message.body.replySerial === f.serial &&
        message.body.replyId === messageIdOf(f.command.message);
      failed = message.body.result !== 0;
    } else if (SPECIFIC_REPLY[type] === message.type && 'replySerial' in message.body) {
      matched = message.body.replySerial === f.serial;
      // 0x0805 carries a result as 0x0001 does (table 84: 1 failed, 2 channel not supported).
      if (message.type === 'PhotoReply') failed = message.body.result !== 0;
    }
    if (!matched) return undefined;
    this.inFlight = undefined;
    return {
      commandId: f.command.id,
      state: failed ? 'failed' : 'answered',
      at: now,
      attempt: f.attempt,
      serial: f.serial,
      reply: message,
    };
  }
}
