// A node's load as it publishes it under its lease for the locators (issue 12 part 1): what it
// holds (connected and authenticated terminals), how busy it is (reports/s, event-loop
// utilisation, CPU, RSS) and what it was configured to take (capacity, zone). The sampling reads
// counters the caller passes in; deciding whether a sample is worth an etcd write is pure
// (`worthPublishing`), so it is tested without a clock or etcd.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { cpus } from 'node:os';

export interface LoadReport {
  /** Connections to the node's gateway now (authenticated or not). */
  terminals: number;
  /** Of those, authenticated. */
  authenticated: number;
  /** Location reports (0x0200, 0x0704) received per second over the last interval. */
  reportsPerSecond: number;
  /** Event-loop utilisation of the gateway's thread over the last interval, 0..1. */
  elu: number;
  /** CPU of the whole process over the last interval, as a share of the machine's cores, 0..1. */
  cpu: number;
  rssBytes: number;
  /** Terminals this node is meant to hold; the locator balances terminals / capacity. */
  capacity: number;
  /** Where the node runs (an edge site, a region); terminals of this zone prefer it. */
  zone: string;
  /** True while the node is being drained: locators choose it no more. */
  draining?: boolean;
}

/** Default capacity: what one node is sized for when nothing is configured. */
export const DEFAULT_CAPACITY = 10_000;
export const MAX_CAPACITY = 10_000_000;
/** Zone names: short, so a report stays small whatever is configured. */
export const ZONE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$/;
export const DEFAULT_ZONE = 'default';

export interface PublishThresholds {
  /** A change of this many terminals (connected or authenticated) is always published. */
  terminals: number;
  /** Relative change of reports/s (and at least `minReportsPerSecond` absolute). */
  reportsRelative: number;
  minReportsPerSecond: number;
  /** Absolute change of event-loop utilisation or CPU share. */
  utilisation: number;
  /** Relative change of RSS. */
  rssRelative: number;
  /** Published at least this often even when nothing moved (the locators' view stays fresh). */
  maxSilentMs: number;
}

export const DEFAULT_THRESHOLDS: PublishThresholds = {
  // One terminal matters: the locator's anti-herding counts assignments since the last report,
  // and a report that lags the real count misleads it. At most one write per interval anyway.
  terminals: 1,
  reportsRelative: 0.1,
  minReportsPerSecond: 5,
  utilisation: 0.05,
  rssRelative: 0.05,
  maxSilentMs: 10_000,
};

/**
 * True when `next` differs from what was last published enough to be worth an etcd write, or the
 * last write is `maxSilentMs` old. Pure.
 */
export function worthPublishing(
  last: LoadReport | undefined,
  lastAt: number,
  next: LoadReport,
  now: number,
  t: PublishThresholds = DEFAULT_THRESHOLDS,
): boolean {
  if (last === undefined) return true;
  if (now - lastAt >= t.maxSilentMs) return true;
  if (
    last.capacity !== next.capacity ||
    last.zone !== next.zone ||
    (last.draining ?? false) !== (next.draining ?? false)
  )
    return true;
  if (Math.abs(last.terminals - next.terminals) >= t.terminals) return true;
  if (Math.abs(last.authenticated - next.authenticated) >= t.terminals) return true;
  const dr = Math.abs(last.reportsPerSecond - next.reportsPerSecond);
  if (
    dr >= t.minReportsPerSecond &&
    dr >= t.reportsRelative * Math.max(last.reportsPerSecond, next.reportsPerSecond)
  )
    return true;
  if (Math.abs(last.elu - next.elu) >= t.utilisation) return true;
  if (Math.abs(last.cpu - next.cpu) >= t.utilisation) return true;
  if (Math.abs(last.rssBytes - next.rssBytes) >= t.rssRelative * Math.max(last.rssBytes, 1))
    return true;
  return false;
}

/** Counters a node exposes for its load (its gateway's). */
export interface LoadCounters {
  connections: number;
  /** Connections still waiting to authenticate. */
  pending: number;
  /** Location reports received since start (monotonic). */
  reportsReceived: number;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Turns successive counter readings into load reports: rates over the time between two samples,
 * the event loop's and the process's CPU share over the same time.
 */
export class LoadSampler {
  private lastAt: number;
  private lastReports: number;
  private lastElu: EventLoopUtilization;
  private lastCpu: NodeJS.CpuUsage;
  private readonly cores = Math.max(1, cpus().length);

  constructor(
    private readonly read: () => LoadCounters,
    private readonly config: { capacity: number; zone: string; draining?: () => boolean },
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isInteger(config.capacity) || config.capacity < 1 || config.capacity > MAX_CAPACITY)
      throw new RangeError(`capacity must be an integer in 1..${MAX_CAPACITY}`);
    if (!ZONE_NAME.test(config.zone)) throw new RangeError(`not a zone name: ${config.zone}`);
    this.lastAt = this.now();
    this.lastReports = read().reportsReceived;
    this.lastElu = performance.eventLoopUtilization();
    this.lastCpu = process.cpuUsage();
  }

  sample(): LoadReport {
    const c = this.read();
    const at = this.now();
    const seconds = Math.max((at - this.lastAt) / 1000, 1e-3);
    const elu = performance.eventLoopUtilization(this.lastElu);
    const cpu = process.cpuUsage(this.lastCpu);
    const report: LoadReport = {
      terminals: c.connections,
      authenticated: Math.max(0, c.connections - c.pending),
      reportsPerSecond: round3(Math.max(0, c.reportsReceived - this.lastReports) / seconds),
      elu: round3(elu.utilization),
      cpu: round3(Math.min(1, (cpu.user + cpu.system) / 1000 / (seconds * 1000) / this.cores)),
      rssBytes: process.memoryUsage.rss(),
      capacity: this.config.capacity,
      zone: this.config.zone,
    };
    if (this.config.draining?.()) report.draining = true;
    this.lastAt = at;
    this.lastReports = c.reportsReceived;
    this.lastElu = performance.eventLoopUtilization();
    this.lastCpu = process.cpuUsage();
    return report;
  }
}

const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
const isShare = (v: unknown): v is number => isCount(v) && v <= 1.5; // CPU can overshoot a little

/** What a member publishes as its load: `terminals` always (every version has it), the rest when known. */
export type PublishedLoad = Pick<LoadReport, 'terminals'> & Partial<Omit<LoadReport, 'terminals'>>;

/**
 * Reads the load fields of a member's value, keeping those present (older nodes publish only
 * `terminals`). Undefined when a field is present but wrong: not a number, negative, a share
 * out of range, a zone that is not a zone name.
 */
export function parseLoadReport(v: Record<string, unknown>): PublishedLoad | undefined {
  if (!isCount(v.terminals)) return undefined;
  const out: PublishedLoad = { terminals: v.terminals };
  for (const k of ['authenticated', 'reportsPerSecond', 'rssBytes'] as const) {
    if (v[k] === undefined) continue;
    const x = v[k];
    if (!isCount(x)) return undefined;
    out[k] = x;
  }
  for (const k of ['elu', 'cpu'] as const) {
    if (v[k] === undefined) continue;
    const x = v[k];
    if (!isShare(x)) return undefined;
    out[k] = x;
  }
  if (v.capacity !== undefined) {
    const c = v.capacity;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > MAX_CAPACITY)
      return undefined;
    out.capacity = c;
  }
  if (v.zone !== undefined) {
    if (typeof v.zone !== 'string' || !ZONE_NAME.test(v.zone)) return undefined;
    out.zone = v.zone;
  }
  if (v.draining !== undefined) {
    if (typeof v.draining !== 'boolean') return undefined;
    out.draining = v.draining;
  }
  return out;
}

/** A published load with what an older node leaves out filled in neutrally. */
export function completeLoad(l: PublishedLoad): LoadReport {
  const out: LoadReport = {
    terminals: l.terminals,
    authenticated: l.authenticated ?? l.terminals,
    reportsPerSecond: l.reportsPerSecond ?? 0,
    elu: l.elu ?? 0,
    cpu: l.cpu ?? 0,
    rssBytes: l.rssBytes ?? 0,
    capacity: l.capacity ?? DEFAULT_CAPACITY,
    zone: l.zone ?? DEFAULT_ZONE,
  };
  if (l.draining) out.draining = true;
  return out;
}
