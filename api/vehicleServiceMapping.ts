// Between the gRPC vehicle service's messages (proto/fleetmesh/v1/vehicle.proto, as
// @grpc/proto-loader hands them over: camelCase fields, enums as names, int64 as numbers) and
// the domain: typed commands in, vehicles / statuses / events out. Pure code; invalid requests
// become an InvalidRequest error with a message for INVALID_ARGUMENT.
import type { CommandEvent, CommandState } from '../actors/commandQueue.js';
import type { VehicleView } from '../actors/vehicleActor.js';
import type { VehicleEvent, VehicleEventKind } from '../actors/vehicleEvents.js';
import { bodyJson } from '../jt808/json.js';
import type { Message } from '../jt808/messages.js';
import type { LastState } from '../storage/vehicleStore.js';
import type { OnlineVehicle } from '../hosting/vehicleThread.js';
import type { Member } from '../cluster/memberTable.js';

export class InvalidRequest extends Error {}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function uint(v: unknown, name: string, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new InvalidRequest(`${name} must be an integer from 0 to ${max}`);
  return n;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const bytes = (v: unknown): Uint8Array =>
  v instanceof Uint8Array ? new Uint8Array(v) : new Uint8Array();

/** The platform message a SendCommandRequest asks for. */
export function commandMessage(req: Obj): Message {
  const which = req.command;
  const c = typeof which === 'string' ? req[which] : undefined;
  if (!isObj(c)) throw new InvalidRequest('command: one of the command fields must be set');
  switch (which) {
    case 'setParameters': {
      const list = Array.isArray(c.parameters) ? c.parameters : [];
      if (list.length === 0 || list.length > 255)
        throw new InvalidRequest('set_parameters: 1 to 255 parameters');
      return {
        type: 'SetParameters',
        body: {
          params: list.map((p: unknown, i) => {
            if (!isObj(p)) throw new InvalidRequest(`parameters[${i}] is not a message`);
            const id = uint(p.id, `parameters[${i}].id`, 0xffffffff);
            if (p.value === 'number')
              return { id, value: uint(p.number, `parameters[${i}].number`, 0xffffffff) };
            if (p.value === 'text') return { id, value: str(p.text) };
            if (p.value === 'raw') return { id, value: bytes(p.raw) };
            throw new InvalidRequest(`parameters[${i}]: one of number, text, raw must be set`);
          }),
        },
      };
    }
    case 'queryParameters': {
      const ids = Array.isArray(c.ids) ? c.ids.map((x, i) => uint(x, `ids[${i}]`, 0xffffffff)) : [];
      if (ids.length > 255) throw new InvalidRequest('query_parameters: at most 255 ids');
      return ids.length === 0
        ? { type: 'QueryAllParameters', body: {} }
        : { type: 'QueryParameters', body: { ids } };
    }
    case 'queryPosition':
      return { type: 'LocationQuery', body: {} };
    case 'textMessage': {
      const text = str(c.text);
      if (text === '') throw new InvalidRequest('text_message.text must not be empty');
      return {
        type: 'TextMessage',
        body: {
          flag: uint(c.flag, 'text_message.flag', 0xff),
          textType: uint(c.textType ?? 0, 'text_message.text_type', 0xff) || 1,
          text,
        },
      };
    }
    case 'terminalControl': {
      const command = uint(c.command, 'terminal_control.command', 0xff);
      const parameters = str(c.parameters);
      const cs = c.connectToServer;
      if (isObj(cs) && command === 2 && parameters === '') {
        const control = uint(cs.connectionControl, 'connection_control', 1) as 0 | 1;
        const connectToServer: NonNullable<
          Extract<Message, { type: 'TerminalControl' }>['body']['connectToServer']
        > = { connectionControl: control };
        if (str(cs.authCode)) connectToServer.authCode = str(cs.authCode);
        if (str(cs.apn)) connectToServer.apn = str(cs.apn);
        if (str(cs.address)) connectToServer.address = str(cs.address);
        const tcp = uint(cs.tcpPort ?? 0, 'tcp_port', 0xffff);
        const udp = uint(cs.udpPort ?? 0, 'udp_port', 0xffff);
        const limit = uint(cs.timeLimitMinutes ?? 0, 'time_limit_minutes', 0xffff);
        if (tcp) connectToServer.tcpPort = tcp;
        if (udp) connectToServer.udpPort = udp;
        if (limit) connectToServer.timeLimitMinutes = limit;
        return { type: 'TerminalControl', body: { command, parameters: '', connectToServer } };
      }
      return { type: 'TerminalControl', body: { command, parameters } };
    }
    case 'takePhoto':
      return {
        type: 'TakePhoto',
        body: {
          channel: uint(c.channel, 'take_photo.channel', 0xff),
          command: uint(c.count, 'take_photo.count', 0xffff),
          intervalSeconds: uint(c.intervalSeconds, 'take_photo.interval_seconds', 0xffff),
          save: c.save === true ? 1 : 0,
          resolution: uint(c.resolution, 'take_photo.resolution', 0xff),
          quality: uint(c.quality, 'take_photo.quality', 0xff),
          brightness: uint(c.brightness, 'take_photo.brightness', 0xff),
          contrast: uint(c.contrast, 'take_photo.contrast', 0xff),
          saturation: uint(c.saturation, 'take_photo.saturation', 0xff),
          chroma: uint(c.chroma, 'take_photo.chroma', 0xff),
        },
      };
    case 'raw': {
      const messageId = uint(c.messageId, 'raw.message_id', 0xffff);
      if (messageId < 0x8000)
        throw new InvalidRequest('raw.message_id must be a platform id (0x8000 and up)');
      return { type: 'Raw', messageId, body: bytes(c.body) };
    }
    default:
      throw new InvalidRequest(`command: unknown command ${String(which)}`);
  }
}

const STATE_NAMES: Record<CommandState, string> = {
  queued: 'QUEUED',
  sent: 'SENT',
  answered: 'ANSWERED',
  failed: 'FAILED',
  'timed-out': 'TIMED_OUT',
  refused: 'REFUSED',
};

export interface CommandStatusMessage {
  commandId: string;
  vehicleId: string;
  state: string;
  updatedUnixMs: number;
  attempts: number;
  detail: string;
  replyType: string;
  result: number;
  replyJson: string;
  /** What the command is (message type, platform message id) and when it was created. */
  kind?: string;
  messageId?: number;
  createdUnixMs?: number;
}

/**
 * The result a reply carries: 0x0001's and 0x0805's (0 success); the other replies (0x0104,
 * 0x0201, 0x0107) carry none, and the status's result stays -1.
 */
function replyResult(reply: Message | undefined): number | undefined {
  if (reply?.type === 'TerminalResponse' || reply?.type === 'PhotoReply') return reply.body.result;
  return undefined;
}

/** A command's status from its latest event (attempts carried over from earlier ones). */
export function commandStatus(
  vehicleId: string,
  e: CommandEvent,
  previous?: CommandStatusMessage,
): CommandStatusMessage {
  const reply = e.reply;
  return {
    commandId: e.commandId,
    vehicleId,
    state: STATE_NAMES[e.state],
    updatedUnixMs: e.at,
    attempts: Math.max(e.attempt ?? 0, previous?.attempts ?? 0),
    detail: e.detail ?? '',
    replyType: reply?.type ?? previous?.replyType ?? '',
    result: replyResult(reply) ?? previous?.result ?? -1,
    replyJson: reply ? JSON.stringify(bodyJson(reply)) : (previous?.replyJson ?? ''),
    ...(previous?.kind !== undefined ? { kind: previous.kind } : {}),
    ...(previous?.messageId !== undefined ? { messageId: previous.messageId } : {}),
    ...(previous?.createdUnixMs !== undefined ? { createdUnixMs: previous.createdUnixMs } : {}),
  };
}

/**
 * A command's status from its entries in the commands log (storage/vehicleStore.ts logCommand),
 * in the order they happened: the reply's type and 0x0001 result, not its body (the log keeps
 * none); kind, message id and created time from the entry that names them.
 */
export function storedCommandStatus(
  events: readonly StoredCommandEvent[],
): CommandStatusMessage | undefined {
  let status: CommandStatusMessage | undefined;
  for (const d of events) {
    const e: CommandEvent = {
      commandId: String(d.commandId),
      state: d.state as CommandEvent['state'],
      at: d.at.getTime(),
      ...(typeof d.attempt === 'number' ? { attempt: d.attempt } : {}),
      ...(typeof d.detail === 'string' ? { detail: d.detail } : {}),
    };
    status = commandStatus(String(d.vehicleId), e, status);
    if (typeof d.reply === 'string') status.replyType = d.reply;
    if (typeof d.result === 'number') status.result = d.result;
    // The log keeps 0x0001's result only; an 0x0805 answered (not failed) had result 0.
    else if (d.reply === 'PhotoReply' && d.state === 'answered') status.result = 0;
    if (typeof d.kind === 'string') status.kind = d.kind;
    if (typeof d.messageId === 'number') status.messageId = d.messageId;
    if (d.createdAt instanceof Date) status.createdUnixMs = d.createdAt.getTime();
  }
  // Logged before the log named commands: created when first logged.
  if (status && status.createdUnixMs === undefined && events[0])
    status.createdUnixMs = events[0].at.getTime();
  return status;
}

/** One entry of the commands log as read back. */
export interface StoredCommandEvent {
  commandId: unknown;
  vehicleId: unknown;
  state: unknown;
  at: Date;
  attempt?: unknown;
  detail?: unknown;
  reply?: unknown;
  result?: unknown;
  kind?: unknown;
  messageId?: unknown;
  createdAt?: unknown;
}

export function positionMessage(s: LastState): Obj {
  const p: Obj = {
    timeUnixMs: s.time,
    receivedUnixMs: s.receivedAt,
    latitude: s.latitude,
    longitude: s.longitude,
    altitudeM: s.altitude,
    speedKmh: s.speed,
    directionDeg: s.direction,
    alarm: s.alarm,
    status: s.status,
  };
  if (s.mileageKm !== undefined) p.mileageKm = s.mileageKm;
  if (s.fuelL !== undefined) p.fuelL = s.fuelL;
  if (s.satellites !== undefined) p.satellites = s.satellites;
  if (s.signal !== undefined) p.signal = s.signal;
  return p;
}

export function vehicleMessage(v: VehicleView): Obj {
  const out: Obj = {
    vehicleId: v.vehicleId,
    registered: v.registered,
    online: v.online,
    edition: v.edition ?? 0,
    phone: v.phone ?? '',
    node: v.node ?? '',
    linkId: v.linkId ?? '',
    lastSeenUnixMs: v.lastSeen ?? 0,
    lastUplinkSerial: v.lastUplinkSerial ?? 0,
    nextDownlinkSerial: v.nextDownlinkSerial ?? 0,
    openAlarms: v.openAlarms.map((a) => ({ bit: a.bit, startUnixMs: a.startTime })),
    pendingCommands: v.pendingCommands.map((c) => ({
      commandId: c.id,
      type: c.type,
      createdUnixMs: c.createdAt,
    })),
  };
  if (v.lastState) out.lastPosition = positionMessage(v.lastState);
  if (v.registration) {
    const r = v.registration;
    out.registration = {
      province: r.province,
      city: r.city,
      maker: r.maker,
      model: r.model,
      terminalId: r.terminalId,
      plateColor: r.plateColor,
      plate: r.plate,
      // Records written before registeredAt became a Date hold epoch ms.
      registeredUnixMs: new Date(r.registeredAt).getTime(),
    };
  }
  return out;
}

export function onlineMessage(o: OnlineVehicle): Obj {
  return { vehicleId: o.vehicleId, node: o.node, linkId: o.linkId, lastSeenUnixMs: o.lastSeen };
}

/** ListOnlineVehicles' page size when none is given, and the largest it takes. */
export const DEFAULT_ONLINE_PAGE = 100;
export const MAX_ONLINE_PAGE = 1000;

/**
 * One page of online vehicles ordered by id; the token is the last id of the page before.
 * `pageSize` is checked by the caller (storage/historyQuery.ts pageSize: over the limit refused).
 */
export function onlinePage(
  all: OnlineVehicle[],
  pageSize: number,
  pageToken: string,
): { page: OnlineVehicle[]; nextPageToken: string } {
  const size = pageSize === 0 ? DEFAULT_ONLINE_PAGE : pageSize;
  const sorted = [...all].sort((a, b) =>
    a.vehicleId < b.vehicleId ? -1 : a.vehicleId > b.vehicleId ? 1 : 0,
  );
  const start = pageToken === '' ? 0 : sorted.findIndex((o) => o.vehicleId > pageToken);
  const page = start < 0 ? [] : sorted.slice(start, start + size);
  const last = page[page.length - 1];
  const more = start >= 0 && start + size < sorted.length;
  return { page, nextPageToken: more && last ? last.vehicleId : '' };
}

/**
 * A member of the membership as ListMembers answers it: its addresses, slots, times and load
 * (load fields a member does not report stay absent). Its peer address is left out: it is the
 * cluster's inside (no token), not for the callers of the public API.
 */
export function memberMessage(m: Member): Obj {
  const { draining, ...load } = m.load;
  return {
    node: m.node,
    gateway: m.gateway,
    grpc: m.grpc ?? '',
    workers: m.workers,
    startedAtUnixMs: m.startedAt,
    reportedAtUnixMs: m.reportedAt,
    load,
    draining: draining === true,
  };
}

const KIND_NAMES: Record<string, VehicleEventKind> = {
  POSITION: 'position',
  ALARM: 'alarm',
  ONLINE: 'online',
  COMMAND: 'command',
};

/** The event kinds a StreamEventsRequest names (empty: every kind). */
export function eventKinds(kinds: unknown): Set<VehicleEventKind> {
  const out = new Set<VehicleEventKind>();
  if (!Array.isArray(kinds)) return out;
  for (const k of kinds) {
    const kind = typeof k === 'string' ? KIND_NAMES[k] : undefined;
    if (!kind) throw new InvalidRequest(`kinds: ${String(k)} is not an event kind to subscribe to`);
    out.add(kind);
  }
  return out;
}

export function eventMessage(e: VehicleEvent, status?: CommandStatusMessage): Obj | undefined {
  switch (e.kind) {
    case 'position':
      return {
        kind: 'POSITION',
        vehicleId: e.vehicleId,
        atUnixMs: e.state.time,
        position: positionMessage(e.state),
        source: e.source,
      };
    case 'alarm':
      return {
        kind: 'ALARM',
        vehicleId: e.vehicleId,
        atUnixMs: e.at,
        alarm: { opened: e.change === 'opened', bit: e.bit },
      };
    case 'online':
      return {
        kind: 'ONLINE',
        vehicleId: e.vehicleId,
        atUnixMs: e.at,
        online: { online: e.online, reason: e.reason },
      };
    case 'command':
      return {
        kind: 'COMMAND',
        vehicleId: e.vehicleId,
        atUnixMs: e.event.at,
        command: status ?? commandStatus(e.vehicleId, e.event),
      };
    default:
      return undefined;
  }
}
