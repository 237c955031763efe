// What a vehicle actor reads and writes: its record (registry, auth code, edition, last state,
// open alarms), its positions, alarm records and session events. Every write goes through a
// BatchWriter, so a report's promise settles when the database has it.
import { Binary, type Db, type Document } from 'mongodb';
import type { OpenBehaviour } from '../domain/drivingBehaviour.js';
import type { AlarmRecord, Command, CommandEvent } from '../domain/vehicle.js';
import type { Edition } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import { messageIdOf, type Register } from '../jt808/messages.js';
import { BatchWriter, type BatchWriterOptions, type WriteOutcome } from './batchWriter.js';
import { MediaStore } from './mediaStore.js';
import { cellKey } from './cellGrid.js';
import { COLLECTIONS, DURABLE_WRITE_CONCERN, positionId } from './schema.js';
import type { RecordChange } from './recordChanges.js';
import { VehicleLoader, type VehicleLoaderOptions } from './vehicleLoader.js';

export interface LastState {
  time: number;
  receivedAt: number;
  latitude: number;
  longitude: number;
  altitude: number;
  speed: number;
  direction: number;
  alarm: number;
  status: number;
  mileageKm?: number;
  fuelL?: number;
  satellites?: number;
  signal?: number;
}

/** The terminal's 0x0100 registration as stored, with when it registered (a Date, like every stored time). */
export type Registration = Register & { registeredAt: Date };

export interface VehicleRecord {
  _id: string;
  authCode?: string;
  edition?: Edition;
  registration?: Registration;
  lastState?: LastState;
  online?: boolean;
  lastSeen?: number;
  node?: string;
  openAlarms?: AlarmRecord[];
  /**
   * Driving-behaviour episodes not ended yet (actors/drivingBehaviour.ts), so they go on after a
   * passivation or a handoff; absent when none is open.
   */
  openBehaviours?: OpenBehaviour[];
  /** Downlink commands not answered yet, in order (they survive passivation and restarts). */
  pendingCommands?: Command[];
  /** The terminal's phone as its headers carry it (12 or 20 digits), for downlink frames. */
  phone?: string;
  /** Serial of the last frame taken from the terminal. */
  lastUplinkSerial?: number;
  /**
   * The cluster-wide id of the link the terminal authenticated on, while online: a new owner
   * after a handoff resumes the session on that link instead of refusing its frames.
   */
  linkId?: string;
  /** The number of the last frame of that connection the vehicle took (actors/linkOrder.ts). */
  linkSeq?: number;
}

export type PositionSource = 'live' | 'batch' | 'blind-area' | 'query-reply';

export interface SessionEvent {
  vehicleId: string;
  event: 'online' | 'offline';
  node: string;
  reason: string;
  at: number;
}

/** Readable field names for the seed's gps_his_infos; unknown items kept as binary. */
export function positionDocument(
  vehicleId: string,
  loc: LocationReport,
  source: PositionSource,
  receivedAt: number,
  serial: number,
): Document {
  const time = loc.time ?? receivedAt;
  const doc: Document = {
    _id:
      loc.time !== null
        ? positionId(vehicleId, time, loc)
        : `${vehicleId}:r${receivedAt}:${serial}`,
    vehicleId,
    time: new Date(time),
    receivedAt: new Date(receivedAt),
    source,
    latitude: loc.latitude,
    longitude: loc.longitude,
    // Coarse spatial cell for past-window area queries (no geo index on FerretDB).
    cell: cellKey(loc.latitude, loc.longitude),
    altitude: loc.altitude,
    speed: loc.speed,
    direction: loc.direction,
    alarm: loc.alarm,
    status: loc.status,
  };
  if (loc.time === null) {
    doc.timeInvalid = true;
    doc.timeBcd = loc.timeBcd;
  }
  for (const k of [
    'mileageKm',
    'fuelL',
    'recorderSpeedKmh',
    'alarmEventId',
    'tyrePressure',
    'compartmentTemperatureC',
    'overspeed',
    'areaAlarm',
    'routeTime',
    'vehicleSignal',
    'ioStatus',
    'analog',
    'signal',
    'satellites',
  ] as const) {
    if (loc[k] !== undefined) doc[k] = loc[k];
  }
  if (loc.extraItems)
    doc.extraItems = loc.extraItems.map((i) => ({ id: i.id, raw: new Binary(Buffer.from(i.raw)) }));
  return doc;
}

/** A stored value with every BSON Binary turned back into a Uint8Array. */
export function binaryToBytes<T>(v: T): T {
  if (v instanceof Binary) return new Uint8Array(v.buffer) as T;
  if (v instanceof Uint8Array || v instanceof Date || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(binaryToBytes) as T;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = binaryToBytes(x);
  return out as T;
}

export interface VehicleStoreOptions {
  writer?: BatchWriterOptions;
  loader?: VehicleLoaderOptions;
}

export class VehicleStore {
  readonly media: MediaStore;
  readonly positions: BatchWriter;
  readonly vehicles: BatchWriter;
  readonly alarms: BatchWriter;
  readonly sessions: BatchWriter;
  readonly commands: BatchWriter;
  /** Driver identity reports (0x0702), inserts with ids of their own (storage/driverRecords.ts). */
  readonly driverRecords: BatchWriter;
  /** Driving-behaviour episodes, inserts with ids of their own (storage/drivingBehaviour.ts). */
  readonly drivingBehaviour: BatchWriter;
  /** Activation reads, batched by `$in` and capped in concurrency. */
  readonly loader: VehicleLoader<VehicleRecord>;

  constructor(db: Db, options: VehicleStoreOptions = {}) {
    const w: BatchWriterOptions = options.writer ?? {};
    const durable = { writeConcern: DURABLE_WRITE_CONCERN };
    // Positions are inserts with their own ids: two bulk writes at once keep the store busy
    // while the next batch fills (their order does not matter).
    this.positions = new BatchWriter(db.collection(COLLECTIONS.positions, durable), {
      ...w,
      maxConcurrent: w.maxConcurrent ?? 2,
    });
    // Updates: one bulk write at a time, whatever the shared options say (their order matters).
    const inOrder = { ...w, maxConcurrent: 1 };
    this.vehicles = new BatchWriter(db.collection(COLLECTIONS.vehicles, durable), inOrder);
    this.alarms = new BatchWriter(db.collection(COLLECTIONS.alarms, durable), inOrder);
    this.sessions = new BatchWriter(db.collection(COLLECTIONS.sessions, durable), w);
    this.commands = new BatchWriter(db.collection(COLLECTIONS.commands, durable), w);
    this.driverRecords = new BatchWriter(db.collection(COLLECTIONS.driverRecords, durable), w);
    this.drivingBehaviour = new BatchWriter(
      db.collection(COLLECTIONS.drivingBehaviour, durable),
      w,
    );
    this.media = new MediaStore(db);
    const vehicles = db.collection<VehicleRecord>(COLLECTIONS.vehicles);
    this.loader = new VehicleLoader(async (ids) => {
      const records = (await vehicles.find({ _id: { $in: ids } }).toArray()) as VehicleRecord[];
      // Byte fields of queued commands (raw parameters, raw bodies) come back as BSON Binary.
      for (const r of records) {
        if (r.pendingCommands) r.pendingCommands = binaryToBytes(r.pendingCommands);
      }
      return records;
    }, options.loader);
  }

  private get writers(): BatchWriter[] {
    return [
      this.positions,
      this.vehicles,
      this.alarms,
      this.sessions,
      this.commands,
      this.driverRecords,
      this.drivingBehaviour,
    ];
  }

  /** A vehicle's stored record (null when it has none), read with the others asked for now. */
  load(vehicleId: string): Promise<VehicleRecord | null> {
    return this.loader.load(vehicleId);
  }

  /**
   * Writes the fields of a vehicle's record that changed (merged with others still buffered).
   * With `ownerEpoch` the write is fenced: refused (StaleOwner) when a newer owner has written.
   */
  saveChanges(vehicleId: string, change: RecordChange, ownerEpoch?: number): Promise<WriteOutcome> {
    return this.vehicles.setFields(vehicleId, change.set, change.unset, ownerEpoch);
  }

  insertPosition(doc: Document): Promise<WriteOutcome> {
    return this.positions.insert(doc);
  }

  /** With `epoch`, fenced: refused (StaleOwner) where a newer owner wrote the record. */
  saveAlarm(record: AlarmRecord, epoch?: number): Promise<WriteOutcome> {
    return this.alarms.replace(
      {
        ...record,
        startTime: new Date(record.startTime),
        endTime: record.endTime === null ? null : new Date(record.endTime),
        ...(record.handledAt !== undefined ? { handledAt: new Date(record.handledAt) } : {}),
      },
      epoch,
    );
  }

  /** A 0x0702 as storage/driverRecords.ts driverRecordDocument builds it. */
  saveDriverRecord(doc: Document): Promise<WriteOutcome> {
    return this.driverRecords.insert(doc);
  }

  /** An ended driving-behaviour episode as storage/drivingBehaviour.ts behaviourDocument builds it. */
  saveBehaviour(doc: Document): Promise<WriteOutcome> {
    return this.drivingBehaviour.insert(doc);
  }

  logSession(e: SessionEvent): Promise<WriteOutcome> {
    return this.sessions.insert({ ...e, at: new Date(e.at) });
  }

  /**
   * Append-only command log: queued, sent, answered, failed, timed out. With `command` (its
   * first event: queued or refused) the entry also names what it is: `kind` (the message type),
   * `messageId` and `createdAt` (storage/commandHistory.ts lists commands by these entries).
   */
  logCommand(vehicleId: string, e: CommandEvent, command?: Command): Promise<WriteOutcome> {
    const doc: Document = { vehicleId, commandId: e.commandId, state: e.state, at: new Date(e.at) };
    if (command !== undefined) {
      doc.kind = command.message.type;
      doc.messageId = messageIdOf(command.message);
      doc.createdAt = new Date(command.createdAt);
    }
    if (e.attempt !== undefined) doc.attempt = e.attempt;
    if (e.serial !== undefined) doc.serial = e.serial;
    if (e.detail !== undefined) doc.detail = e.detail;
    if (e.reply !== undefined) {
      doc.reply = e.reply.type;
      if (e.reply.type === 'TerminalResponse') doc.result = e.reply.body.result;
    }
    return this.commands.insert(doc);
  }

  /** Resolves when everything buffered so far is in the database. */
  async flush(): Promise<void> {
    await Promise.all(
      this.writers.map(async (w) => {
        while (w.buffered > 0) await w.flush();
      }),
    );
  }

  /** True while any writer is over its buffer limit: the gateway stops reading. */
  get full(): boolean {
    return this.writers.some((w) => w.full);
  }

  onDrain(fn: () => void): void {
    for (const w of this.writers) w.onDrain(fn);
  }

  async close(): Promise<void> {
    await Promise.all(this.writers.map((w) => w.close()));
  }
}
