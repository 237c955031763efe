// VehicleLoader: activations asked for in one turn share `$in` reads, reads are capped in
// number, a failed read fails only its own vehicles (whose activation is retried, never run from
// empty state), and the waiting queue is bounded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActorSystem } from '../../actors/runtime.js';
import { VehicleActor, type TerminalLink, type VehicleMessage } from '../../actors/vehicleActor.js';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import type { Message } from '../../jt808/messages.js';
import { LoadQueueFull, VehicleLoader } from '../../storage/vehicleLoader.js';
import type { RecordChange } from '../../storage/recordChanges.js';
import type { VehicleRecord, VehicleStore } from '../../storage/vehicleStore.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';

interface Rec {
  _id: string;
  n: number;
}

/** A read the test settles by hand, recording the ids of each call. */
function manualReads(): {
  read: (ids: string[]) => Promise<Rec[]>;
  calls: { ids: string[]; settle: (err?: Error) => void }[];
} {
  const calls: { ids: string[]; settle: (err?: Error) => void }[] = [];
  const read = (ids: string[]): Promise<Rec[]> =>
    new Promise((resolve, reject) => {
      calls.push({
        ids,
        settle: (err) =>
          err
            ? reject(err)
            : resolve(
                ids.filter((id) => !id.startsWith('missing')).map((id) => ({ _id: id, n: 1 })),
              ),
      });
    });
  return { read, calls };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('VehicleLoader', () => {
  it('reads every vehicle asked for in one turn in $in batches, at most maxInFlight at once', async () => {
    const { read, calls } = manualReads();
    const loader = new VehicleLoader(read, { maxBatch: 256, maxInFlight: 2 });
    const ids = Array.from({ length: 600 }, (_, i) => (i % 100 === 0 ? `missing${i}` : `v${i}`));
    const loads = ids.map((id) => loader.load(id));
    await turn();
    assert.deepEqual(
      calls.map((c) => c.ids.length),
      [256, 256],
      'two reads start, the rest waits',
    );
    assert.equal(loader.queued, 88);
    calls[0]!.settle();
    await turn();
    assert.deepEqual(
      calls.map((c) => c.ids.length),
      [256, 256, 88],
      'a finished read lets the next batch start',
    );
    calls[1]!.settle();
    calls[2]!.settle();
    const got = await Promise.all(loads);
    got.forEach((r, i) => {
      if (ids[i]!.startsWith('missing')) assert.equal(r, null, `${ids[i]} has no record`);
      else assert.deepEqual(r, { _id: ids[i], n: 1 });
    });
    assert.deepEqual(new Set(calls.flatMap((c) => c.ids)).size, 600, 'each vehicle read once');
    assert.equal(loader.stats.reads, 3);
  });

  it('asks for a vehicle once when it is asked for twice, and gives each caller its own copy', async () => {
    const { read, calls } = manualReads();
    const loader = new VehicleLoader(read);
    const a = loader.load('v1');
    const b = loader.load('v1');
    await turn();
    assert.deepEqual(calls[0]!.ids, ['v1']);
    calls[0]!.settle();
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual(ra, rb);
    assert.notEqual(ra, rb);
    assert.equal(loader.stats.coalesced, 1);
  });

  it('a failed read rejects only its own vehicles, and the loader goes on', async () => {
    const { read, calls } = manualReads();
    const loader = new VehicleLoader(read, { maxBatch: 2, maxInFlight: 1 });
    const loads = ['a', 'b', 'c', 'd'].map((id) =>
      loader.load(id).then(
        (r) => r?._id ?? null,
        (err: Error) => `failed: ${err.message}`,
      ),
    );
    await turn();
    calls[0]!.settle(new Error('connection reset'));
    await turn();
    calls[1]!.settle();
    assert.deepEqual(await Promise.all(loads), [
      'failed: connection reset',
      'failed: connection reset',
      'c',
      'd',
    ]);
    const again = loader.load('a');
    await turn();
    calls[2]!.settle();
    assert.equal((await again)?._id, 'a');
    assert.equal(loader.stats.failedReads, 1);
  });

  it('refuses loads past maxWaiting with LoadQueueFull, and takes them again once reads drain', async () => {
    const { read, calls } = manualReads();
    const loader = new VehicleLoader(read, { maxBatch: 10, maxInFlight: 1, maxWaiting: 20 });
    const first = Array.from({ length: 10 }, (_, i) => loader.load(`v${i}`));
    await turn(); // the first 10 are being read; the queue is empty again
    const queued = Array.from({ length: 20 }, (_, i) => loader.load(`w${i}`));
    await assert.rejects(loader.load('one-too-many'), LoadQueueFull);
    assert.equal(loader.stats.refused, 1);
    calls[0]!.settle();
    await Promise.all(first);
    await turn();
    calls[1]!.settle();
    await turn();
    calls[2]!.settle();
    assert.equal((await Promise.all(queued)).length, 20);
    const later = loader.load('one-too-many');
    await turn();
    calls[3]!.settle();
    assert.equal((await later)?._id, 'one-too-many');
  });
});

describe('batched activation of vehicle actors', () => {
  it('a failed batch read is retried for each vehicle in it; none answers or writes from empty state', async () => {
    const scheduler = new FakeScheduler();
    const stored = new Map<string, VehicleRecord>(
      ['13900000001', '13900000002', '13900000003'].map((id) => [
        id,
        { _id: id, authCode: `code-${id}`, edition: 2013 },
      ]),
    );
    let reads = 0;
    const batches: string[][] = [];
    const loader = new VehicleLoader<VehicleRecord>(async (ids) => {
      reads++;
      batches.push(ids);
      if (reads === 1) throw new Error('store unavailable');
      return ids.flatMap((id) => (stored.has(id) ? [structuredClone(stored.get(id)!)] : []));
    });
    const saves: { id: string; change: RecordChange }[] = [];
    const ok = Promise.resolve('stored' as const);
    const store = {
      load: (id: string) => loader.load(id),
      saveChanges: (id: string, change: RecordChange) => {
        saves.push({ id, change: structuredClone(change) });
        return ok;
      },
      insertPosition: () => ok,
      saveAlarm: () => ok,
      logSession: () => ok,
      logCommand: () => ok,
    } as unknown as VehicleStore;
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      activateRetryMs: 100,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: 1000 },
          now: () => scheduler.now(),
        }),
    });
    const register: Message = {
      type: 'Register',
      body: {
        province: 11,
        city: 1,
        maker: 'ACME',
        model: 'M1',
        terminalId: 'T1',
        plateColor: 1,
        plate: 'A1',
      },
    };
    const links = new Map<string, { sent: Uint8Array[]; link: TerminalLink }>();
    for (const id of stored.keys()) {
      const sent: Uint8Array[] = [];
      const link: TerminalLink = {
        id: `link-${id}`,
        node: 'n',
        send: (f) => void sent.push(f),
        close: () => undefined,
        authenticated: () => undefined,
      };
      links.set(id, { sent, link });
      const frame = encodeFrame(register, { phone: `0${id}`, serial: 1, edition: 2013 });
      const r = decodeFrame(frame.subarray(1, -1));
      assert.ok(r.ok && r.message);
      sys.tell(id, {
        kind: 'uplink',
        link,
        header: r.header,
        edition: 2013,
        message: r.message,
        receivedAt: 0,
      });
    }
    await turn();
    await turn();
    assert.deepEqual(batches, [[...stored.keys()]], 'the three activations share one read');
    assert.deepEqual(
      [...links.values()].map((l) => l.sent.length),
      [0, 0, 0],
      'nothing answered from empty state',
    );
    assert.equal(saves.length, 0, 'nothing written from empty state');

    await scheduler.advance(100); // the actors retry their activation
    await turn();
    await sys.whenIdle();
    assert.equal(batches.length, 2, 'the retries share one read too');
    for (const [id, { sent }] of links) {
      const r = decodeFrame(sent.at(-1)!.subarray(1, -1));
      assert.ok(r.ok && r.message?.type === 'RegisterReply');
      assert.equal(r.message.body.authCode, `code-${id}`, 'the stored auth code is kept');
    }
    // Each re-registration is written once, and none replaces the stored code.
    assert.deepEqual(saves.map((s) => s.id).sort(), [...stored.keys()]);
    assert.ok(saves.every((s) => s.change.set.registration && !('authCode' in s.change.set)));
  });
});
