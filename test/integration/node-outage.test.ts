// The MongoDB-protocol server stops for 10 s while terminals report: nothing dies, reading
// pauses, nothing is acknowledged while the database is away, and once it is back every
// acknowledged report is stored. And the store stops while 200 vehicles activate: none is answered
// from empty state, and each is answered with its stored record once the store is back.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { freePort, freshRunDir, startLocalStore } from '../../devservers/localServers.js';
import { writerTotals } from '../../hosting/vehicleThread.js';
import { startNode } from '../../node/node.js';
import { COLLECTIONS } from '../../storage/schema.js';

// Removed after a pass, kept and named after a failure (freshRunDir).
const dir = freshRunDir('node-outage');

describe('storage outage under load (real FerretDB stopped for 10 s)', () => {
  it(
    'pauses, acknowledges nothing while down, and stores every acknowledged report',
    { skip: Boolean(process.env.MONGODB_URI) && 'needs a server the test can stop' },
    async () => {
      const port = await freePort();
      let db = await startLocalStore({ dataDir: join(dir, 'data'), logDir: dir, port });
      const node = await startNode({
        mongodbUri: db.uri,
        database: 'outage',
        writer: { maxDelayMs: 5, maxBuffered: 40 },
      });
      const acked = new Set<string>();
      const ackTimes: number[] = [];
      const refusedResults: number[] = [];
      let stop = false;
      try {
        const terminals = await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const t = new SimTerminal({
              port: node.port,
              phone: `01380000${String(i).padStart(4, '0')}`,
              timeoutMs: 60_000,
            });
            await t.connect();
            assert.equal(await t.register(), 0);
            assert.equal(await t.authenticate(), 0);
            return t;
          }),
        );
        // Each terminal keeps 8 reports in flight, as a device with a send window would.
        const loops = terminals.map(async (t, i) => {
          let k = 0;
          const inFlight = new Set<Promise<void>>();
          while (!stop) {
            const step = k++;
            const p = t.report(trackPoint(step)).then(
              (result) => {
                if (result !== 0) refusedResults.push(result);
                if (result === 0) {
                  acked.add(`1380000${String(i).padStart(4, '0')}@${trackPoint(step).time}`);
                  ackTimes.push(Date.now());
                }
              },
              () => undefined,
            );
            const tracked = p.finally(() => inFlight.delete(tracked));
            inFlight.add(tracked);
            if (inFlight.size >= 8) await Promise.race(inFlight);
          }
          await Promise.all(inFlight);
        });
        await new Promise((r) => setTimeout(r, 1000));
        assert.ok(acked.size > 0, 'reports were acknowledged before the outage');
        await db.stop();
        const downAt = Date.now();
        await new Promise((r) => setTimeout(r, 10_000));
        const upAt = Date.now();
        // A little slack for acks already on the wire when the server stopped.
        assert.equal(
          ackTimes.filter((t) => t > downAt + 500 && t < upAt).length,
          0,
          'nothing acknowledged while the database was down',
        );
        assert.ok(node.gateway.stats.pausedForBackpressure > 0, 'reading paused');
        assert.ok(writerTotals(await node.stats(), 'positions').retries > 0, 'writes were retried');
        db = await startLocalStore({ dataDir: join(dir, 'data'), logDir: dir, port });
        await new Promise((r) => setTimeout(r, 2000));
        stop = true;
        await Promise.all(loops);
        terminals.forEach((t) => t.close());
        const stored = new Set(
          (
            await node.client
              .db('outage')
              .collection(COLLECTIONS.positions)
              .find({}, { projection: { vehicleId: 1, time: 1 } })
              .toArray()
          ).map((d) => `${String(d.vehicleId)}@${(d.time as Date).getTime()}`),
        );
        const missing = [...acked].filter((id) => !stored.has(id));
        assert.deepEqual(missing, [], 'every acknowledged report is stored');
        // The outage is the store's, not the reports': none is answered as failed (the
        // terminal would resend what may well be stored).
        assert.deepEqual(refusedResults, [], 'no report answered with a failure');
        assert.ok(
          ackTimes.some((t) => t > upAt),
          'acknowledgements resumed after the database came back',
        );
      } finally {
        stop = true;
        await node.stop();
        await db.stop();
      }
    },
  );
});

describe('storage outage during a burst of activations (real store stopped)', () => {
  const burstDir = freshRunDir('activation-outage');

  it(
    'answers no terminal from empty state: each waits for its stored record, then gets its own code',
    { skip: Boolean(process.env.MONGODB_URI) && 'needs a server the test can stop' },
    async () => {
      const port = await freePort();
      const dataDir = join(burstDir, 'data');
      let db = await startLocalStore({ dataDir, logDir: burstDir, port });
      const phones = Array.from({ length: 200 }, (_, i) => `01390000${String(i).padStart(4, '0')}`);
      const codes = new Map<string, string>();
      let node = await startNode({
        mongodbUri: db.uri,
        database: 'burst',
        writer: { maxDelayMs: 5 },
      });
      try {
        await Promise.all(
          phones.map(async (phone) => {
            const t = new SimTerminal({ port: node.port, phone, timeoutMs: 30_000 });
            await t.connect();
            assert.equal(await t.register(), 0);
            codes.set(phone, t.authCode as string);
            t.close();
          }),
        );
      } finally {
        await node.stop();
      }

      node = await startNode({ mongodbUri: db.uri, database: 'burst', writer: { maxDelayMs: 5 } });
      try {
        await db.stop();
        let storeBack = false;
        const answeredEarly: string[] = [];
        // Half authenticate with their stored code; half register again (which, from an empty
        // state, would hand out a new code and overwrite the stored one).
        const outcomes = Promise.all(
          phones.map(async (phone, i) => {
            const t = new SimTerminal({ port: node.port, phone, timeoutMs: 60_000 });
            await t.connect();
            const result =
              i % 2 === 0 ? await t.authenticate(codes.get(phone)) : await t.register();
            if (!storeBack) answeredEarly.push(phone);
            const code = t.authCode;
            t.close();
            return { phone, result, code, registered: i % 2 === 1 };
          }),
        );
        // Until the state reads have failed (server selection gives up after 2 s).
        const failedReads = async (): Promise<number> =>
          (await node.stats()).reduce((n, s) => n + s.loader.failedReads, 0);
        const deadline = Date.now() + 30_000;
        while ((await failedReads()) === 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        assert.ok((await failedReads()) > 0, 'the state reads failed while the store was down');
        storeBack = true;
        db = await startLocalStore({ dataDir, logDir: burstDir, port });
        const results = await outcomes;
        assert.deepEqual(answeredEarly, [], 'nobody was answered while the store was down');
        assert.deepEqual(
          results.filter((r) => r.result !== 0),
          [],
          'every terminal was answered once its record was read',
        );
        for (const r of results.filter((x) => x.registered))
          assert.equal(r.code, codes.get(r.phone), 'a re-registration is given its stored code');
      } finally {
        await node.stop();
        await db.stop();
      }
    },
  );
});
