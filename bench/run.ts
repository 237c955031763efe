// `npm run bench [-- SUITE…] [--seconds S] [--report DIR] [--json FILE]`: runs the benchmark
// suites (all without a name) and prints their figures; `--report DIR` also writes
// DIR/report.json (every figure printed) and DIR/report.html (the same, with plots);
// `--json FILE` writes the same JSON to FILE. What each suite measures: bench/README.md.
import { writeFileSync } from 'node:fs';
import { CLUSTER_PARTS, DEFAULT_CLUSTER_OPTIONS as CLUSTER, runClusterBench } from './cluster.js';
import { runCodecBench } from './codec.js';
import { runNodeBench } from './node.js';
import { runPlacementBench } from './placement.js';
import { runQueriesBench } from './queries.js';
import { runAreaNowBench } from './areaNow.js';
import { Reporter, writeReport, type BenchContext } from './report.js';
import { runStoreBench } from './store.js';
import { localStoreBackend } from '../devservers/serverConfig.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const num = (name: string, fallback: number): number => Number(flag(name) ?? fallback);
const list = (name: string, fallback: number[]): number[] =>
  flag(name)
    ?.split(',')
    .filter((v) => v !== '')
    .map(Number) ?? fallback;

interface Suite {
  /** What it measures, printed in the report. */
  about: string;
  /** Hands its tables to ctx; whatever it returns goes in the report's JSON as `result`. */
  run(ctx: BenchContext): Promise<unknown> | unknown;
}

// One entry per suite, run in this order when none is named.
const SUITES: Record<string, Suite> = {
  codec: {
    about: 'JT/T 808 decode and encode on one core beside a minimal reader',
    // --seconds: per operation, over 7 paired rounds.
    run: (ctx) => runCodecBench(ctx, num('--seconds', 2)),
  },
  placement: {
    about: 'vehicle → owner lookups beside hash-mod-N, and what a joining slot moves',
    // --vehicles N placed at each join, --slots 2,8,… the slot counts joined.
    run: (ctx) =>
      runPlacementBench(ctx, {
        seconds: num('--seconds', 2),
        vehicles: num('--vehicles', 200_000),
        slotCounts: list('--slots', [2, 8, 16, 64, 128, 256]),
      }),
  },
  node: {
    about: 'one node: reports/s, ack latency and persist lag beside the raw insert rate; memory',
    run: (ctx) =>
      runNodeBench(ctx, {
        seconds: num('--seconds', 10),
        terminals: num('--terminals', 200),
        window: num('--window', 4),
        idleTerminals: num('--idle', 10_000),
        activations: num('--activations', 10_000),
        idleSeconds: num('--idle-seconds', 30),
        heartbeatMs: num('--heartbeat-ms', 10_000),
        churn: num('--churn', 0),
        churnIdleMs: num('--churn-idle-ms', 2000),
        ...(flag('--workers') !== undefined ? { workers: num('--workers', 0) } : {}),
      }),
  },
  store: {
    about: 'the vehicle state path on each store side by side',
    run: (ctx) => {
      // --local-stores sqlite,postgresql (the first is the baseline; default both, SQLite
      // first); --store NAME=URI (repeatable): measured after them in the same run.
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
      return runStoreBench(ctx, { documents: num('--documents', 10_000), localStores, stores });
    },
  },
  queries: {
    about: 'track playback over HistoryService beside the raw find of the same vehicle-day',
    // --other-vehicles N vehicle-days stored beside it, --rounds R (each runs every query once).
    run: (ctx) =>
      runQueriesBench(ctx, { vehicles: num('--other-vehicles', 10), rounds: num('--rounds', 20) }),
  },
  areanow: {
    about:
      'vehicles in an area now: the per-thread filter over 100 000 last states beside a floor loop',
    // --vehicles N last states, --rounds R paired rounds.
    run: (ctx) =>
      runAreaNowBench(ctx, { vehicles: num('--vehicles', 100_000), rounds: num('--rounds', 50) }),
  },
  cluster: {
    about:
      'nodes together: forwarding between two, shards moved on a join, kill -9, 3 nodes beside 1',
    // --parts forwarding,join,failover,durable (default all); options in bench/README.md.
    run: (ctx) =>
      runClusterBench(ctx, {
        parts: (flag('--parts') ?? CLUSTER_PARTS.join(','))
          .split(',')
          .filter((p): p is (typeof CLUSTER_PARTS)[number] =>
            (CLUSTER_PARTS as readonly string[]).includes(p),
          ),
        seconds: num('--seconds', CLUSTER.seconds),
        links: num('--links', CLUSTER.links),
        maxInFlight: num('--max-in-flight', CLUSTER.maxInFlight),
        pacedRate: num('--paced-rate', CLUSTER.pacedRate),
        joinNodes: list('--join-nodes', CLUSTER.joinNodes),
        joinWorkers: list('--join-workers', CLUSTER.joinWorkers),
        failoverTerminals: num('--failover-terminals', CLUSTER.failoverTerminals),
        ttlSeconds: num('--ttl', CLUSTER.ttlSeconds),
        intervalMs: num('--interval-ms', CLUSTER.intervalMs),
        reportTimeoutMs: num('--report-timeout-ms', CLUSTER.reportTimeoutMs),
        terminals: num('--terminals', CLUSTER.terminals),
        window: num('--window', CLUSTER.window),
        durableSeconds: num('--durable-seconds', CLUSTER.durableSeconds),
        workers: num('--workers', CLUSTER.workers),
      }),
  },
};

const named = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const unknown = named.filter((s) => !(s in SUITES));
if (unknown.length > 0) {
  console.error(`unknown suite ${unknown.join(', ')}; suites: ${Object.keys(SUITES).join(', ')}`);
  process.exit(2);
}
const reporter = new Reporter();
for (const [name, suite] of Object.entries(SUITES)) {
  if (named.length > 0 && !named.includes(name)) continue;
  await reporter.run(name, suite.about, (ctx) => suite.run(ctx));
}
const report = reporter.report(args);
const reportDir = flag('--report');
if (reportDir) {
  const written = writeReport(reportDir, report);
  process.stderr.write(`report: ${written.json}, ${written.html}\n`);
}
const jsonFile = flag('--json');
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
