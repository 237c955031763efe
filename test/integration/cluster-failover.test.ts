// kill -9 of one of 3 nodes under load (real etcd, real store; the killed node in a process of
// its own): its terminals reconnect to the others, their vehicles activate on the new owners
// from what was stored, no acknowledged report is lost, and a command queued for one of them
// before the kill reaches its terminal after the reconnect.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forkNode } from '../../bench/nodeProcess.js';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
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

describe(
  'failover (real etcd, real store, a node killed with SIGKILL)',
  { timeout: 180_000 },
  () => {
    it('terminals of a killed node report again through the others; nothing acknowledged is lost', async (t) => {
      const database = testDatabase('failover');
      const membership = { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: TTL_SECONDS };
      const live: FleetNode[] = [];
      for (const node of ['f1', 'f2'])
        live.push(
          await startTestNode(servers.mongodbUri, database, { node, workers: 1, membership }),
        );
      const doomed = await forkNode({
        node: 'f3',
        mongodbUri: servers.mongodbUri,
        database,
        workers: 1,
        writer: { maxDelayMs: 5 },
        membership,
      });
      const [f1, f2] = live as [FleetNode, FleetNode];
      await until(
        () =>
          live.every((n) => n.router!.shardsPerNode().size === 3 && n.router!.pendingShards === 0),
        'both live nodes to place over 3 nodes',
      );
      const ports = [f1.port, f2.port, doomed.port];
      const COUNT = 45;
      const phones = Array.from({ length: COUNT }, (_, i) => `0138${String(i).padStart(8, '0')}`);
      const ids = phones.map(vehicleIdOf);
      const codes = new Map<string, string>();
      const acked = new Map<string, number[]>(ids.map((id) => [id, []]));
      const reconnectedAt = new Map<string, number>();
      let running = true;
      let killedAt = 0;
      const terminals = new Map<string, SimTerminal>();

      // The vehicle that gets a command while its terminal is away: owned by f3, terminal on f1.
      const away = ids.findIndex((id) => f1.router!.ownerOf(id).node === 'f3');
      assert.ok(away >= 0);

      /** Connects to the first reachable node (f3's port fails once it is dead) and authenticates. */
      const connect = async (i: number, start: number): Promise<SimTerminal> => {
        for (let attempt = 0; ; attempt++) {
          const port = ports[(start + attempt) % ports.length]!;
          const term = new SimTerminal({ port, phone: phones[i]!, timeoutMs: 15_000 });
          try {
            await term.connect();
            const code = codes.get(ids[i]!);
            if (code === undefined) {
              assert.equal(await term.register(), 0);
              codes.set(ids[i]!, term.authCode!);
            }
            if ((await term.authenticate(codes.get(ids[i]!))) === 0) {
              term.answerCommands(() => trackPoint(0));
              terminals.set(ids[i]!, term);
              return term;
            }
          } catch {
            // refused, closed or timed out: the next node
          }
          term.close();
          await new Promise((r) => setTimeout(r, 100));
        }
      };

      const load = phones.map(async (_, i) => {
        // The vehicle with the command waits, disconnected, until after the kill.
        if (i === away) return;
        let term = await connect(i, i % 3);
        for (let step = 0; running; step++) {
          let result: number | undefined;
          try {
            result = await term.report(
              trackPoint(step, { start: Date.UTC(2026, 10, 3) + i * 1000 }),
            );
          } catch {
            result = undefined; // connection lost or no answer: reconnect, send again
          }
          if (result === 0) {
            acked.get(ids[i]!)!.push(step);
            if (killedAt > 0 && term.options.port !== doomed.port && !reconnectedAt.has(ids[i]!))
              reconnectedAt.set(ids[i]!, Date.now());
          } else {
            term.close();
            term = await connect(i, (i + 1) % 3);
            step--; // the same report again
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        term.close();
      });

      try {
        // A registered vehicle of f3's, offline, with a command queued on f3 through f1.
        const first = await connect(away, 0);
        first.close();
        for (let i = 0; (await f1.vehicle(ids[away]!))?.online !== false; i++) {
          assert.ok(i < 500, 'the away vehicle goes offline');
          await new Promise((r) => setTimeout(r, 20));
        }
        f1.command(ids[away]!, {
          type: 'TextMessage',
          body: { flag: 0x08, text: 'after failover' },
        });
        // Queued on f3 and stored there (with the vehicle's record) before anything else.
        const vehicles = f1.client.db(database).collection(COLLECTIONS.vehicles);
        for (let i = 0; ; i++) {
          const doc = await vehicles.findOne({ _id: ids[away]! as never });
          if (Array.isArray(doc?.pendingCommands) && doc.pendingCommands.length === 1) break;
          assert.ok(i < 500, 'the command is stored in the vehicle record');
          await new Promise((r) => setTimeout(r, 20));
        }
        await until(
          () => [...acked.values()].filter((s) => s.length >= 3).length >= COUNT - 1,
          'load',
        );
        const before = new Map([...acked].map(([id, s]) => [id, s.length]));
        process.kill(doomed.pid, 'SIGKILL');
        killedAt = Date.now();
        // Every terminal reports again (its vehicle on a live owner), and the queued command
        // reaches the terminal that was away once it is back.
        await until(
          () => [...acked].every(([id, s]) => id === ids[away] || s.length >= before.get(id)! + 3),
          'every terminal to report again after the kill',
          60_000,
        );
        const back = await connect(away, 1);
        const text = await back.waitFor((f) => f.message?.type === 'TextMessage');
        assert.ok(text.message?.type === 'TextMessage');
        assert.equal(text.message.body.text, 'after failover');
        const lastReconnect = Math.max(...reconnectedAt.values());
        t.diagnostic(
          `after the kill (ms): ${[...reconnectedAt.values()]
            .map((v) => v - killedAt)
            .sort((a, b) => a - b)
            .join(' ')}`,
        );
        t.diagnostic(
          `terminals reporting again through live nodes: ${reconnectedAt.size}; last ${lastReconnect - killedAt} ms after the kill (lease TTL ${TTL_SECONDS} s)`,
        );
        running = false;
        await Promise.all(load);

        // The vehicles are on f1 and f2 only now, each on its owner.
        for (const n of live) assert.equal(n.router!.shardsPerNode().has('f3'), false);
        // No acknowledged report is lost (f3 acknowledged only what was stored).
        await Promise.all(live.map((n) => n.flush()));
        const positions = f1.client.db(database).collection(COLLECTIONS.positions);
        for (const [i, id] of ids.entries()) {
          const times = new Set(
            (await positions.find({ vehicleId: id }).project({ time: 1 }).toArray()).map((d) =>
              (d.time as Date).getTime(),
            ),
          );
          for (const step of acked.get(id)!)
            assert.ok(
              times.has(
                trackPoint(step, { start: Date.UTC(2026, 10, 3) + i * 1000 }).time as number,
              ),
              `acknowledged report ${step} of ${id} is stored`,
            );
        }
      } finally {
        running = false;
        for (const term of terminals.values()) term.close();
        try {
          process.kill(doomed.pid, 'SIGKILL');
        } catch {
          // already dead
        }
        for (const n of live.reverse()) await n.stop();
      }
    });
  },
);
