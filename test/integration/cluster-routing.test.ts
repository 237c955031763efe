// Three nodes against one etcd and one MongoDB-protocol server (real sockets, real stores): a
// terminal may connect to any node, its vehicle lives on exactly one (node, worker) slot, frames
// cross to the owner and the answers come back; a service may call any node for any vehicle.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { vehicleIdOf } from '../../jt808/header.js';
import { contains, type AreaShape } from '../../storage/historyShapes.js';
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

/**
 * Frames that overtook an earlier one wait for it this long: long enough that in these tests a
 * gap given up means a frame lost, not a slow one.
 */
const ORDER_WAIT_MS = 15_000;

async function startCluster(database: string, names: string[]): Promise<FleetNode[]> {
  const nodes: FleetNode[] = [];
  for (const node of names)
    nodes.push(
      await startTestNode(servers.mongodbUri, database, {
        node,
        workers: 1,
        membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: 2 },
        metrics: { port: 0 },
        policy: { linkOrderWaitMs: ORDER_WAIT_MS },
      }),
    );
  await until(
    () => nodes.every((n) => n.router!.shardsPerNode().size === names.length),
    'every node to place vehicles over every node',
  );
  return nodes;
}

const phoneOf = (i: number): string => `0139${String(i).padStart(8, '0')}`;

describe(
  'a cluster of 3 nodes routes vehicles to their owners (real etcd, real store)',
  { timeout: 180_000 },
  () => {
    it('terminals all on node 1: each vehicle active on one node, reports stored once, commands through node 2', async () => {
      const database = testDatabase('cluster');
      const nodes = await startCluster(database, ['n1', 'n2', 'n3']);
      const [n1, n2] = nodes as [FleetNode, FleetNode, FleetNode];
      const terminals: SimTerminal[] = [];
      try {
        const COUNT = 300; // the proof
        for (let from = 0; from < COUNT; from += 50) {
          const batch = Array.from({ length: Math.min(50, COUNT - from) }, (_, k) => from + k);
          terminals.push(
            ...(await Promise.all(
              batch.map(async (i) => {
                const t = new SimTerminal({ port: n1.port, phone: phoneOf(i) });
                await t.connect();
                assert.equal(await t.register(), 0, `terminal ${i} registers through node 1`);
                assert.equal(
                  await t.authenticate(),
                  0,
                  `terminal ${i} authenticates through node 1`,
                );
                t.answerCommands(() => trackPoint(i));
                return t;
              }),
            )),
          );
        }
        // A subscriber on node 2 sees the positions of every node's vehicles.
        const seen = new Set<string>();
        n2.events.subscribe({ kinds: new Set(['position']) }, (e) => {
          if (e.kind === 'position') seen.add(e.vehicleId);
        });
        await n2.eventsReady();
        for (let i = 0; i < COUNT; i++) {
          assert.equal(await terminals[i]!.report(trackPoint(i)), 0, `report of terminal ${i}`);
        }
        await until(() => seen.size === COUNT, "node 2 to see every vehicle's position");

        // Every vehicle is active on exactly the node that owns it; the owners span the cluster.
        const ids = terminals.map((t) => vehicleIdOf(t.options.phone));
        const activeOn = new Map<string, string[]>();
        for (const n of nodes)
          for (const v of await n.router!.localOnline())
            activeOn.set(v.vehicleId, [...(activeOn.get(v.vehicleId) ?? []), n.node]);
        const owners = new Set<string>();
        for (const id of ids) {
          const owner = n1.router!.ownerOf(id).node;
          owners.add(owner);
          assert.deepEqual(activeOn.get(id), [owner], `vehicle ${id} active on its owner only`);
          for (const n of nodes) assert.equal(n.router!.ownerOf(id).node, owner, 'views agree');
        }
        assert.equal(owners.size, 3, 'the vehicles are spread over the 3 nodes');
        const routed = n1.router!.routing();
        assert.ok(routed.routedOut > 0, 'node 1 sent frames to other owners');
        assert.equal(routed.routedIn, 0, 'node 1 holds every socket: nothing comes to it');
        const scraped = await (await fetch(`http://127.0.0.1:${n1.metrics!.port}/metrics`)).text();
        const out = /fleetmesh_routed_records_total\{direction="out"\} (\d+)/.exec(scraped);
        assert.ok(out, 'routing is exported');
        assert.ok(Number(out[1]) >= routed.routedOut, "the exported count is the router's");
        assert.match(scraped, /fleetmesh_isolated 0/);

        // Every acknowledged report is stored once.
        await Promise.all(nodes.map((n) => n.flush()));
        const positions = await n1.client
          .db(database)
          .collection(COLLECTIONS.positions)
          .countDocuments();
        assert.equal(positions, COUNT);

        // The whole cluster's online list from any node.
        const listed = (await n2.online()).map((v) => v.vehicleId).sort();
        assert.deepEqual(listed, [...ids].sort());

        // Vehicles in an area now, asked of node 2, answered from every node's actors: equal to
        // a brute-force test of the positions the terminals reported (random shapes).
        let seed = 7;
        const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        const at = ids.map((_, i) => trackPoint(i));
        let matched = 0;
        for (let k = 0; k < 12; k++) {
          const lat = 31.2304 + rand() * 0.006;
          const lon = 121.4737 + rand() * 0.012;
          const shapes: AreaShape[] = [
            {
              kind: 'rectangle',
              minLatitude: lat - 0.002,
              minLongitude: lon - 0.004,
              maxLatitude: lat + 0.002,
              maxLongitude: lon + 0.004,
            },
            { kind: 'circle', latitude: lat, longitude: lon, radiusM: 100 + rand() * 400 },
            {
              kind: 'polygon',
              vertices: [
                { latitude: lat - 0.003, longitude: lon },
                { latitude: lat, longitude: lon + 0.006 },
                { latitude: lat + 0.003, longitude: lon },
                { latitude: lat, longitude: lon - 0.006 },
              ],
            },
          ];
          for (const shape of shapes) {
            const want = ids.filter((_, i) => contains(shape, at[i]!.latitude, at[i]!.longitude));
            matched += want.length;
            const got = await n2.inArea(shape, { online: true }, 1000);
            assert.deepEqual(
              got.vehicles.map((v) => v.vehicleId).sort(),
              [...want].sort(),
              `vehicles in ${JSON.stringify(shape)}`,
            );
            assert.equal(got.more, false);
          }
        }
        assert.ok(matched > 60, 'the shapes held vehicles (of several nodes)');
        const everywhere: AreaShape = {
          kind: 'rectangle',
          minLatitude: 31,
          minLongitude: 121,
          maxLatitude: 32,
          maxLongitude: 122,
        };
        const limited = await n2.inArea(everywhere, {}, 5);
        assert.equal(limited.vehicles.length, 5);
        assert.equal(limited.more, true, 'more matched than the limit');
        assert.equal((await n2.inArea(everywhere, { minSpeedKmh: 50 }, 100)).vehicles.length, 0);
        assert.equal((await n2.inArea(everywhere, { online: false }, 100)).vehicles.length, 0);

        // A command for a vehicle owned by node 3, sent through node 2, delivered and answered.
        const i3 = ids.findIndex((id) => n1.router!.ownerOf(id).node === 'n3');
        assert.ok(i3 >= 0);
        const { settled } = n2.command(ids[i3]!, {
          type: 'TextMessage',
          body: { flag: 0x08, text: 'through node 2' },
        });
        const ev = await settled;
        assert.equal(ev.state, 'answered');
        assert.equal(terminals[i3]!.answered.get('TextMessage'), 1);
        const view = await n2.vehicle(ids[i3]!);
        assert.equal(view?.online, true, "node 2 reads node 3's live view");
      } finally {
        for (const t of terminals) t.close();
        for (const n of nodes.reverse()) await n.stop();
      }
    });

    it('a node joins under load: only the shards it wins move, sessions go on, in order, nothing lost or doubled', async () => {
      const database = testDatabase('cluster_join');
      const nodes = await startCluster(database, ['j1', 'j2']);
      const terminals: SimTerminal[] = [];
      let running = true;
      const acked = new Map<string, number[]>();
      let refused = 0;
      try {
        const COUNT = 40;
        for (let i = 0; i < COUNT; i++) {
          const t = new SimTerminal({
            port: nodes[0]!.port,
            phone: phoneOf(1000 + i),
            timeoutMs: 20_000,
          });
          await t.connect();
          assert.equal(await t.register(), 0);
          assert.equal(await t.authenticate(), 0);
          terminals.push(t);
        }
        // Every terminal reports until told to stop, 3 reports on their way at a time: frames of
        // one connection are on the wire together when their vehicle moves (they may overtake).
        const load = terminals.map(async (t, i) => {
          const id = vehicleIdOf(t.options.phone);
          const steps: number[] = [];
          acked.set(id, steps);
          for (let step = 0; running; step += 3) {
            const results = await Promise.all(
              [0, 1, 2].map((k) =>
                t.report(trackPoint(step + k, { start: Date.UTC(2026, 10, 2) + i })),
              ),
            );
            results.forEach((result, k) => {
              if (result === 0) steps.push(step + k);
              else refused++;
            });
            await new Promise((r) => setTimeout(r, 20));
          }
        });
        await until(
          () => [...acked.values()].every((s) => s.length >= 3),
          'reports before the join',
        );
        const before = nodes.map((n) => n.router!.routing());
        // Throughout the join, no vehicle is online on two nodes at once. Vehicles only move to
        // the new node, so it is read first: one seen there, then on an old node, was on both.
        let sampling = true;
        let samples = 0;
        const doubled = new Set<string>();
        const sampler = (async () => {
          while (sampling) {
            const joined = nodes[2];
            if (joined) {
              const there = new Set((await joined.router!.localOnline()).map((v) => v.vehicleId));
              for (const n of nodes.slice(0, 2))
                for (const v of await n.router!.localOnline())
                  if (there.has(v.vehicleId)) doubled.add(v.vehicleId);
              samples++;
            }
            await new Promise((r) => setTimeout(r, 10));
          }
        })();
        nodes.push(
          await startTestNode(servers.mongodbUri, database, {
            node: 'j3',
            workers: 1,
            membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: 2 },
            policy: { linkOrderWaitMs: ORDER_WAIT_MS },
          }),
        );
        await until(
          () =>
            nodes.every(
              (n) => n.router!.shardsPerNode().size === 3 && n.router!.pendingShards === 0,
            ),
          'every node to place over 3 nodes with no handoff pending',
        );
        await Promise.all(nodes.map((n) => n.router!.handoffDone()));
        const counts = [...acked.values()].map((s) => s.length);
        await until(
          () => [...acked.values()].every((s, i) => s.length >= counts[i]! + 3),
          'reports after the join',
        );
        running = false;
        await Promise.all(load);
        sampling = false;
        await sampler;
        assert.ok(samples >= 5, `the active lists were sampled during the join (${samples})`);
        assert.deepEqual([...doubled], [], 'no vehicle online on two nodes at any sample');

        // Only the shards the new node wins moved: what it gained is what the others lost.
        const [r1, r2, r3] = nodes.map((n, i) => {
          const r = n.router!.routing();
          const b = before[i];
          return {
            shardsGained: r.shardsGained - (b?.shardsGained ?? 0),
            shardsLost: r.shardsLost - (b?.shardsLost ?? 0),
            vehiclesHandedOff: r.vehiclesHandedOff - (b?.vehiclesHandedOff ?? 0),
            handoffTimeouts: r.handoffTimeouts,
          };
        }) as [Moves, Moves, Moves];
        assert.equal(r3.shardsLost, 0);
        assert.equal(r1.shardsGained + r2.shardsGained, 0, 'the old nodes gain nothing');
        assert.equal(r1.shardsLost + r2.shardsLost, r3.shardsGained);
        assert.equal(r3.shardsGained, nodes[2]!.router!.shardsPerNode().get('j3'));
        assert.equal(r3.handoffTimeouts, 0, 'the old owners handed off in time');
        assert.ok(
          r1.vehiclesHandedOff + r2.vehiclesHandedOff > 0,
          'vehicles moved to the new node',
        );

        // No session was lost: every report was acknowledged, none refused.
        assert.equal(refused, 0);
        // Every vehicle is active on exactly its owner; no stale owner ever wrote over a new one.
        const activeOn = new Map<string, string[]>();
        for (const n of nodes)
          for (const v of await n.router!.localOnline())
            activeOn.set(v.vehicleId, [...(activeOn.get(v.vehicleId) ?? []), n.node]);
        for (const t of terminals) {
          const id = vehicleIdOf(t.options.phone);
          assert.deepEqual(activeOn.get(id), [nodes[0]!.router!.ownerOf(id).node], `vehicle ${id}`);
        }
        const stats = (await Promise.all(nodes.map((n) => n.stats()))).flat();
        assert.equal(
          stats.reduce((n, s) => n + s.writers.vehicles.fenced, 0),
          0,
        );
        // Each vehicle took its connection's frames in the order they were read: any that
        // overtook another on the way waited for it (held), none had to go on without it.
        const order = stats.map((s) => s.linkOrder);
        assert.deepEqual(
          { gapsSkipped: sum(order, 'gapsSkipped'), late: sum(order, 'late') },
          { gapsSkipped: 0, late: 0 },
          `frames put back in order: ${JSON.stringify(order)}`,
        );

        // Every acknowledged report is stored, once.
        await Promise.all(nodes.map((n) => n.flush()));
        const positions = n1Positions(nodes[0]!, database);
        for (const [id, steps] of acked) {
          const stored = await positions.countDocuments({ vehicleId: id });
          assert.equal(stored, steps.length, `reports of ${id} stored once each`);
        }
      } finally {
        running = false;
        for (const t of terminals) t.close();
        for (const n of nodes.reverse()) await n.stop();
      }
    });
  },
);

function sum<K extends string>(rows: Record<K, number>[], key: K): number {
  return rows.reduce((n, r) => n + r[key], 0);
}

interface Moves {
  shardsGained: number;
  shardsLost: number;
  vehiclesHandedOff: number;
  handoffTimeouts: number;
}

function n1Positions(node: FleetNode, database: string) {
  return node.client.db(database).collection(COLLECTIONS.positions);
}
