// A vehicle worker thread: one VehicleThread (actors + batch writers + its own MongoDB client).
// Data plane: frame batches from the gateway arrive on `dataPort`; what the actors send back
// (frames, closes, authentications), how many records were taken (credit for the gateway's
// backpressure), whether storage is full, and events leave in one message per turn of the
// event loop. Control plane: the API below, exposed with comlink on the parent port.
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { MongoClient } from 'mongodb';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { CommandEvent } from '../actors/commandQueue.js';
import type {
  AlarmConfirmation,
  TerminalLink,
  VehiclePolicy,
  VehicleView,
} from '../actors/vehicleActor.js';
import {
  eventCallbacks,
  type VehicleEvent,
  type VehicleEventKind,
} from '../actors/vehicleEvents.js';
import type { Message } from '../jt808/messages.js';
import {
  FrameBatchBuilder,
  LINK_CLOSED,
  LINK_NAME,
  PLATFORM_MESSAGE,
  readFrameBatch,
  UPLINK,
  type BatchRecord,
} from './frameBatch.js';
import { vehicleIdOf, type Edition } from '../jt808/header.js';
import { threadMemory, type ThreadMemory } from './vehicleHost.js';
import type { AreaNowFilter, AreaShape } from '../storage/historyShapes.js';
import {
  VehicleThread,
  type AreaNowAnswer,
  type OnlineVehicle,
  type ThreadStats,
} from './vehicleThread.js';
import { createLog, type LogLevel } from '../telemetry/log.js';

/** What every vehicle worker of a node is started with. */
export interface VehicleWorkerConfig {
  node: string;
  /** Link ids are `${linkPrefix}${number}` (the gateway's naming). */
  linkPrefix: string;
  mongodbUri: string;
  database: string;
  policy: VehiclePolicy;
  mailboxLimit?: number;
  idlePassivateMs?: number;
  writer?: { maxBatch?: number; maxDelayMs?: number; maxBuffered?: number };
  /** Log at this level (a logger does not cross threads: each worker makes its own); none: silent. */
  logLevel?: LogLevel;
}

export interface VehicleWorkerData extends VehicleWorkerConfig {
  index: number;
  /** Event kinds to forward from the start. */
  events: VehicleEventKind[];
  dataPort: MessagePort;
}

/** One message from a worker to the gateway thread. */
export interface WorkerOutbound {
  batch: ArrayBuffer;
  /** Records taken from the gateway's batches since the last message. */
  consumed: number;
  storageFull: boolean;
  events: VehicleEvent[];
}

export interface VehicleWorkerApi {
  ready(): Promise<void>;
  command(vehicleId: string, id: string, message: Message): Promise<CommandEvent>;
  vehicle(vehicleId: string): Promise<VehicleView | undefined>;
  confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator?: string,
  ): Promise<AlarmConfirmation>;
  online(): OnlineVehicle[];
  inArea(shape: AreaShape, filter: AreaNowFilter, limit: number): AreaNowAnswer;
  stats(): ThreadStats;
  memory(): ThreadMemory;
  flush(): Promise<void>;
  passivateAll(): Promise<void>;
  wantEvents(kinds: VehicleEventKind[]): void;
  /** A new placement: see VehicleThread.assign (owned: one bit per shard; null: all). */
  assign(epoch: number, owned: Uint8Array | null): Promise<number>;
  close(): Promise<void>;
}

const data = workerData as VehicleWorkerData;
const port = data.dataPort;
const wanted = new Set<VehicleEventKind>(data.events);
const out = new FrameBatchBuilder();
let events: VehicleEvent[] = [];
let consumed = 0;
let lastFull = false;
let flushScheduled = false;

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushOutbound);
}

function flushOutbound(): void {
  flushScheduled = false;
  const full = vehicles.store.full;
  if (out.count === 0 && consumed === 0 && events.length === 0 && full === lastFull) return;
  lastFull = full;
  const msg: WorkerOutbound = { batch: out.take(), consumed, storageFull: full, events };
  consumed = 0;
  events = [];
  port.postMessage(msg, [msg.batch]);
}

const client = new MongoClient(data.mongodbUri, {
  serverSelectionTimeoutMS: 2000,
  connectTimeoutMS: 2000,
});
const vehicles = new VehicleThread(client.db(data.database), {
  policy: data.policy,
  events: eventCallbacks((e) => {
    events.push(e);
    scheduleFlush();
  }, wanted),
  ...(data.mailboxLimit !== undefined ? { mailboxLimit: data.mailboxLimit } : {}),
  ...(data.idlePassivateMs !== undefined ? { idlePassivateMs: data.idlePassivateMs } : {}),
  ...(data.writer ? { writer: data.writer } : {}),
  ...(data.logLevel
    ? { log: createLog({ level: data.logLevel, base: { node: data.node, worker: data.index } }) }
    : {}),
});
vehicles.store.onDrain(scheduleFlush);
/** Connected to the database; a worker started during an outage keeps trying every second. */
async function connect(): Promise<void> {
  for (;;) {
    try {
      await client.connect();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
const ready = connect();

/** A terminal connection held by the gateway thread, named by its number. */
class RemoteLink implements TerminalLink {
  /** The gateway's naming, or the name another node gave its terminal's link (LINK_NAME). */
  constructor(
    readonly number: number,
    readonly id = `${data.linkPrefix}${number}`,
    readonly node = data.node,
  ) {}
  send(frame: Uint8Array): void {
    out.send(this.number, frame);
    scheduleFlush();
  }
  close(reason: string): void {
    out.close(this.number, reason);
    scheduleFlush();
  }
  authenticated(vehicleId: string, edition: Edition): void {
    out.authenticated(this.number, edition, vehicleId);
    scheduleFlush();
  }
}

const links = new Map<number, RemoteLink>();
const linkFor = (n: number): RemoteLink => {
  let l = links.get(n);
  if (!l) links.set(n, (l = new RemoteLink(n)));
  return l;
};

// Records a full mailbox refused, per vehicle and in order; bounded by the gateway's credit.
const waiting = new Map<string, (() => boolean)[]>();
let retryTimer: NodeJS.Timeout | undefined;

function offer(vehicleId: string, attempt: () => boolean): void {
  const queue = waiting.get(vehicleId);
  if (queue === undefined && attempt()) {
    consumed++;
    return;
  }
  if (queue) queue.push(attempt);
  else waiting.set(vehicleId, [attempt]);
  retryTimer ??= setTimeout(retryWaiting, 5);
}

function retryWaiting(): void {
  retryTimer = undefined;
  for (const [vehicleId, queue] of waiting) {
    while (queue.length > 0 && queue[0]!()) {
      queue.shift();
      consumed++;
    }
    if (queue.length === 0) waiting.delete(vehicleId);
  }
  if (waiting.size > 0) retryTimer = setTimeout(retryWaiting, 5);
  scheduleFlush();
}

function onRecord(r: BatchRecord): void {
  if (r.kind === UPLINK) {
    const link = linkFor(r.link);
    const vehicleId = vehicleIdOf(r.header.phone);
    // A copy, not a view: a view would keep the whole batch alive while this record waits in a
    // mailbox (up to maxInFlight records per worker).
    const body = r.body.slice();
    offer(vehicleId, () =>
      vehicles.owns(vehicleId)
        ? vehicles.uplinkBody(vehicleId, link, r.header, r.edition, body, r.receivedAt, r.seq)
        : bounce(() => out.uplink(r.link, r.receivedAt, r.header, r.edition, body, r.seq)),
    );
  } else if (r.kind === PLATFORM_MESSAGE) {
    const link = linkFor(r.link);
    const body = r.body.slice();
    offer(r.vehicleId, () =>
      vehicles.owns(r.vehicleId)
        ? vehicles.platformMessage(r.vehicleId, link, r.messageId, body, r.phone, r.edition, r.seq)
        : bounce(() =>
            out.platformMessage(r.link, r.edition, r.messageId, r.phone, r.vehicleId, body, r.seq),
          ),
    );
  } else if (r.kind === LINK_NAME) {
    links.set(r.link, new RemoteLink(r.link, r.id, r.node));
  } else if (r.kind === LINK_CLOSED) {
    const link = linkFor(r.link);
    links.delete(r.link);
    offer(r.vehicleId, () =>
      vehicles.owns(r.vehicleId)
        ? vehicles.linkClosed(r.vehicleId, link.id, r.reason, r.at, r.seq)
        : bounce(() => out.linkClosed(r.link, r.at, r.reason, r.vehicleId, r.seq, link.id)),
    );
  }
}

/**
 * A record for a vehicle this thread no longer owns (it arrived after a placement change): it
 * goes back to the node's thread, which routes it to the owner. Taken, as far as credit goes.
 */
function bounce(write: () => void): true {
  write();
  scheduleFlush();
  return true;
}

port.on('message', (batch: ArrayBuffer) => {
  readFrameBatch(batch, onRecord);
  scheduleFlush();
});

const api: VehicleWorkerApi = {
  ready: () => ready,
  command: (vehicleId, id, message) => vehicles.command(vehicleId, id, message),
  vehicle: (vehicleId) => vehicles.vehicle(vehicleId),
  confirmAlarms: (vehicleId, bits, commandId, operator) =>
    vehicles.confirmAlarms(vehicleId, bits, commandId, operator),
  online: () => vehicles.online(),
  inArea: (shape, filter, limit) => vehicles.inArea(shape, filter, limit),
  stats: () => vehicles.stats(),
  memory: threadMemory,
  flush: () => vehicles.flush(),
  passivateAll: () => vehicles.passivateAll(),
  wantEvents: (kinds) => {
    wanted.clear();
    for (const k of kinds) wanted.add(k);
  },
  assign: (epoch, owned) => vehicles.assign(epoch, owned),
  close: async () => {
    await vehicles.close();
    flushOutbound();
    await client.close();
    port.close();
  },
};

Comlink.expose(api, nodeEndpoint(parentPort!));
