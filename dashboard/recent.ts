// What the dashboard remembers of the event stream, because the public gRPC API has no query
// for it: each vehicle's recent track (the positions it reported while the dashboard was
// running) and its recent commands. Both are bounded twice: per vehicle (points or entries) and
// in vehicles (the least recently updated one is forgotten first).
import type { CommandStatus, Position } from './vehicleClient.js';

/** A Map that keeps at most `max` keys, forgetting the least recently touched. */
class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /** The value for `key`, made the most recent (created by `make` when missing). */
  touch(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v !== undefined) this.map.delete(key);
    else v = make();
    this.map.set(key, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
    return v;
  }

  get size(): number {
    return this.map.size;
  }
}

export interface TrackPoint {
  /** GNSS time, Unix ms. */
  t: number;
  lat: number;
  lon: number;
  speed: number;
}

export interface TrackLimits {
  /** Points kept per vehicle (default 2 000: over 5 h at one report per 10 s). */
  maxPoints: number;
  /** Points older than this before the vehicle's newest are dropped (default 6 h). */
  spanMs: number;
  /** Vehicles whose tracks are kept (default 5 000). */
  maxVehicles: number;
}

export class RecentTracks {
  private readonly tracks: BoundedMap<TrackPoint[]>;
  readonly limits: TrackLimits;

  constructor(limits: Partial<TrackLimits> = {}) {
    this.limits = { maxPoints: 2000, spanMs: 6 * 3600_000, maxVehicles: 5000, ...limits };
    this.tracks = new BoundedMap(this.limits.maxVehicles);
  }

  add(vehicleId: string, p: Position): void {
    const track = this.tracks.touch(vehicleId, () => []);
    const point = { t: p.timeUnixMs, lat: p.latitude, lon: p.longitude, speed: p.speedKmh };
    // Blind-area re-uploads arrive late: keep the track in time order, one point per time.
    let i = track.length;
    while (i > 0 && (track[i - 1] as TrackPoint).t > point.t) i--;
    if (i > 0 && (track[i - 1] as TrackPoint).t === point.t) track[i - 1] = point;
    else track.splice(i, 0, point);
    const newest = (track[track.length - 1] as TrackPoint).t;
    let drop = 0;
    while (drop < track.length && (track[drop] as TrackPoint).t < newest - this.limits.spanMs)
      drop++;
    drop = Math.max(drop, track.length - this.limits.maxPoints);
    if (drop > 0) track.splice(0, drop);
  }

  /** The vehicle's points since `sinceMs` (GNSS time), oldest first. */
  track(vehicleId: string, sinceMs = 0): TrackPoint[] {
    return (this.tracks.get(vehicleId) ?? []).filter((p) => p.t >= sinceMs);
  }

  get vehicles(): number {
    return this.tracks.size;
  }
}

/**
 * What a command is when the dashboard did not send it itself (another gRPC client did): its
 * kind and message id as the command log names them ('TakePhoto 0x8801'), '' when unknown.
 */
export function commandWhat(s: Pick<CommandStatus, 'kind' | 'messageId'> | null): string {
  if (!s) return '';
  const id = s.messageId ? `0x${s.messageId.toString(16).padStart(4, '0')}` : '';
  return [s.kind ?? '', id].filter((x) => x !== '').join(' ');
}

export interface CommandEntry {
  commandId: string;
  /**
   * What was sent ('text: …', 'location query') when the dashboard sent it; else the command's
   * kind and message id (commandWhat).
   */
  what: string;
  sentUnixMs: number;
  status: CommandStatus | null;
}

export class RecentCommands {
  private readonly log: BoundedMap<CommandEntry[]>;

  constructor(
    private readonly perVehicle = 50,
    maxVehicles = 5000,
  ) {
    this.log = new BoundedMap(maxVehicles);
  }

  /** A command the dashboard sent (or learnt of): newest first, at most `perVehicle`. */
  sent(vehicleId: string, entry: CommandEntry): void {
    const entries = this.log.touch(vehicleId, () => []);
    const at = entries.findIndex((e) => e.commandId === entry.commandId);
    if (at >= 0) entries[at] = { ...(entries[at] as CommandEntry), ...entry };
    else entries.unshift(entry);
    if (entries.length > this.perVehicle) entries.length = this.perVehicle;
  }

  /** A status change from the event stream (any client's command). */
  status(s: CommandStatus): void {
    const entries = this.log.touch(s.vehicleId, () => []);
    const e = entries.find((x) => x.commandId === s.commandId);
    if (e) e.status = s;
    else
      this.sent(s.vehicleId, {
        commandId: s.commandId,
        what: commandWhat(s),
        sentUnixMs: s.updatedUnixMs,
        status: s,
      });
  }

  of(vehicleId: string): CommandEntry[] {
    return this.log.get(vehicleId) ?? [];
  }
}
