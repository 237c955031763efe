// The locator with real processes: etcd, the MongoDB-protocol server, three nodes each in a
// process of its own and the `fleetmesh locator` process. Terminals start at the locator, follow
// its 0x8105 to a node, authenticate there and have a report acknowledged; the nodes' own load
// reports in etcd then show the spread: busiest ≤ 1.05× the mean with equal nodes, each share
// within 5 % of its capacity share with capacities 1:2:1. The gRPC Locate answers with a node,
// health and reflection included.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Etcd3 } from 'etcd3';
import { followLocator, RoamingTerminal } from '../../bench/locatorTerminal.js';
import { forkNode, type NodeProcess } from '../../bench/nodeProcess.js';
import { trackPoint, type SimTerminal } from '../../bench/terminal.js';
import { completeLoad } from '../../cluster/loadReport.js';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import { LOCATOR_PROTO } from '../../locator/locatorGrpc.js';
import { MemberWatch } from '../../cluster/membership.js';
import { testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

type LocateCall = (
  req: object,
  cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
) => void;

let servers: LocalServers;
let etcd: Etcd3;
let watch: MemberWatch;
let locator: { child: ChildProcess; port: number; grpcPort: number };

const root = fileURLToPath(new URL('../../..', import.meta.url));

async function startLocatorProcess(): Promise<typeof locator> {
  const child = spawn(
    process.execPath,
    [
      'dist/cli/main.js',
      'locator',
      '--etcd-endpoints',
      servers.etcdEndpoints.join(','),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--grpc-port',
      '0',
      '--log-level',
      'error',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const ports = await new Promise<{ port: number; grpcPort: number }>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /JT\/T 808 on port (\d+), gRPC on (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), grpcPort: Number(m[2]) });
    });
    child.once('exit', (code) => reject(new Error(`locator exited (${code}): ${out}`)));
  });
  return { child, ...ports };
}

before(async () => {
  servers = await startLocalServers();
  etcd = new Etcd3({ hosts: servers.etcdEndpoints });
  watch = await MemberWatch.start(etcd);
  locator = await startLocatorProcess();
});
after(async () => {
  locator?.child.kill('SIGTERM');
  await watch?.close();
  etcd?.close();
  await servers?.stop();
});

async function startNodes(capacities: number[], tag: string): Promise<NodeProcess[]> {
  // One cluster, one store: a vehicle that moves between nodes finds its record.
  const database = testDatabase(`locator_${tag}`);
  return Promise.all(
    capacities.map((capacity, i) =>
      forkNode({
        node: `${tag}-${i + 1}`,
        mongodbUri: servers.mongodbUri,
        database,
        workers: 1,
        writer: { maxDelayMs: 5 },
        membership: { etcdEndpoints: servers.etcdEndpoints, capacity, ttlSeconds: 5 },
      }),
    ),
  );
}

/**
 * `count` terminals through the locator, 100 at a time; each reports once on its node. A terminal
 * whose visit fails (a connection closed, an answer missing) starts again at the locator, as a
 * device does, at most 3 times; `retries` counts those.
 */
async function throughLocator(
  first: number,
  count: number,
): Promise<{
  online: SimTerminal[];
  retries: number;
  failed: string[];
  /** Why visits started again, with how often (a test prints them). */
  reasons: Map<string, number>;
}> {
  const online: SimTerminal[] = [];
  const failed: string[] = [];
  let retries = 0;
  let next = 0;
  const reasons = new Map<string, number>();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = first + next++;
      const editions = [2011, 2013, 2019] as const;
      const edition = editions[i % 3]!;
      for (let attempt = 1; ; attempt++) {
        let t: SimTerminal | undefined;
        try {
          t = (
            await followLocator({
              locatorPort: locator.port,
              phone: String(13_900_000_000 + i).padStart(edition === 2019 ? 20 : 12, '0'),
              edition,
              timeoutMs: 30_000,
            })
          ).terminal!;
          const result = await t.report(trackPoint(1));
          if (result !== 0) throw new Error(`report answered ${result}`);
          online.push(t);
          break;
        } catch (err) {
          t?.close();
          if (attempt === 3) {
            failed.push(`${i}: ${String(err)}`);
            break;
          }
          retries++;
          const why = String(err).slice(0, 120);
          reasons.set(why, (reasons.get(why) ?? 0) + 1);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  return { online, retries: retries, failed, reasons };
}

/** Terminals per node as the nodes report them in etcd, once they add up to `total`. */
async function reportedSpread(tag: string, total: number): Promise<number[]> {
  const counts = (): number[] =>
    watch
      .members()
      .filter((m) => m.node.startsWith(`${tag}-`))
      .map((m) => completeLoad(m.load).terminals);
  await until(
    () => counts().reduce((a, b) => a + b, 0) === total,
    `the nodes to report ${total} terminals`,
    20_000,
  );
  return counts();
}

describe('locator with real processes (etcd, MongoDB-protocol server, 3 nodes, locator)', () => {
  it('equal nodes: a burst through the locator ends with the busiest ≤ 1.05× the mean', async (t) => {
    const nodes = await startNodes([10_000, 10_000, 10_000], 'eq');
    let terminals: SimTerminal[] = [];
    try {
      await until(() => watch.members().length === 3, 'three nodes in etcd');
      const n = 900;
      const r = await throughLocator(0, n);
      terminals = r.online;
      assert.deepEqual(
        r.failed,
        [],
        'every terminal reaches a node and has its report acknowledged',
      );
      const spread = await reportedSpread('eq', n);
      const mean = n / 3;
      t.diagnostic(`visits started again: ${r.retries} ${JSON.stringify([...r.reasons])}`);
      t.diagnostic(
        `terminals per node ${spread.join(', ')}; busiest/mean ${(Math.max(...spread) / mean).toFixed(3)}`,
      );
      assert.ok(Math.max(...spread) <= 1.05 * mean, `spread ${spread.join(', ')}`);
    } finally {
      for (const t of terminals) t.close();
      await Promise.all(nodes.map((x) => x.stop()));
    }
    await until(() => watch.members().length === 0, 'the nodes gone from etcd');
  });

  it('capacities 1:2:1: each node’s share within 5 % of its capacity share', async (t) => {
    const nodes = await startNodes([2000, 4000, 2000], 'cap');
    let terminals: SimTerminal[] = [];
    try {
      await until(() => watch.members().length === 3, 'three nodes in etcd');
      // Enough terminals that 5 % of a share is more than the few a late load report misplaces.
      const n = 1600;
      const r = await throughLocator(10_000, n);
      terminals = r.online;
      assert.deepEqual(
        r.failed,
        [],
        'every terminal reaches a node and has its report acknowledged',
      );
      const spread = await reportedSpread('cap', n);
      t.diagnostic(`visits started again: ${r.retries} ${JSON.stringify([...r.reasons])}`);
      const want = [0.25, 0.5, 0.25];
      t.diagnostic(`terminals per node ${spread.join(', ')} (capacity shares 1:2:1 of ${n})`);
      spread.forEach((x, i) =>
        assert.ok(Math.abs(x / n / want[i]! - 1) <= 0.05, `spread ${spread.join(', ')}`),
      );
    } finally {
      for (const t of terminals) t.close();
      await Promise.all(nodes.map((x) => x.stop()));
    }
  });

  it('a node killed with SIGKILL: its terminals come back through the locator and report on live nodes', async (t) => {
    const nodes = await startNodes([1000, 1000, 1000], 'death');
    const terminals: RoamingTerminal[] = [];
    try {
      await until(() => watch.members().length === 3, 'three nodes in etcd');
      for (let i = 0; i < 45; i++) {
        const term = new RoamingTerminal({
          locatorPort: locator.port,
          phone: String(13_950_000_000 + i).padStart(12, '0'),
          maxAttempts: 30,
        });
        await term.start();
        assert.equal(await term.report(trackPoint(0)), 0);
        terminals.push(term);
      }
      const victim = nodes[0]!;
      const killedGateway = `127.0.0.1:${victim.port}`;
      const onVictim = terminals.filter((x) => x.node === killedGateway);
      assert.ok(onVictim.length > 0, 'the locator sent some terminals to the first node');
      process.kill(victim.pid, 'SIGKILL');
      const killedAt = Date.now();
      // Every terminal reports again; those of the dead node through the locator, elsewhere.
      await Promise.all(
        terminals.map(async (x, i) => {
          for (let step = 1; ; step++) {
            try {
              if (
                (await x.report(trackPoint(step, { start: Date.UTC(2026, 10, 6) + i * 1000 }))) ===
                0
              )
                return;
            } catch {
              // the node died under it: it goes back to the locator; try again shortly
            }
            assert.ok(Date.now() - killedAt < 60_000, `terminal ${i} reports again`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }),
      );
      t.diagnostic(
        `${onVictim.length} terminals of the killed node report again, the last ${Date.now() - killedAt} ms after the kill`,
      );
      for (const x of onVictim) {
        assert.notEqual(x.node, killedGateway, 'not on the dead node');
        assert.ok(x.returns >= 1, 'it went back to the locator');
      }
    } finally {
      for (const x of terminals) x.close();
      await Promise.all(nodes.slice(1).map((x) => x.stop()));
    }
  });

  it('gRPC Locate names a live node; health SERVING; bad numbers refused; none live: UNAVAILABLE', async () => {
    await until(() => watch.members().length === 0, 'no node left');
    const def = protoLoader.loadSync(LOCATOR_PROTO, {
      keepCase: false,
      defaults: true,
      oneofs: true,
    });
    const Service = (
      grpc.loadPackageDefinition(def) as unknown as {
        fleetmesh: { v1: { LocatorService: grpc.ServiceClientConstructor } };
      }
    ).fleetmesh.v1.LocatorService;
    const client = new Service(`127.0.0.1:${locator.grpcPort}`, grpc.credentials.createInsecure());
    const locate = (req: object): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) =>
        (client as unknown as { locate: LocateCall }).locate(req, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      );
    try {
      await assert.rejects(locate({ phone: '013900000001' }), { code: grpc.status.UNAVAILABLE });
      const nodes = await startNodes([10_000], 'grpc');
      try {
        await until(() => watch.members().length === 1, 'the node in etcd');
        const res = await locate({ phone: '013900000001' });
        assert.equal(res.node, 'grpc-1');
        assert.equal(res.host, '127.0.0.1');
        assert.equal(res.port, nodes[0]!.port);
        assert.equal(res.timeLimitMinutes, 60);
        await assert.rejects(locate({ vehicleId: 'abc' }), { code: grpc.status.INVALID_ARGUMENT });
        await assert.rejects(locate({}), { code: grpc.status.INVALID_ARGUMENT });
      } finally {
        await Promise.all(nodes.map((x) => x.stop()));
      }
    } finally {
      client.close();
    }
  });
});
