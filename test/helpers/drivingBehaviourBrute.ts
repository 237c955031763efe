// A brute-force computation of driving-behaviour episodes (actors/drivingBehaviour.ts) over a
// whole sequence of reports at once, for tests to hold the streaming detector and the stored
// episodes to. Valid for sequences whose times do not decrease and span less than 24 hours (no
// episode is cut for its age).
import {
  DEFAULT_THRESHOLDS,
  harshChange,
  stateConditions,
  type BehaviourPoint,
} from '../../actors/drivingBehaviour.js';
import { BEHAVIOUR_TYPES, type BehaviourCode } from '../../domain/drivingBehaviour.js';

const { overspeed, fatigue, longIdling, harshAcceleration, harshBraking } = BEHAVIOUR_TYPES;

/** Maximal runs of `holds` over `xs`: [first, last] indexes. */
function runs(n: number, holds: (i: number) => boolean): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    if (!holds(i)) continue;
    let j = i;
    while (j + 1 < n && holds(j + 1)) j++;
    out.push([i, j]);
    i = j;
  }
  return out;
}

/**
 * The episodes of a whole sequence (times not decreasing, spanning less than 24 hours) computed
 * from it at once: state types are runs of reports where the condition holds, ended by the
 * report after the run; harsh types are runs of harsh pairs of reports of distinct times,
 * ended when the pair after them is not harsh (closed by the report after that pair).
 */
export function bruteForce(
  pts: BehaviourPoint[],
  t = DEFAULT_THRESHOLDS,
): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (const type of [overspeed, fatigue, longIdling] as BehaviourCode[]) {
    for (const [i, j] of runs(pts.length, (k) => stateConditions(pts[k]!, t).has(type))) {
      if (j + 1 >= pts.length) continue; // still open
      if (type === longIdling && pts[j]!.time - pts[i]!.time <= t.idleMs) continue;
      out.push([type, pts[i]!.time, pts[j + 1]!.time]);
    }
  }
  // Reports of one time form a group: a pair is the last report of a group and the first of the
  // next (a later report of the same time is compared with nothing).
  const groups: BehaviourPoint[][] = [];
  for (const p of pts) {
    const g = groups.at(-1);
    if (g && g[0]!.time === p.time) g.push(p);
    else groups.push([p]);
  }
  const pair = (k: number): number => harshChange(groups[k]!.at(-1)!, groups[k + 1]![0]!, t);
  for (const [type, sign] of [
    [harshAcceleration, 1],
    [harshBraking, -1],
  ] as const) {
    for (const [i, j] of runs(groups.length - 1, (k) => pair(k) === sign)) {
      if (j + 2 >= groups.length) continue; // still open
      out.push([type, groups[i]![0]!.time, groups[j + 1]![0]!.time]);
    }
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}
