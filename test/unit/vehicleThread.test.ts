// VehicleThread (what a vehicle worker runs) over a fake database whose reads and writes fail
// when the test says: a failed state load is retried and nothing is answered or written from
// empty state before it succeeds; a write that fails for good is counted and a durable report is
// answered as failed (result 1); a transient write error is retried until stored; a malformed
// body and a failed read of a vehicle's view surface as they should; stats carry the figures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MongoNetworkError, type AnyBulkWriteOperation, type Db, type Document } from 'mongodb';
import { trackPoint } from '../../bench/terminal.js';
import type { TerminalLink } from '../../actors/vehicleActor.js';
import { VehicleThread } from '../../hosting/vehicleThread.js';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import type { Header } from '../../jt808/header.js';
import type { Message } from '../../jt808/messages.js';
import type { VehicleRecord } from '../../storage/vehicleStore.js';
import { until } from '../helpers/until.js';

const ID = '13912340000';
const PHONE = '013912340000';
const CODE = 'stored-code';

type Find = (ids: string[]) => Promise<VehicleRecord[]>;
type BulkWrite = (collection: string, ops: AnyBulkWriteOperation<Document>[]) => Promise<void>;

/** A Db whose `vehicles` reads and every collection's bulk writes are the test's functions. */
function fakeDb(
  find: Find,
  bulkWrite: BulkWrite = async () => undefined,
): { db: Db; finds: string[][]; writes: { collection: string; ops: unknown[] }[] } {
  const finds: string[][] = [];
  const writes: { collection: string; ops: unknown[] }[] = [];
  const collection = (name: string): unknown => ({
    collectionName: name,
    find: (q: { _id: { $in: string[] } }) => ({
      toArray: () => {
        finds.push(q._id.$in);
        return find(q._id.$in);
      },
    }),
    bulkWrite: async (ops: AnyBulkWriteOperation<Document>[]) => {
      await bulkWrite(name, ops);
      writes.push({ collection: name, ops });
      return {};
    },
  });
  return { db: { collection } as unknown as Db, finds, writes };
}

class RecordingLink implements TerminalLink {
  readonly id = 'node-test/1';
  readonly node = 'node-test';
  readonly sent: Uint8Array[] = [];
  send(frame: Uint8Array): void {
    this.sent.push(frame);
  }
  close(): void {}
  authenticated(): void {}
  replies(): Message[] {
    return this.sent.map((f) => {
      const r = decodeFrame(f.subarray(1, -1));
      assert.ok(r.ok && r.message);
      return r.message;
    });
  }
}

let serial = 0;
/** Hands a message to the shard as the worker does (header read, body as bytes). */
function send(shard: VehicleThread, link: TerminalLink, message: Message): boolean {
  const frame = encodeFrame(message, { phone: PHONE, serial: serial++, edition: 2013 });
  const r = decodeFrame(frame.subarray(1, -1));
  assert.ok(r.ok && r.message);
  const header: Header = r.header;
  return shard.uplinkBody(ID, link, header, 2013, r.body, Date.now());
}

/** The result of the platform response (0x8001) answering the last frame sent. */
function lastResult(link: RecordingLink): number | undefined {
  const m = link.replies().at(-1);
  return m?.type === 'PlatformResponse' ? m.body.result : undefined;
}

function shardOn(db: Db, ackMode: 'durable' | 'receive' = 'durable'): VehicleThread {
  return new VehicleThread(db, {
    policy: { registration: 'open', ackMode, saveEveryMs: 30_000 },
    writer: { maxDelayMs: 1 },
  });
}

const stored = (): VehicleRecord => ({ _id: ID, authCode: CODE, edition: 2013, phone: PHONE });

describe('VehicleThread over a failing store (unit)', () => {
  it('retries a failed state load and answers nothing, writes nothing, until it succeeds', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    let reads = 0;
    const { db, finds, writes } = fakeDb(async () => {
      reads++;
      if (reads === 1) throw new Error('store down');
      await gate;
      return [stored()];
    });
    const shard = shardOn(db);
    try {
      const link = new RecordingLink();
      assert.equal(send(shard, link, { type: 'Authenticate', body: { authCode: CODE } }), true);
      await until(() => finds.length === 2, 'the load tried again');
      assert.equal(shard.stats().loader.failedReads, 1);
      assert.deepEqual(link.sent, [], 'nothing answered from empty state');
      assert.deepEqual(writes, [], 'nothing written from empty state');
      open();
      await until(() => link.sent.length > 0, 'the authentication answered');
      assert.equal(lastResult(link), 0, 'authenticated with the stored code');
      await shard.flush();
      assert.equal(shard.stats().actors.active, 1);
    } finally {
      open();
      await shard.close();
    }
  });

  it('counts a write that fails for good and answers the durable report as failed', async () => {
    const { db } = fakeDb(
      async () => [stored()],
      async (collection) => {
        if (collection === 'positions') throw new Error('document refused');
      },
    );
    const shard = shardOn(db);
    try {
      const link = new RecordingLink();
      send(shard, link, { type: 'Authenticate', body: { authCode: CODE } });
      await until(() => link.sent.length === 1, 'the authentication answered');
      assert.equal(lastResult(link), 0);
      send(shard, link, { type: 'LocationReport', body: trackPoint(1) });
      await until(() => link.sent.length === 2, 'the report answered');
      assert.equal(lastResult(link), 1, 'answered as failed: the terminal sends it again');
      const positions = shard.stats().writers.positions;
      assert.equal(positions.failed, 1);
      assert.equal(positions.stored, 0);
    } finally {
      await shard.close();
    }
  });

  it('retries a transient write error until the report is stored, then answers it', async () => {
    let failures = 0;
    const { db, writes } = fakeDb(
      async () => [stored()],
      async (collection) => {
        if (collection === 'positions' && failures++ === 0)
          throw new MongoNetworkError('connection reset');
      },
    );
    const shard = shardOn(db);
    try {
      const link = new RecordingLink();
      send(shard, link, { type: 'Authenticate', body: { authCode: CODE } });
      send(shard, link, { type: 'LocationReport', body: trackPoint(2) });
      await until(() => link.sent.length === 2, 'the report answered');
      assert.equal(lastResult(link), 0, 'stored, then acknowledged');
      const positions = shard.stats().writers.positions;
      assert.equal(positions.retries, 1);
      assert.equal(positions.stored, 1);
      assert.equal(positions.failed, 0);
      assert.equal(writes.filter((w) => w.collection === 'positions').length, 1);
    } finally {
      await shard.close();
    }
  });

  it('counts a malformed body and answers it without storing it', async () => {
    const { db, writes } = fakeDb(async () => [stored()]);
    const shard = shardOn(db);
    try {
      const link = new RecordingLink();
      send(shard, link, { type: 'Authenticate', body: { authCode: CODE } });
      await until(() => link.sent.length === 1, 'the authentication answered');
      const header: Header = {
        messageId: 0x0200,
        bodyLength: 3,
        encryption: 0,
        headerEdition: 2013,
        versionFlag: false,
        phone: PHONE,
        serial: serial++,
      };
      assert.equal(shard.uplinkBody(ID, link, header, 2013, Uint8Array.of(1, 2, 3), 0), true);
      await until(() => link.sent.length === 2, 'the malformed report answered');
      assert.notEqual(lastResult(link), 0);
      assert.equal(shard.malformedBodies, 1);
      assert.equal(shard.stats().malformedBodies, 1);
      await shard.flush();
      assert.equal(writes.filter((w) => w.collection === 'positions').length, 0);
    } finally {
      await shard.close();
    }
  });

  it("reads a vehicle's view from the store when not in memory; a failed read fails the call", async () => {
    let down = true;
    const { db } = fakeDb(async () => {
      if (down) throw new Error('store down');
      return [stored()];
    });
    const shard = shardOn(db);
    try {
      await assert.rejects(shard.vehicle(ID), /store down/);
      down = false;
      const view = await shard.vehicle(ID);
      assert.equal(view?.vehicleId, ID);
      assert.equal(shard.stats().loader.failedReads, 1);
      assert.equal(shard.stats().actors.active, 0, 'reading the view activates nobody');
    } finally {
      await shard.close();
    }
  });
});
