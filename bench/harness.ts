// Measurement for the bench/ suites: throughput and hdr latency percentiles of an operation,
// measured in batches (one clock read per batch: a clock read costs about as much as the
// operations we measure), with a baseline run side by side in the same process.
import hdr from 'hdr-histogram-js';
import {
  percentileCurve,
  type Column,
  type PercentilePoint,
  type Row,
  type TimePoint,
} from './report.js';

export interface Operation {
  name: string;
  /** Does one unit of work; return something derived from the result so it is not optimised away. */
  run(i: number): number;
}

export interface Measurement {
  name: string;
  opsPerSec: number;
  /** ns per operation, each sample the mean of one batch. */
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
  /** Throughput over the measurement, in at most TIMELINE_POINTS slices. */
  timeline: TimePoint[];
  /** The hdr percentile curve, ns per operation. */
  percentiles: PercentilePoint[];
}

/** Slices of a measurement's timeline (bounded, whatever its length). */
export const TIMELINE_POINTS = 20;

let sink = 0;

export function measure(op: Operation, durationMs = 1000, batch = 64): Measurement {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 1e10,
    numberOfSignificantValueDigits: 3,
  });
  // Warm up: let the JIT settle before anything is recorded (20 000 runs, at most 200 ms).
  const warmEnd = process.hrtime.bigint() + 200_000_000n;
  for (let i = 0; i < 20_000; i++) {
    sink ^= op.run(i);
    if ((i & 63) === 63 && process.hrtime.bigint() > warmEnd) break;
  }
  let ops = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(durationMs * 1e6));
  let now = start;
  let i = 0;
  // Operations done per slice of the duration, for the timeline.
  const sliceNs = Math.max(1, (durationMs * 1e6) / TIMELINE_POINTS);
  const slices = new Array<number>(TIMELINE_POINTS + 1).fill(0);
  while (now < end) {
    const t0 = now;
    for (let k = 0; k < batch; k++) sink ^= op.run(i++);
    now = process.hrtime.bigint();
    h.recordValue(Math.max(1, Math.round(Number(now - t0) / batch)));
    ops += batch;
    slices[Math.min(TIMELINE_POINTS, Math.floor(Number(now - start) / sliceNs))]! += batch;
  }
  const seconds = Number(now - start) / 1e9;
  // The batch that crossed the end sits in a slice of its own, left out: too short to be a rate.
  const timeline: TimePoint[] = slices
    .slice(0, TIMELINE_POINTS)
    .map((n, k) => ({ atMs: ((k + 0.5) * sliceNs) / 1e6, perSec: (n / sliceNs) * 1e9 }));
  const m: Measurement = {
    name: op.name,
    opsPerSec: ops / seconds,
    p50: h.getValueAtPercentile(50),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    samples: h.totalCount,
    timeline,
    percentiles: percentileCurve(h),
  };
  h.destroy();
  return m;
}

export interface SideBySide {
  /** Each one's best round (throughput and percentiles as printed). */
  candidate: Measurement;
  baseline: Measurement;
  /** Median over the rounds of candidate ÷ baseline measured one right after the other. */
  ratio: number;
  /** Lowest and highest round ratio. */
  ratioRange: [number, number];
}

/**
 * Alternates candidate and baseline `rounds` times. The ratio is the median of each round's
 * pair, not best ÷ best: on a shared machine whole seconds run slower, and a pair measured
 * back to back sees the same machine.
 */
export function sideBySide(
  candidate: Operation,
  baseline: Operation,
  rounds = 7,
  durationMs = 300,
  /** After each round, with the rounds done. */
  onRound?: (done: number) => void,
): SideBySide {
  let best: Measurement | undefined;
  let bestBase: Measurement | undefined;
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c = measure(candidate, durationMs);
    const b = measure(baseline, durationMs);
    ratios.push(c.opsPerSec / b.opsPerSec);
    if (!best || c.opsPerSec > best.opsPerSec) best = c;
    if (!bestBase || b.opsPerSec > bestBase.opsPerSec) bestBase = b;
    onRound?.(r + 1);
  }
  ratios.sort((a, b) => a - b);
  return {
    candidate: best as Measurement,
    baseline: bestBase as Measurement,
    ratio: ratios[Math.floor(ratios.length / 2)]!,
    ratioRange: [ratios[0]!, ratios[ratios.length - 1]!],
  };
}

/** The columns of a Measurement in a report table. */
export const MEASUREMENT_COLUMNS: Column[] = [
  { key: 'opsPerSec', label: 'ops/s', digits: 0 },
  { key: 'p50', label: 'p50 ns', digits: 0 },
  { key: 'p99', label: 'p99 ns', digits: 0 },
  { key: 'p999', label: 'p99.9 ns', digits: 0 },
];

function figuresOf(m: Measurement): Record<string, number> {
  return { opsPerSec: m.opsPerSec, p50: m.p50, p99: m.p99, p999: m.p999 };
}

/** A report row of a candidate measured beside its baseline (sideBySide). */
export function sideBySideRow(r: SideBySide): Row {
  return {
    name: r.candidate.name,
    figures: figuresOf(r.candidate),
    baseline: { name: r.baseline.name, figures: figuresOf(r.baseline) },
    ratio: { column: 'opsPerSec', value: r.ratio, range: r.ratioRange },
    timeline: r.candidate.timeline,
    baselineTimeline: r.baseline.timeline,
    percentiles: r.candidate.percentiles,
    baselinePercentiles: r.baseline.percentiles,
  };
}

/** The last result kept (exported so nothing treats the store as dead). */
export let kept: unknown;

/**
 * Keeps a result reachable, so that an operation's objects are really built (a result that only
 * yields one number lets the compiler skip building the rest). Baselines use it too.
 */
export function keep<T>(result: T): T {
  kept = result;
  return result;
}

/** Keeps `sink` observable so the work above is never dead code. */
export function sinkValue(): number {
  return sink;
}
