// Placement benchmark: vehicle → owner lookups per second beside plain hash-mod-N (the
// baseline, what the workers used before), and what each does when a slot joins: the share of
// vehicles that move and the spread of the load.
//   npm run bench -- placement [--seconds S]
import { Placement, SHARDS, slotKey } from '../cluster/placement.js';
import { formatRow, sideBySide, type Operation } from './harness.js';

const ids = Array.from({ length: 4096 }, (_, i) => String(13900000000 + i * 7919));

function fnvMod(s: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

export interface PlacementBenchResult {
  lookup: { opsPerSec: number; p50: number; p99: number; ratio: number };
  joins: {
    slots: number;
    movedRendezvous: number;
    movedModN: number;
    maxOverMean: number;
    /** The same with the 4 096 shards used before (the baseline for the shard count). */
    maxOverMean4096: number;
    buildMs: number;
  }[];
}

export function runPlacementBench(seconds = 2): PlacementBenchResult {
  const placement = new Placement(Array.from({ length: 16 }, (_, i) => `node-${i}`));
  const baseline: Operation = {
    name: 'baseline: FNV-1a mod 16',
    run: (i) => fnvMod(ids[i & 4095]!, 16),
  };
  const op: Operation = {
    name: 'placement: shard + rendezvous owner (16 slots)',
    run: (i) => placement.ownerOf(ids[i & 4095]!),
  };
  const r = sideBySide(op, baseline, 7, (seconds * 1000) / 7);
  console.log('placement (one core; ratio: median of paired rounds against hash-mod-N)');
  console.log(formatRow(r.baseline));
  console.log(formatRow(r.candidate, r.ratio, r.ratioRange));

  const vehicles = Array.from({ length: 200_000 }, (_, i) => String(13000000000 + i * 104729));
  const joins: PlacementBenchResult['joins'] = [];
  for (const n of [2, 8, 16, 64, 128, 256]) {
    // Slots as a cluster names them: 8 workers per node.
    const keys = Array.from({ length: n }, (_, i) => slotKey(`node-${i >> 3}`, i & 7));
    const t0 = performance.now();
    const before = new Placement(keys);
    const buildMs = performance.now() - t0;
    const after = new Placement([...keys, slotKey('joining', 0)]);
    const old = new Placement([...keys, slotKey('joining', 0)], 4096).load();
    let movedRendezvous = 0;
    let movedModN = 0;
    for (const v of vehicles) {
      if (before.slots[before.ownerOf(v)] !== after.slots[after.ownerOf(v)]) movedRendezvous++;
      if (fnvMod(v, n) !== fnvMod(v, n + 1)) movedModN++;
    }
    const load = after.load();
    const maxOverMean = Math.max(...load) / (SHARDS / (n + 1));
    const maxOverMean4096 = Math.max(...old) / (4096 / (n + 1));
    joins.push({
      slots: n,
      movedRendezvous: movedRendezvous / vehicles.length,
      movedModN: movedModN / vehicles.length,
      maxOverMean,
      maxOverMean4096,
      buildMs,
    });
    const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
    console.log(
      `${n} → ${n + 1} slots: rendezvous moves ${pct(movedRendezvous / vehicles.length)} of 200 000 vehicles (ideal ${pct(1 / (n + 1))}), mod-N ${pct(movedModN / vehicles.length)}; busiest slot ${maxOverMean.toFixed(3)} × the mean with ${SHARDS} shards (${maxOverMean4096.toFixed(3)} with 4096); placement built in ${buildMs.toFixed(1)} ms`,
    );
  }
  return {
    lookup: {
      opsPerSec: r.candidate.opsPerSec,
      p50: r.candidate.p50,
      p99: r.candidate.p99,
      ratio: r.ratio,
    },
    joins,
  };
}
