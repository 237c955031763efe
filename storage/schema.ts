// Collections and their indexes. Plain collections, compound indexes and ids we derive, so the
// same code runs on MongoDB and on FerretDB (no TTL, geo, time-series or change streams).
import { createHash } from 'node:crypto';
import type { Db } from 'mongodb';

/**
 * Every write an acknowledgement depends on (0x8001 after a report, 0x8800 after a photo, the
 * auth code handed out by 0x8100) waits for this: on a replica set the write survives a primary
 * failover (majority) and is on disk (journal), whatever the connection string's default is.
 */
export const DURABLE_WRITE_CONCERN = { w: 'majority', journal: true } as const;

export const COLLECTIONS = {
  /** Registry, auth code, last state and session of each vehicle; _id = terminal phone. */
  vehicles: 'vehicles',
  /**
   * One document per report; _id = `${vehicleId}:${gnss ms}:${digest of the report}`, so a
   * retransmission or a blind-area re-upload of a stored point collapses, while two different
   * reports in the same second are both kept.
   */
  positions: 'positions',
  /** Alarm records (the seed's alarm_his_infos): opened on a rising edge, closed on the falling one. */
  alarms: 'alarms',
  /** Online/offline events with node and reason (append-only). */
  sessions: 'sessions',
  /** Command events (append-only log: queued, sent, answered, timed out…). */
  commands: 'commands',
  /**
   * Driver identity reports (0x0702: IC card inserted/removed, driver, certificate; see
   * storage/driverRecords.ts); _id = `${vehicleId}:${card time}:${digest}`.
   */
  driverRecords: 'driverRecords',
  /**
   * Driving-behaviour episodes (the seed's driver_action_infos: overspeed, fatigue, harsh
   * acceleration/braking, long idling; see storage/drivingBehaviour.ts); _id =
   * `${vehicleId}:${type}:${start time}:${end time}`.
   */
  drivingBehaviour: 'drivingBehaviour',
} as const;

/** Creates the indexes; safe to call at every start (createIndex is idempotent). */
export async function ensureIndexes(db: Db): Promise<void> {
  await db
    .collection(COLLECTIONS.positions)
    .createIndex({ vehicleId: 1, time: 1 }, { name: 'vehicle_time' });
  // Past-window area queries: positions by coarse cell (storage/cellGrid.ts), then time.
  await db
    .collection(COLLECTIONS.positions)
    .createIndex({ cell: 1, time: 1 }, { name: 'cell_time' });
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
  await db
    .collection(COLLECTIONS.driverRecords)
    .createIndex({ vehicleId: 1, time: 1 }, { name: 'vehicle_time' });
  // A vehicle's episodes (ListDrivingBehaviour); the fleet's by type (the seed indexes AID).
  await db
    .collection(COLLECTIONS.drivingBehaviour)
    .createIndex({ vehicleId: 1, startTime: 1 }, { name: 'vehicle_start' });
  await db
    .collection(COLLECTIONS.drivingBehaviour)
    .createIndex({ type: 1, startTime: 1 }, { name: 'type_start' });
  // The fleet's episodes of every type per day (GetDrivingBehaviourStatistics without types).
  await db
    .collection(COLLECTIONS.drivingBehaviour)
    .createIndex({ startTime: 1 }, { name: 'start' });
  // A vehicle's media by when they were received (ListMedia): the files of the GridFS bucket
  // `media` (storage/mediaStore.ts MEDIA_BUCKET).
  await db
    .collection('media.files')
    .createIndex(
      { 'metadata.vehicleId': 1, 'metadata.receivedAt': 1 },
      { name: 'vehicle_received' },
    );
  // A vehicle's commands, newest first (ListCommands): only first entries carry createdAt.
  await db
    .collection(COLLECTIONS.commands)
    .createIndex({ vehicleId: 1, createdAt: 1 }, { name: 'vehicle_created' });
}

/**
 * A report's id: vehicle, GNSS time and a digest of everything the report says. The same report
 * sent again (same bytes, hence the same decoded values) gets the same id; a different report in
 * the same second (an alarm right after a periodic report) gets another.
 */
export function positionId(vehicleId: string, gnssTimeMs: number, report: object): string {
  // The decoded report is a deterministic function of its bytes (property order included, see
  // the location layout tests), so its JSON is a faithful fingerprint of the body.
  const digest = createHash('sha1').update(JSON.stringify(report)).digest('hex').slice(0, 16);
  return `${vehicleId}:${gnssTimeMs}:${digest}`;
}
