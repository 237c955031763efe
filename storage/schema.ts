// Collections and their indexes. Plain collections, compound indexes and ids we derive, so the
// same code runs on MongoDB and on FerretDB (no TTL, geo, time-series or change streams).
import type { Db } from 'mongodb';

export const COLLECTIONS = {
  /** Registry, auth code, last state and session of each vehicle; _id = terminal phone. */
  vehicles: 'vehicles',
  /** One document per GNSS point; _id = `${vehicleId}:${gnss ms}` so retransmissions and re-uploads never duplicate. */
  positions: 'positions',
  /** Alarm records (the seed's alarm_his_infos): opened on a rising edge, closed on the falling one. */
  alarms: 'alarms',
  /** Online/offline events with node and reason (append-only). */
  sessions: 'sessions',
  /** Command events (append-only log: queued, sent, answered, timed out…). */
  commands: 'commands',
} as const;

/** Creates the indexes; safe to call at every start (createIndex is idempotent). */
export async function ensureIndexes(db: Db): Promise<void> {
  await db
    .collection(COLLECTIONS.positions)
    .createIndex({ vehicleId: 1, time: 1 }, { name: 'vehicle_time' });
  await db
    .collection(COLLECTIONS.alarms)
    .createIndex({ vehicleId: 1, startTime: 1 }, { name: 'vehicle_start' });
  await db
    .collection(COLLECTIONS.alarms)
    .createIndex({ handlingStatus: 1, startTime: 1 }, { name: 'handling_start' });
  await db
    .collection(COLLECTIONS.sessions)
    .createIndex({ vehicleId: 1, at: 1 }, { name: 'vehicle_at' });
  await db
    .collection(COLLECTIONS.commands)
    .createIndex({ commandId: 1, at: 1 }, { name: 'command_at' });
  await db
    .collection(COLLECTIONS.commands)
    .createIndex({ vehicleId: 1, at: 1 }, { name: 'vehicle_at' });
}

export function positionId(vehicleId: string, gnssTimeMs: number): string {
  return `${vehicleId}:${gnssTimeMs}`;
}
