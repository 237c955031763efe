// A burst of activations on the default store: 2 000 terminals register and authenticate at
// once and every one succeeds (none waits past its answer timeout); after a node restart the same
// 2 000 authenticate again against their stored records, read in batches rather than one by one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimTerminal } from '../../bench/terminal.js';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

const COUNT = Number(process.env.BURST_COUNT ?? 2000);
let servers: LocalServers;

before(async () => {
  servers = await startMongoForTests();
});
after(async () => {
  await servers?.stop();
});

/** Every terminal at once: connect, then its session step; the results in order. */
async function burst(
  terminals: SimTerminal[],
  step: (t: SimTerminal) => Promise<number>,
): Promise<(number | string)[]> {
  return Promise.all(
    terminals.map(async (t) => {
      try {
        await t.connect();
        return await step(t);
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      }
    }),
  );
}

async function loaderReads(node: FleetNode): Promise<{ reads: number; requested: number }> {
  const stats = await node.stats();
  return {
    reads: stats.reduce((n, s) => n + s.loader.reads, 0),
    requested: stats.reduce((n, s) => n + s.loader.requested, 0),
  };
}

describe('a burst of activations (real sockets, the default store)', () => {
  it(`${COUNT} terminals register and authenticate at once, then again after a restart`, async () => {
    const database = testDatabase('burst');
    const phones = Array.from({ length: COUNT }, (_, i) => `0137${String(i).padStart(8, '0')}`);
    const codes = new Map<string, string>();

    let node = await startTestNode(servers.mongodbUri, database);
    try {
      const terminals = phones.map(
        (phone) => new SimTerminal({ port: node.port, phone, timeoutMs: 30_000 }),
      );
      const registered = await burst(terminals, async (t) => {
        const r = await t.register();
        if (r !== 0) return r;
        codes.set(t.options.phone, t.authCode as string);
        return t.authenticate();
      });
      const failed = registered.filter((r) => r !== 0);
      assert.deepEqual(failed, [], 'every registration and authentication succeeded');
      terminals.forEach((t) => t.close());
      const first = await loaderReads(node);
      assert.equal(first.requested, COUNT, 'one state read asked per vehicle');
      assert.ok(first.reads < COUNT / 4, `activations shared their reads (${first.reads} reads)`);
    } finally {
      await node.stop();
    }

    node = await startTestNode(servers.mongodbUri, database);
    try {
      const stored = await node.client
        .db(database)
        .collection(COLLECTIONS.vehicles)
        .countDocuments();
      assert.equal(stored, COUNT, 'every vehicle has its record');
      const terminals = phones.map(
        (phone) => new SimTerminal({ port: node.port, phone, timeoutMs: 30_000 }),
      );
      const results = await burst(terminals, (t) => t.authenticate(codes.get(t.options.phone)));
      assert.deepEqual(
        results.filter((r) => r !== 0),
        [],
        'every terminal authenticated with its stored code after the restart',
      );
      terminals.forEach((t) => t.close());
      const again = await loaderReads(node);
      assert.ok(
        again.reads < COUNT / 4,
        `stored records were read in batches (${again.reads} reads)`,
      );
    } finally {
      await node.stop();
    }
  });
});
