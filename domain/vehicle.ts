// What a vehicle is made of in this system, as data: its alarm records and its downlink
// commands. Types only, shared by the layers that produce them (actors/) and store them
// (storage/), so neither has to import the other's modules for them.
import type { Message } from '../jt808/messages.js';

export interface AlarmPoint {
  time: number;
  latitude: number;
  longitude: number;
  speed: number;
  direction: number;
  altitude: number;
  mileageKm?: number;
}

/** -1 not handled, 0 no action, 1 later, 2 handled (the seed's APS field). */
export type HandlingStatus = -1 | 0 | 1 | 2;

export interface AlarmRecord {
  /** `${vehicleId}:${bit}:${start time}`: the same alarm replayed gets the same id. */
  _id: string;
  vehicleId: string;
  /** The alarm bit; also the seed's alarm type code for the standard bits. */
  bit: number;
  typeCode: number;
  /** 1 = terminal (the seed's AS field). */
  source: 1;
  startTime: number;
  start: AlarmPoint;
  endTime: number | null;
  end: AlarmPoint | null;
  handlingStatus: HandlingStatus;
  /** Who handled it (the operator of the confirmation), once handled. */
  handledBy?: string;
  /** When it was handled (ms), once handled; stored as a Date. */
  handledAt?: number;
  /** Cleared by the terminal only after the platform confirms it. */
  needsConfirmation: boolean;
}

export type CommandState = 'queued' | 'sent' | 'answered' | 'failed' | 'timed-out' | 'refused';

export interface Command {
  id: string;
  message: Message;
  createdAt: number;
}

export interface CommandEvent {
  commandId: string;
  state: CommandState;
  at: number;
  attempt?: number;
  serial?: number;
  /** The reply message (0x0001 result, 0x0104 parameters, …) when answered. */
  reply?: Message;
  detail?: string;
}
