// Vehicle events as values: what crosses from a worker to the node's main thread (one array per
// batch) and what the gRPC event stream filters. `eventCallbacks` turns a sink into the
// VehicleEvents callbacks an actor calls; `dispatchEvent` turns a value back into a callback.
import type { CommandEvent } from './commandQueue.js';
import type { VehicleEvents } from './vehicleActor.js';
import type { LastState, PositionSource } from '../storage/vehicleStore.js';

export type VehicleEvent =
  | { kind: 'position'; vehicleId: string; state: LastState; source: PositionSource }
  | { kind: 'alarm'; vehicleId: string; change: 'opened' | 'closed'; bit: number; at: number }
  | { kind: 'online'; vehicleId: string; online: boolean; reason: string; at: number }
  | { kind: 'command'; vehicleId: string; event: CommandEvent }
  | { kind: 'ackLatency'; ms: number };

export type VehicleEventKind = VehicleEvent['kind'];
export const EVENT_KINDS: readonly VehicleEventKind[] = [
  'position',
  'alarm',
  'online',
  'command',
  'ackLatency',
];

/** Callbacks that push values into `sink`, only for the kinds in `wanted` (checked per call). */
export function eventCallbacks(
  sink: (e: VehicleEvent) => void,
  wanted: ReadonlySet<VehicleEventKind>,
): VehicleEvents {
  return {
    position: (vehicleId, state, source) => {
      if (wanted.has('position')) sink({ kind: 'position', vehicleId, state, source });
    },
    alarm: (vehicleId, change, bit, at) => {
      if (wanted.has('alarm')) sink({ kind: 'alarm', vehicleId, change, bit, at });
    },
    online: (vehicleId, online, reason) => {
      if (wanted.has('online')) sink({ kind: 'online', vehicleId, online, reason, at: Date.now() });
    },
    command: (vehicleId, event) => {
      if (wanted.has('command')) sink({ kind: 'command', vehicleId, event });
    },
    ackLatency: (ms) => {
      if (wanted.has('ackLatency')) sink({ kind: 'ackLatency', ms });
    },
  };
}

/** The kinds a set of callbacks listens to. */
export function kindsOf(events: VehicleEvents | undefined): VehicleEventKind[] {
  return events ? EVENT_KINDS.filter((k) => events[k] !== undefined) : [];
}

export function dispatchEvent(e: VehicleEvent, to: VehicleEvents): void {
  switch (e.kind) {
    case 'position':
      return to.position?.(e.vehicleId, e.state, e.source);
    case 'alarm':
      return to.alarm?.(e.vehicleId, e.change, e.bit, e.at);
    case 'online':
      return to.online?.(e.vehicleId, e.online, e.reason);
    case 'command':
      return to.command?.(e.vehicleId, e.event);
    case 'ackLatency':
      return to.ackLatency?.(e.ms);
  }
}
