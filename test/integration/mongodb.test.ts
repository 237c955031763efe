// The MongoDB-protocol server we start (FerretDB, or MONGODB_URI) behaves as the storage layer
// relies on: documents round-trip through the official driver, and an unordered bulk insert
// with a duplicate key reports the duplicate while storing the rest.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoBulkWriteError, MongoClient } from 'mongodb';
import { startLocalServers, type LocalServers } from '../../cluster/localServers.js';

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
});
