// Which node a locator sends a terminal to (issue 12 part 3). Pure: the members' last reports,
// the locator's own assignments since each report, a terminal's zone and a random source go in,
// a node comes out.
// - Least loaded relative to capacity: (terminals at the last report + assigned since) / capacity.
// - No herding: between two reports (a second apart) thousands of terminals may arrive; counting
//   our own assignments moves each one's choice on, and choosing at random between two of the
//   lightest keeps several locators (which do not see each other's assignments) from all picking
//   the same node in lockstep.
// - Zones (seed 004, edge before cloud): a terminal whose zone is known goes to a node of that
//   zone while one has room, else to any node.
import { completeLoad } from './loadReport.js';
import type { Member } from './memberTable.js';

export interface Candidate {
  node: string;
  /** host:port of its JT/T 808 gateway. */
  gateway: string;
  zone: string;
  capacity: number;
  /** Terminals at its last report. */
  terminals: number;
  /** This locator's assignments to it since that report. */
  assigned: number;
  draining: boolean;
}

export interface Choice {
  candidate: Candidate;
  /** False when the terminal's zone had no node with room (or its zone was unknown). */
  inZone: boolean;
  /** True when every node was at or past its capacity (the least loaded was taken anyway). */
  overCapacity: boolean;
}

const utilisation = (c: Candidate): number => (c.terminals + c.assigned) / c.capacity;

/**
 * The node for one terminal, or undefined when there is none to choose (no member, or all are
 * draining). `random` gives numbers in [0, 1).
 */
export function chooseNode(
  candidates: readonly Candidate[],
  zone: string | undefined,
  random: () => number,
): Choice | undefined {
  const live = candidates.filter((c) => !c.draining && c.capacity > 0);
  if (live.length === 0) return undefined;
  const withRoom = live.filter((c) => c.terminals + c.assigned < c.capacity);
  const inZone = zone === undefined ? [] : withRoom.filter((c) => c.zone === zone);
  const pool = inZone.length > 0 ? inZone : withRoom.length > 0 ? withRoom : live;
  let min = Infinity;
  for (const c of pool) min = Math.min(min, utilisation(c));
  // The lightest: less than one terminal above the minimum (ties, also between nodes of
  // different capacities). Two of them at random, the lighter wins: a single locator fills nodes
  // evenly, several locators differ in their picks instead of herding on the same one.
  const lightest = pool.filter((c) => utilisation(c) < min + 1 / c.capacity - 1e-12);
  const a = lightest[Math.floor(random() * lightest.length)]!;
  const b = lightest[Math.floor(random() * lightest.length)]!;
  const ua = utilisation(a);
  const ub = utilisation(b);
  const candidate = ua < ub ? a : ub < ua ? b : random() < 0.5 ? a : b;
  return {
    candidate,
    inZone: inZone.length > 0,
    overCapacity: withRoom.length === 0,
  };
}

/** Where a terminal's zone comes from: its vehicle id, else its registration's region. */
export interface ZoneMap {
  /** vehicle id (the phone without leading zeros) → zone. */
  vehicles?: Record<string, string>;
  /**
   * Region → zone, keyed `${province}` or `${province}/${city}` (the 0x0100 province and
   * city/county ids, GB/T 2260, as decimal numbers); the city entry wins over the province's.
   */
  regions?: Record<string, string>;
}

export function zoneOf(
  vehicleId: string,
  region: { province: number; city: number } | undefined,
  map: ZoneMap,
): string | undefined {
  const own = map.vehicles?.[vehicleId];
  if (own !== undefined) return own;
  if (region === undefined) return undefined;
  return map.regions?.[`${region.province}/${region.city}`] ?? map.regions?.[`${region.province}`];
}

/**
 * The locator's own assignments per node since that node's last report. A report counts the
 * terminals that had arrived when it was sampled: assignments older than the report (less a
 * grace for terminals still on their way) are in it and are dropped; an assignment whose
 * terminal never arrives is dropped after `ttlMs`. Bounded: at most `maxPerNode` per node, the
 * oldest dropped first. Pure (times are passed in).
 */
export class AssignmentLedger {
  private readonly byNode = new Map<string, number[]>();

  constructor(
    private readonly opts: { graceMs: number; ttlMs: number; maxPerNode: number } = {
      graceMs: 500,
      ttlMs: 10_000,
      maxPerNode: 65_536,
    },
  ) {}

  assign(node: string, at: number): void {
    let times = this.byNode.get(node);
    if (!times) this.byNode.set(node, (times = []));
    times.push(at);
    if (times.length > this.opts.maxPerNode) times.splice(0, times.length - this.opts.maxPerNode);
  }

  /** A report of `node` arrived at `at`. */
  reported(node: string, at: number): void {
    this.dropBefore(node, at - this.opts.graceMs);
  }

  /** Assignments to `node` not yet in its reports, as of `now`. */
  count(node: string, now: number): number {
    this.dropBefore(node, now - this.opts.ttlMs);
    return this.byNode.get(node)?.length ?? 0;
  }

  /** Forgets nodes that are gone. */
  retain(nodes: ReadonlySet<string>): void {
    for (const n of this.byNode.keys()) if (!nodes.has(n)) this.byNode.delete(n);
  }

  private dropBefore(node: string, t: number): void {
    const times = this.byNode.get(node);
    if (!times) return;
    let i = 0;
    while (i < times.length && times[i]! < t) i++;
    if (i > 0) times.splice(0, i);
  }
}

/** The candidates from the members' last reports and the ledger. */
export function candidatesOf(
  members: readonly Member[],
  ledger: AssignmentLedger,
  now: number,
): Candidate[] {
  return members.map((m) => {
    const load = completeLoad(m.load);
    return {
      node: m.node,
      gateway: m.gateway,
      zone: load.zone,
      capacity: load.capacity,
      terminals: load.terminals,
      assigned: ledger.count(m.node, now),
      draining: load.draining ?? false,
    };
  });
}
