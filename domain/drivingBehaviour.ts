// Driving-behaviour types and episodes (the seed's driver_action_infos), shared by the vehicle's
// detector (actors/drivingBehaviour.ts) and the store that keeps and reads them
// (storage/drivingBehaviour.ts). Types only, and the AID table.
import type { AlarmPoint } from './vehicle.js';

/** The AID table: behaviour type → code. One place; docs/history.md copies it. */
export const BEHAVIOUR_TYPES = {
  /** 超速: alarm bit 1 set, or speed over the configured limit. */
  overspeed: 1,
  /** 疲劳驾驶: alarm bit 2 set. */
  fatigue: 2,
  /** 空档滑行: reserved; JT/T 808's basic report carries no gear, so nothing detects it yet. */
  coasting: 44,
  /** 超长怠速: speed 0 with ACC on (status bit 0) for more than idleMs. */
  longIdling: 45,
  /** 急加速: speed rising at least harshKmhPerS between reports at most maxPairGapMs apart. */
  harshAcceleration: 48,
  /** 急减速: speed falling at least harshKmhPerS between reports at most maxPairGapMs apart. */
  harshBraking: 49,
} as const;

export type BehaviourName = keyof typeof BEHAVIOUR_TYPES;
export type BehaviourCode = (typeof BEHAVIOUR_TYPES)[BehaviourName];

/** Codes the detector produces (coasting is reserved). */
export const DETECTED_TYPES: readonly BehaviourCode[] = [1, 2, 45, 48, 49];
export const ALL_TYPES: readonly BehaviourCode[] = Object.values(BEHAVIOUR_TYPES);

export function behaviourName(code: number): BehaviourName | undefined {
  return (Object.keys(BEHAVIOUR_TYPES) as BehaviourName[]).find((k) => BEHAVIOUR_TYPES[k] === code);
}

/** An episode open now: its type and where it started (saved with the vehicle's record). */
export interface OpenBehaviour {
  type: BehaviourCode;
  start: AlarmPoint;
}

/** A finished episode, to store. */
export interface BehaviourEpisode {
  type: BehaviourCode;
  start: AlarmPoint;
  end: AlarmPoint;
}
