// One vehicle: its session (which link it is on, auth, edition, serials), its last state, its
// alarm state machine, and the acknowledgement of its reports. Knows nothing of TCP: the
// gateway hands it messages with a TerminalLink to answer on.
import { randomBytes } from 'node:crypto';
import { encodeFrame, frameFromBody, headerFor, type FrameHeader } from '../jt808/codec.js';
import type { Edition, Header } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import type { Message } from '../jt808/messages.js';
import { mediaReplyFor } from '../jt808/reassembly.js';
import type { MediaUpload } from '../storage/mediaStore.js';
import { driverRecordDocument } from '../storage/driverRecords.js';
import { behaviourDocument } from '../storage/drivingBehaviour.js';
import { RecordSnapshot } from '../storage/recordChanges.js';
import { StaleOwner, type WriteOutcome } from '../storage/batchWriter.js';
import {
  positionDocument,
  type LastState,
  type PositionSource,
  type VehicleRecord,
  type VehicleStore,
} from '../storage/vehicleStore.js';
import { AlarmTracker, type AlarmPoint, type AlarmRecord } from './alarmTracker.js';
import { CommandQueue, type Command, type CommandEvent } from './commandQueue.js';
import {
  DEFAULT_THRESHOLDS,
  DrivingBehaviour,
  type BehaviourThresholds,
} from './drivingBehaviour.js';
import { type BehaviourEpisode } from '../domain/drivingBehaviour.js';
import { LinkOrder, type LinkOrderStats } from './linkOrder.js';
import type { Actor, ActorContext } from './runtime.js';

/** The gateway's handle on one terminal connection. */
export interface TerminalLink {
  readonly id: string;
  readonly node: string;
  send(frame: Uint8Array): void;
  close(reason: string): void;
  /** The vehicle accepted the terminal's authentication on this link. */
  authenticated(vehicleId: string, edition: Edition): void;
}

/**
 * `seq` on the messages of a terminal connection is the gateway's number of the delivery (see
 * GatewayDelivery): the actor takes them in that order (LinkOrder). 0 or absent: not numbered.
 */
export type VehicleMessage =
  | {
      kind: 'uplink';
      link: TerminalLink;
      seq?: number;
      header: Header;
      edition: Edition;
      message: Message;
      receivedAt: number;
    }
  /** A frame whose body could not be read (decoded off the gateway thread): answered result 2. */
  | {
      kind: 'malformed';
      link: TerminalLink;
      seq?: number;
      header: Header;
      edition: Edition;
      detail: string;
    }
  | { kind: 'linkClosed'; linkId: string; seq?: number; reason: string; at: number }
  /** A platform message body the gateway needs sent on this vehicle's serial counter. */
  | {
      kind: 'platformMessage';
      link: TerminalLink;
      seq?: number;
      messageId: number;
      body: Uint8Array;
      phone: string;
      edition: Edition;
    }
  | { kind: 'saveState' }
  | { kind: 'command'; command: Command; settled?: (e: CommandEvent) => void }
  | { kind: 'commandTick' }
  /** Frames waited long enough for an earlier one of their connection: they go on. */
  | { kind: 'linkOrderTimeout' }
  /** An operator handled these alarm bits (0 = every open alarm). */
  | {
      kind: 'confirmAlarms';
      bits: number;
      commandId: string;
      /** Who handled them (stored as the records' handledBy, with handledAt now). */
      operator: string;
      done: (r: AlarmConfirmation) => void;
      /** The records could not be written (the store failed, or a newer owner has them). */
      failed: (err: unknown) => void;
    };

/** What confirming alarms did: the records marked handled, and the 0x8203 queued if any. */
export interface AlarmConfirmation {
  confirmed: { bit: number; startTime: number }[];
  /** Set when the terminal must be told (bits it keeps until the platform confirms). */
  commandId?: string;
  /** The vehicle never registered: nothing was confirmed or stored (the API says NOT_FOUND). */
  neverRegistered?: true;
}

/** The detail of a command refused because its vehicle never registered (nothing is stored). */
export function neverRegisteredDetail(vehicleId: string): string {
  return `vehicle ${vehicleId} has never registered`;
}

/** A command's final event says its vehicle never registered (see neverRegisteredDetail). */
export function isNeverRegistered(vehicleId: string, e: CommandEvent): boolean {
  return e.state === 'refused' && e.detail === neverRegisteredDetail(vehicleId);
}

export interface VehiclePolicy {
  /** 'open': any terminal may register; 'known': only vehicles already in storage. */
  registration: 'open' | 'known';
  /** 'durable': 0x8001 after the database has the report; 'receive': at once. */
  ackMode: 'durable' | 'receive';
  /** How often a changed last state is written back (ms). */
  saveEveryMs: number;
  /**
   * How long frames of a connection wait for an earlier one that another way made late (a
   * handoff, a relay) before they go on without it (ms; default 1000).
   */
  linkOrderWaitMs?: number;
  /** Thresholds of the driving-behaviour detector (default DEFAULT_THRESHOLDS). */
  behaviour?: BehaviourThresholds;
}

/** What a vehicle tells the world (the gRPC event stream, the status line). */
export interface VehicleEvents {
  alarm?(vehicleId: string, kind: 'opened' | 'closed', bit: number, at: number): void;
  online?(vehicleId: string, online: boolean, reason: string): void;
  /** Every report stored (a blind-area re-upload included), with where it came from. */
  position?(vehicleId: string, state: LastState, source: PositionSource): void;
  command?(vehicleId: string, event: CommandEvent): void;
  ackLatency?(ms: number): void;
}

/** A vehicle as services see it: registry, last state, session and commands waiting. */
export interface VehicleView {
  vehicleId: string;
  registered: boolean;
  online: boolean;
  edition?: Edition;
  phone?: string;
  node?: string;
  linkId?: string;
  lastUplinkSerial?: number;
  /** The serial the next platform frame to this terminal gets (live actors only). */
  nextDownlinkSerial?: number;
  lastSeen?: number;
  lastState?: LastState;
  registration?: VehicleRecord['registration'];
  openAlarms: { bit: number; startTime: number }[];
  pendingCommands: { id: string; type: string; createdAt: number }[];
}

export interface VehicleActorDeps {
  store: VehicleStore;
  policy: VehiclePolicy;
  events?: VehicleEvents;
  now?: () => number;
  /**
   * The owner epoch this node holds the vehicle under (cluster/router.ts), read at activation:
   * every state write carries it and the store refuses it once a newer owner has written.
   * Undefined: writes are not fenced (a node alone).
   */
  ownerEpoch?: () => number | undefined;
  /** Counters of frames put back in order, shared by the thread's vehicles. */
  linkOrderStats?: LinkOrderStats;
}

const RESULT_OK = 0;
const RESULT_FAIL = 1;
const RESULT_MALFORMED = 2;

export class VehicleActor implements Actor<VehicleMessage> {
  private record: VehicleRecord;
  private alarms: AlarmTracker;
  /** Driving-behaviour episodes, fed the same reports as the alarm machine. */
  private behaviour: DrivingBehaviour;
  private link: TerminalLink | undefined;
  private nextSerial = 0;
  private isLoaded = false;
  private dirty = false;
  /** The owner epoch of this activation (see VehicleActorDeps.ownerEpoch). */
  private epoch: number | undefined;
  /** A newer owner wrote the vehicle: this actor writes nothing more and leaves memory. */
  private superseded = false;
  /** The link a previous owner's session was on, until a frame arrives on it or it closes. */
  private handedLinkId: string | undefined;
  /** What the store holds of `record`, as far as this actor knows: saves write the difference. */
  private snapshot = new RecordSnapshot();
  /** This actor's context (the same object for its whole life), to re-arm a save from outside a turn. */
  private ctx: ActorContext<VehicleMessage> | undefined;
  private readonly now: () => number;
  private readonly commands = new CommandQueue();
  /** Each connection's frames in the gateway's order (see VehicleMessage.seq). */
  private readonly order: LinkOrder<VehicleMessage>;
  /** Callers waiting for a command's final state (in memory only: lost with the actor). */
  private readonly settled = new Map<string, (e: CommandEvent) => void>();

  constructor(
    readonly vehicleId: string,
    private readonly deps: VehicleActorDeps,
  ) {
    this.record = { _id: vehicleId };
    this.alarms = new AlarmTracker(vehicleId, 2013);
    this.behaviour = new DrivingBehaviour(this.thresholds);
    this.now = deps.now ?? Date.now;
    this.order = new LinkOrder(64, 4, deps.linkOrderStats);
  }

  /** False until the stored state is loaded (the first turn). */
  get loaded(): boolean {
    return this.isLoaded;
  }

  get currentLink(): TerminalLink | undefined {
    return this.link;
  }

  get lastSeen(): number {
    return this.record.lastSeen ?? 0;
  }

  /** Its last reported position and state (undefined before its first report). */
  get lastState(): Readonly<LastState> | undefined {
    return this.record.lastState;
  }

  async activate(): Promise<void> {
    this.epoch = this.deps.ownerEpoch?.();
    const saved = await this.deps.store.load(this.vehicleId);
    this.snapshot = new RecordSnapshot(saved);
    if (saved) this.record = saved;
    // Handed over by another owner while its terminal was online: the session goes on.
    this.handedLinkId = saved?.online === true ? saved.linkId : undefined;
    // Its frames up to linkSeq were taken by the previous owner; the next ones follow them.
    if (this.handedLinkId !== undefined && saved?.linkSeq !== undefined)
      this.order.resume(this.handedLinkId, saved.linkSeq);
    // A vehicle loaded from storage is offline until its terminal authenticates on this node.
    this.record.online = false;
    this.alarms = new AlarmTracker(
      this.vehicleId,
      this.record.edition ?? 2013,
      this.record.openAlarms ?? [],
    );
    // Episodes open at the last save go on from the last report (its last state).
    this.behaviour = new DrivingBehaviour(
      this.thresholds,
      this.record.lastState,
      this.record.openBehaviours ?? [],
    );
    for (const c of this.record.pendingCommands ?? []) this.commands.enqueue(c, this.now());
    this.isLoaded = true;
  }

  view(): VehicleView {
    const v = vehicleView(this.record, {
      link: this.link,
      openAlarms: this.alarms.open,
      pending: this.commands.pending(),
    });
    v.nextDownlinkSerial = this.nextSerial;
    return v;
  }

  /** A vehicle whose terminal is connected stays in memory: its link lives here. */
  canPassivate(): boolean {
    return this.link === undefined;
  }

  async passivate(): Promise<void> {
    // Frames waiting for a gap go on now (the missing one, if it comes, goes to the next owner).
    if (this.ctx) await this.takeAll(this.order.skipGaps(), this.ctx);
    // A newer owner has the vehicle: what this one holds must not overwrite it.
    if (!this.superseded) await this.saveState();
    // Whoever waits on a command hears where it stands now: it stays in the stored queue and
    // goes out when the terminal is back (its later states reach the commands log only).
    for (const [commandId, settled] of this.settled)
      settled(
        this.superseded
          ? {
              commandId,
              state: 'failed',
              at: this.now(),
              detail:
                'the vehicle moved to another node before the command was stored; send it again',
            }
          : {
              commandId,
              state: 'queued',
              at: this.now(),
              detail: 'vehicle passivated; the command stays queued until the terminal is online',
            },
      );
    this.settled.clear();
  }

  receive(msg: VehicleMessage, ctx: ActorContext<VehicleMessage>): Promise<void> | void {
    this.ctx = ctx;
    const seq = 'seq' in msg ? (msg.seq ?? 0) : 0;
    if (seq === 0) return this.take(msg, ctx);
    const linkId = msg.kind === 'linkClosed' ? msg.linkId : (msg as { link: TerminalLink }).link.id;
    const ready = this.order.offer(linkId, seq, msg, this.now());
    this.armLinkOrderTimer(ctx);
    if (ready.length === 1) {
      const turn = this.take(ready[0]!, ctx);
      if (turn === undefined) return this.noteLinkSeq();
      return turn.then(() => this.noteLinkSeq());
    }
    return this.takeAll(ready, ctx);
  }

  /** The timer fires when the longest-waiting held frame has waited its time (none: no timer). */
  private armLinkOrderTimer(ctx: ActorContext<VehicleMessage>): void {
    const deadline = this.order.nextDeadline(this.linkOrderWaitMs);
    if (deadline === undefined) ctx.cancelTimer('linkOrder');
    else
      ctx.startTimer('linkOrder', Math.max(0, deadline - this.now()), {
        kind: 'linkOrderTimeout',
      });
  }

  private get thresholds(): BehaviourThresholds {
    return this.deps.policy.behaviour ?? DEFAULT_THRESHOLDS;
  }

  private get linkOrderWaitMs(): number {
    return this.deps.policy.linkOrderWaitMs ?? 1000;
  }

  private async takeAll(msgs: VehicleMessage[], ctx: ActorContext<VehicleMessage>): Promise<void> {
    for (const m of msgs) await this.take(m, ctx);
    this.noteLinkSeq();
  }

  /** The session's connection: the number of its last frame taken, saved with the state. */
  private noteLinkSeq(): void {
    const id = this.record.linkId ?? this.handedLinkId;
    const last = id === undefined ? undefined : this.order.lastSeq(id);
    if (last !== undefined) this.record.linkSeq = last;
  }

  /** One message in its turn (a connection's frames already in order). */
  private take(msg: VehicleMessage, ctx: ActorContext<VehicleMessage>): Promise<void> | void {
    switch (msg.kind) {
      case 'uplink':
        return this.uplink(msg, ctx);
      case 'malformed':
        this.reply(msg.link, msg.header, RESULT_MALFORMED, msg.edition);
        return;
      case 'platformMessage':
        msg.link.send(
          frameFromBody(msg.messageId, msg.body, {
            phone: msg.phone,
            serial: this.takeSerial(),
            edition: msg.edition,
          }),
        );
        return;
      case 'linkClosed':
        if (this.link?.id === msg.linkId || (!this.link && this.handedLinkId === msg.linkId))
          this.goOffline(msg.reason, msg.at, ctx);
        return;
      case 'saveState':
        return this.saveState().then(() => undefined);
      case 'command':
        return this.enqueueCommand(msg.command, msg.settled, ctx);
      case 'commandTick':
        return this.commandTick(ctx);
      case 'confirmAlarms':
        // Whoever waits hears of a failure too (a gRPC call must not hang on it).
        return this.confirmAlarms(msg.bits, msg.commandId, msg.operator, msg.done, ctx).catch(
          msg.failed,
        );
      case 'linkOrderTimeout': {
        // Only the gaps due now: one that opened since the timer was set waits its own time.
        const due = this.order.skipExpired(this.now(), this.linkOrderWaitMs);
        this.armLinkOrderTimer(ctx);
        return this.takeAll(due, ctx);
      }
    }
  }

  private async uplink(
    msg: Extract<VehicleMessage, { kind: 'uplink' }>,
    ctx: ActorContext<VehicleMessage>,
  ): Promise<void> {
    const { link, header, message } = msg;
    switch (message.type) {
      case 'Register':
        return this.register(link, header, msg.edition, message.body);
      case 'Authenticate':
        return this.authenticate(
          link,
          header,
          msg.edition,
          message.body.authCode,
          msg.receivedAt,
          ctx,
        );
    }
    if (this.link === undefined && this.handedLinkId !== undefined && link.id === this.handedLinkId)
      this.resumeSession(link, ctx);
    // The same connection by another way (its frames came through a relay, now directly): the
    // newest way is the one that reaches the terminal.
    if (this.link !== undefined && this.link !== link && this.link.id === link.id) this.link = link;
    if (this.link?.id !== link.id) {
      // The gateway lets only authenticated links through; a stale link (replaced) is refused.
      this.reply(link, header, RESULT_FAIL, msg.edition);
      return;
    }
    this.record.lastSeen = msg.receivedAt;
    this.record.lastUplinkSerial = header.serial;
    const answered = this.commands.reply(message, msg.receivedAt);
    if (answered) await this.commandSettled(answered, ctx);
    switch (message.type) {
      case 'LocationReport':
        this.locations(link, header, [message.body], 'live', msg.receivedAt, ctx);
        return;
      case 'LocationBatch':
        this.locations(
          link,
          header,
          message.body.items,
          message.body.batchType === 1 ? 'blind-area' : 'batch',
          msg.receivedAt,
          ctx,
        );
        return;
      case 'LocationQueryReply':
        this.locations(link, header, [message.body.location], 'query-reply', msg.receivedAt, ctx);
        return;
      case 'QueryServerTime':
        link.send(
          encodeFrame(
            { type: 'ServerTime', body: { time: Math.floor(this.now() / 1000) * 1000 } },
            this.out(header),
          ),
        );
        return;
      case 'Logout':
        this.reply(link, header, RESULT_OK);
        this.goOffline('logout', msg.receivedAt, ctx);
        link.close('logout');
        return;
      case 'MediaData':
        return this.media(link, header, msg.edition, message.body, msg.receivedAt);
      case 'DriverIdentity':
        this.driverIdentity(link, header, msg.edition, message.body, msg.receivedAt);
        return;
      case 'TerminalResponse':
      case 'ParametersReply':
      case 'PhotoReply':
      case 'PropertiesReply':
        return; // replies to our commands: answered above, not acknowledged
      default:
        // Heartbeats and everything else the standard answers with a general response.
        this.reply(link, header, RESULT_OK);
    }
  }

  private async register(
    link: TerminalLink,
    header: Header,
    edition: Edition,
    body: Extract<Message, { type: 'Register' }>['body'],
  ): Promise<void> {
    const known = this.record.authCode !== undefined;
    let result = 0;
    if (!known && this.deps.policy.registration === 'known') result = 4; // terminal not in the database
    if (result === 0) {
      this.record.authCode ??= randomBytes(8).toString('hex');
      this.record.edition = edition;
      this.record.registration = { ...body, registeredAt: new Date(this.now()) };
      this.alarms.setEdition(edition);
      // The terminal keeps the code it is given: store it before handing it out.
      await this.writeChanges();
      if (this.superseded) {
        // A newer owner refused this code's write: handing it out would fail the terminal's
        // authentication there. It connects again and registers with the owner.
        link.close('vehicle moved to another owner');
        return;
      }
    }
    const body8100 =
      result === 0
        ? { replySerial: header.serial, result, authCode: this.record.authCode }
        : { replySerial: header.serial, result };
    link.send(encodeFrame({ type: 'RegisterReply', body: body8100 }, this.out(header, edition)));
  }

  private async authenticate(
    link: TerminalLink,
    header: Header,
    edition: Edition,
    code: string,
    at: number,
    ctx: ActorContext<VehicleMessage>,
  ): Promise<void> {
    const ok = this.record.authCode !== undefined && code === this.record.authCode;
    if (!ok) {
      this.reply(link, header, RESULT_FAIL, edition);
      return;
    }
    // 2011 and 2013 frames share one header and one 0x0102 body: only the registration told
    // them apart, so a terminal registered as 2011 stays 2011 (its 0x0702 is table 64).
    if (edition === 2013 && this.record.edition === 2011) edition = 2011;
    if (this.link && this.link.id !== link.id) {
      // A new connection with the same identity means the old one is dead (2013 §7.2.2).
      const old = this.link;
      this.link = undefined;
      old.close('replaced by a new connection');
      quiet(
        this.deps.store.logSession({
          vehicleId: this.vehicleId,
          event: 'offline',
          node: old.node,
          reason: 'replaced',
          at,
        }),
      );
    }
    this.link = link;
    this.handedLinkId = undefined;
    this.record.phone = header.phone;
    this.record.edition = edition;
    this.record.online = true;
    this.record.linkId = link.id;
    this.record.node = link.node;
    this.record.lastSeen = at;
    this.alarms.setEdition(edition);
    link.authenticated(this.vehicleId, edition);
    this.reply(link, header, RESULT_OK, edition);
    quiet(
      this.deps.store.logSession({
        vehicleId: this.vehicleId,
        event: 'online',
        node: link.node,
        reason: 'authenticated',
        at,
      }),
    );
    this.deps.events?.online?.(this.vehicleId, true, 'authenticated');
    this.markDirty(ctx);
    this.pumpCommands(ctx);
  }

  // --- alarm confirmation ------------------------------------------------------------------

  /**
   * Marks open alarms handled; for the bits a terminal keeps set until the platform confirms
   * them (emergency, danger warning, area/route, illegal ignition/displacement) it queues a
   * 0x8203 naming those bits, alarm serial 0 (= all), so the terminal clears them and its next
   * report closes the records.
   */
  private async confirmAlarms(
    bits: number,
    commandId: string,
    operator: string,
    done: (r: AlarmConfirmation) => void,
    ctx: ActorContext<VehicleMessage>,
  ): Promise<void> {
    if (!this.registered) {
      done({ confirmed: [], neverRegistered: true });
      return;
    }
    const confirmed = this.alarms.confirm(bits >>> 0, 2, { operator, at: this.now() });
    await Promise.all(confirmed.map((r) => this.saveAlarm(r)));
    const sticky = confirmed
      .filter((r) => r.needsConfirmation)
      .reduce((m, r) => (m | (1 << r.bit)) >>> 0, 0);
    const result: AlarmConfirmation = {
      confirmed: confirmed.map((r) => ({ bit: r.bit, startTime: r.startTime })),
    };
    if (sticky !== 0) {
      result.commandId = commandId;
      await this.enqueueCommand(
        {
          id: commandId,
          message: { type: 'AlarmConfirm', body: { alarmSerial: 0, alarmType: sticky } },
          createdAt: this.now(),
        },
        undefined,
        ctx,
      );
    }
    this.markDirty(ctx);
    done(result);
  }

  // --- downlink commands -------------------------------------------------------------------

  private async enqueueCommand(
    command: Command,
    settled: ((e: CommandEvent) => void) | undefined,
    ctx: ActorContext<VehicleMessage>,
  ): Promise<void> {
    // A vehicle that never registered has no terminal to send to: refused, nothing logged or
    // stored (no vehicle document, no command log entry, no event).
    if (!this.registered) {
      settled?.({
        commandId: command.id,
        state: 'refused',
        at: this.now(),
        detail: neverRegisteredDetail(this.vehicleId),
      });
      return;
    }
    // Queued when it was created (one clock reading: the log's createdAt, the event's time).
    const ev = this.commands.enqueue(command, command.createdAt);
    this.logCommand(ev, command);
    if (ev.state === 'refused') {
      settled?.(ev);
      return;
    }
    if (settled) this.settled.set(command.id, settled);
    // Persisted before anything else happens: a passivation or a restart loses no command.
    await this.savePendingCommands();
    this.pumpCommands(ctx);
  }

  /** `command` with its first event (queued or refused): the log names what it is. */
  private logCommand(ev: CommandEvent, command?: Command): void {
    quiet(this.deps.store.logCommand(this.vehicleId, ev, command));
    this.deps.events?.command?.(this.vehicleId, ev);
  }

  private pumpCommands(ctx: ActorContext<VehicleMessage>): void {
    const next = this.commands.next(this.link !== undefined, this.now(), () => this.takeSerial());
    if (!next) return;
    this.sendCommand(next.command, next.serial);
    this.logCommand(next.event);
    this.armCommandTimer(ctx);
  }

  private async commandTick(ctx: ActorContext<VehicleMessage>): Promise<void> {
    const r = this.commands.tick(this.link !== undefined, this.now(), () => this.takeSerial());
    if (r.resend) this.sendCommand(r.resend.command, r.resend.serial);
    if (r.event) {
      if (r.event.state === 'timed-out') await this.commandSettled(r.event, ctx);
      else this.logCommand(r.event);
    }
    this.armCommandTimer(ctx);
  }

  private async commandSettled(ev: CommandEvent, ctx: ActorContext<VehicleMessage>): Promise<void> {
    this.logCommand(ev);
    this.settled.get(ev.commandId)?.(ev);
    this.settled.delete(ev.commandId);
    await this.savePendingCommands();
    this.pumpCommands(ctx);
  }

  private armCommandTimer(ctx: ActorContext<VehicleMessage>): void {
    const deadline = this.commands.deadline;
    if (deadline === undefined) ctx.cancelTimer('command');
    else ctx.startTimer('command', Math.max(0, deadline - this.now()), { kind: 'commandTick' });
  }

  private sendCommand(command: Command, serial: number): void {
    const phone = this.record.phone ?? this.vehicleId.padStart(12, '0');
    this.link?.send(
      encodeFrame(command.message, { phone, serial, edition: this.record.edition ?? 2013 }),
    );
  }

  private savePendingCommands(): Promise<unknown> {
    this.record.pendingCommands = this.commands.pending();
    this.keepOpenEpisodes();
    return this.writeChanges();
  }

  private locations(
    link: TerminalLink,
    header: Header,
    reports: LocationReport[],
    source: PositionSource,
    receivedAt: number,
    ctx: ActorContext<VehicleMessage>,
  ): void {
    const writes: Promise<WriteOutcome>[] = [];
    // History in GNSS-time order; only reports newer than the last state move it (and the
    // alarm state machine): a blind-area re-upload fills history without rewinding the present.
    const ordered =
      reports.length > 1 ? [...reports].sort((a, b) => (a.time ?? 0) - (b.time ?? 0)) : reports;
    for (const loc of ordered) {
      writes.push(
        this.deps.store.insertPosition(
          positionDocument(this.vehicleId, loc, source, receivedAt, header.serial),
        ),
      );
      const last = this.record.lastState;
      const time = loc.time ?? receivedAt;
      // One object for the event and the last state: neither is changed after this.
      const state = lastStateOf(loc, time, receivedAt);
      this.deps.events?.position?.(this.vehicleId, state, source);
      if (last === undefined || time >= last.time) {
        this.record.lastState = state;
        const point: AlarmPoint = {
          time,
          latitude: loc.latitude,
          longitude: loc.longitude,
          speed: loc.speed,
          direction: loc.direction,
          altitude: loc.altitude,
        };
        if (loc.mileageKm !== undefined) point.mileageKm = loc.mileageKm;
        const changes = this.alarms.apply(loc.alarm, point);
        for (const r of [...changes.opened, ...changes.closed]) writes.push(this.saveAlarm(r));
        for (const r of changes.opened)
          this.deps.events?.alarm?.(this.vehicleId, 'opened', r.bit, time);
        for (const r of changes.closed)
          this.deps.events?.alarm?.(this.vehicleId, 'closed', r.bit, time);
        // Episodes are stored when they end; not part of the acknowledgement (the terminal
        // sending the report again would not end them again): a failed write is counted by
        // the writer.
        for (const e of this.behaviour.apply({ ...point, alarm: loc.alarm, status: loc.status }))
          quiet(this.saveBehaviour(e));
      }
    }
    this.markDirty(ctx);
    if (this.deps.policy.ackMode === 'receive') {
      this.reply(link, header, RESULT_OK);
      // Nobody waits for these writes; a failure is counted by the writer (stats.failed).
      for (const w of writes) quiet(w);
      return;
    }
    // Durable: answer once every write of this message is in the database. A write that
    // failed for good is answered with a failure, so the terminal sends it again.
    Promise.allSettled(writes).then(
      (outcomes) => {
        const failed = outcomes.some((o) => o.status === 'rejected');
        this.reply(link, header, failed ? RESULT_FAIL : RESULT_OK);
        this.deps.events?.ackLatency?.(this.now() - receivedAt);
      },
      () => undefined,
    );
  }

  /**
   * A driver identity report (0x0702: IC card inserted or removed) is stored as a driver record
   * and answered with the general response as any other: with 'durable' acknowledgements once
   * stored (a write that failed for good, counted by the writer, is answered with a failure so
   * the terminal sends it again), with 'receive' at once.
   */
  private driverIdentity(
    link: TerminalLink,
    header: Header,
    edition: Edition,
    body: Extract<Message, { type: 'DriverIdentity' }>['body'],
    receivedAt: number,
  ): void {
    const write = this.deps.store.saveDriverRecord(
      driverRecordDocument(this.vehicleId, body, edition, receivedAt, header.serial),
    );
    if (this.deps.policy.ackMode === 'receive') {
      this.reply(link, header, RESULT_OK);
      quiet(write);
      return;
    }
    write.then(
      () => this.reply(link, header, RESULT_OK),
      () => this.reply(link, header, RESULT_FAIL),
    );
  }

  /**
   * A complete upload (reassembled by the gateway): 0x8800 "all received" only once it is
   * stored; if storage fails for good nothing is answered, so the terminal uploads it again.
   */
  private async media(
    link: TerminalLink,
    header: Header,
    edition: Edition,
    body: Extract<Message, { type: 'MediaData' }>['body'],
    receivedAt: number,
  ): Promise<void> {
    const upload: MediaUpload = {
      vehicleId: this.vehicleId,
      mediaId: body.mediaId,
      mediaType: body.mediaType,
      format: body.format,
      event: body.event,
      channel: body.channel,
      receivedAt,
      data: body.data,
    };
    if ('location' in body) upload.location = body.location;
    try {
      await this.deps.store.media.save(upload);
    } catch {
      return;
    }
    const reply =
      edition === 2011
        ? { replySerial: header.serial, ...mediaReplyFor(body.mediaId, []) }
        : mediaReplyFor(body.mediaId, []);
    link.send(encodeFrame({ type: 'MediaDataReply', body: reply }, this.out(header, edition)));
  }

  /**
   * The first frame on the link the previous owner's terminal session was on (the vehicle moved
   * here in a handoff): the terminal authenticated there, so it is online here without a new
   * authentication, and its queued commands go out.
   */
  private resumeSession(link: TerminalLink, ctx: ActorContext<VehicleMessage>): void {
    this.link = link;
    this.handedLinkId = undefined;
    this.record.online = true;
    this.record.node = link.node;
    this.deps.events?.online?.(this.vehicleId, true, 'handed over');
    this.markDirty(ctx);
    this.pumpCommands(ctx);
  }

  private goOffline(reason: string, at: number, ctx: ActorContext<VehicleMessage>): void {
    const link = this.link;
    this.link = undefined;
    this.handedLinkId = undefined;
    delete this.record.linkId;
    const requeued = this.commands.offline(at);
    if (requeued) this.logCommand(requeued);
    this.record.online = false;
    quiet(
      this.deps.store.logSession({
        vehicleId: this.vehicleId,
        event: 'offline',
        node: link?.node ?? '',
        reason,
        at,
      }),
    );
    this.deps.events?.online?.(this.vehicleId, false, reason);
    // Through markDirty, so the save timer is armed: setting the flag alone left it set with no
    // timer, and every later markDirty returned early (no periodic save until passivation).
    this.markDirty(ctx);
  }

  private markDirty(ctx: ActorContext<VehicleMessage>): void {
    if (this.dirty) return;
    this.dirty = true;
    ctx.startTimer('save', this.deps.policy.saveEveryMs, { kind: 'saveState' });
  }

  /** The save timer and passivation: whatever changed since the last write (often nothing). */
  private async saveState(): Promise<void> {
    this.dirty = false;
    this.keepOpenEpisodes();
    await this.writeChanges();
  }

  /** Open alarms and driving-behaviour episodes in the record (saved, passivated, handed over). */
  private keepOpenEpisodes(): void {
    this.record.openAlarms = this.alarms.open;
    const open = this.behaviour.openEpisodes;
    if (open.length > 0) this.record.openBehaviours = open;
    else delete this.record.openBehaviours;
  }

  /**
   * An ended driving-behaviour episode (none once a newer owner has the vehicle). A write that
   * cannot even start (a store without the collection) fails like one the store refused.
   */
  private saveBehaviour(e: BehaviourEpisode): Promise<WriteOutcome | undefined> {
    if (this.superseded) return Promise.resolve(undefined);
    return Promise.resolve().then(() =>
      this.deps.store.saveBehaviour(behaviourDocument(this.vehicleId, e)),
    );
  }

  /** An alarm record, written under this actor's owner epoch (refused once a newer one wrote). */
  private saveAlarm(r: AlarmRecord): Promise<WriteOutcome> {
    return this.deps.store.saveAlarm(r, this.epoch).catch((err: unknown) => {
      if (err instanceof StaleOwner) this.supersede();
      throw err;
    });
  }

  /**
   * Another node owns the vehicle now and has written: this actor stops writing and leaves
   * memory (the store counted and refused the write).
   */
  private supersede(): void {
    this.superseded = true;
    this.ctx?.passivate();
  }

  /** Registered: the terminal was given an authentication code (GetVehicle's `registered`). */
  private get registered(): boolean {
    return this.record.authCode !== undefined;
  }

  /**
   * Hands the store the record's fields that changed since the last write. A vehicle that never
   * registered writes nothing (its actor may live a while: an unknown terminal's frames, a call).
   */
  private writeChanges(): Promise<unknown> {
    if (this.superseded || !this.registered) return Promise.resolve();
    const change = this.snapshot.take(this.record);
    if (!change) return Promise.resolve();
    return this.deps.store.saveChanges(this.vehicleId, change, this.epoch).catch((err: unknown) => {
      if (err instanceof StaleOwner) {
        this.supersede();
        return;
      }
      // Not stored: a save is due again (a connected, quiet vehicle might otherwise never save
      // them), and it writes these fields again.
      this.snapshot.forget(change);
      if (this.ctx) this.markDirty(this.ctx);
      throw err;
    });
  }

  private out(
    header: Header,
    edition: Edition = this.record.edition ?? (header.headerEdition === 2019 ? 2019 : 2013),
  ): FrameHeader {
    return headerFor(header, this.takeSerial(), edition);
  }

  private takeSerial(): number {
    const serial = this.nextSerial;
    this.nextSerial = (this.nextSerial + 1) & 0xffff;
    return serial;
  }

  private reply(link: TerminalLink, header: Header, result: number, edition?: Edition): void {
    link.send(
      encodeFrame(
        {
          type: 'PlatformResponse',
          body: { replySerial: header.serial, replyId: header.messageId, result },
        },
        this.out(header, edition),
      ),
    );
  }
}

/**
 * The service view of a vehicle: from its live actor (`live`), or from its stored record when
 * it is not in memory (then offline here, its stored open alarms and commands).
 */
export function vehicleView(
  r: VehicleRecord,
  live?: { link: TerminalLink | undefined; openAlarms: AlarmRecord[]; pending: Command[] },
): VehicleView {
  const link = live?.link;
  const v: VehicleView = {
    vehicleId: r._id,
    registered: r.authCode !== undefined,
    online: link !== undefined,
    openAlarms: (live?.openAlarms ?? r.openAlarms ?? []).map((a) => ({
      bit: a.bit,
      startTime: a.startTime,
    })),
    pendingCommands: (live?.pending ?? r.pendingCommands ?? []).map((c) => ({
      id: c.id,
      type: c.message.type,
      createdAt: c.createdAt,
    })),
  };
  if (r.edition !== undefined) v.edition = r.edition;
  if (r.phone !== undefined) v.phone = r.phone;
  if (link) {
    v.node = link.node;
    v.linkId = link.id;
  } else if (r.node !== undefined) v.node = r.node;
  if (r.lastSeen !== undefined) v.lastSeen = r.lastSeen;
  if (r.lastUplinkSerial !== undefined) v.lastUplinkSerial = r.lastUplinkSerial;
  if (r.lastState) v.lastState = { ...r.lastState };
  if (r.registration) v.registration = { ...r.registration };
  return v;
}

/** A write nobody waits for: its failure is counted by its BatchWriter, never unhandled. */
function quiet(p: Promise<unknown>): void {
  p.catch(() => undefined);
}

function lastStateOf(loc: LocationReport, time: number, receivedAt: number): LastState {
  const s: LastState = {
    time,
    receivedAt,
    latitude: loc.latitude,
    longitude: loc.longitude,
    altitude: loc.altitude,
    speed: loc.speed,
    direction: loc.direction,
    alarm: loc.alarm,
    status: loc.status,
  };
  if (loc.mileageKm !== undefined) s.mileageKm = loc.mileageKm;
  if (loc.fuelL !== undefined) s.fuelL = loc.fuelL;
  if (loc.satellites !== undefined) s.satellites = loc.satellites;
  if (loc.signal !== undefined) s.signal = loc.signal;
  return s;
}
