// A member that loses etcd, and etcd itself going away (real etcd, real store, real sockets):
// a node whose lease is revoked stops serving its vehicles (the other takes them) and comes
// back once registered again; a node whose network path to etcd is cut (a black-holing relay)
// stops serving before its lease ends and serves again once etcd answers; while etcd is down
// for 30 s every node keeps serving on the membership it saw, and the membership converges when
// etcd returns. In all, every acknowledged report is stored and each vehicle ends active on
// exactly one node.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { writerTotals } from '../../hosting/vehicleThread.js';
import { vehicleIdOf } from '../../jt808/header.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

let servers: LocalServers;
before(async () => {
  servers = await startLocalServers();
});
after(async () => {
  await servers?.stop();
});

const TTL_SECONDS = 2;

/** Terminals on the nodes' gateways reporting every 50 ms, reconnecting when cut. */
function reportingFleet(nodes: FleetNode[], count: number, prefix: string, start: number) {
  const phones = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(8, '0')}`);
  const ids = phones.map(vehicleIdOf);
  const acked = new Map<string, number[]>(ids.map((id) => [id, []]));
  const codes = new Map<string, string>();
  const terminals = new Set<SimTerminal>();
  let running = true;
  const connect = async (i: number, first: number): Promise<SimTerminal> => {
    for (let attempt = 0; ; attempt++) {
      const t = new SimTerminal({
        port: nodes[(first + attempt) % nodes.length]!.port,
        phone: phones[i]!,
        timeoutMs: 10_000,
      });
      try {
        await t.connect();
        if (!codes.has(ids[i]!)) {
          assert.equal(await t.register(), 0);
          codes.set(ids[i]!, t.authCode!);
        }
        if ((await t.authenticate(codes.get(ids[i]!))) === 0) {
          terminals.add(t);
          return t;
        }
      } catch {
        // the next node
      }
      t.close();
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const point = (i: number, step: number) => trackPoint(step, { start: start + i * 1000 });
  const done = phones.map(async (_, i) => {
    let t = await connect(i, i % nodes.length);
    for (let step = 0; running; step++) {
      let result: number | undefined;
      try {
        result = await t.report(point(i, step));
      } catch {
        result = undefined;
      }
      if (result === 0) acked.get(ids[i]!)!.push(step);
      else {
        t.close();
        terminals.delete(t);
        t = await connect(i, i + 1);
        step--;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    t.close();
  });
  return {
    ids,
    acked,
    /** Resolves once every terminal has `more` acknowledged reports beyond what it has now. */
    async progress(more: number, what: string, ms = 30_000): Promise<void> {
      const now = new Map([...acked].map(([id, s]) => [id, s.length]));
      await until(() => [...acked].every(([id, s]) => s.length >= now.get(id)! + more), what, ms);
    },
    async stop(): Promise<void> {
      running = false;
      await Promise.all(done);
      for (const t of terminals) t.close();
    },
    /** Every acknowledged report is in the store. */
    async assertStored(node: FleetNode, database: string): Promise<void> {
      const positions = node.client.db(database).collection(COLLECTIONS.positions);
      for (const [i, id] of ids.entries()) {
        const times = new Set(
          (await positions.find({ vehicleId: id }).project({ time: 1 }).toArray()).map((d) =>
            (d.time as Date).getTime(),
          ),
        );
        for (const step of acked.get(id)!)
          assert.ok(times.has(point(i, step).time as number), `report ${step} of ${id} stored`);
      }
    },
  };
}

/**
 * A TCP relay in front of etcd for one node: `block()` makes it a black hole (what it gets is
 * dropped, nothing answers, connections stay open: a cut network path, not a refused port),
 * `unblock()` relays again.
 */
async function etcdPath(): Promise<{
  endpoint: string;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}> {
  const target = new URL(servers.etcdEndpoints[0]!);
  let blocked = false;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    if (blocked) {
      client.on('data', () => undefined); // swallowed
      return;
    }
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (b) => {
      if (!blocked) upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (!blocked) client.write(b);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    block: () => (blocked = true),
    unblock: () => {
      blocked = false;
      // Connections that lived through the cut carry half-relayed streams: they start afresh.
      for (const sock of open) sock.destroy();
    },
    close: async () => {
      for (const sock of open) sock.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function startPair(
  database: string,
  names: [string, string],
  etcdEndpoints: [string[], string[]] = [servers.etcdEndpoints, servers.etcdEndpoints],
): Promise<FleetNode[]> {
  const nodes: FleetNode[] = [];
  for (const [i, node] of names.entries())
    nodes.push(
      await startTestNode(servers.mongodbUri, database, {
        node,
        workers: 1,
        membership: { etcdEndpoints: etcdEndpoints[i]!, ttlSeconds: TTL_SECONDS },
        ...(process.env.DBG
          ? { log: (l: string) => console.error('DBG', node, Date.now() % 100000, l) }
          : {}),
      }),
    );
  await until(
    () => nodes.every((n) => n.router!.shardsPerNode().size === 2 && n.router!.pendingShards === 0),
    'both nodes to place over both',
  );
  return nodes;
}

/** Each vehicle is active on exactly the node that owns it. */
async function assertSingleOwners(nodes: FleetNode[], ids: string[]): Promise<void> {
  const activeOn = new Map<string, string[]>();
  for (const n of nodes)
    for (const v of await n.router!.localOnline())
      activeOn.set(v.vehicleId, [...(activeOn.get(v.vehicleId) ?? []), n.node]);
  for (const id of ids)
    assert.deepEqual(activeOn.get(id), [nodes[0]!.router!.ownerOf(id).node], `vehicle ${id}`);
}

describe('a member losing etcd, and etcd going away', { timeout: 180_000 }, () => {
  it('a node whose lease is revoked stops serving its vehicles, and serves again once registered', async () => {
    const database = testDatabase('lease_revoked');
    const nodes = await startPair(database, ['r1', 'r2']);
    const [r1, r2] = nodes as [FleetNode, FleetNode];
    const fleet = reportingFleet(nodes, 30, '0137', Date.UTC(2026, 10, 4));
    const etcd = new Etcd3({ hosts: servers.etcdEndpoints });
    try {
      await fleet.progress(3, 'reports before the revocation');
      const served = (await r2.router!.localOnline()).length;
      assert.ok(served > 0, 'r2 serves vehicles of its own');
      await etcd.leaseClient.leaseRevoke({ ID: r2.membership!.leaseId! });
      // r2 hands every vehicle over; r1 owns them all meanwhile.
      await until(() => r2.router!.isolated, 'r2 to stop serving on its own');
      assert.equal(r2.router!.shardsPerNode().has('r2'), false);
      await until(() => r2.membership!.rejoins >= 1 && !r2.router!.isolated, 'r2 to come back');
      await until(
        () =>
          nodes.every((n) => n.router!.shardsPerNode().size === 2 && n.router!.pendingShards === 0),
        'both nodes to place over both again',
      );
      await fleet.progress(3, 'reports after r2 is back');
      await assertSingleOwners(nodes, fleet.ids);
      await fleet.stop();
      assert.equal(r2.router!.routing().isolations, 1);
      assert.equal(r1.router!.routing().isolations, 0);
      for (const n of nodes)
        assert.equal(n.router!.routing().handoffTimeouts, 0, `${n.node}: no handoff timed out`);
      // Back under an epoch newer than r1's takeover: none of r2's writes is refused as stale.
      for (const n of nodes)
        assert.equal(writerTotals(await n.stats(), 'vehicles').fenced, 0, `${n.node} fenced`);
      await Promise.all(nodes.map((n) => n.flush()));
      await fleet.assertStored(r1, database);
    } finally {
      await fleet.stop();
      etcd.close();
      for (const n of nodes.reverse()) await n.stop();
    }
  });

  it('a node whose path to etcd is cut (the other still reaches it) stops serving its vehicles within the TTL, and serves again once etcd answers', async () => {
    const database = testDatabase('etcd_cut');
    const path = await etcdPath();
    const nodes = await startPair(database, ['c1', 'c2'], [servers.etcdEndpoints, [path.endpoint]]);
    const [c1, c2] = nodes as [FleetNode, FleetNode];
    const fleet = reportingFleet(nodes, 30, '0138', Date.UTC(2026, 10, 6));
    try {
      await fleet.progress(3, 'reports before the cut');
      assert.ok((await c2.router!.localOnline()).length > 0, 'c2 serves vehicles of its own');
      path.block();
      // c2 lets its vehicles go before its lease ends, when c1 may take them: c1's view is read
      // first, so c2 found still serving after c1 saw it gone was serving beside c1.
      let servingAfterGone = false;
      await until(
        () => {
          const gone = c1.members().length === 1;
          if (gone && !c2.router!.isolated) servingAfterGone = true;
          return gone;
        },
        'c1 to see c2 gone from etcd',
        30_000,
      );
      assert.equal(servingAfterGone, false, 'c2 stopped serving before its lease ended');
      assert.equal(c2.router!.shardsPerNode().has('c2'), false);
      await fleet.progress(3, 'reports while c2 is cut off (c1 owns every vehicle)');
      assert.equal(c1.router!.isolated, false, 'c1, which reaches etcd, keeps serving');
      path.unblock();
      await until(() => !c2.router!.isolated, 'c2 to serve again', 30_000);
      await until(
        () =>
          nodes.every((n) => n.router!.shardsPerNode().size === 2 && n.router!.pendingShards === 0),
        'both nodes to place over both again',
      );
      await fleet.progress(3, 'reports after c2 is back');
      await assertSingleOwners(nodes, fleet.ids);
      await fleet.stop();
      assert.equal(c1.router!.routing().isolations, 0);
      for (const n of nodes)
        assert.equal(n.router!.routing().handoffTimeouts, 0, `${n.node}: no handoff timed out`);
      for (const n of nodes)
        assert.equal(writerTotals(await n.stats(), 'vehicles').fenced, 0, `${n.node} fenced`);
      await Promise.all(nodes.map((n) => n.flush()));
      await fleet.assertStored(c1, database);
    } finally {
      await fleet.stop();
      path.unblock();
      for (const n of nodes.reverse()) await n.stop();
      await path.close();
    }
  });

  it("etcd down for 30 s (the issue's proof, 15 lease TTLs): reports keep being acknowledged and stored, and the membership converges", async () => {
    const database = testDatabase('etcd_outage');
    const nodes = await startPair(database, ['o1', 'o2']);
    const fleet = reportingFleet(nodes, 30, '0136', Date.UTC(2026, 10, 5));
    try {
      await fleet.progress(3, 'reports before the outage');
      const before = nodes.map((n) => n.router!.routing());
      await servers.etcd!.kill();
      // 30 s without etcd, many lease TTLs: every client-side lease is given up meanwhile.
      const downUntil = Date.now() + 30_000;
      await fleet.progress(3, 'reports while etcd is down');
      while (Date.now() < downUntil) await fleet.progress(1, 'reports while etcd is down');
      for (const n of nodes) {
        assert.equal(n.router!.routing().isolations, 0, `${n.node} kept serving`);
        assert.equal(n.membership!.inContact, false, `${n.node} has noticed etcd is gone`);
      }
      await servers.etcd!.start();
      await until(
        () => nodes.every((n) => n.membership!.inContact && n.members().length === 2),
        'both nodes to be members again',
        30_000,
      );
      await fleet.progress(3, 'reports after etcd is back');
      // Nothing moved: each took its key back on the lease it held.
      nodes.forEach((n, i) => {
        const r = n.router!.routing();
        assert.equal(r.shardsLost, before[i]!.shardsLost, `${n.node} lost no shard`);
        assert.equal(r.shardsGained, before[i]!.shardsGained, `${n.node} gained no shard`);
        assert.equal(r.handoffTimeouts, 0, `${n.node}: no handoff timed out`);
      });
      await assertSingleOwners(nodes, fleet.ids);
      await fleet.stop();
      await Promise.all(nodes.map((n) => n.flush()));
      await fleet.assertStored(nodes[0]!, database);
    } finally {
      await fleet.stop();
      await servers.etcd?.start();
      for (const n of nodes.reverse()) await n.stop();
    }
  });
});
