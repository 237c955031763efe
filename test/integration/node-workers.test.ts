// Vehicles in worker threads: frames cross in batches, backpressure at the in-flight limit
// loses nothing, a worker that dies is replaced and its terminals come back, events reach
// subscribers with their filters, and `workers: 0` keeps the same behaviour on one thread.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode, NodeOptions } from '../../node/node.js';
import { Placement, workerSlots } from '../../cluster/placement.js';
import { VehiclesUnavailable, WorkerVehicleHost } from '../../hosting/workerHost.js';
import type { VehicleEvent } from '../../actors/vehicleEvents.js';
import { encodeBody, encodeFrame } from '../../jt808/codec.js';
import { splitMessage } from '../../jt808/split.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { withTestNode } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

let servers: LocalServers;
function withNode(
  opts: Partial<NodeOptions>,
  fn: (node: FleetNode, db: string) => Promise<void>,
): Promise<void> {
  return withTestNode(servers.mongodbUri, 'workers', opts, fn);
}

async function online(port: number, phone: string): Promise<SimTerminal> {
  const t = new SimTerminal({ port, phone });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  return t;
}

/** A phone whose vehicle lands on worker `index` of `workers`. */
function phoneOn(index: number, workers: number, from: number): string {
  for (let n = from; ; n++) {
    const phone = `0139${String(n).padStart(8, '0')}`;
    if (new Placement(workerSlots(workers)).ownerOf(phone.replace(/^0+/, '')) === index)
      return phone;
  }
}

async function positions(node: FleetNode, db: string): Promise<number> {
  return node.client.db(db).collection(COLLECTIONS.positions).countDocuments();
}

before(async () => {
  servers = await startMongoForTests();
});
after(async () => {
  await servers?.stop();
});

describe('vehicles in worker threads (real sockets, real storage)', () => {
  it('at the in-flight and mailbox limits the gateway pauses reading and loses nothing', async () => {
    await withNode({ workers: 2, maxInFlight: 2, mailboxLimit: 1 }, async (node, db) => {
      assert.ok(node.host instanceof WorkerVehicleHost);
      const N = 8;
      const M = 30;
      const terminals = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          online(node.port, `0139${String(500 + i).padStart(8, '0')}`),
        ),
      );
      // Every terminal fires all its reports at once: far more than 2 records per worker.
      const results = await Promise.all(
        terminals.flatMap((t, i) =>
          Array.from({ length: M }, (_, k) => t.report(trackPoint(k, { lat: 20 + i / 10 }))),
        ),
      );
      assert.deepEqual(new Set(results), new Set([0]), 'every report acknowledged with success');
      assert.equal(await positions(node, db), N * M);
      assert.ok(node.gateway.stats.pausedForBackpressure > 0, 'reading was paused');
      // The workers decoded the bodies: each compiled the simulator's item layout it saw.
      const compiled = (await node.stats()).map((s) => s.locationLayouts.layouts);
      assert.deepEqual(compiled.length, 2);
      assert.ok(
        compiled.every((n) => n >= 1),
        `layouts per worker: ${compiled.join(', ')}`,
      );
      terminals.forEach((t) => t.close());
    });
  });

  it('a worker that dies is started again; its terminals are disconnected, come back and report', async () => {
    await withNode({ workers: 2 }, async (node, db) => {
      const host = node.host;
      assert.ok(host instanceof WorkerVehicleHost);
      const a = await online(node.port, phoneOn(0, 2, 700));
      const b = await online(node.port, phoneOn(1, 2, 700));
      assert.equal(await a.report(trackPoint(1)), 0);
      assert.equal(await b.report(trackPoint(1)), 0);
      const dead = host.threads[0]!;
      await dead.terminate();
      await until(() => a.closed, "the dead worker's terminal to be disconnected");
      await until(() => host.threads[0] !== dead, 'a fresh worker 0');
      assert.equal(host.restarts.length, 1);
      assert.equal(b.closed, false, 'the other worker’s terminal stays');
      assert.equal(await b.report(trackPoint(2)), 0);
      const code = a.authCode;
      await a.connect();
      assert.equal(await a.authenticate(code), 0, 'the auth code is read from storage again');
      assert.equal(await a.report(trackPoint(2)), 0);
      assert.equal(await positions(node, db), 4);
      a.close();
      b.close();
    });
  });

  it('a worker that keeps dying is restarted after a delay; meanwhile its vehicles are unavailable, not hung', async () => {
    await withNode({ workers: 2 }, async (node) => {
      const host = node.host;
      assert.ok(host instanceof WorkerVehicleHost);
      const vehicleOn0 = phoneOn(0, 2, 900).replace(/^0+/, '');
      let last = host.threads[0]!;
      for (let death = 1; death <= 4; death++) {
        last = host.threads[0]!;
        await last.terminate();
        await until(() => host.restarts.length === death, `death ${death} seen`);
        if (death < 4) await until(() => host.threads[0] !== last, `restart ${death}`);
      }
      // The fourth death within a minute waits 1 s before the restart.
      assert.equal(host.threads[0], last, 'not restarted yet');
      await assert.rejects(node.command(vehicleOn0, { type: 'LocationQuery', body: {} }).settled, {
        message: /restarting/,
      });
      assert.equal((await node.stats()).length, 1, 'stats from the live worker only');
      await until(() => host.threads[0] !== last, 'the delayed restart');
      await (host as WorkerVehicleHost).ready();
      assert.equal((await node.stats()).length, 2);
    });
  });

  it('calls a worker has not answered when it dies fail as unavailable instead of waiting forever', async () => {
    await withNode({ workers: 2 }, async (node) => {
      const host = node.host;
      assert.ok(host instanceof WorkerVehicleHost);
      // Vehicles on worker 0 with unsaved state: passivating them takes a write each.
      const phones = [0, 1, 2, 3].map((k) => phoneOn(0, 2, 1000 + k * 50));
      const terminals = await Promise.all(phones.map((p) => online(node.port, p)));
      for (const t of terminals) assert.equal(await t.report(trackPoint(1)), 0);
      const dead = host.threads[0]!;
      const calls = [
        node.passivateAll(),
        node.stats(),
        node.vehicle(phones[0]!.replace(/^0+/, '')),
      ];
      const outcomes = Promise.allSettled(calls);
      await dead.terminate();
      // Every call settles. Passivation (a write per vehicle) was surely still running: it
      // fails; the quick ones may have been answered just before the worker went.
      const [passivation, ...quick] = await outcomes;
      assert.equal(passivation!.status, 'rejected');
      for (const o of [passivation!, ...quick])
        if (o.status === 'rejected')
          assert.ok(o.reason instanceof VehiclesUnavailable, String(o.reason));
      await until(() => host.threads[0] !== dead, 'a fresh worker 0');
      await host.ready();
      assert.equal((await node.stats()).length, 2, 'calls work again after the restart');
      terminals.forEach((t) => t.close());
    });
  });

  it('every platform frame a terminal gets carries the next serial of one counter (gateway answers go through the vehicle)', async () => {
    await withNode({ workers: 2 }, async (node) => {
      const t = await online(node.port, '013900000950');
      assert.equal(await t.report(trackPoint(1)), 0); // answered by the vehicle
      // A frame with a wrong check code: refused by the gateway (0x8001 result 2).
      const bad = encodeFrame(
        { type: 'Heartbeat', body: {} },
        { phone: '013900000950', serial: 999, edition: 2013 },
      );
      bad[bad.length - 2] ^= 0x01;
      const refused = t.waitFor(
        (f) => f.message?.type === 'PlatformResponse' && f.message.body.replySerial === 999,
      );
      t.writeRaw(bad);
      assert.equal(((await refused).message as { body: { result: number } }).body.result, 2);
      // A blind-area batch in two packages: the first is answered by the gateway.
      const body = encodeBody(
        {
          type: 'LocationBatch',
          body: { batchType: 1, items: [1, 2, 3, 4, 5].map((k) => trackPoint(k + 10)) },
        },
        2013,
      );
      const first = t.nextSerial();
      const split = splitMessage(
        0x0704,
        body,
        { phone: '013900000950', serial: first, edition: 2013 },
        100,
      );
      for (let i = 1; i < split.serials.length; i++) t.nextSerial();
      const done = t.waitFor(
        (f) =>
          f.message?.type === 'PlatformResponse' &&
          f.message.body.replySerial === split.replySerial,
      );
      for (const f of split.frames) t.writeRaw(f);
      await done;
      assert.ok(split.frames.length >= 2);
      const serials = t.received.map((f) => f.header.serial);
      assert.deepEqual(
        serials,
        serials.map((_, i) => i),
        `one counter from 0, no repeats: ${serials.join(',')}`,
      );
      t.close();
    });
  });

  it('events reach a subscriber filtered by vehicle and kind', async () => {
    await withNode({ workers: 2 }, async (node) => {
      const seen: VehicleEvent[] = [];
      const unsubscribe = node.events.subscribe(
        { vehicleIds: new Set(['13900000801']), kinds: new Set(['position', 'online'] as const) },
        (e) => seen.push(e),
      );
      // The workers learn the wanted kinds asynchronously.
      await node.eventsReady();
      const a = await online(node.port, '013900000801');
      const b = await online(node.port, '013900000802');
      assert.equal(await a.report(trackPoint(1, { alarm: 1 })), 0);
      assert.equal(await b.report(trackPoint(1)), 0);
      a.close();
      await until(() => seen.length >= 3, 'three events');
      unsubscribe();
      assert.deepEqual(
        seen.map((e) => [e.kind, 'vehicleId' in e ? e.vehicleId : '']),
        [
          ['online', '13900000801'],
          ['position', '13900000801'],
          ['online', '13900000801'],
        ],
      );
      const pos = seen[1];
      assert.ok(pos?.kind === 'position');
      assert.equal(pos.state.latitude, trackPoint(1).latitude);
      assert.equal(pos.source, 'live');
      b.close();
    });
  });

  it('workers: 0 keeps the vehicles on the gateway thread with the same results', async () => {
    await withNode({ workers: 0 }, async (node, db) => {
      assert.ok(!(node.host instanceof WorkerVehicleHost));
      const t = await online(node.port, '013900000901');
      for (let k = 0; k < 5; k++) assert.equal(await t.report(trackPoint(k)), 0);
      assert.equal(await positions(node, db), 5);
      const v = await node.vehicle('13900000901');
      assert.equal(v?.online, true);
      assert.equal(v?.lastState?.time, trackPoint(4).time);
      assert.deepEqual(
        (await node.online()).map((o) => o.vehicleId),
        ['13900000901'],
      );
      t.close();
    });
  });
});
