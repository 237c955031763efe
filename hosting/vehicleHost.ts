// Where a node's vehicles live, as the gateway and the services see it: on the main thread
// (`LocalVehicleHost`, for embedding and small tests) or spread over worker threads
// (`WorkerVehicleHost`, the default); `ClusterRouter` (cluster/router.ts) puts other nodes' vehicles
// behind the same interface.
import type { Db } from 'mongodb';
import type { CommandEvent } from '../actors/commandQueue.js';
import type { AlarmConfirmation, VehicleView } from '../actors/vehicleActor.js';
import {
  eventCallbacks,
  type VehicleEvent,
  type VehicleEventKind,
} from '../actors/vehicleEvents.js';
import type { Message } from '../jt808/messages.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import type { AreaNowFilter, AreaShape } from '../storage/historyShapes.js';
import {
  VehicleThread,
  type AreaNowAnswer,
  type OnlineVehicle,
  type ThreadOptions,
  type ThreadStats,
} from './vehicleThread.js';

export interface ThreadMemory {
  heapUsed: number;
  external: number;
}

/** This thread's heap (its own isolate in a worker) after a GC when --expose-gc is on. */
export function threadMemory(): ThreadMemory {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external };
}

export interface VehicleHost {
  /** False when the vehicle's side cannot take it now: the gateway keeps it and pauses the socket. */
  deliver(vehicleId: string, d: GatewayDelivery): boolean;
  /** Bodies the gateway should decode itself ('decode') or pass on as bytes ('raw'). */
  readonly bodies: 'decode' | 'raw';
  /** True while the database cannot keep up: every socket stops reading. */
  storageFull(): boolean;
  /** Called when storage has room again. */
  onDrain(fn: () => void): void;
  command(vehicleId: string, id: string, message: Message): Promise<CommandEvent>;
  vehicle(vehicleId: string): Promise<VehicleView | undefined>;
  /** `operator`: who handled them (the records' handledBy; default 'api'). */
  confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator?: string,
  ): Promise<AlarmConfirmation>;
  online(): Promise<OnlineVehicle[]>;
  /** Vehicles whose last position is in the area now (every thread asked; at most `limit`). */
  inArea(shape: AreaShape, filter: AreaNowFilter, limit: number): Promise<AreaNowAnswer>;
  /** One entry per thread that holds vehicles. */
  stats(): Promise<ThreadStats[]>;
  /** Every turn done and every buffered write in the database. */
  flush(): Promise<void>;
  /** Every actor saved and dropped from memory. */
  passivateAll(): Promise<void>;
  /** Heap and external memory of each thread holding vehicles, after a GC when exposed. */
  memory(): Promise<ThreadMemory[]>;
  /** The event kinds to produce from now on (others cost nothing). */
  wantEvents(kinds: Iterable<VehicleEventKind>): Promise<void>;
  /**
   * A new placement over the cluster (cluster/router.ts): `owned[i]` has one bit per shard that
   * thread i owns. The vehicles no longer owned save their state and leave memory before this
   * resolves; later activations write under `epoch`. Resolves with how many left.
   */
  assign(epoch: number, owned: readonly Uint8Array[]): Promise<number>;
  close(): Promise<void>;
}

export class LocalVehicleHost implements VehicleHost {
  readonly bodies = 'decode';
  readonly vehicles: VehicleThread;

  private readonly wanted: Set<VehicleEventKind>;

  /** `events`: the kinds wanted from the start; `onEvent` gets them (see `wantEvents`). */
  constructor(
    db: Db,
    opts: Omit<ThreadOptions, 'events'>,
    events: { kinds: VehicleEventKind[]; onEvent: (e: VehicleEvent) => void },
  ) {
    this.wanted = new Set(events.kinds);
    this.vehicles = new VehicleThread(db, {
      ...opts,
      events: eventCallbacks(events.onEvent, this.wanted),
    });
  }

  async memory(): Promise<ThreadMemory[]> {
    return [threadMemory()];
  }

  async wantEvents(kinds: Iterable<VehicleEventKind>): Promise<void> {
    this.wanted.clear();
    for (const k of kinds) this.wanted.add(k);
  }

  assign(epoch: number, owned: readonly Uint8Array[]): Promise<number> {
    return this.vehicles.assign(epoch, owned[0] ?? null);
  }

  deliver(vehicleId: string, d: GatewayDelivery): boolean {
    if (d.kind === 'linkClosed')
      return this.vehicles.linkClosed(vehicleId, d.link.id, d.reason, d.at, d.seq);
    if (d.kind === 'platformMessage') {
      return this.vehicles.platformMessage(
        vehicleId,
        d.link,
        d.messageId,
        d.body,
        d.phone,
        d.edition,
        d.seq,
      );
    }
    if (d.message === null) {
      return this.vehicles.uplinkBody(
        vehicleId,
        d.link,
        d.header,
        d.edition,
        d.body,
        d.receivedAt,
        d.seq,
      );
    }
    return this.vehicles.uplink(
      vehicleId,
      d.link,
      d.header,
      d.edition,
      d.message,
      d.receivedAt,
      d.seq,
    );
  }

  storageFull(): boolean {
    return this.vehicles.store.full;
  }

  onDrain(fn: () => void): void {
    this.vehicles.store.onDrain(fn);
  }

  command(vehicleId: string, id: string, message: Message): Promise<CommandEvent> {
    return this.vehicles.command(vehicleId, id, message);
  }

  vehicle(vehicleId: string): Promise<VehicleView | undefined> {
    return this.vehicles.vehicle(vehicleId);
  }

  confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator?: string,
  ): Promise<AlarmConfirmation> {
    return this.vehicles.confirmAlarms(vehicleId, bits, commandId, operator);
  }

  async online(): Promise<OnlineVehicle[]> {
    return this.vehicles.online();
  }

  async inArea(shape: AreaShape, filter: AreaNowFilter, limit: number): Promise<AreaNowAnswer> {
    return this.vehicles.inArea(shape, filter, limit);
  }

  async stats(): Promise<ThreadStats[]> {
    return [this.vehicles.stats()];
  }

  flush(): Promise<void> {
    return this.vehicles.flush();
  }

  passivateAll(): Promise<void> {
    return this.vehicles.passivateAll();
  }

  close(): Promise<void> {
    return this.vehicles.close();
  }
}
