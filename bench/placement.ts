// Placement benchmark: vehicle → owner lookups per second beside plain hash-mod-N (the
// baseline, what the workers used before), and what each does when a slot joins: the share of
// vehicles that move and the spread of the load.
//   npm run bench -- placement [--seconds S]
import { Placement, SHARDS, slotKey } from '../cluster/placement.js';
import { MEASUREMENT_COLUMNS, sideBySide, sideBySideRow, type Operation } from './harness.js';
import type { BenchContext, Row } from './report.js';

const ids = Array.from({ length: 4096 }, (_, i) => String(13900000000 + i * 7919));

function fnvMod(s: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

export interface PlacementBenchOptions {
  seconds: number;
  /** Vehicles placed before and after each join. */
  vehicles: number;
  /** Slot counts a slot joins. */
  slotCounts: number[];
}

export function runPlacementBench(
  ctx: BenchContext,
  o: PlacementBenchOptions = {
    seconds: 2,
    vehicles: 200_000,
    slotCounts: [2, 8, 16, 64, 128, 256],
  },
): void {
  const placement = new Placement(Array.from({ length: 16 }, (_, i) => `node-${i}`));
  const baseline: Operation = {
    name: 'FNV-1a mod 16',
    run: (i) => fnvMod(ids[i & 4095]!, 16),
  };
  const op: Operation = {
    name: 'placement: shard + rendezvous owner (16 slots)',
    run: (i) => placement.ownerOf(ids[i & 4095]!),
  };
  const steps = 7 + o.slotCounts.length;
  const r = sideBySide(op, baseline, 7, (o.seconds * 1000) / 7, (done) =>
    ctx.progress('lookups', done, steps),
  );
  ctx.table({
    title: 'placement: lookups on one core (ratio: median of paired rounds against hash-mod-N)',
    columns: MEASUREMENT_COLUMNS,
    rows: [sideBySideRow(r)],
    timelineUnit: 'lookups/s',
    percentileUnit: 'ns/lookup',
  });

  const vehicles = Array.from({ length: o.vehicles }, (_, i) => String(13000000000 + i * 104729));
  const rows: Row[] = [];
  o.slotCounts.forEach((n, k) => {
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
    rows.push({
      name: `${n} → ${n + 1} slots`,
      figures: {
        moved: (movedRendezvous / vehicles.length) * 100,
        ideal: (1 / (n + 1)) * 100,
        maxOverMean: Math.max(...load) / (SHARDS / (n + 1)),
        buildMs,
      },
      // Before: hash-mod-N placement and 4 096 shards.
      baseline: {
        name: 'mod-N moves; 4 096 shards',
        figures: {
          moved: (movedModN / vehicles.length) * 100,
          maxOverMean: Math.max(...old) / (4096 / (n + 1)),
        },
      },
    });
    ctx.progress('joins', 7 + k + 1, steps);
  });
  ctx.table({
    title: `placement: a slot joins — share of ${vehicles.length} vehicles moved, the busiest slot against the mean (${SHARDS} shards), time to build`,
    columns: [
      { key: 'moved', label: 'moved %', digits: 1 },
      { key: 'ideal', label: 'ideal %', digits: 1 },
      { key: 'maxOverMean', label: 'busiest ÷ mean', digits: 3 },
      { key: 'buildMs', label: 'build ms', digits: 1 },
    ],
    rows,
  });
}
