// `npm run fuzz [-- --iterations N] [--seed S]`: the long fuzz run (the test suite runs a
// bounded one). Prints what was fed and how it was rejected, and the heap before and after;
// exits 1 if anything threw.
import { fuzz } from '../test/helpers/fuzz.js';
import { readCorpusJson, type Vector } from '../test/helpers/corpus.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const iterations = flag('--iterations', 2_000_000);
const seed = flag('--seed', Date.now() & 0x7fffffff);
const seeds = readCorpusJson<Vector[]>('vectors.json').map(
  (v) => new Uint8Array(Buffer.from(v.hex, 'hex')),
);

const heapBefore = process.memoryUsage().heapUsed;
const t0 = Date.now();
try {
  const stats = fuzz(seeds, iterations, seed);
  global.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  console.log(
    JSON.stringify(
      {
        seed,
        iterations,
        seconds: (Date.now() - t0) / 1000,
        ...stats,
        heapBeforeMB: +(heapBefore / 1e6).toFixed(1),
        heapAfterMB: +(heapAfter / 1e6).toFixed(1),
      },
      null,
      2,
    ),
  );
} catch (err) {
  console.error(`fuzz: seed ${seed} threw:`, err);
  process.exitCode = 1;
}
