// BatchWriter against a collection that records its bulk writes and answers when the test says:
// how many bulk writes are in flight at once, that none is lost when they overlap, and the hard
// limit on what the writer holds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AnyBulkWriteOperation, Collection, Document } from 'mongodb';
import { BatchWriter, WriterFull } from '../../storage/batchWriter.js';

/** A collection whose bulk writes wait until `release` is called. */
function gatedCollection(): {
  collection: Collection<Document>;
  calls: AnyBulkWriteOperation<Document>[][];
  inFlight: () => number;
  maxInFlight: () => number;
  release(): void;
} {
  const calls: AnyBulkWriteOperation<Document>[][] = [];
  const gates: (() => void)[] = [];
  let inFlight = 0;
  let max = 0;
  const collection = {
    collectionName: 'positions',
    bulkWrite: async (ops: AnyBulkWriteOperation<Document>[]) => {
      calls.push(ops);
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise<void>((r) => gates.push(r));
      inFlight--;
      return {};
    },
  } as unknown as Collection<Document>;
  return {
    collection,
    calls,
    inFlight: () => inFlight,
    maxInFlight: () => max,
    release: () => {
      for (const g of gates.splice(0)) g();
    },
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('BatchWriter (unit)', () => {
  for (const maxConcurrent of [1, 2]) {
    it(`keeps at most ${maxConcurrent} bulk write(s) in flight and settles every write`, async () => {
      const c = gatedCollection();
      const w = new BatchWriter(c.collection, { maxBatch: 10, maxDelayMs: 1, maxConcurrent });
      const writes = Array.from({ length: 55 }, (_, i) => w.insert({ _id: `p${i}` }));
      // The store answers every few milliseconds; the collection records the most at once.
      const answering = setInterval(() => c.release(), 2);
      await w.close();
      clearInterval(answering);
      assert.deepEqual(await Promise.all(writes), Array(55).fill('stored'));
      assert.equal(c.maxInFlight(), maxConcurrent);
      assert.deepEqual(
        c.calls
          .flat()
          .map((op) => ('insertOne' in op ? op.insertOne.document._id : undefined))
          .sort(),
        Array.from({ length: 55 }, (_, i) => `p${i}`).sort(),
        'every write sent once',
      );
      assert.equal(w.stats.stored, 55);
    });
  }

  it('flush resolves only once the writes in flight beside it are acknowledged', async () => {
    const c = gatedCollection();
    const w = new BatchWriter(c.collection, { maxBatch: 2, maxDelayMs: 1000, maxConcurrent: 2 });
    const first = [w.insert({ _id: 'a' }), w.insert({ _id: 'b' })]; // a full batch: goes out
    await turn();
    let flushed = false;
    const f = w.flush().then(() => (flushed = true));
    await turn();
    assert.equal(flushed, false, 'the batch in flight is not acknowledged yet');
    c.release();
    await f;
    assert.deepEqual(await Promise.all(first), ['stored', 'stored']);
    await w.close();
  });

  it('past maxHeld a write is refused at once with WriterFull and counted; taken again once acknowledged', async () => {
    const c = gatedCollection();
    const w = new BatchWriter(c.collection, {
      maxBatch: 4,
      maxDelayMs: 1,
      maxBuffered: 4,
      maxHeld: 6,
    });
    const held = Array.from({ length: 6 }, (_, i) => w.insert({ _id: `p${i}` }));
    assert.equal(w.full, true);
    await assert.rejects(w.insert({ _id: 'p6' }), WriterFull);
    assert.equal(w.stats.refused, 1);
    const answering = setInterval(() => c.release(), 2);
    assert.deepEqual(await Promise.all(held), Array(6).fill('stored'));
    assert.equal(await w.insert({ _id: 'p6' }), 'stored', 'taken again once there is room');
    await w.close();
    clearInterval(answering);
    assert.equal(w.stats.stored, 7);
  });

  it('fenced updates of one _id merge only under the same epoch, and carry it in filter and fields', async () => {
    const c = gatedCollection();
    const w = new BatchWriter(c.collection, { maxDelayMs: 1 });
    const writes = [
      w.setFields('v1', { a: 1 }, [], 5),
      w.setFields('v1', { b: 1 }, [], 5),
      w.setFields('v1', { c: 1 }, [], 6),
    ];
    assert.equal(w.stats.coalesced, 1, 'the second merged into the first; the third did not');
    const answering = setInterval(() => c.release(), 2);
    await Promise.all(writes);
    await w.close();
    clearInterval(answering);
    const updates = c.calls.flat().map((op) => ('updateOne' in op ? op.updateOne : undefined));
    assert.deepEqual(
      updates.map((u) => [u?.filter.$or?.[0]?.ownerEpoch, u?.update]),
      [
        [{ $lte: 5 }, { $set: { a: 1, b: 1, ownerEpoch: 5 } }],
        [{ $lte: 6 }, { $set: { c: 1, ownerEpoch: 6 } }],
      ],
    );
  });
});
