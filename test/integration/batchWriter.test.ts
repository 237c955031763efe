// The batch writer against the real MongoDB-protocol server: group commit, duplicates counted
// as stored, the buffer limit as backpressure, a server outage that loses nothing, and fenced
// updates (a stale owner's write refused by the store).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type Collection, type Document } from 'mongodb';
import {
  freePort,
  freshRunDir,
  startLocalStore,
  type LocalServers,
} from '../../devservers/localServers.js';
import { BatchWriter, OWNER_EPOCH_FIELD, StaleOwner } from '../../storage/batchWriter.js';
import { startMongoForTests } from '../helpers/mongoServer.js';

describe('BatchWriter (real server)', () => {
  let servers: LocalServers;
  let client: MongoClient;

  before(async () => {
    servers = await startMongoForTests();
    client = new MongoClient(servers.mongodbUri);
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await servers?.stop();
  });

  it('stores every write once, in batches, and counts duplicates as stored', async () => {
    const col = client.db('fleetmesh_bw').collection<Document>('points');
    const w = new BatchWriter(col, { maxBatch: 100, maxDelayMs: 5 });
    const docs = Array.from({ length: 1000 }, (_, i) => ({ _id: `v1:${i}`, n: i }));
    const first = await Promise.all(docs.map((d) => w.insert(d)));
    assert.ok(first.every((o) => o === 'stored'));
    // Retransmitted: the same ids again, mixed with new ones.
    const again = await Promise.all(
      [...docs.slice(0, 50), { _id: 'v1:1000', n: 1000 }].map((d) => w.insert(d)),
    );
    assert.equal(again.filter((o) => o === 'duplicate').length, 50);
    assert.equal(again.at(-1), 'stored');
    assert.equal(await col.countDocuments(), 1001);
    assert.equal(w.stats.stored, 1001);
    assert.equal(w.stats.duplicates, 50);
    assert.ok(w.stats.batches >= 10 && w.stats.batches <= 40, `${w.stats.batches} batches`);
    await w.close();
  });

  it('replace and update by _id are idempotent', async () => {
    const col = client.db('fleetmesh_bw').collection<Document>('alarms');
    const w = new BatchWriter(col, { maxDelayMs: 1 });
    await w.replace({ _id: 'a1', state: 'open' });
    await w.replace({ _id: 'a1', state: 'closed' });
    await w.update('v9', { $set: { speed: 3 } });
    await w.update('v9', { $set: { speed: 4 } });
    assert.deepEqual(await col.find({}).sort({ _id: 1 }).toArray(), [
      { _id: 'a1', state: 'closed' },
      { _id: 'v9', speed: 4 },
    ]);
    await w.close();
  });

  it('field updates of one _id waiting in the buffer are one write, the later value winning', async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('fields');
    await col.insertOne({ _id: 'v1', kept: 1, gone: 1, speed: 0 });
    const w = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 20 });
    const outcomes = await Promise.all([
      w.setFields('v1', { speed: 1, online: true }),
      w.setFields('v1', { speed: 2 }, ['gone']),
      w.setFields('v2', { speed: 7 }),
      w.setFields('v1', { node: 'n1' }),
    ]);
    assert.deepEqual(outcomes, ['stored', 'stored', 'stored', 'stored']);
    assert.equal(w.stats.coalesced, 2);
    assert.equal(w.stats.stored, 2, 'two documents written');
    assert.deepEqual(await col.find({}).sort({ _id: 1 }).toArray(), [
      { _id: 'v1', kept: 1, speed: 2, online: true, node: 'n1' },
      { _id: 'v2', speed: 7 },
    ]);
    // A write already taken into a batch is not merged into: the next one is separate.
    const first = w.setFields('v1', { speed: 3 });
    await w.flush();
    await Promise.all([first, w.setFields('v1', { speed: 4 })]);
    assert.equal((await col.findOne({ _id: 'v1' }))?.speed, 4);
    assert.equal(w.stats.coalesced, 2);
    await w.close();
  });

  it('a refused field update rejects every caller merged into it; the updates after it are written', async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('fields_refused');
    const w = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 20 });
    // Changing _id is refused by the server for that document only.
    const results = await Promise.allSettled([
      w.setFields('v1', { speed: 1 }),
      w.setFields('v1', { _id: 'other' }),
      w.setFields('v2', { speed: 2 }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'fulfilled'],
    );
    assert.equal(w.stats.failed, 1);
    assert.deepEqual(await col.find({}).toArray(), [{ _id: 'v2', speed: 2 }]);
    await w.close();
  });

  it('a refused update among others fails alone: the ones before and after it are stored', async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('refused_middle');
    const w = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 20 });
    const results = await Promise.allSettled([
      w.setFields('v0', { speed: 0 }),
      w.setFields('v1', { _id: 'other' }), // refused by the server: _id is immutable
      w.setFields('v2', { speed: 2 }),
      w.insert({ _id: 'p1' }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    assert.equal(w.stats.failed, 1);
    assert.deepEqual(await col.find({}).sort({ _id: 1 }).toArray(), [
      { _id: 'p1' },
      { _id: 'v0', speed: 0 },
      { _id: 'v2', speed: 2 },
    ]);
    await w.close();
  });

  it('an upsert that loses the race to create its document is applied, not taken as a duplicate', async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('upsert_race');
    const a = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 1 });
    const b = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 1 });
    const ids = Array.from({ length: 50 }, (_, i) => `r${i}`);
    const outcomes = await Promise.all(
      ids.flatMap((id) => [a.setFields(id, { fromA: 1 }), b.setFields(id, { fromB: 1 })]),
    );
    assert.ok(outcomes.every((o) => o === 'stored'));
    const docs = await col.find({}).toArray();
    assert.equal(docs.length, 50);
    assert.ok(
      docs.every((d) => d.fromA === 1 && d.fromB === 1),
      'both writers applied to every document',
    );
    await a.close();
    await b.close();
  });

  it("a fenced update from an older owner is refused by the store; the newer owner's and others' go through", async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('fenced');
    const newer = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 5 });
    const stale = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 5 });
    await col.insertOne({ _id: 'legacy', a: 0 }); // written before epochs existed
    assert.equal(await newer.setFields('v1', { a: 1 }, [], 6), 'stored');
    const results = await Promise.allSettled([
      stale.setFields('v1', { a: 99 }, [], 5),
      stale.setFields('v2', { a: 2 }, [], 5),
      stale.setFields('legacy', { a: 3 }, [], 5),
    ]);
    assert.equal(results[0]!.status, 'rejected');
    assert.ok(
      results[0]!.status === 'rejected' && results[0]!.reason instanceof StaleOwner,
      'the stale write is refused as such',
    );
    assert.deepEqual(
      results.slice(1).map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
    assert.equal(stale.stats.fenced, 1);
    // The same epoch is the same owner: it may write again.
    assert.equal(await newer.setFields('v1', { b: 1 }, [], 6), 'stored');
    assert.deepEqual(await col.find({}).sort({ _id: 1 }).toArray(), [
      { _id: 'legacy', a: 3, [OWNER_EPOCH_FIELD]: 5 },
      { _id: 'v1', a: 1, b: 1, [OWNER_EPOCH_FIELD]: 6 },
      { _id: 'v2', a: 2, [OWNER_EPOCH_FIELD]: 5 },
    ]);
    await newer.close();
    await stale.close();
  });

  it("a fenced replace (alarm records) from an older owner is refused by the store; the newer owner's and others' go through", async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string } & Document>('fenced_replace');
    const newer = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 5 });
    const stale = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 5 });
    await col.insertOne({ _id: 'legacy', open: true }); // written before epochs existed
    assert.equal(await newer.replace({ _id: 'a1', open: false, by: 'newer' }, 6), 'stored');
    const results = await Promise.allSettled([
      stale.replace({ _id: 'a1', open: true, by: 'stale' }, 5),
      stale.replace({ _id: 'a2', open: true }, 5),
      stale.replace({ _id: 'legacy', open: false }, 5),
    ]);
    assert.ok(
      results[0]!.status === 'rejected' && results[0]!.reason instanceof StaleOwner,
      'the stale replace is refused as such',
    );
    assert.deepEqual(
      results.slice(1).map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
    assert.equal(stale.stats.fenced, 1);
    assert.equal(await newer.replace({ _id: 'a1', open: false, by: 'newer', n: 2 }, 6), 'stored');
    assert.deepEqual(await col.find({}).sort({ _id: 1 }).toArray(), [
      { _id: 'a1', open: false, by: 'newer', n: 2, [OWNER_EPOCH_FIELD]: 6 },
      { _id: 'a2', open: true, [OWNER_EPOCH_FIELD]: 5 },
      { _id: 'legacy', open: false, [OWNER_EPOCH_FIELD]: 5 },
    ]);
    await newer.close();
    await stale.close();
  });

  it('replaces hundreds of existing documents', async () => {
    const col = client.db('fleetmesh_bw').collection<{ _id: string; v: number }>('many_replaces');
    await col.insertMany(Array.from({ length: 300 }, (_, i) => ({ _id: `r${i}`, v: 0 })));
    const w = new BatchWriter(col as unknown as Collection<Document>, { maxDelayMs: 50 });
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, (_, i) => w.replace({ _id: `r${i}`, v: 1 })),
    );
    assert.equal(outcomes.length, 300);
    assert.equal(await col.countDocuments({ v: 1 }), 300);
    assert.ok(w.stats.batches >= 300 / 32, `${w.stats.batches} batches`);
    await w.close();
  });

  it('reports full at its limit and drains once the database has caught up', async () => {
    const col = client.db('fleetmesh_bw').collection<Document>('bounded');
    const w = new BatchWriter(col, { maxBatch: 50, maxDelayMs: 1000, maxBuffered: 120 });
    let drains = 0;
    w.onDrain(() => drains++);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 119; i++) writes.push(w.insert({ _id: `b${i}` }));
    assert.equal(w.full, false);
    writes.push(w.insert({ _id: 'b119' }));
    assert.equal(w.full, true, 'full at the limit');
    writes.push(w.insert({ _id: 'b120' }));
    assert.equal(w.buffered, 121, 'a write past the limit is still taken, never dropped');
    await Promise.all(writes);
    assert.equal(w.full, false);
    assert.ok(drains >= 1);
    assert.equal(await col.countDocuments(), 121);
    await w.close();
  });
});

describe('BatchWriter across a server outage (real FerretDB stopped and restarted)', () => {
  const dir = freshRunDir('batchwriter-outage');

  it('retries while the server is down and stores every write once it is back', async () => {
    if (process.env.MONGODB_URI) return; // needs a server this test can stop
    const port = await freePort();
    let server = await startLocalStore({ dataDir: join(dir, 'data'), logDir: dir, port });
    const client = new MongoClient(server.uri, {
      serverSelectionTimeoutMS: 500,
      connectTimeoutMS: 500,
    });
    try {
      await client.connect();
      const col = client.db('fleetmesh_bw').collection<Document>('outage');
      const w = new BatchWriter(col, {
        maxBatch: 20,
        maxDelayMs: 5,
        retryBaseMs: 50,
        retryMaxMs: 300,
      });
      const done = Array.from({ length: 50 }, (_, i) => w.insert({ _id: `o${i}` }));
      await Promise.all(done);
      await server.stop();
      const during = Array.from({ length: 100 }, (_, i) => w.insert({ _id: `o${50 + i}` }));
      let settled = 0;
      during.forEach((p) => p.then(() => settled++));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(settled, 0, 'nothing is acknowledged while the server is down');
      assert.ok(w.stats.retries > 0, 'the writer retried');
      server = await startLocalStore({ dataDir: join(dir, 'data'), logDir: dir, port });
      const outcomes = await Promise.all(during);
      assert.equal(outcomes.length, 100);
      assert.equal(await col.countDocuments(), 150);
      await w.close();
    } finally {
      await client.close();
      await server.stop();
    }
  });
});
