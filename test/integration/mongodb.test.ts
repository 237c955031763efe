// The MongoDB-protocol server we start (FerretDB, or MONGODB_URI) behaves as the storage layer
// relies on: documents round-trip through the official driver, and an unordered bulk insert
// with a duplicate key reports the duplicate while storing the rest; reads by _id and by $in of
// ids answer exactly, and on PostgreSQL through the _id index (our FerretDB patch 0001); a bulk
// write of hundreds of updates answers (patch 0002).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MongoBulkWriteError, MongoClient, ObjectId } from 'mongodb';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import { postgresBinDir } from '../../devservers/localStore.js';

/** Documents whose _id is of any type, as MongoDB allows. */
interface AnyId {
  _id: string | number | ObjectId | { a: number };
  n: number;
}

/** One row of one query to the PostgreSQL under FerretDB, as text. */
function psql(url: string, sql: string): string {
  const r = spawnSync(join(postgresBinDir() as string, 'psql'), [url, '-Atc', sql], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('MongoDB protocol server (real)', () => {
  let servers: LocalServers;
  let client: MongoClient;

  before(async () => {
    servers = await startLocalServers();
    client = new MongoClient(servers.mongodbUri);
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await servers?.stop();
  });

  it('inserts and reads back documents with the official driver', async () => {
    const col = client
      .db('fleetmesh_test')
      .collection<{ _id: string; speed: number; at: Date }>('roundtrip');
    const at = new Date('2026-01-02T03:04:05.000Z');
    await col.insertMany([
      { _id: 'a', speed: 10, at },
      { _id: 'b', speed: 20, at },
    ]);
    const docs = await col.find({}).sort({ _id: 1 }).toArray();
    assert.deepEqual(docs, [
      { _id: 'a', speed: 10, at },
      { _id: 'b', speed: 20, at },
    ]);
  });

  it('unordered bulk insert reports the duplicate key and keeps the rest', async () => {
    const col = client.db('fleetmesh_test').collection<{ _id: string; n: number }>('bulkdup');
    await col.insertOne({ _id: 'p2', n: 0 });
    const batch = [1, 2, 3, 4].map((n) => ({ _id: `p${n}`, n }));
    let caught: unknown;
    try {
      await col.insertMany(batch, { ordered: false });
    } catch (err) {
      caught = err;
    }
    assert.ok(
      caught instanceof MongoBulkWriteError,
      'a duplicate key surfaces as a bulk write error',
    );
    const dupErrors = caught.writeErrors as unknown as { code: number; index: number }[];
    const list = Array.isArray(dupErrors) ? dupErrors : [dupErrors];
    assert.equal(list.length, 1);
    assert.equal(list[0]?.code, 11000);
    assert.equal(list[0]?.index, 1);
    assert.equal(caught.result.insertedCount, 3);
    const stored = await col.find({}).sort({ _id: 1 }).toArray();
    assert.deepEqual(
      stored.map((d) => [d._id, d.n]),
      [
        ['p1', 1],
        ['p2', 0],
        ['p3', 3],
        ['p4', 4],
      ],
    );
  });

  // FerretDB v1.24 kept every update's query open until the command returned and hung past its
  // 50 pooled connections (our patch 0002); the timeout turns such a hang into a failure.
  it(
    'one bulk write of 300 replaces and $set updates applies each',
    { timeout: 60_000 },
    async () => {
      const col = client
        .db('fleetmesh_test')
        .collection<{ _id: string; n: number; m?: number }>('bulkupdates');
      const ids = Array.from({ length: 300 }, (_, i) => `u${i}`);
      await col.insertMany(ids.slice(0, 200).map((_id) => ({ _id, n: 0 })));
      const result = await col.bulkWrite(
        ids.map((_id, i) =>
          i % 2 === 0
            ? { replaceOne: { filter: { _id }, replacement: { _id, n: i }, upsert: true } }
            : { updateOne: { filter: { _id }, update: { $set: { n: i, m: 1 } }, upsert: true } },
        ),
        { ordered: false },
      );
      assert.equal(result.matchedCount, 200);
      assert.equal(result.upsertedCount, 100);
      const docs = await col.find({}).sort({ n: 1 }).toArray();
      assert.deepEqual(
        docs.map((d) => [d._id, d.n, d.m]),
        ids.map((_id, i) => [_id, i, i % 2 === 0 ? undefined : 1]),
      );
    },
  );

  it('reads by _id and by $in of ids answer exactly what a scan answers', async () => {
    const col = client.db('fleetmesh_test').collection<AnyId>('byid');
    const oids = Array.from({ length: 5 }, () => new ObjectId());
    const docs: AnyId[] = [
      ...Array.from({ length: 300 }, (_, i) => ({ _id: `v${i}`, n: i })),
      ...oids.map((_id, i) => ({ _id, n: 1000 + i })),
      { _id: 7, n: -1 },
      { _id: '7', n: -2 },
      { _id: { a: 1 }, n: -3 },
    ];
    await col.insertMany(docs);
    const scan = async (pred: (d: AnyId) => boolean): Promise<number[]> =>
      (await col.find({}).toArray())
        .filter(pred)
        .map((d) => d.n)
        .sort((a, b) => a - b);
    const ns = (found: AnyId[]): number[] => found.map((d) => d.n).sort((a, b) => a - b);

    for (const id of ['v0', 'v299', '7', 'missing']) {
      assert.deepEqual(ns(await col.find({ _id: id }).toArray()), await scan((d) => d._id === id));
      assert.deepEqual(
        ns(await col.find({ _id: { $eq: id } }).toArray()),
        await scan((d) => d._id === id),
      );
    }
    assert.deepEqual(ns(await col.find({ _id: oids[2] }).toArray()), [1002]);
    assert.deepEqual(ns(await col.find({ _id: 7 }).toArray()), [-1], 'a number is not its string');

    const wanted = ['v5', 'v5', 'v250', 'nope', '7', 'v17'];
    assert.deepEqual(
      ns(await col.find({ _id: { $in: wanted } }).toArray()),
      await scan((d) => typeof d._id === 'string' && wanted.includes(d._id)),
    );
    assert.deepEqual(
      ns(await col.find({ _id: { $in: [oids[0], oids[4], 'v1'] } }).toArray()),
      [1, 1000, 1004],
    );
    // Mixed types fall back to the handler's own filtering: still exact.
    assert.deepEqual(
      ns(await col.find({ _id: { $in: [7, 'v3', { a: 1 }] } }).toArray()),
      [-3, -1, 3],
    );
    assert.deepEqual(ns(await col.find({ _id: { $in: [] } }).toArray()), []);
    // An $in combined with another condition keeps both.
    assert.deepEqual(
      ns(await col.find({ _id: { $in: ['v1', 'v2', 'v3'] }, n: { $gt: 1 } }).toArray()),
      [2, 3],
    );
  });

  it('on PostgreSQL, reads by _id and $in use the _id index instead of scanning', async (t) => {
    const url = servers.postgresqlUrl;
    if (!url) {
      t.skip('the local store is not on PostgreSQL');
      return;
    }
    const col = client.db('fleetmesh_test').collection<AnyId>('indexed');
    await col.insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: `v${i}`, n: i })));
    // Rows read by sequential scans, and index scans, of the collection's table so far.
    const stats = (): { seqRows: number; idx: number } => {
      const [seqRows, idx] = psql(
        url,
        `select coalesce(sum(seq_tup_read),0), coalesce(sum(idx_scan),0) from pg_stat_user_tables where schemaname = 'fleetmesh_test' and relname like 'indexed%'`,
      ).split('|');
      return { seqRows: Number(seqRows), idx: Number(idx) };
    };
    for (let i = 0; i < 20; i++) await col.findOne({ _id: `v${i * 7}` });
    await col.find({ _id: { $in: ['v1', 'v2', 'v400'] } }).toArray();
    await col.updateOne({ _id: 'v9' }, { $set: { n: -9 } });
    // A backend publishes its counters up to 10 s after it goes idle; wait for them to arrive.
    const deadline = Date.now() + 20_000;
    let now = stats();
    while (now.idx < 22 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      now = stats();
    }
    assert.ok(now.idx >= 22, `the 22 reads went through the _id index (index scans: ${now.idx})`);
    assert.equal(now.seqRows, 0, 'no read scanned the table');
  });
});
