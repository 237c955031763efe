// Driving behaviour of one vehicle (the seed's driver_action_infos): episodes of overspeed,
// fatigue, harsh acceleration, harsh braking and long idling, each with its start and end point.
// Pure and I/O-free: the VehicleActor feeds it the vehicle's location reports in GNSS-time order
// (the same reports that move its last state and its alarm machine: none older than the last
// one) and stores the episodes it returns once they end. Bounded: at most one open episode per
// type, and none lasts more than `maxOpenMs` (closed at its last point).
//
// Types (the AID of driver_action_infos; codes are the seed's alarm codes of the same events):
// see BEHAVIOUR_TYPES (domain/drivingBehaviour.ts) and docs/history.md.
import type { AlarmPoint } from '../domain/vehicle.js';
import {
  BEHAVIOUR_TYPES,
  DETECTED_TYPES,
  type BehaviourCode,
  type BehaviourEpisode,
  type OpenBehaviour,
} from '../domain/drivingBehaviour.js';

export interface BehaviourThresholds {
  /** Overspeed also when speed > this (km/h); 0: only the terminal's alarm bit 1. */
  overspeedKmh: number;
  /** Harsh acceleration / braking: |Δspeed| / Δt at least this (km/h per second). */
  harshKmhPerS: number;
  /** Two reports further apart than this (ms) are not compared for harsh changes. */
  maxPairGapMs: number;
  /** Idling is long when it lasted more than this (ms), first idle report to last. */
  idleMs: number;
  /** An episode open this long (ms), or with no report for this long, closes at its last point. */
  maxOpenMs: number;
}

export const DEFAULT_THRESHOLDS: BehaviourThresholds = {
  overspeedKmh: 0,
  harshKmhPerS: 11,
  maxPairGapMs: 3000,
  idleMs: 10 * 60_000,
  maxOpenMs: 24 * 3_600_000,
};

/** What the detector reads of a report (speed km/h, alarm and status words as on the wire). */
export interface BehaviourPoint extends AlarmPoint {
  alarm: number;
  status: number;
}

const OVERSPEED_BIT = 1 << 1;
const FATIGUE_BIT = 1 << 2;
const ACC_ON = 1 << 0;

/** A point as stored (no alarm/status words). */
function pointOf(p: BehaviourPoint): AlarmPoint {
  const out: AlarmPoint = {
    time: p.time,
    latitude: p.latitude,
    longitude: p.longitude,
    speed: p.speed,
    direction: p.direction,
    altitude: p.altitude,
  };
  if (p.mileageKm !== undefined) out.mileageKm = p.mileageKm;
  return out;
}

/** Speed in whole 0.1 km/h, as the wire carries it (comparisons stay exact). */
const tenths = (kmh: number): number => Math.round(kmh * 10);

/** Harsh change between two reports: +1 acceleration, -1 braking, 0 neither or not comparable. */
export function harshChange(a: BehaviourPoint, b: BehaviourPoint, t: BehaviourThresholds): number {
  const dt = b.time - a.time;
  if (dt <= 0 || dt > t.maxPairGapMs) return 0;
  // Δv [0.1 km/h] * 1000 / dt [ms] ≥ threshold [0.1 km/h per s], in integers.
  const dv = tenths(b.speed) - tenths(a.speed);
  const limit = tenths(t.harshKmhPerS) * dt;
  if (dv * 1000 >= limit) return 1;
  if (-dv * 1000 >= limit) return -1;
  return 0;
}

/** The state conditions of one report. */
export function stateConditions(p: BehaviourPoint, t: BehaviourThresholds): Set<BehaviourCode> {
  const s = new Set<BehaviourCode>();
  if ((p.alarm & OVERSPEED_BIT) !== 0 || (t.overspeedKmh > 0 && p.speed > t.overspeedKmh))
    s.add(BEHAVIOUR_TYPES.overspeed);
  if ((p.alarm & FATIGUE_BIT) !== 0) s.add(BEHAVIOUR_TYPES.fatigue);
  if (tenths(p.speed) === 0 && (p.status & ACC_ON) !== 0) s.add(BEHAVIOUR_TYPES.longIdling);
  return s;
}

export class DrivingBehaviour {
  private readonly open = new Map<BehaviourCode, AlarmPoint>();
  /** The last report fed: every open episode's last point. */
  private prev: BehaviourPoint | undefined;

  /**
   * `last`: the last report the vehicle took (its stored last state), `open`: the episodes its
   * record kept open (a passivation, a handoff).
   */
  constructor(
    private readonly t: BehaviourThresholds = DEFAULT_THRESHOLDS,
    last?: BehaviourPoint,
    open: readonly OpenBehaviour[] = [],
  ) {
    this.prev = last;
    for (const o of open) {
      if (!DETECTED_TYPES.includes(o.type)) continue;
      // A harsh change is a pair of reports: without the last one it cannot go on.
      const pair =
        o.type === BEHAVIOUR_TYPES.harshAcceleration || o.type === BEHAVIOUR_TYPES.harshBraking;
      if (pair && last === undefined) continue;
      this.open.set(o.type, o.start);
    }
  }

  /** The episodes open now, in type order (what the vehicle's record keeps). */
  get openEpisodes(): OpenBehaviour[] {
    return [...this.open.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([type, start]) => ({ type, start }));
  }

  /** Feeds one report; returns the episodes it ended. A report older than the last is ignored. */
  apply(p: BehaviourPoint): BehaviourEpisode[] {
    const prev = this.prev;
    if (prev !== undefined && p.time < prev.time) return [];
    const ended: BehaviourEpisode[] = [];
    const here = pointOf(p);
    // Too old, or no report for too long: closed at its last point before this one is judged.
    if (prev !== undefined)
      for (const [type, start] of this.open) {
        if (p.time - start.time > this.t.maxOpenMs || p.time - prev.time > this.t.maxOpenMs) {
          this.open.delete(type);
          this.close(ended, type, start, pointOf(prev));
        }
      }
    // A report of the same time as the last (a retransmission, two reports in one second) says
    // nothing about a change of speed: only the state conditions are judged.
    const sameTime = prev !== undefined && p.time === prev.time;
    const states = stateConditions(p, this.t);
    for (const type of [
      BEHAVIOUR_TYPES.overspeed,
      BEHAVIOUR_TYPES.fatigue,
      BEHAVIOUR_TYPES.longIdling,
    ]) {
      const start = this.open.get(type);
      if (states.has(type)) {
        if (start === undefined) this.open.set(type, here);
      } else if (start !== undefined) {
        // Ended by this report (as an alarm record's falling edge): it is the end point.
        this.open.delete(type);
        this.close(ended, type, start, here);
      }
    }
    if (!sameTime && prev !== undefined) {
      const change = harshChange(prev, p, this.t);
      for (const [type, sign] of [
        [BEHAVIOUR_TYPES.harshAcceleration, 1],
        [BEHAVIOUR_TYPES.harshBraking, -1],
      ] as const) {
        const start = this.open.get(type);
        if (change === sign) {
          if (start === undefined) this.open.set(type, pointOf(prev));
        } else if (start !== undefined) {
          // The last qualifying pair ended at the previous report.
          this.open.delete(type);
          this.close(ended, type, start, pointOf(prev));
        }
      }
    }
    this.prev = p;
    return ended.sort((a, b) => a.start.time - b.start.time || a.type - b.type);
  }

  private close(
    out: BehaviourEpisode[],
    type: BehaviourCode,
    start: AlarmPoint,
    end: AlarmPoint,
  ): void {
    // Idling counts only when it lasted long enough (first idle report to the last).
    if (type === BEHAVIOUR_TYPES.longIdling) {
      const lastIdle = this.prev?.time ?? start.time;
      if (lastIdle - start.time <= this.t.idleMs) return;
    }
    out.push({ type, start, end });
  }
}
