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
import { MEDIA_BUCKET } from '../../storage/mediaStore.js';
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
    // A TakePhoto for 2 photos: the 0x0805 names 2 media ids, then both are uploaded (0x0801,
    // larger than one packet, so in sub-packages) and stored under those ids.
    const photo = await node.command('13600000004', {
      type: 'TakePhoto',
      body: {
        channel: 1,
        command: 2,
        intervalSeconds: 0,
        save: 0,
        resolution: 1,
        quality: 5,
        brightness: 128,
        contrast: 64,
        saturation: 64,
        chroma: 128,
      },
    }).settled;
    assert.equal(photo.state, 'answered');
    assert.equal(photo.reply?.type, 'PhotoReply');
    const mediaIds = photo.reply?.type === 'PhotoReply' ? (photo.reply.body.mediaIds ?? []) : [];
    assert.equal(mediaIds.length, 2);
    const files = node.client.db(database).collection<{
      length: number;
      metadata: { vehicleId: string; mediaId: number; mediaType: number; channel: number };
    }>(`${MEDIA_BUCKET}.files`);
    const storedPhotos = async (): Promise<{ length: number; metadata: { mediaId: number } }[]> =>
      files.find({ 'metadata.vehicleId': '13600000004' }).toArray();
    for (let tries = 0; (await storedPhotos()).length < 2; tries++) {
      assert.ok(tries < 500, 'the photos were never stored');
      await new Promise((r) => setTimeout(r, 20));
    }
    const photos = await storedPhotos();
    assert.deepEqual(photos.map((f) => f.metadata.mediaId).sort(), [...mediaIds].sort());
    for (const f of photos) assert.ok(f.length > 1023, `${f.length} bytes: more than one packet`);
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
      mediaUploaded: number;
      mediaFailed: number;
      driverCards: number;
      driverCardsAcked: number;
    };
    assert.equal(summary.mediaUploaded, 2);
    assert.equal(summary.mediaFailed, 0);
    assert.ok(summary.driverCards >= 6, 'every terminal reported its driver’s card');
    assert.equal(summary.driverCardsAcked, summary.driverCards);
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
    // Every terminal's driver card, inserted when it came online, is a driver record.
    const drivers = await db
      .collection<{ vehicleId: string; state: number }>(COLLECTIONS.driverRecords)
      .find({ state: 1 })
      .toArray();
    assert.equal(new Set(drivers.map((d) => d.vehicleId)).size, 6);
    assert.ok(
      (await db.collection(COLLECTIONS.driverRecords).countDocuments({})) >=
        summary.driverCardsAcked,
    );
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
