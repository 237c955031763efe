// WorkerVehicleHost over real worker threads running a fake vehicle worker
// (test/fixtures/fakeVehicleWorker.ts: the same data plane and comlink API, no actors and no
// database), with the restart delays on a clock the test drives: vehicles go to the worker the
// placement names, in one batch per worker per turn; past maxInFlight `deliver` refuses until the
// worker gives credit back; what a worker answers reaches the links; a dead worker is restarted
// at once for its first 3 deaths in a minute, then after 1 s, 2 s…, and meanwhile (and for the
// calls it had not answered) the calls for its vehicles fail with VehiclesUnavailable at once;
// close() ends every worker and restarts none.
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import type { TerminalLink } from '../../actors/vehicleActor.js';
import type { Gateway, GatewayDelivery } from '../../gateway/gateway.js';
import type { VehicleWorkerConfig } from '../../hosting/vehicleWorker.js';
import {
  VehiclesUnavailable,
  WorkerVehicleHost,
  type WorkerHostOptions,
} from '../../hosting/workerHost.js';
import type { Header } from '../../jt808/header.js';
import { ownWorkers } from '../../cluster/placement.js';
import type { FakeWorkerControl } from '../fixtures/fakeVehicleWorker.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';
import { until } from '../helpers/until.js';

const FAKE_WORKER = new URL('../fixtures/fakeVehicleWorker.js', import.meta.url);

const CONFIG: VehicleWorkerConfig = {
  node: 'node-test',
  linkPrefix: 'node-test/',
  mongodbUri: 'mongodb://unused.invalid',
  database: 'unused',
  policy: { registration: 'open', ackMode: 'durable', saveEveryMs: 30_000 },
};

function hostWith(opts: Partial<WorkerHostOptions>): WorkerVehicleHost {
  return new WorkerVehicleHost({
    workers: 1,
    config: CONFIG,
    onEvent: () => undefined,
    events: [],
    workerScript: FAKE_WORKER,
    workerOf: ownWorkers(opts.workers ?? 1),
    ...opts,
  });
}

// Kept for the whole run: comlink releases an endpoint whose last proxy is collected, and a
// release closes the worker's side of the endpoint the host calls through too.
const controls = new Map<Worker, Comlink.Remote<FakeWorkerControl>>();
function control(w: Worker): Comlink.Remote<FakeWorkerControl> {
  let c = controls.get(w);
  if (!c) controls.set(w, (c = Comlink.wrap<FakeWorkerControl>(nodeEndpoint(w))));
  return c;
}

const vehicle = (i: number): string => `139${String(i).padStart(8, '0')}`;

const link = { id: 'x', node: 'node-test', send() {}, close() {}, authenticated() {} };

function uplink(vehicleId: string, linkNumber: number): GatewayDelivery {
  const header: Header = {
    messageId: 0x0002,
    bodyLength: 0,
    encryption: 0,
    headerEdition: 2013,
    versionFlag: false,
    phone: `0${vehicleId}`,
    serial: linkNumber & 0xffff,
  };
  return {
    kind: 'uplink',
    link,
    linkNumber,
    header,
    edition: 2013,
    message: null,
    body: new Uint8Array(0),
    receivedAt: 0,
  };
}

function linkClosed(linkNumber: number): GatewayDelivery {
  return { kind: 'linkClosed', link, linkNumber, reason: 'test', at: 0 };
}

/** A gateway as the host sees it: links by number, and the closings it asks for. */
function fakeGateway(): {
  gateway: Gateway;
  sent: Map<number, Uint8Array[]>;
  closings: { reason: string; match: (vehicleId: string) => boolean }[];
} {
  const sent = new Map<number, Uint8Array[]>();
  const closings: { reason: string; match: (vehicleId: string) => boolean }[] = [];
  const gateway = {
    linkByNumber: (n: number): TerminalLink => ({
      id: `node-test/${n}`,
      node: 'node-test',
      send: (frame: Uint8Array) => sent.set(n, [...(sent.get(n) ?? []), frame]),
      close: () => undefined,
      authenticated: () => undefined,
    }),
    closeWhere: (match: (vehicleId: string) => boolean, reason: string) => {
      closings.push({ reason, match });
      return 0;
    },
  } as unknown as Gateway;
  return { gateway, sent, closings };
}

/** Waits for a condition that needs asking the threads (polled, with a deadline). */
async function eventually(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Settles within the deadline (a call that should fail at once must not hang the test). */
async function settled<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('WorkerVehicleHost (fake workers)', () => {
  it('sends each vehicle to the worker the placement names, one batch per worker per turn', async () => {
    const host = hostWith({ workers: 3 });
    try {
      await host.ready();
      const ids = Array.from({ length: 30 }, (_, i) => vehicle(i));
      for (const [i, id] of ids.entries()) assert.equal(host.deliver(id, uplink(id, i)), true);
      const got = async (w: number): Promise<number> =>
        (await control(host.threads[w]!).received()).records.length;
      await eventually(
        async () => (await Promise.all([0, 1, 2].map(got))).reduce((a, b) => a + b) === 30,
        'every record received by a worker',
      );
      const owners = new Set<number>();
      for (let w = 0; w < 3; w++) {
        const { records, batches } = await control(host.threads[w]!).received();
        const expected = ids.filter((id) => host.workerOf(id) === w);
        if (expected.length > 0) owners.add(w);
        assert.deepEqual(
          records.map((r) => r.vehicleId),
          expected,
          `worker ${w} holds its vehicles, in order`,
        );
        assert.deepEqual(
          batches,
          expected.length > 0 ? [expected.length] : [],
          `worker ${w}: one batch for the turn`,
        );
      }
      assert.ok(owners.size > 1, 'the vehicles are spread over the workers');
    } finally {
      await host.close();
    }
  });
  it('refuses past maxInFlight until the worker gives credit back; a closed link is never refused', async () => {
    const host = hostWith({ maxInFlight: 3 });
    try {
      await host.ready();
      const worker = control(host.threads[0]!);
      await worker.holdCredit(true);
      let drained = 0;
      host.onDrain(() => drained++);
      const id = vehicle(1);
      for (let i = 0; i < 3; i++)
        assert.equal(host.deliver(id, uplink(id, 1)), true, `record ${i}`);
      assert.equal(host.deliver(id, uplink(id, 1)), false, 'the fourth is refused');
      assert.equal(host.deliver(id, linkClosed(1)), true, 'a closed link still goes');
      await eventually(
        async () => (await worker.received()).records.length === 4,
        'the worker holding 4 records',
      );
      assert.equal(host.deliver(id, uplink(id, 1)), false, 'no credit yet');
      assert.equal(drained, 0);
      await worker.grant();
      await until(() => drained > 0, 'the host drained');
      assert.equal(host.deliver(id, uplink(id, 1)), true, 'accepted again after credit');
      const { records } = await worker.received();
      assert.deepEqual(
        records.map((r) => r.kind),
        ['uplink', 'uplink', 'uplink', 'linkClosed'],
        'nothing refused reached the worker',
      );
    } finally {
      await host.close();
    }
  });

  it("sends the worker's answers to their links, and pauses while its storage is full", async () => {
    const host = hostWith({});
    const { gateway, sent } = fakeGateway();
    host.attach(gateway);
    try {
      await host.ready();
      let drained = 0;
      host.onDrain(() => drained++);
      const worker = control(host.threads[0]!);
      await worker.answer(7, Uint8Array.of(0x7e, 1, 0x7e), true);
      await until(() => sent.has(7), 'the frame sent on link 7');
      assert.deepEqual(sent.get(7), [Uint8Array.of(0x7e, 1, 0x7e)]);
      assert.equal(host.storageFull(), true);
      await worker.answer(8, Uint8Array.of(0x7e, 2, 0x7e), false);
      await until(() => sent.has(8), 'the frame sent on link 8');
      assert.equal(host.storageFull(), false);
      assert.equal(drained, 1, 'storage drained once');
    } finally {
      await host.close();
    }
  });

  it('a closed-link notice a worker sends back after a move goes on with its number and its link id, also once the link is gone', async () => {
    const bounced: { vehicleId: string; d: GatewayDelivery }[] = [];
    const host = hostWith({ onBounce: (vehicleId, d) => bounced.push({ vehicleId, d }) });
    const gateway = {
      linkByNumber: (): TerminalLink | undefined => undefined, // the connection is gone
      closeWhere: () => 0,
    } as unknown as Gateway;
    host.attach(gateway);
    try {
      await host.ready();
      await control(host.threads[0]!).bounceClosed(7, vehicle(1), 'node-test/abc/7', 42);
      await until(() => bounced.length === 1, 'the notice back at the host');
      const { vehicleId, d } = bounced[0]!;
      assert.equal(vehicleId, vehicle(1));
      assert.equal(d.kind, 'linkClosed');
      assert.equal(d.link.id, 'node-test/abc/7', "its vehicle knows the session's link by it");
      assert.equal(d.seq, 42, 'in order behind the frames before it');
    } finally {
      await host.close();
    }
  });

  it('restarts a dead worker at once 3 times a minute, then after 1 s, then 2 s; its vehicles are unavailable meanwhile', async () => {
    const scheduler = new FakeScheduler();
    const host = hostWith({ workers: 2, scheduler });
    const { gateway, closings } = fakeGateway();
    host.attach(gateway);
    let drained = 0;
    host.onDrain(() => drained++);
    const ids = Array.from({ length: 40 }, (_, i) => vehicle(i));
    const v0 = ids.find((id) => host.workerOf(id) === 0)!;
    const v1 = ids.find((id) => host.workerOf(id) === 1)!;
    /** Kills worker 0 and waits until the host saw it die; the thread that died. */
    const kill = async (): Promise<Worker> => {
      const old = host.threads[0]!;
      const deaths = host.restarts.length;
      void control(old).exit(1); // never answered: the thread is gone
      await until(() => host.restarts.length === deaths + 1, 'the host seeing the death');
      return old;
    };
    try {
      await host.ready();
      for (let death = 1; death <= 3; death++) {
        const old = await kill();
        assert.notEqual(host.threads[0], old, `death ${death}: started again at once`);
        assert.equal(scheduler.pending, 0);
        assert.equal(drained, death, 'sockets resume once it runs');
        assert.deepEqual(await settled(host.vehicle(v0), 'vehicle view'), { vehicleId: v0 });
      }
      assert.equal(closings.length, 3);
      for (const c of closings) {
        assert.equal(c.reason, 'vehicle worker restarted');
        assert.equal(c.match(v0), true, "worker 0's vehicles are disconnected");
        assert.equal(c.match(v1), false, "worker 1's are not");
      }

      // The 4th death within the minute: 1 s before it runs again.
      const fourth = await kill();
      assert.equal(host.threads[0], fourth, 'not started yet');
      assert.equal(scheduler.pending, 1);
      await assert.rejects(settled(host.vehicle(v0), 'vehicle view'), VehiclesUnavailable);
      await assert.rejects(
        settled(host.command(v0, 'c1', { type: 'QueryParameters', body: {} } as never), 'command'),
        VehiclesUnavailable,
      );
      assert.deepEqual(await settled(host.vehicle(v1), 'other worker'), { vehicleId: v1 });
      assert.equal(host.deliver(v0, uplink(v0, 1)), false, "the dead worker's sockets pause");
      assert.equal(host.deliver(v1, uplink(v1, 2)), true, 'the other worker takes frames');
      await scheduler.advance(999);
      assert.equal(host.threads[0], fourth, 'still waiting at 999 ms');
      await scheduler.advance(1);
      assert.notEqual(host.threads[0], fourth, 'started again at 1 s');
      assert.equal(drained, 4);
      assert.deepEqual(await settled(host.vehicle(v0), 'vehicle view'), { vehicleId: v0 });
      assert.equal(host.deliver(v0, uplink(v0, 1)), true, 'frames taken again');

      // The 5th: 2 s.
      const fifth = await kill();
      await scheduler.advance(1999);
      assert.equal(host.threads[0], fifth, 'still waiting at 1999 ms');
      await scheduler.advance(1);
      assert.notEqual(host.threads[0], fifth, 'started again at 2 s');
      assert.deepEqual(host.restarts, [0, 0, 0, 0, 1000]);

      // A minute later the earlier deaths no longer count: at once again.
      await scheduler.advance(60_000);
      const later = await kill();
      assert.notEqual(host.threads[0], later, 'started again at once');
      assert.equal(scheduler.pending, 0);
    } finally {
      await host.close();
    }
  });

  it('fails the calls a worker had not answered when it died, at once', async () => {
    const host = hostWith({ workers: 2, scheduler: new FakeScheduler() });
    try {
      await host.ready();
      const ids = Array.from({ length: 40 }, (_, i) => `hang${i}`);
      const hang = ids.find((id) => host.workerOf(id) === 0)!;
      const worker = control(host.threads[0]!);
      const pending = host.command(hang, 'c1', { type: 'QueryParameters', body: {} } as never);
      pending.catch(() => undefined); // it may reject before assert.rejects looks at it
      await eventually(async () => (await worker.calls()).includes('command'), 'the call sent');
      const dead = host.threads[0]!;
      await dead.terminate();
      await assert.rejects(settled(pending, 'the unanswered command'), (err: Error) => {
        assert.ok(err instanceof VehiclesUnavailable);
        assert.match(err.message, /exited while answering/);
        return true;
      });
      // The other worker still answers; the restarted one too.
      const stats = await settled(host.stats(), 'stats');
      assert.equal(stats.length, 2);
    } finally {
      await host.close();
    }
  });

  it('close() ends every worker, restarts none, and fails calls left unanswered', async () => {
    const host = hostWith({ workers: 2 });
    await host.ready();
    const threads = [...host.threads];
    const exits = threads.map((w) => new Promise<number>((r) => w.once('exit', r)));
    const ids = Array.from({ length: 40 }, (_, i) => `hang${i}`);
    const hang = ids.find((id) => host.workerOf(id) === 1)!;
    const pending = host.command(hang, 'c1', { type: 'QueryParameters', body: {} } as never);
    pending.catch(() => undefined); // it rejects while close() is awaited; looked at below
    await eventually(
      async () => (await control(threads[1]!).calls()).includes('command'),
      'the call sent',
    );
    await settled(host.close(), 'close');
    await settled(Promise.all(exits), 'every worker exited');
    await assert.rejects(settled(pending, 'the unanswered command'), (err: Error) => {
      assert.ok(err instanceof VehiclesUnavailable);
      assert.match(err.message, /node stopped/);
      return true;
    });
    assert.deepEqual(host.restarts, [], 'no worker started again');
    assert.deepEqual(host.threads, threads, 'no fresh worker');
  });
});
