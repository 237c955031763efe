// The terminal simulator against a real node: terminals report, raise alarms, lose coverage and
// re-upload their backlog with 0x0704, answer commands; its summary's acknowledged points are
// all in storage, and the alarms and blind-area points are there too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

let servers: LocalServers;
let node: FleetNode;
const database = testDatabase('sim');

before(async () => {
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database);
});
after(async () => {
  await node?.stop();
  await servers?.stop();
});

describe('terminal simulator', () => {
  it('reports, alarms, blind-area re-uploads and command answers all reach storage', async () => {
    const sim = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('../../bench/simulate.js', import.meta.url)),
        ...['--port', String(node.port), '--count', '6', '--interval-ms', '1000'],
        ...['--alarm-every', '2', '--blind-every', '2', '--blind-for', '2'],
        ...['--seconds', '7', '--seed', '42'],
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    sim.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const readyAt = Date.now() + 20_000;
    while (!out.includes('ready 6')) {
      assert.ok(Date.now() < readyAt, 'the simulator came online');
      await new Promise((r) => setTimeout(r, 20));
    }
    const { settled } = node.command('13600000003', { type: 'LocationQuery', body: {} });
    const answered = await settled;
    assert.equal(answered.state, 'answered');
    assert.equal(answered.reply?.type, 'LocationQueryReply');
    const code = await new Promise<number | null>((resolve) => sim.on('exit', resolve));
    assert.equal(code, 0);
    const line = out.split('\n').find((l) => l.startsWith('summary '));
    assert.ok(line, out);
    const summary = JSON.parse(line.slice('summary '.length)) as {
      reportsAcked: number;
      reportsFailed: number;
      pointsAcked: number;
      blindAreaBatches: number;
      alarmEpisodes: number;
      commandsAnswered: Record<string, number>;
    };
    assert.ok(summary.reportsAcked > 0);
    assert.equal(summary.reportsFailed, 0);
    assert.ok(summary.blindAreaBatches > 0, 'some terminal lost coverage and re-uploaded');
    assert.ok(summary.alarmEpisodes > 0);
    assert.equal(summary.commandsAnswered.LocationQuery, 1);
    await node.flush();
    const db = node.client.db(database);
    const stored = await db.collection(COLLECTIONS.positions).countDocuments({});
    // Reports in flight when the simulator stopped may be stored without their ack counted.
    assert.ok(stored >= summary.pointsAcked, `${stored} stored ≥ ${summary.pointsAcked} acked`);
    assert.ok(
      (await db.collection(COLLECTIONS.positions).countDocuments({ source: 'blind-area' })) > 0,
    );
    assert.ok((await db.collection(COLLECTIONS.alarms).countDocuments({ bit: 1 })) > 0);
  });

  it('writes the codes it registered with, and a later run authenticates with them only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetmesh-sim-'));
    const codes = join(dir, 'codes.json');
    const run = async (extra: string[]): Promise<{ code: number | null; out: string }> => {
      const sim = spawn(
        process.execPath,
        [
          fileURLToPath(new URL('../../bench/simulate.js', import.meta.url)),
          ...['--port', String(node.port), '--count', '5', '--first', '100', '--idle'],
          ...['--concurrency', '5', '--codes', codes, '--seconds', '0.2', ...extra],
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      sim.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const code = await new Promise<number | null>((resolve) => sim.on('exit', resolve));
      return { code, out };
    };
    try {
      const first = await run([]);
      assert.equal(first.code, 0);
      assert.match(first.out, /ready 5 \d+/);
      const written = JSON.parse(readFileSync(codes, 'utf8')) as Record<string, string>;
      const stored = await node.client
        .db(database)
        .collection<{ _id: string; authCode: string }>(COLLECTIONS.vehicles)
        .find({ _id: { $in: Object.keys(written).map((p) => p.replace(/^0+/, '')) } })
        .toArray();
      assert.equal(stored.length, 5);
      for (const v of stored) assert.equal(written[`0${v._id}`], v.authCode);

      const again = await run(['--no-register']);
      assert.equal(again.code, 0, 'every terminal authenticated with its written code');
      assert.match(again.out, /ready 5 \d+/);

      writeFileSync(
        codes,
        JSON.stringify(Object.fromEntries(Object.keys(written).map((p) => [p, 'wrong']))),
      );
      const wrong = await run(['--no-register']);
      assert.notEqual(wrong.code, 0, 'a wrong code is refused');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
