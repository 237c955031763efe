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
  // Warm up: let the JIT settle before anything is recorded.
  for (let i = 0; i < 20_000; i++) sink ^= op.run(i);
  let ops = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(durationMs) * 1_000_000n;
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

/** Alternates candidate and baseline `rounds` times; keeps each one's best round. */
export function sideBySide(
  candidate: Operation,
  baseline: Operation,
  rounds = 3,
  durationMs = 700,
): { candidate: Measurement; baseline: Measurement; ratio: number } {
  let best: Measurement | undefined;
  let bestBase: Measurement | undefined;
  for (let r = 0; r < rounds; r++) {
    const c = measure(candidate, durationMs);
    const b = measure(baseline, durationMs);
    if (!best || c.opsPerSec > best.opsPerSec) best = c;
    if (!bestBase || b.opsPerSec > bestBase.opsPerSec) bestBase = b;
  }
  const cand = best as Measurement;
  const base = bestBase as Measurement;
  return { candidate: cand, baseline: base, ratio: cand.opsPerSec / base.opsPerSec };
}

export function formatRow(m: Measurement, ratio?: number): string {
  const f = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const cols = [
    m.name.padEnd(44),
    `${f(m.opsPerSec).padStart(12)} /s`,
    `p50 ${f(m.p50).padStart(6)} ns`,
    `p99 ${f(m.p99).padStart(6)} ns`,
    `p99.9 ${f(m.p999).padStart(6)} ns`,
  ];
  if (ratio !== undefined) cols.push(`${(ratio * 100).toFixed(0).padStart(4)} % of baseline`);
  return cols.join('  ');
}

/** Keeps `sink` observable so the work above is never dead code. */
export function sinkValue(): number {
  return sink;
}
