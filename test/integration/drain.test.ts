// Drain with real processes (issue 12 part 4): etcd and the MongoDB-protocol server, the
// `fleetmesh locator` process and three node processes as `fleetmesh start` runs them. Terminals
// configured with the locator report continuously; `fleetmesh drain node-3 --rate R` marks
// node-3 draining: the command returns once node-3 holds no terminal, every terminal it held
// followed its 0x8105 to another node, no second of the drain saw more than the rate allows
// (the node's own send times), the locators no longer choose node-3, and every acknowledged
// report is stored once. gRPC LocatorService.Drain takes the order back (and wants a token).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Etcd3 } from 'etcd3';
import { MongoClient } from 'mongodb';
import { RoamingTerminal } from '../../bench/locatorTerminal.js';
import { trackPoint } from '../../bench/terminal.js';
import { forkNodeChild, type NodeChild } from '../../cli/start.js';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import { LOCATOR_PROTO } from '../../locator/locatorGrpc.js';
import { MemberWatch } from '../../cluster/membership.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { until } from '../helpers/until.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const TOKEN = 'drain-test';
const TERMINALS = 30;
const RATE = 4;

let servers: LocalServers;
let etcd: Etcd3;
let watch: MemberWatch;
let locator: { child: ChildProcess; port: number; grpcPort: number };
let nodes: NodeChild[] = [];
const terminals: RoamingTerminal[] = [];

async function startLocatorProcess(): Promise<typeof locator> {
  const child = spawn(
    process.execPath,
    [
      'dist/cli/main.js',
      'locator',
      ...['--etcd-endpoints', servers.etcdEndpoints.join(',')],
      ...['--host', '127.0.0.1', '--port', '0', '--grpc-port', '0', '--grpc-token', TOKEN],
      ...['--log-level', 'error'],
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

/** Runs the CLI to its end (at most 45 s), with its output. */
async function fleetmesh(args: string[]): Promise<{ status: number | null; out: string }> {
  const child = spawn(process.execPath, ['dist/cli/main.js', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const [status] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { status, out };
}

before(async () => {
  servers = await startLocalServers();
  etcd = new Etcd3({ hosts: servers.etcdEndpoints });
  watch = await MemberWatch.start(etcd);
  nodes = await Promise.all(
    ['node-1', 'node-2', 'node-3'].map((node) =>
      forkNodeChild({
        node,
        mongodbUri: servers.mongodbUri,
        etcdEndpoints: servers.etcdEndpoints,
        host: '127.0.0.1',
        port: 0,
        grpcPort: 0,
        metricsPort: 0,
        ackMode: 'durable',
        tokens: [TOKEN],
        logLevel: 'error',
      }),
    ),
  );
  locator = await startLocatorProcess();
});

after(async () => {
  for (const t of terminals) t.close();
  for (const n of [...nodes].reverse()) await n.stop();
  locator?.child.kill('SIGTERM');
  await watch?.close();
  etcd?.close();
  await servers?.stop();
});

describe('drain', () => {
  it('fleetmesh drain node-3: its terminals move to the others at the rate, no acknowledged report lost', async () => {
    await until(() => watch.members().length === 3, 'three members');
    // Every terminal reports every 100 ms and keeps what was acknowledged (the GNSS times).
    const acked = new Map<string, number[]>();
    const failed = { n: 0 };
    let stop = false;
    const loops: Promise<void>[] = [];
    for (let i = 0; i < TERMINALS; i++) {
      const phone = `0139${String(i).padStart(8, '0')}`;
      const t = new RoamingTerminal({
        host: '127.0.0.1',
        locatorPort: locator.port,
        phone,
        edition: ([2011, 2013, 2019] as const)[i % 3]!,
      });
      terminals.push(t);
      await t.start();
      const times: number[] = [];
      acked.set(phone.replace(/^0+/, ''), times);
      loops.push(
        (async () => {
          for (let step = 0; !stop; step++) {
            const p = trackPoint(step, { start: Date.UTC(2026, 10, 1) + i * 1_000_000 });
            const result = await t.report(p).catch(() => -1);
            if (result === 0 && p.time !== null) times.push(p.time);
            else failed.n++;
            await new Promise((r) => setTimeout(r, 100));
          }
        })(),
      );
    }
    const gateway3 = `127.0.0.1:${nodes[2]!.port}`;
    const held = terminals.filter((t) => t.node === gateway3).length;
    assert.ok(held > 0, 'the locator gave node-3 some terminals');
    await until(() => [...acked.values()].every((s) => s.length >= 3), 'reports before the drain');

    // Not spawnSync: the terminals here must keep running to follow their 0x8105.
    const drain = await fleetmesh([
      'drain',
      'node-3',
      ...['--rate', String(RATE), '--etcd-endpoints', servers.etcdEndpoints.join(',')],
    ]);
    assert.equal(drain.status, 0, drain.out);
    assert.match(drain.out, /node-3 holds no terminals/);

    const s3 = await nodes[2]!.status();
    assert.equal(s3.draining, true);
    assert.equal(s3.connections, 0);
    const d = s3.drain!;
    assert.ok(d.told >= held, `told ${d.told}, held ${held}`);
    assert.equal(d.closedLate, 0, 'every terminal followed its 0x8105');
    const spanMs = (d.recent.at(-1)?.[0] ?? 0) - (d.recent[0]?.[0] ?? 0);
    process.stdout.write(
      `node-3 held ${held} of ${TERMINALS}; told ${d.told} in ${d.recent.length} ticks over ${spanMs} ms at --rate ${RATE}; ${failed.n} reports unanswered so far (resent by a device)\n`,
    );
    // The bound, from the node's own send times: no second holds more than the rate (and the
    // one tick's worth the bucket may hold at its start).
    for (const [at] of d.recent) {
      const inSecond = d.recent
        .filter(([t]) => t >= at && t < at + 1000)
        .reduce((a, [, n]) => a + n, 0);
      assert.ok(inSecond <= RATE + 1, `${inSecond} sent in the second from ${at}`);
    }
    // Everyone is on node-1 or node-2, the moved ones by node-3's 0x8105.
    await until(() => terminals.every((t) => t.node !== undefined), 'every terminal settled');
    assert.ok(terminals.every((t) => t.node !== gateway3));
    assert.ok(terminals.filter((t) => t.moves > 0).length >= held);
    const [s1, s2] = await Promise.all([nodes[0]!.status(), nodes[1]!.status()]);
    assert.equal(s1.connections - s1.pending + (s2.connections - s2.pending), TERMINALS);

    // The locator no longer chooses node-3: new terminals go elsewhere.
    for (let i = 0; i < 6; i++) {
      const t = new RoamingTerminal({
        host: '127.0.0.1',
        locatorPort: locator.port,
        phone: `0138${String(i).padStart(8, '0')}`,
      });
      await t.start();
      assert.notEqual(t.node, gateway3);
      t.close();
    }

    // Reports go on after the move; then stop and compare with the store.
    const counts = [...acked.values()].map((s) => s.length);
    await until(
      () => [...acked.values()].every((s, i) => s.length >= counts[i]! + 3),
      'reports after the drain',
    );
    stop = true;
    await Promise.all(loops);
    const client = new MongoClient(servers.mongodbUri);
    try {
      const positions = client.db('fleetmesh').collection(COLLECTIONS.positions);
      for (const [vehicleId, times] of acked) {
        const stored = (await positions.find({ vehicleId }).project({ time: 1 }).toArray()).map(
          (p) => new Date(p.time as Date | number).getTime(),
        );
        assert.equal(new Set(stored).size, stored.length, `${vehicleId}: each report stored once`);
        const have = new Set(stored);
        const lost = times.filter((t) => !have.has(t));
        assert.deepEqual(lost, [], `${vehicleId}: acknowledged reports not stored`);
      }
    } finally {
      await client.close();
    }
  });

  it('gRPC LocatorService.Drain wants a token, and takes the order back', async () => {
    const def = protoLoader.loadSync(LOCATOR_PROTO, { keepCase: false, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      fleetmesh: { v1: { LocatorService: grpc.ServiceClientConstructor } };
    };
    const client = new pkg.fleetmesh.v1.LocatorService(
      `127.0.0.1:${locator.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    type DrainCall = (
      req: object,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    const call = (req: object, token?: string): Promise<Record<string, unknown>> => {
      const md = new grpc.Metadata();
      if (token) md.set('authorization', `Bearer ${token}`);
      return new Promise((resolve, reject) =>
        (client as unknown as { drain: DrainCall }).drain.call(client, req, md, (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      );
    };
    try {
      await assert.rejects(call({ node: 'node-3', cancel: true }), {
        code: grpc.status.UNAUTHENTICATED,
      });
      await assert.rejects(call({ node: 'no such/node' }, TOKEN), {
        code: grpc.status.INVALID_ARGUMENT,
      });
      await assert.rejects(call({ node: 'node-3', rate: 10_001 }, TOKEN), {
        code: grpc.status.INVALID_ARGUMENT,
      });
      const r = await call({ node: 'node-3', cancel: true }, TOKEN);
      assert.equal(r.draining, false);
      assert.equal(r.member, true);
      await until(
        () => watch.members().find((m) => m.node === 'node-3')?.load.draining !== true,
        'node-3 reports it is not draining',
      );
      assert.equal((await nodes[2]!.status()).draining, false);
    } finally {
      client.close();
    }
  });
});
