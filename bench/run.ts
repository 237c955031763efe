// `npm run bench [-- SUITE…] [--seconds S] [--json FILE]`: runs the benchmark suites and prints
// their figures. Suites: codec, placement, node, store.
import { writeFileSync } from 'node:fs';
import { printCodecBench, runCodecBench } from './codec.js';
import { runNodeBench } from './node.js';
import { runPlacementBench } from './placement.js';
import { runStoreBench } from './store.js';
import { localStoreBackend } from '../cluster/serverConfig.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const seconds = Number(flag('--seconds') ?? 2); // per codec operation
const jsonFile = flag('--json');
const suites = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const want = (s: string): boolean => suites.length === 0 || suites.includes(s);

const results: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
if (want('codec')) {
  const r = runCodecBench(seconds);
  printCodecBench(r);
  results.codec = r;
}
if (want('placement')) results.placement = runPlacementBench(seconds);
if (want('node')) {
  results.node = await runNodeBench({
    seconds: Number(flag('--seconds') ?? 10),
    terminals: Number(flag('--terminals') ?? 200),
    window: Number(flag('--window') ?? 4),
    idleTerminals: Number(flag('--idle') ?? 10_000),
    activations: Number(flag('--activations') ?? 10_000),
    idleSeconds: Number(flag('--idle-seconds') ?? 30),
    heartbeatMs: Number(flag('--heartbeat-ms') ?? 10_000),
    churn: Number(flag('--churn') ?? 0),
    churnIdleMs: Number(flag('--churn-idle-ms') ?? 2000),
    ...(flag('--workers') !== undefined ? { workers: Number(flag('--workers')) } : {}),
  });
}
if (want('store')) {
  // --local-stores sqlite,postgresql (the first is the baseline; default both, SQLite first);
  // --store NAME=URI (repeatable): measured after them in the same run.
  const localStores = (flag('--local-stores') ?? 'sqlite,postgresql')
    .split(',')
    .filter((b) => b !== '')
    .map((b) => localStoreBackend(['--local-store', b]));
  const stores: Record<string, string> = {};
  args.forEach((a, i) => {
    const v = args[i + 1];
    if (a === '--store' && v?.includes('='))
      stores[v.slice(0, v.indexOf('='))] = v.slice(v.indexOf('=') + 1);
  });
  results.store = await runStoreBench({
    documents: Number(flag('--documents') ?? 10_000),
    localStores,
    stores,
  });
}
if (jsonFile) writeFileSync(jsonFile, JSON.stringify(results, null, 2));
