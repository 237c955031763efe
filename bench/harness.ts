// Measurement for the bench/ suites: throughput and hdr latency percentiles of an operation,
// measured in batches (one clock read per batch: a clock read costs about as much as the
// operations we measure), with a baseline run side by side in the same process.
import hdr from 'hdr-histogram-js';

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
}

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
  while (now < end) {
    const t0 = now;
    for (let k = 0; k < batch; k++) sink ^= op.run(i++);
    now = process.hrtime.bigint();
    h.recordValue(Math.max(1, Math.round(Number(now - t0) / batch)));
    ops += batch;
  }
  const seconds = Number(now - start) / 1e9;
  const m: Measurement = {
    name: op.name,
    opsPerSec: ops / seconds,
    p50: h.getValueAtPercentile(50),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    samples: h.totalCount,
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
  }
  ratios.sort((a, b) => a - b);
  return {
    candidate: best as Measurement,
    baseline: bestBase as Measurement,
    ratio: ratios[Math.floor(ratios.length / 2)]!,
    ratioRange: [ratios[0]!, ratios[ratios.length - 1]!],
  };
}

export function formatRow(m: Measurement, ratio?: number, range?: [number, number]): string {
  const f = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const cols = [
    m.name.padEnd(44),
    `${f(m.opsPerSec).padStart(12)} /s`,
    `p50 ${f(m.p50).padStart(6)} ns`,
    `p99 ${f(m.p99).padStart(6)} ns`,
    `p99.9 ${f(m.p999).padStart(6)} ns`,
  ];
  const pct = (x: number): string => (x * 100).toFixed(0);
  if (ratio !== undefined) cols.push(`${pct(ratio).padStart(4)} % of baseline`);
  if (range !== undefined) cols.push(`(rounds ${pct(range[0])}–${pct(range[1])} %)`);
  return cols.join('  ');
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
