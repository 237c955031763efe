// The vehicles of one thread: their actors, the batch writers they persist through, and the
// operations services ask of them (commands, a vehicle's view, who is online, stats). The same
// set runs on the node's main thread (`workers: 0`) or inside a vehicle worker.
import type { Db } from 'mongodb';
import type { CommandEvent } from '../actors/commandQueue.js';
import { ActorSystem, type ActorSystemStats } from '../actors/runtime.js';
import { emptyLinkOrderStats, type LinkOrderStats } from '../actors/linkOrder.js';
import {
  VehicleActor,
  vehicleView,
  type AlarmConfirmation,
  type TerminalLink,
  type VehicleEvents,
  type VehicleMessage,
  type VehiclePolicy,
  type VehicleView,
} from '../actors/vehicleActor.js';
import { decodeBody } from '../jt808/codec.js';
import { locationLayoutStats } from '../jt808/location.js';
import type { LayoutStats } from '../jt808/locationReaders.js';
import type { Edition, Header } from '../jt808/header.js';
import type { Message } from '../jt808/messages.js';
import { StaleOwner, type BatchWriter, type BatchWriterStats } from '../storage/batchWriter.js';
import type { VehicleLoaderStats } from '../storage/vehicleLoader.js';
import { VehicleStore } from '../storage/vehicleStore.js';
import {
  areaNowFilter,
  type AreaNowFilter,
  type AreaShape,
  type LiveVehicleState,
} from '../storage/historyShapes.js';
import { errorText, type FleetLog } from '../telemetry/log.js';
import { shardOf } from '../domain/shard.js';

export interface ThreadOptions {
  policy: VehiclePolicy;
  events?: VehicleEvents;
  mailboxLimit?: number;
  idlePassivateMs?: number;
  writer?: { maxBatch?: number; maxDelayMs?: number; maxBuffered?: number };
  /** Store retries and actor errors go here (rate-limited per cause); none: not logged. */
  log?: FleetLog;
}

/** A vehicle's position now, as "vehicles in an area now" answers it. */
export interface VehicleNow extends LiveVehicleState {
  /** GNSS time of its last report (ms). */
  time: number;
}

export interface AreaNowAnswer {
  vehicles: VehicleNow[];
  /** More vehicles matched than the limit. */
  more: boolean;
}

/** Several threads' (or nodes') answers as one, at most `limit` vehicles. */
export function mergeAreaAnswers(answers: readonly AreaNowAnswer[], limit: number): AreaNowAnswer {
  const vehicles = answers.flatMap((a) => a.vehicles);
  return {
    vehicles: vehicles.slice(0, limit),
    more: vehicles.length > limit || answers.some((a) => a.more),
  };
}

export interface OnlineVehicle {
  vehicleId: string;
  node: string;
  linkId: string;
  lastSeen: number;
}

type WriterName =
  | 'vehicles'
  | 'positions'
  | 'alarms'
  | 'sessions'
  | 'commands'
  | 'driverRecords'
  | 'drivingBehaviour';
export type WriterFigures = BatchWriterStats & { buffered: number };

export interface ThreadStats {
  actors: ActorSystemStats;
  /** Each writer's counters and the writes it holds now. */
  writers: Record<WriterName, WriterFigures>;
  full: boolean;
  /** Activation reads: batches, failures, vehicles waiting for a read now. */
  loader: VehicleLoaderStats & { queued: number; reading: number };
  malformedBodies: number;
  /** Location item layouts compiled in this thread, and reports read item by item past the limit. */
  locationLayouts: LayoutStats;
  /** Frames put back in their connection's order (held, gaps given up, late). */
  linkOrder: LinkOrderStats;
}

/**
 * The vehicle's shard is another thread's or node's now (a call raced a placement change). Its
 * name survives the trip from a worker (comlink keeps an error's name): callers try again.
 */
export class NotOwnedHere extends Error {
  override name = 'NotOwnedHere';
}

export class VehicleThread {
  readonly store: VehicleStore;
  readonly actors: ActorSystem<VehicleMessage>;
  malformedBodies = 0;
  /** Vehicles handed to another owner since start. */
  handedOff = 0;
  private readonly linkOrder = emptyLinkOrderStats();
  /** The owner epoch actors activated from now on write under (undefined: not fenced). */
  private epoch: number | undefined;
  /** One bit per shard (cluster/placement.ts) this thread owns; null: every vehicle. */
  private owned: Uint8Array | null = null;

  constructor(db: Db, opts: ThreadOptions) {
    const log = opts.log;
    this.store = new VehicleStore(db, {
      writer: {
        ...opts.writer,
        ...(log
          ? {
              onRetry: (err: unknown, attempt: number) =>
                log.warn(
                  'store.retry',
                  { attempt, err: errorText(err) },
                  'store write failed; retrying',
                ),
            }
          : {}),
      },
    });
    const deps = {
      store: this.store,
      policy: opts.policy,
      ...(opts.events ? { events: opts.events } : {}),
      ownerEpoch: () => this.epoch,
      linkOrderStats: this.linkOrder,
    };
    this.actors = new ActorSystem<VehicleMessage>({
      create: (id) => new VehicleActor(id, deps),
      mailboxLimit: opts.mailboxLimit ?? 256,
      idleMs: opts.idlePassivateMs ?? 0,
      ...(log
        ? {
            onError: (id: string, phase: string, err: unknown) =>
              log.error(
                `actor.${phase}`,
                { vehicleId: id, err: errorText(err) },
                `actor ${phase} failed`,
              ),
          }
        : {}),
    });
  }

  /** True when this thread owns the vehicle under the last assignment. */
  owns(vehicleId: string): boolean {
    const owned = this.owned;
    if (owned === null) return true;
    const shard = shardOf(vehicleId);
    return (owned[shard >>> 3]! & (1 << (shard & 7))) !== 0;
  }

  /**
   * A new placement (cluster/router.ts): actors activated from now on write under `epoch`; the
   * actors of shards no longer owned take what their mailboxes hold, save their state and leave
   * memory, and their writes reach the database before this resolves (then the new owner may
   * read them). Returns how many vehicles left.
   */
  async assign(epoch: number, owned: Uint8Array | null): Promise<number> {
    this.epoch = epoch;
    this.owned = owned;
    const left = await this.actors.passivateWhere((id) => !this.owns(id));
    this.handedOff += left;
    await this.store.flush();
    return left;
  }

  private notOwned(vehicleId: string): Promise<never> {
    return Promise.reject(
      new NotOwnedHere(`vehicle ${vehicleId} is not owned by this thread any more`),
    );
  }

  /** Hands a decoded uplink message to its vehicle; false when the mailbox is full. */
  uplink(
    vehicleId: string,
    link: TerminalLink,
    header: Header,
    edition: Edition,
    message: Message,
    receivedAt: number,
    seq = 0,
  ): boolean {
    return this.actors.tell(vehicleId, {
      kind: 'uplink',
      link,
      seq,
      header,
      edition,
      message,
      receivedAt,
    });
  }

  /** Decodes a body read by the gateway (header only) and hands it to its vehicle. */
  uplinkBody(
    vehicleId: string,
    link: TerminalLink,
    header: Header,
    edition: Edition,
    body: Uint8Array,
    receivedAt: number,
    seq = 0,
  ): boolean {
    if (this.actors.isFull(vehicleId)) return false;
    const r = decodeBody(header.messageId, body, edition);
    if (!r.ok) {
      this.malformedBodies++;
      return this.actors.tell(vehicleId, {
        kind: 'malformed',
        link,
        seq,
        header,
        edition,
        detail: `${r.reason}: ${r.detail}`,
      });
    }
    return this.uplink(vehicleId, link, header, r.edition, r.message, receivedAt, seq);
  }

  /** Sends a platform message body to the terminal on the vehicle's serial counter. */
  platformMessage(
    vehicleId: string,
    link: TerminalLink,
    messageId: number,
    body: Uint8Array,
    phone: string,
    edition: Edition,
    seq = 0,
  ): boolean {
    return this.actors.tell(vehicleId, {
      kind: 'platformMessage',
      link,
      seq,
      messageId,
      body,
      phone,
      edition,
    });
  }

  linkClosed(vehicleId: string, linkId: string, reason: string, at: number, seq = 0): boolean {
    return this.actors.tell(vehicleId, { kind: 'linkClosed', linkId, seq, reason, at });
  }

  /**
   * Queues a downlink command; resolves with its final state ('answered', 'failed',
   * 'timed-out'), or 'refused' when the vehicle's mailbox or queue is full.
   */
  command(vehicleId: string, id: string, message: Message): Promise<CommandEvent> {
    if (!this.owns(vehicleId)) return this.notOwned(vehicleId);
    return new Promise<CommandEvent>((resolve) => {
      const accepted = this.actors.tell(vehicleId, {
        kind: 'command',
        command: { id, message, createdAt: Date.now() },
        settled: resolve,
      });
      if (!accepted)
        resolve({
          commandId: id,
          state: 'refused',
          at: Date.now(),
          detail: 'vehicle mailbox full',
        });
    });
  }

  /** Marks a vehicle's open alarms handled (0 = all); see VehicleActor.confirmAlarms. */
  confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator = 'api',
  ): Promise<AlarmConfirmation> {
    if (!this.owns(vehicleId)) return this.notOwned(vehicleId);
    return new Promise((resolve, reject) => {
      const accepted = this.actors.tell(vehicleId, {
        kind: 'confirmAlarms',
        bits,
        commandId,
        operator,
        done: resolve,
        // A newer owner has the vehicle's records: the caller asks again (it finds the owner).
        failed: (err: unknown) =>
          reject(
            err instanceof StaleOwner
              ? new NotOwnedHere(`vehicle ${vehicleId} moved to another owner`)
              : err,
          ),
      });
      if (!accepted) reject(new Error('vehicle mailbox full'));
    });
  }

  /** The vehicle's view: from its actor when in memory, else from storage; undefined if unknown. */
  async vehicle(vehicleId: string): Promise<VehicleView | undefined> {
    const actor = this.actors.actorOf(vehicleId);
    if (actor instanceof VehicleActor && actor.loaded) return actor.view();
    const record = await this.store.load(vehicleId);
    return record ? vehicleView(record) : undefined;
  }

  online(): OnlineVehicle[] {
    const out: OnlineVehicle[] = [];
    for (const id of this.actors.ids()) {
      const actor = this.actors.actorOf(id);
      if (!(actor instanceof VehicleActor)) continue;
      const link = actor.currentLink;
      if (link)
        out.push({ vehicleId: id, node: link.node, linkId: link.id, lastSeen: actor.lastSeen });
    }
    return out;
  }

  /**
   * The vehicles in memory here whose last position is inside `shape` and that pass `filter`,
   * at most `limit` (`more`: there were others). Vehicles not in memory are offline and not
   * asked about (their stored last state is for the history service).
   */
  inArea(shape: AreaShape, filter: AreaNowFilter, limit: number): AreaNowAnswer {
    const states = function* (actors: ActorSystem<VehicleMessage>): Generator<VehicleNow> {
      for (const id of actors.ids()) {
        const actor = actors.actorOf(id);
        if (!(actor instanceof VehicleActor)) continue;
        const s = actor.lastState;
        if (!s) continue;
        yield {
          vehicleId: id,
          latitude: s.latitude,
          longitude: s.longitude,
          speed: s.speed,
          alarm: s.alarm,
          online: actor.currentLink !== undefined,
          time: s.time,
        };
      }
    };
    return areaNowFilter(states(this.actors), shape, filter, limit);
  }

  stats(): ThreadStats {
    const s = this.store;
    const figures = (w: BatchWriter): WriterFigures => ({ ...w.stats, buffered: w.buffered });
    return {
      actors: { ...this.actors.stats },
      writers: {
        vehicles: figures(s.vehicles),
        positions: figures(s.positions),
        alarms: figures(s.alarms),
        sessions: figures(s.sessions),
        commands: figures(s.commands),
        driverRecords: figures(s.driverRecords),
        drivingBehaviour: figures(s.drivingBehaviour),
      },
      full: s.full,
      loader: { ...s.loader.stats, queued: s.loader.queued, reading: s.loader.reading },
      malformedBodies: this.malformedBodies,
      locationLayouts: locationLayoutStats(),
      linkOrder: { ...this.linkOrder },
    };
  }

  /** Waits for every turn to end and every buffered write to reach the database. */
  async flush(): Promise<void> {
    await this.actors.whenIdle();
    await this.store.flush();
  }

  async passivateAll(): Promise<void> {
    await this.actors.passivateAll();
  }

  async close(): Promise<void> {
    await this.actors.passivateAll();
    await this.store.close();
  }
}

/** One writer's figures summed over every thread (lag: the largest). */
export function writerTotals(stats: ThreadStats[], writer: WriterName): WriterFigures {
  const t = {
    stored: 0,
    duplicates: 0,
    failed: 0,
    batches: 0,
    retries: 0,
    lastLagMs: 0,
    buffered: 0,
    coalesced: 0,
    refused: 0,
    fenced: 0,
  };
  for (const s of stats) {
    const w = s.writers[writer];
    t.stored += w.stored;
    t.duplicates += w.duplicates;
    t.failed += w.failed;
    t.batches += w.batches;
    t.retries += w.retries;
    t.lastLagMs = Math.max(t.lastLagMs, w.lastLagMs);
    t.buffered += w.buffered;
    t.coalesced += w.coalesced;
    t.refused += w.refused;
    t.fenced += w.fenced;
  }
  return t;
}
