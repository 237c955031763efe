// The node's vehicles spread over worker threads, placed by the cluster's placement function
// (vehicle id → shard → rendezvous hashing over the workers; cluster/placement.ts). Frames go
// to a worker in one transferred ArrayBuffer per worker per turn of the event loop; each worker
// answers the same way. Backpressure: a worker may hold at most `maxInFlight` records it has
// not taken into a mailbox yet; beyond that `deliver` refuses and the gateway pauses the socket.
// A worker that dies is started again; the terminals it served are disconnected (they reconnect
// and authenticate again; unacknowledged reports are sent again by the terminal), and calls it
// had not answered fail with VehiclesUnavailable.
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { CommandEvent } from '../actors/commandQueue.js';
import { realScheduler, type Scheduler } from '../actors/runtime.js';
import type { AlarmConfirmation, TerminalLink, VehicleView } from '../actors/vehicleActor.js';
import type { VehicleEvent, VehicleEventKind } from '../actors/vehicleEvents.js';
import type { Message } from '../jt808/messages.js';
import {
  applyToLink,
  deliveryOf,
  FrameBatchBuilder,
  LINK_CLOSED,
  PROXY_LINK_BASE,
  readFrameBatch,
  UPLINK,
  type BatchRecord,
} from './frameBatch.js';
import { vehicleIdOf } from '../jt808/header.js';
import type { GatewayDelivery } from '../gateway/gateway.js';

import type { ThreadMemory, VehicleHost } from './vehicleHost.js';
import {
  mergeAreaAnswers,
  type AreaNowAnswer,
  type OnlineVehicle,
  type ThreadStats,
} from './vehicleThread.js';
import type { AreaNowFilter, AreaShape } from '../storage/historyShapes.js';
import type {
  VehicleWorkerApi,
  VehicleWorkerConfig,
  VehicleWorkerData,
  WorkerOutbound,
} from './vehicleWorker.js';

export interface WorkerHostOptions {
  workers: number;
  /** What each worker is started with (cloneable: it crosses to the thread). */
  config: VehicleWorkerConfig;
  /** Where the workers' events go, and the kinds wanted from the start (see `wantEvents`). */
  onEvent: (e: VehicleEvent) => void;
  events: VehicleEventKind[];
  /** Records a worker may hold before the gateway pauses (default 4096). */
  maxInFlight?: number;
  log?: (line: string) => void;
  /** The worker thread's script (default: ./vehicleWorker.js); tests start a fake one. */
  workerScript?: URL;
  /** Clock and timers of the restart delays (default: the real ones); tests drive their own. */
  scheduler?: Scheduler;
  /**
   * The worker that owns a vehicle: placement over this node's workers alone, or in a cluster
   * the router's placement over every node's workers (cluster/router.ts); -1: not this node's.
   */
  workerOf: (vehicleId: string) => number;
  /** A record a worker sent back: its vehicle is not that worker's any more (route it again). */
  onBounce?: (vehicleId: string, d: GatewayDelivery) => void;
}

/** Where the workers' answers go: terminal links by number (the gateway, or the router's). */
export interface LinkDirectory {
  linkByNumber(n: number): TerminalLink | undefined;
  /** Closes the links of authenticated vehicles that match (their worker died). */
  closeWhere(match: (vehicleId: string) => boolean, reason: string): number;
}

interface WorkerSlot {
  index: number;
  worker: Worker;
  api: Comlink.Remote<VehicleWorkerApi>;
  data: MessagePort;
  out: FrameBatchBuilder;
  /** Links of other nodes' terminals whose name this worker has been told (LINK_NAME). */
  named: Set<number>;
  inFlight: number;
  storageFull: boolean;
  flushScheduled: boolean;
  ready: Promise<void>;
  /** Exited; a fresh slot replaces it (after the restart delay). */
  dead: boolean;
  /** Rejects when the worker exits: calls in flight then fail instead of waiting forever. */
  died: Promise<never>;
  die: (err: Error) => void;
}

/** Stands for a link already closed when a bounced record about it comes back. */
const closedLink: TerminalLink = closedLinkNamed('');

/** A closed link by its id: its vehicle still recognises its session by it. */
function closedLinkNamed(id: string): TerminalLink {
  return {
    id,
    node: '',
    send: () => undefined,
    close: () => undefined,
    authenticated: () => undefined,
  };
}

/** The vehicle's worker is being restarted: try again shortly (gRPC UNAVAILABLE). */
export class VehiclesUnavailable extends Error {}

/**
 * How long to wait before starting a dead worker again: at once for the first 3 deaths within a
 * minute, then doubling from 1 s up to 30 s, so a worker that keeps crashing (a poisoned state,
 * a broken database) does not spin.
 */
export function restartDelayMs(previous: readonly number[], now: number): number {
  const recent = previous.filter((t) => now - t < 60_000).length;
  if (recent < 3) return 0;
  return Math.min(30_000, 1000 * 2 ** (recent - 3));
}

export class WorkerVehicleHost implements VehicleHost {
  readonly bodies = 'raw';
  readonly restarts: number[] = [];
  private readonly slots: WorkerSlot[] = [];
  private readonly drainListeners = new Set<() => void>();
  private readonly maxInFlight: number;
  private readonly scheduler: Scheduler;
  private readonly wanted = new Set<VehicleEventKind>();
  private gateway: LinkDirectory | undefined;
  private closing = false;
  /** The last assignment, for a worker started again after it. */
  private epoch: { epoch: number; owned: readonly Uint8Array[] } | undefined;

  constructor(private readonly opts: WorkerHostOptions) {
    this.maxInFlight = opts.maxInFlight ?? 4096;
    this.scheduler = opts.scheduler ?? realScheduler;
    for (const k of opts.events) this.wanted.add(k);
    for (let i = 0; i < opts.workers; i++) this.slots.push(this.spawn(i));
  }

  /** The index of the worker thread that owns the vehicle. */
  workerOf(vehicleId: string): number {
    return this.opts.workerOf(vehicleId);
  }

  /** The worker threads, by index (for inspection and fault tests). */
  get threads(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Workers connected to the database. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  /** The links the workers answer on: the gateway's, or the router's (which adds other nodes'). */
  attach(links: LinkDirectory): void {
    this.gateway = links;
  }

  async wantEvents(kinds: Iterable<VehicleEventKind>): Promise<void> {
    this.wanted.clear();
    for (const k of kinds) this.wanted.add(k);
    await Promise.all(this.live.map((s) => this.call(s, (a) => a.wantEvents([...this.wanted]))));
  }

  private spawn(index: number): WorkerSlot {
    const channel = new MessageChannel();
    const workerData: VehicleWorkerData = {
      ...this.opts.config,
      index,
      events: [...this.wanted],
      dataPort: channel.port2,
    };
    const worker = new Worker(
      this.opts.workerScript ?? new URL('./vehicleWorker.js', import.meta.url),
      {
        workerData,
        transferList: [channel.port2],
      },
    );
    const api = Comlink.wrap<VehicleWorkerApi>(nodeEndpoint(worker));
    let die: (err: Error) => void = () => undefined;
    const died = new Promise<never>((_, reject) => (die = reject));
    died.catch(() => undefined); // only calls racing it observe it
    const slot: WorkerSlot = {
      index,
      worker,
      api,
      data: channel.port1,
      out: new FrameBatchBuilder(),
      named: new Set(),
      inFlight: 0,
      storageFull: false,
      flushScheduled: false,
      ready: Promise.resolve(),
      dead: false,
      died,
      die,
    };
    slot.ready = this.call(slot, async (a) => {
      await a.ready();
      // A restarted worker owns what its predecessor owned, under the same epoch.
      const last = this.epoch;
      if (last) await a.assign(last.epoch, last.owned[index] ?? null);
    });
    // Awaited by ready() at start; a restarted worker's is nobody's to await.
    slot.ready.catch(() => undefined);
    channel.port1.on('message', (m: WorkerOutbound) => this.fromWorker(slot, m));
    worker.on('error', (err) => this.opts.log?.(`vehicle worker ${index} failed: ${String(err)}`));
    worker.on('exit', (code) => this.exited(slot, code));
    return slot;
  }

  private exited(slot: WorkerSlot, code: number): void {
    slot.dead = true;
    slot.data.close();
    slot.die(
      new VehiclesUnavailable(
        this.closing
          ? `the node stopped before vehicle worker ${slot.index} answered`
          : `vehicle worker ${slot.index} exited while answering`,
      ),
    );
    if (this.closing) return;
    const now = this.scheduler.now();
    const delay = restartDelayMs(this.restarts, now);
    this.restarts.push(now);
    if (this.restarts.length > 100) this.restarts.splice(0, this.restarts.length - 100);
    this.opts.log?.(
      `vehicle worker ${slot.index} exited (${code}); starting it again in ${delay} ms`,
    );
    // Its actors are gone: their terminals reconnect and authenticate on the fresh worker.
    // Until it runs, the dead slot takes no frames (its credit is spent), so sockets pause.
    slot.inFlight = this.maxInFlight;
    this.gateway?.closeWhere(
      (vehicleId) => this.workerOf(vehicleId) === slot.index,
      'vehicle worker restarted',
    );
    const restart = (): void => {
      if (this.closing) return;
      this.slots[slot.index] = this.spawn(slot.index);
      this.drained();
    };
    if (delay === 0) restart();
    else this.scheduler.setTimeout(restart, delay); // the real one is unref'd
  }

  deliver(vehicleId: string, d: GatewayDelivery): boolean {
    const slot = this.slots[this.workerOf(vehicleId)]!;
    if (d.kind === 'linkClosed') {
      // Never refused: a closed link must reach its vehicle (it is small and bounded by links).
      slot.out.linkClosed(d.linkNumber, d.at, d.reason, vehicleId, d.seq, d.link.id);
      slot.named.delete(d.linkNumber);
    } else if (slot.inFlight >= this.maxInFlight) {
      return false;
    } else {
      if (d.linkNumber >= PROXY_LINK_BASE && !slot.named.has(d.linkNumber)) {
        // Another node's terminal: the worker learns the link's cluster-wide name first.
        slot.out.linkName(d.linkNumber, d.link.id, d.link.node);
        slot.named.add(d.linkNumber);
      }
      if (d.kind === 'uplink')
        slot.out.uplink(d.linkNumber, d.receivedAt, d.header, d.edition, d.body, d.seq);
      else
        slot.out.platformMessage(
          d.linkNumber,
          d.edition,
          d.messageId,
          d.phone,
          vehicleId,
          d.body,
          d.seq,
        );
    }
    slot.inFlight++;
    if (!slot.flushScheduled) {
      slot.flushScheduled = true;
      setImmediate(() => this.flushTo(slot));
    }
    return true;
  }

  private flushTo(slot: WorkerSlot): void {
    slot.flushScheduled = false;
    if (slot.out.count === 0) return;
    const batch = slot.out.take();
    slot.data.postMessage(batch, [batch]);
  }

  private fromWorker(slot: WorkerSlot, m: WorkerOutbound): void {
    const gateway = this.gateway;
    if (gateway) {
      readFrameBatch(m.batch, (r) => {
        if (!applyToLink(r, (n: number) => gateway.linkByNumber(n))) this.bounced(gateway, r);
      });
    }
    const wasFull = slot.storageFull || slot.inFlight >= this.maxInFlight;
    slot.inFlight = Math.max(0, slot.inFlight - m.consumed);
    slot.storageFull = m.storageFull;
    for (const e of m.events) this.opts.onEvent(e);
    if (wasFull && !slot.storageFull) this.drained();
  }

  private bounced(links: LinkDirectory, r: BatchRecord): void {
    const link = links.linkByNumber(r.link);
    // A frame of a connection gone has nobody to answer; a closed link still reaches its vehicle.
    if (!link && r.kind !== LINK_CLOSED) return;
    const d = deliveryOf(
      r,
      link ?? (r.kind === LINK_CLOSED ? closedLinkNamed(r.linkId) : closedLink),
      r.link,
    );
    if (!d) return;
    const vehicleId =
      r.kind === UPLINK ? vehicleIdOf(r.header.phone) : 'vehicleId' in r ? r.vehicleId : '';
    this.opts.onBounce?.(vehicleId, d);
  }

  private drained(): void {
    if (this.storageFull()) return;
    for (const fn of this.drainListeners) fn();
  }

  storageFull(): boolean {
    return this.slots.some((s) => s.storageFull);
  }

  onDrain(fn: () => void): void {
    this.drainListeners.add(fn);
  }

  /** A call to the worker that fails with VehiclesUnavailable if the worker exits first. */
  private call<T>(
    slot: WorkerSlot,
    fn: (api: Comlink.Remote<VehicleWorkerApi>) => Promise<T>,
  ): Promise<T> {
    return Promise.race([fn(slot.api), slot.died]);
  }

  /** The live worker that owns the vehicle; an error while it is being restarted. */
  private slotOf(vehicleId: string): WorkerSlot {
    const slot = this.slots[this.workerOf(vehicleId)]!;
    if (slot.dead) throw new VehiclesUnavailable(`vehicle worker ${slot.index} is restarting`);
    return slot;
  }

  private get live(): WorkerSlot[] {
    return this.slots.filter((s) => !s.dead);
  }

  async command(vehicleId: string, id: string, message: Message): Promise<CommandEvent> {
    return this.call(this.slotOf(vehicleId), (a) => a.command(vehicleId, id, message));
  }

  async vehicle(vehicleId: string): Promise<VehicleView | undefined> {
    return this.call(this.slotOf(vehicleId), (a) => a.vehicle(vehicleId));
  }

  async confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator?: string,
  ): Promise<AlarmConfirmation> {
    return this.call(this.slotOf(vehicleId), (a) =>
      a.confirmAlarms(vehicleId, bits, commandId, operator),
    );
  }

  async online(): Promise<OnlineVehicle[]> {
    const lists = await Promise.all(this.live.map((s) => this.call(s, (a) => a.online())));
    return lists.flat();
  }

  async inArea(shape: AreaShape, filter: AreaNowFilter, limit: number): Promise<AreaNowAnswer> {
    const answers = await Promise.all(
      this.live.map((s) => this.call(s, (a) => a.inArea(shape, filter, limit))),
    );
    return mergeAreaAnswers(answers, limit);
  }

  memory(): Promise<ThreadMemory[]> {
    return Promise.all(this.live.map((s) => this.call(s, (a) => a.memory())));
  }

  stats(): Promise<ThreadStats[]> {
    return Promise.all(this.live.map((s) => this.call(s, (a) => a.stats())));
  }

  async flush(): Promise<void> {
    // Frames batched here but not posted yet go first.
    for (const s of this.slots) this.flushTo(s);
    await Promise.all(this.live.map((s) => this.call(s, (a) => a.flush())));
  }

  async assign(epoch: number, owned: readonly Uint8Array[]): Promise<number> {
    this.epoch = { epoch, owned };
    const left = await Promise.all(
      this.live.map((s) => this.call(s, (a) => a.assign(epoch, owned[s.index] ?? null))),
    );
    return left.reduce((a, b) => a + b, 0);
  }

  async passivateAll(): Promise<void> {
    await Promise.all(this.live.map((s) => this.call(s, (a) => a.passivateAll())));
  }

  async close(): Promise<void> {
    for (const s of this.slots) this.flushTo(s);
    this.closing = true;
    await Promise.all(
      this.live.map(async (s) => {
        try {
          await this.call(s, (a) => a.close());
        } catch (err) {
          // A worker that dies while closing has lost only what it never acknowledged.
          if (!(err instanceof VehiclesUnavailable)) throw err;
          this.opts.log?.(String(err.message));
        } finally {
          s.api[Comlink.releaseProxy]();
          await s.worker.terminate();
        }
      }),
    );
  }
}
