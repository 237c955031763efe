// One node end to end over real sockets and the real MongoDB-protocol server: terminals
// register, authenticate and report; reports are stored exactly once and acknowledged only once
// stored; the session rules hold; alarms open and close; state survives a node restart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Document } from 'mongodb';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import type { LocalServers } from '../../devservers/localServers.js';
import { startNode, type FleetNode, type NodeOptions } from '../../node/node.js';
import { writerTotals } from '../../hosting/vehicleThread.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { withTestNode } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

let servers: LocalServers;
function withNode(
  fn: (node: FleetNode, db: string) => Promise<void>,
  opts: Partial<NodeOptions> = {},
): Promise<void> {
  return withTestNode(servers.mongodbUri, 'node', opts, fn);
}

async function online(
  port: number,
  phone: string,
  edition: 2013 | 2019 = 2013,
): Promise<SimTerminal> {
  const t = new SimTerminal({ port, phone, edition });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  return t;
}

/** Until an asking condition holds (checked every 10 ms), failing after `ms` naming it. */
async function untilAnswered(
  cond: () => Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Until the node's vehicle has taken its terminal's closed connection (holds no link). */
function offline(node: FleetNode, vehicleId: string): Promise<void> {
  return untilAnswered(
    async () => (await node.vehicle(vehicleId))?.online === false,
    `${vehicleId} offline`,
  );
}

async function docs(
  node: FleetNode,
  database: string,
  collection: string,
  filter: Document = {},
): Promise<Document[]> {
  return node.client.db(database).collection(collection).find(filter).toArray();
}

// One MongoDB-protocol server for the whole file (etcd is not used by a single node yet).
before(async () => {
  servers = await startMongoForTests();
});
after(async () => {
  await servers?.stop();
});

describe('one node end to end (real sockets, real storage)', () => {
  it('N terminals × M reports, with retransmissions: exactly N×M positions, each acknowledged after it was stored', async () => {
    await withNode(async (node, db) => {
      const N = 20;
      const M = 15;
      const terminals = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          online(node.port, `0139${String(i).padStart(8, '0')}`, i % 2 ? 2019 : 2013),
        ),
      );
      await Promise.all(
        terminals.map(async (t, i) => {
          for (let k = 0; k < M; k++) {
            const serial = t.nextSerial();
            assert.equal(await t.report(trackPoint(k, { lat: 30 + i / 100 }), serial), 0);
            // Every third report is sent again with the same serial, as a terminal does when its ack was lost.
            if (k % 3 === 0)
              assert.equal(await t.report(trackPoint(k, { lat: 30 + i / 100 }), serial), 0);
          }
        }),
      );
      const stored = await docs(node, db, COLLECTIONS.positions);
      assert.equal(stored.length, N * M);
      assert.equal(new Set(stored.map((d) => d._id)).size, N * M);
      assert.ok(writerTotals(await node.stats(), 'positions').duplicates >= N * Math.ceil(M / 3));
      terminals.forEach((t) => t.close());
    });
  });

  it('two different reports in one GNSS second are both stored; the same report sent again or re-uploaded is stored once', async () => {
    await withNode(async (node, db) => {
      const t = await online(node.port, '013900000888');
      const periodic = trackPoint(7);
      // An alarm report right after the periodic one, within the same second.
      const alarm = { ...trackPoint(7), alarm: 1 << 1, speed: 95 };
      assert.equal(await t.report(periodic), 0);
      assert.equal(await t.report(alarm), 0);
      // A retransmission (new serial, same bytes) and a blind-area re-upload of the same point.
      assert.equal(await t.report(periodic), 0);
      assert.equal(
        await t.request({ type: 'LocationBatch', body: { batchType: 1, items: [alarm] } }),
        0,
      );
      const stored = await docs(node, db, COLLECTIONS.positions, { vehicleId: '13900000888' });
      assert.equal(stored.length, 2);
      assert.deepEqual(
        stored.map((d) => [(d.time as Date).getTime(), d.alarm, d.speed]).sort(),
        [
          [periodic.time, 0, periodic.speed],
          [periodic.time, 1 << 1, 95],
        ].sort(),
      );
      t.close();
    });
  });

  it('a blind-area re-upload (0x0704) lands in history in GNSS order without rewinding the last state', async () => {
    await withNode(async (node, db) => {
      const t = await online(node.port, '013900000777');
      assert.equal(await t.report(trackPoint(100)), 0);
      const backlog = [5, 3, 4, 1, 2].map((k) => trackPoint(k));
      assert.equal(
        await t.request({ type: 'LocationBatch', body: { batchType: 1, items: backlog } }),
        0,
      );
      const history = await node.client
        .db(db)
        .collection(COLLECTIONS.positions)
        .find({ vehicleId: '13900000777' })
        .sort({ time: 1 })
        .toArray();
      assert.deepEqual(
        history.map((d) => [(d.time as Date).getTime(), d.source]),
        [
          ...[1, 2, 3, 4, 5].map((k) => [trackPoint(k).time, 'blind-area']),
          [trackPoint(100).time, 'live'],
        ],
      );
      await node.passivateAll();
      const [vehicle] = await docs(node, db, COLLECTIONS.vehicles, { _id: '13900000777' });
      assert.equal(vehicle?.lastState.time, trackPoint(100).time);
      assert.ok(
        vehicle?.registration.registeredAt instanceof Date,
        'registeredAt is stored as a date',
      );
      t.close();
    });
  });

  it('reports before authentication and under a spoofed phone are refused and never stored', async () => {
    await withNode(async (node, db) => {
      const stranger = new SimTerminal({ port: node.port, phone: '013900000001' });
      await stranger.connect();
      assert.equal(await stranger.report(trackPoint(1)), 1, 'failure result before authentication');
      const wrongCode = new SimTerminal({ port: node.port, phone: '013900000002' });
      await wrongCode.connect();
      assert.equal(await wrongCode.register(), 0);
      assert.equal(await wrongCode.authenticate('not-the-code'), 1);
      assert.equal(await wrongCode.report(trackPoint(1)), 1);

      const honest = await online(node.port, '013900000003');
      const spoof = new SimTerminal({ port: node.port, phone: '013900000004' });
      // Same connection as `honest`, another phone in the header.
      const serial = honest.nextSerial();
      const answer = honest.waitFor(
        (f) => f.message?.type === 'PlatformResponse' && f.message.body.replySerial === serial,
      );
      const frame = await import('../../jt808/codec.js').then((c) =>
        c.encodeFrame(
          { type: 'LocationReport', body: trackPoint(1) },
          { phone: spoof.options.phone, serial, edition: 2013 },
        ),
      );
      honest.writeRaw(frame);
      const f = await answer;
      assert.ok(f.message?.type === 'PlatformResponse');
      assert.equal(f.message.body.result, 2);
      assert.equal(await honest.report(trackPoint(2)), 0);

      const stored = await docs(node, db, COLLECTIONS.positions);
      assert.deepEqual(
        stored.map((d) => d.vehicleId),
        ['13900000003'],
      );
      assert.equal(node.gateway.stats.unauthenticated, 2);
      assert.equal(node.gateway.stats.phoneMismatch, 1);
      [stranger, wrongCode, honest].forEach((t) => t.close());
    });
  });

  it('a scripted alarm sequence yields alarm records with start and end positions', async () => {
    await withNode(async (node, db) => {
      const t = await online(node.port, '013900000555');
      const OVERSPEED = 1 << 1;
      const POWER = 1 << 8;
      const seq = [0, OVERSPEED, OVERSPEED, OVERSPEED | POWER, POWER, 0];
      for (let k = 0; k < seq.length; k++)
        assert.equal(await t.report(trackPoint(k, { alarm: seq[k]! })), 0);
      const alarms = await node.client
        .db(db)
        .collection(COLLECTIONS.alarms)
        .find({})
        .sort({ bit: 1 })
        .toArray();
      assert.deepEqual(
        alarms.map((a) => [
          a.bit,
          a.start.latitude,
          a.end?.latitude,
          (a.startTime as Date).getTime(),
          (a.endTime as Date).getTime(),
          a.handlingStatus,
        ]),
        [
          [
            1,
            trackPoint(1).latitude,
            trackPoint(4).latitude,
            trackPoint(1).time,
            trackPoint(4).time,
            -1,
          ],
          [
            8,
            trackPoint(3).latitude,
            trackPoint(5).latitude,
            trackPoint(3).time,
            trackPoint(5).time,
            -1,
          ],
        ],
      );
      t.close();
    });
  });

  it('a new connection with the same identity replaces the old one', async () => {
    await withNode(async (node) => {
      const first = await online(node.port, '013900000888');
      const second = new SimTerminal({ port: node.port, phone: '013900000888' });
      await second.connect();
      assert.equal(await second.authenticate(first.authCode), 0);
      await until(() => first.closed, 'the old connection closed');
      assert.equal(await second.report(trackPoint(1)), 0);
      second.close();
    });
  });

  it('after a node restart, last state and sessions come back from storage', async () => {
    const database = `fleetmesh_node_${process.pid}_restart`;
    const opts = { mongodbUri: servers.mongodbUri, database, writer: { maxDelayMs: 5 } };
    let node = await startNode(opts);
    const t = await online(node.port, '013900000999');
    const code = t.authCode;
    assert.equal(await t.report(trackPoint(7)), 0);
    t.close();
    // The closed connection reaches the vehicle before the node stops (its offline session).
    await offline(node, '13900000999');
    await node.stop();

    node = await startNode(opts);
    try {
      const again = new SimTerminal({ port: node.port, phone: '013900000999' });
      await again.connect();
      assert.equal(await again.authenticate(code), 0, 'the auth code survived the restart');
      const vehicle = await node.vehicle('13900000999');
      assert.equal(vehicle?.lastState?.time, trackPoint(7).time);
      assert.equal(vehicle?.lastState?.latitude, trackPoint(7).latitude);
      // Session events are written behind the answer: flush before reading them.
      await node.flush();
      const sessions = await node.client
        .db(database)
        .collection(COLLECTIONS.sessions)
        .find({ vehicleId: '13900000999' })
        .sort({ at: 1 })
        .toArray();
      assert.deepEqual(
        sessions.map((s) => [s.event, s.reason]),
        [
          ['online', 'authenticated'],
          ['offline', 'connection closed'],
          ['online', 'authenticated'],
        ],
      );
      again.close();
    } finally {
      await node.stop();
    }
  });
});

describe('downlink commands (real sockets, real storage)', () => {
  it('a command queued while the terminal is offline is delivered after it authenticates, and its reply matched', async () => {
    const database = `fleetmesh_cmd_${process.pid}_1`;
    const node = await startNode({
      mongodbUri: servers.mongodbUri,
      database,
      writer: { maxDelayMs: 5 },
    });
    try {
      const t = await online(node.port, '013900001001');
      const code = t.authCode;
      t.close();
      await offline(node, '13900001001');
      const { id, settled } = node.command('13900001001', {
        type: 'TextMessage',
        body: { flag: 0x08, text: '请回公司' },
      });
      const again = new SimTerminal({ port: node.port, phone: '013900001001' });
      await again.connect();
      const delivered = again.waitFor((f) => f.message?.type === 'TextMessage');
      assert.equal(await again.authenticate(code), 0);
      const f = await delivered;
      assert.ok(f.message?.type === 'TextMessage');
      assert.equal(f.message.body.text, '请回公司');
      again.send({
        type: 'TerminalResponse',
        body: { replySerial: f.header.serial, replyId: 0x8300, result: 0 },
      });
      const ev = await settled;
      assert.deepEqual([ev.commandId, ev.state], [id, 'answered']);
      await node.flush();
      const log = await node.client
        .db(database)
        .collection(COLLECTIONS.commands)
        .find({ commandId: id })
        .sort({ at: 1 })
        .toArray();
      assert.deepEqual(
        log.map((e) => e.state),
        ['queued', 'sent', 'answered'],
      );
      again.close();
    } finally {
      await node.stop();
    }
  });

  it('a command still waiting when its vehicle is passivated settles as queued (nobody waits forever)', async () => {
    await withNode(
      async (node) => {
        const t = await online(node.port, '013900001003');
        t.close();
        const { settled } = node.command('13900001003', {
          type: 'TextMessage',
          body: { flag: 0x08, text: 'later' },
        });
        const ev = await settled;
        assert.equal(ev.state, 'queued');
        assert.match(ev.detail ?? '', /passivated/);
      },
      { idlePassivateMs: 300 },
    );
  });

  it('vehicles that come and go leave memory once idle; a connected one stays however quiet', async () => {
    await withNode(
      async (node, db) => {
        const stayer = await online(node.port, '013900009999');
        const count = 600;
        for (let wave = 0; wave < count; wave += 100) {
          await Promise.all(
            Array.from({ length: 100 }, async (_, i) => {
              const t = await online(node.port, `0139000${String(wave + i).padStart(5, '0')}`);
              assert.equal(await t.report(trackPoint(1)), 0);
              t.close();
            }),
          );
        }
        const active = async (): Promise<number> =>
          (await node.stats()).reduce((n, s) => n + s.actors.active, 0);
        await untilAnswered(async () => (await active()) <= 1, 'idle vehicles passivated', 60_000);
        const stats = await node.stats();
        assert.equal(
          stats.reduce((n, s) => n + s.actors.passivations, 0),
          count,
          'every vehicle that left was passivated once',
        );
        assert.equal((await node.vehicle('13900009999'))?.online, true, 'the connected one stays');
        assert.equal(await stayer.report(trackPoint(2)), 0, 'and keeps its session');
        const stored = await docs(node, db, COLLECTIONS.vehicles, {
          online: false,
          _id: { $ne: '13900009999' },
        });
        assert.equal(stored.length, count, 'each left with its state saved as offline');
      },
      { idlePassivateMs: 300 },
    );
  });

  it('pending commands survive a node restart', async () => {
    const database = `fleetmesh_cmd_${process.pid}_2`;
    const opts = { mongodbUri: servers.mongodbUri, database, writer: { maxDelayMs: 5 } };
    let node = await startNode(opts);
    const t = await online(node.port, '013900001002');
    const code = t.authCode;
    t.close();
    await offline(node, '13900001002');
    const queued = node.command('13900001002', {
      type: 'TextMessage',
      body: { flag: 0x08, text: 'after restart' },
    });
    // A command holding bytes: they must come back from storage as bytes, not BSON Binary.
    const raw = node.command('13900001002', {
      type: 'SetParameters',
      body: { params: [{ id: 0xf001, value: Uint8Array.of(1, 2, 0x7e, 4) }] },
    });
    // Until the actor has taken both and stored them, then stop the node before the terminal
    // comes back.
    await node.flush();
    await node.stop();
    // Stopping passivates the vehicle: whoever waited hears the commands stay queued.
    for (const c of [queued, raw]) assert.equal((await c.settled).state, 'queued');
    node = await startNode(opts);
    try {
      const back = new SimTerminal({ port: node.port, phone: '013900001002' });
      await back.connect();
      const delivered = back.waitFor((f) => f.message?.type === 'TextMessage');
      const parameters = back.waitFor((f) => f.message?.type === 'SetParameters');
      back.answerCommands(() => trackPoint(1));
      assert.equal(await back.authenticate(code), 0);
      const f = await delivered;
      assert.ok(f.message?.type === 'TextMessage');
      assert.equal(f.message.body.text, 'after restart');
      const p = await parameters;
      assert.ok(p.message?.type === 'SetParameters');
      assert.deepEqual(p.message.body.params, [
        { id: 0xf001, value: Uint8Array.of(1, 2, 0x7e, 4) },
      ]);
      back.close();
    } finally {
      await node.stop();
    }
  });
});
