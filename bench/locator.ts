// The locator bench (issue 12): how long a decision takes (chooseNode beside a same-run baseline
// that only reads the candidates), and a burst of terminals through a real locator to three node
// processes (etcd and the MongoDB-protocol server local): connect-to-redirect and first connection
// to first acknowledgement on the assigned node (hdr percentiles), and the balance the nodes then
// report (busiest / mean), with and without anti-herding in the same run.
//   node dist/bench/locator.js [--terminals N (10 000)] [--concurrency N (500)] [--seconds S (2)]
import hdr from 'hdr-histogram-js';
import { completeLoad } from '../cluster/loadReport.js';
import { startLocalServers } from '../devservers/localServers.js';
import { chooseNode, type Candidate } from '../cluster/locatorPolicy.js';
import { startLocatorService } from '../locator/locatorService.js';
import { followLocator } from './locatorTerminal.js';
import { measure, type Measurement } from './harness.js';
import { forkNode } from './nodeProcess.js';
import { trackPoint, type SimTerminal } from './terminal.js';

export interface LocatorBenchOptions {
  terminals: number;
  concurrency: number;
  seconds: number;
}

interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export interface BurstResult {
  antiHerding: boolean;
  /** Terminals per node as the nodes reported them after the burst. */
  spread: number[];
  maxOverMean: number;
  /** ms, first connection to the locator until the 0x8105 arrived. */
  redirect: Percentiles;
  /** ms, first connection to the locator until the first report was acknowledged on the node. */
  firstAck: Percentiles;
  failures: number;
}

export interface LocatorBenchResult {
  /** ns per decision. */
  decision: Record<string, Measurement>;
  bursts: BurstResult[];
}

function candidates(n: number): Candidate[] {
  return Array.from({ length: n }, (_, i) => ({
    node: `node-${i}`,
    gateway: `10.0.0.${i}:8808`,
    zone: i % 2 === 0 ? 'east' : 'west',
    capacity: 10_000,
    terminals: 3000 + ((i * 7919) % 500),
    assigned: 0,
    draining: false,
  }));
}

function decisionBench(seconds: number): Record<string, Measurement> {
  const out: Record<string, Measurement> = {};
  for (const n of [3, 64]) {
    const cands = candidates(n);
    // Baseline: reading every candidate's load once, what any choice must do at least.
    out[`baseline, ${n} nodes`] = measure(
      {
        name: `read ${n} candidates`,
        run: (i) => {
          let s = 0;
          for (const c of cands) s += (c.terminals + c.assigned + i) / c.capacity;
          return s | 0;
        },
      },
      seconds * 1000,
    );
    out[`chooseNode, ${n} nodes`] = measure(
      {
        name: `chooseNode ${n}`,
        run: () => {
          const c = chooseNode(cands, 'east', Math.random)!;
          c.candidate.assigned++;
          return c.candidate.assigned;
        },
      },
      seconds * 1000,
    );
  }
  return out;
}

function percentiles(values: number[]): Percentiles {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (const v of values) h.recordValue(Math.max(1, Math.round(v * 1000))); // µs
  const out = {
    p50: h.getValueAtPercentile(50) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    max: h.maxValue / 1000,
    count: h.totalCount,
  };
  h.destroy();
  return out;
}

export async function runLocatorBench(o: LocatorBenchOptions): Promise<LocatorBenchResult> {
  const decision = decisionBench(o.seconds);
  for (const [name, m] of Object.entries(decision))
    console.log(
      `locator decision ${name}: p50 ${m.p50} ns, p99 ${m.p99} ns, ${Math.round(m.opsPerSec)}/s`,
    );
  const servers = await startLocalServers();
  const bursts: BurstResult[] = [];
  try {
    let first = 0;
    for (const [antiHerding, warmUp] of [
      [true, true],
      [false, false],
      [true, false],
    ] as const) {
      const tag = warmUp ? 'warm' : antiHerding ? 'ah' : 'noah';
      // The first burst of a run is slower (JIT, the store's first writes): a small one goes
      // first and is not reported, so the two measured bursts compare like with like.
      const terminalsNow = warmUp ? Math.min(500, o.terminals) : o.terminals;
      const nodes = await Promise.all(
        [1, 2, 3].map((i) =>
          forkNode({
            node: `${tag}-${i}`,
            mongodbUri: servers.mongodbUri,
            // One cluster, one store: a vehicle handed between nodes finds its record.
            database: `fleetmesh_bench_locator_${tag}`,
            workers: 1,
            membership: { etcdEndpoints: servers.etcdEndpoints },
          }),
        ),
      );
      const service = await startLocatorService({
        etcdEndpoints: servers.etcdEndpoints,
        port: 0,
        antiHerding,
        limits: { maxPerAddress: o.terminals + 100, maxConnections: o.terminals + 100 },
      });
      const terminals: SimTerminal[] = [];
      const redirect: number[] = [];
      const firstAck: number[] = [];
      let failures = 0;
      const errors: string[] = [];
      try {
        while (service.watch.members().filter((m) => m.node.startsWith(`${tag}-`)).length < 3)
          await new Promise((r) => setTimeout(r, 50));
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < terminalsNow) {
            const i = first + next++;
            const t0 = performance.now();
            try {
              const r = await followLocator({
                locatorPort: service.port,
                phone: String(13_700_000_000 + i).padStart(12, '0'),
                timeoutMs: 60_000,
              });
              terminals.push(r.terminal!);
              redirect.push(r.redirectMs);
              if ((await r.terminal!.report(trackPoint(1))) === 0)
                firstAck.push(performance.now() - t0);
              else failures++;
            } catch (err) {
              failures++;
              if (errors.length < 3) errors.push(String(err));
            }
          }
        };
        await Promise.all(Array.from({ length: o.concurrency }, worker));
        first += terminalsNow;
        const counts = (): number[] =>
          service.watch
            .members()
            .filter((m) => m.node.startsWith(`${tag}-`))
            .map((m) => completeLoad(m.load).terminals);
        const deadline = Date.now() + 30_000;
        while (counts().reduce((a, b) => a + b, 0) < terminals.length && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        const spread = counts();
        const mean = spread.reduce((a, b) => a + b, 0) / spread.length;
        const b: BurstResult = {
          antiHerding,
          spread,
          maxOverMean: Math.round((Math.max(...spread) / mean) * 1000) / 1000,
          redirect: percentiles(redirect),
          firstAck: percentiles(firstAck),
          failures,
        };
        if (warmUp) continue;
        bursts.push(b);
        console.log(
          `locator burst of ${o.terminals} (${o.concurrency} at once), anti-herding ${antiHerding ? 'on' : 'off'}: ` +
            `nodes ${spread.join(' / ')}, busiest/mean ${b.maxOverMean}; ` +
            `connect->redirect p50 ${b.redirect.p50} ms p99 ${b.redirect.p99} ms; ` +
            `connect->first ack on the node p50 ${b.firstAck.p50} ms p99 ${b.firstAck.p99} ms; failures ${failures}` +
            (errors.length > 0 ? ` (${errors.join('; ')})` : ''),
        );
      } finally {
        for (const t of terminals) t.close();
        await service.stop();
        await Promise.all(nodes.map((n) => n.stop()));
      }
    }
  } finally {
    await servers.stop();
  }
  return { decision, bursts };
}

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};

if (process.argv[1]?.endsWith('bench/locator.js'))
  await runLocatorBench({
    terminals: arg('--terminals', 10_000),
    concurrency: arg('--concurrency', 500),
    seconds: arg('--seconds', 2),
  });
