// gRPC LocatorService.ListDecisions on a real socket: terminals visit the locator's JT/T 808
// endpoint (loopback, a fixed member list standing in for etcd) and gRPC Locate is called; the
// decisions come back newest first with their node, reason and the candidates' loads, the ring
// holds exactly its capacity, and the per-node counts add up; WatchDecisions streams them, with
// a bounded backlog for a caller that does not read. Never open: a token is required.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { followLocator } from '../../bench/locatorTerminal.js';
import type { Member } from '../../cluster/memberTable.js';
import { Locator, type MemberSource } from '../../locator/locator.js';
import { LOCATOR_PROTO, startLocatorGrpc, type LocatorGrpc } from '../../locator/locatorGrpc.js';
import { until } from '../helpers/until.js';

const TOKEN = 'decisions-token';
const CAPACITY = 5;

type Obj = Record<string, unknown>;
type Stream = (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>;
type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: Obj) => void,
) => void;

const member = (node: string, port: number, terminals: number, draining = false): Member => ({
  node,
  gateway: `127.0.0.1:${port}`,
  startedAt: 0,
  workers: 1,
  reportedAt: 1,
  load: { terminals, capacity: 1000, zone: 'default', ...(draining ? { draining } : {}) },
});

class FixedMembers implements MemberSource {
  constructor(public list: Member[]) {}
  members(): Member[] {
    return this.list;
  }
  onChange(): () => void {
    return () => undefined;
  }
}

const members = new FixedMembers([member('node-a', 7001, 10), member('node-b', 7002, 500)]);
let locator: Locator;
let port: number;
let api: LocatorGrpc;
let open: LocatorGrpc;
let client: grpc.Client;
let openClient: grpc.Client;

function clientOf(grpcPort: number): grpc.Client {
  const def = protoLoader.loadSync(LOCATOR_PROTO, {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const Service = (
    grpc.loadPackageDefinition(def) as unknown as {
      fleetmesh: { v1: { LocatorService: grpc.ServiceClientConstructor } };
    }
  ).fleetmesh.v1.LocatorService;
  return new Service(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
}

function call(c: grpc.Client, method: string, req: object, token = TOKEN): Promise<Obj> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const fn = (c as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) =>
    fn.call(c, req, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function refused(p: Promise<unknown>, code: grpc.status, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.details, message);
    return true;
  });
}

before(async () => {
  locator = new Locator({ members, decisions: { capacity: CAPACITY } });
  port = await locator.listen();
  api = await startLocatorGrpc(locator, { tokens: [TOKEN], timeLimitMinutes: 60 });
  open = await startLocatorGrpc(locator, { timeLimitMinutes: 60 });
  client = clientOf(api.port);
  openClient = clientOf(open.port);
});

/** A WatchDecisions stream and what came on it. */
function watch(
  c: grpc.Client,
  req: object,
  token = TOKEN,
): { call: grpc.ClientReadableStream<Obj>; got: Obj[]; error: Promise<grpc.ServiceError> } {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const fn = (c as unknown as Record<string, Stream>).watchDecisions!;
  const call = fn.call(c, req, md);
  const got: Obj[] = [];
  call.on('data', (m: Obj) => got.push(m));
  const error = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
  return { call, got, error };
}

after(async () => {
  client?.close();
  openClient?.close();
  await api?.stop();
  await open?.stop();
  await locator?.close();
});

describe('LocatorService.ListDecisions', () => {
  it('needs a token, even on a locator whose Locate is open', async () => {
    await refused(
      call(client, 'listDecisions', {}, ''),
      grpc.status.UNAUTHENTICATED,
      /bearer token/,
    );
    await refused(
      call(client, 'listDecisions', {}, 'wrong'),
      grpc.status.UNAUTHENTICATED,
      /bearer token/,
    );
    await refused(
      call(openClient, 'listDecisions', {}),
      grpc.status.FAILED_PRECONDITION,
      /ListDecisions needs the locator started with tokens/,
    );
    const none = await call(client, 'listDecisions', {});
    assert.deepEqual(none.decisions, []);
    assert.equal(none.lastSeq, 0);
    assert.equal(none.capacity, CAPACITY);
  });

  it('shows what terminals at the JT/T 808 endpoint were told: node, reason, loads', async () => {
    const phones = ['013800000001', '013800000002', '013800000003'];
    const targets: number[] = [];
    for (const phone of phones) {
      const visit = await followLocator({ locatorPort: port, phone, stopAtRedirect: true });
      targets.push(visit.target.tcpPort ?? 0);
    }
    // node-a holds 10 terminals, node-b 500: every one goes to node-a.
    assert.deepEqual(targets, [7001, 7001, 7001]);
    const r = await call(client, 'listDecisions', { limit: 10 });
    const ds = r.decisions as Obj[];
    assert.equal(r.lastSeq, 3);
    assert.deepEqual(
      ds.map((d) => [d.seq, d.phone, d.vehicleId, d.source, d.node, d.reason]),
      [3, 2, 1].map((seq) => [
        seq,
        phones[seq - 1],
        phones[seq - 1]!.replace(/^0+/, ''),
        'DECISION_SOURCE_JT808',
        'node-a',
        'DECISION_LEAST_LOADED',
      ]),
    );
    assert.ok((ds[0]!.atUnixMs as number) >= (ds[2]!.atUnixMs as number));
    // The loads the choice saw, lightest first: its own earlier assignments counted.
    assert.deepEqual(ds[0]!.candidates, [
      {
        node: 'node-a',
        zone: 'default',
        capacity: 1000,
        terminals: 10,
        assigned: 2,
        draining: false,
      },
      {
        node: 'node-b',
        zone: 'default',
        capacity: 1000,
        terminals: 500,
        assigned: 0,
        draining: false,
      },
    ]);
    const buckets = r.buckets as { byNode: Record<string, number> }[];
    assert.equal(r.bucketSeconds, 10);
    assert.equal(buckets.length, 90);
    assert.equal(
      buckets.reduce((n, b) => n + (b.byNode['node-a'] ?? 0), 0),
      3,
    );
  });

  it('holds exactly its capacity: the oldest are overwritten; limit and after_seq', async () => {
    for (let i = 4; i <= 7; i++) {
      const r = await call(client, 'locate', { vehicleId: `1380000000${i}` });
      assert.equal(r.node, 'node-a');
    }
    const r = await call(client, 'listDecisions', { limit: 1000 });
    assert.equal(r.lastSeq, 7);
    assert.deepEqual(
      (r.decisions as Obj[]).map((d) => [d.seq, d.source, d.phone]),
      [7, 6, 5, 4, 3].map((seq) => [
        seq,
        seq > 3 ? 'DECISION_SOURCE_LOCATE' : 'DECISION_SOURCE_JT808',
        seq > 3 ? '' : '013800000003',
      ]),
    );
    const since = await call(client, 'listDecisions', { afterSeq: 5 });
    assert.deepEqual(
      (since.decisions as Obj[]).map((d) => d.seq),
      [7, 6],
    );
    const two = await call(client, 'listDecisions', { limit: 2 });
    assert.deepEqual(
      (two.decisions as Obj[]).map((d) => d.seq),
      [7, 6],
    );
    await refused(
      call(client, 'listDecisions', { limit: 1001 }),
      grpc.status.INVALID_ARGUMENT,
      /limit is 1 to 1000/,
    );
    // The counts are not bounded by the ring: all seven are there.
    const counted = (r.buckets as { byNode: Record<string, number> }[]).reduce(
      (n, b) => n + (b.byNode['node-a'] ?? 0),
      0,
    );
    assert.equal(counted, 7);
  });

  it('says when a drain decided, and records a terminal no node could take', async () => {
    members.list = [member('node-a', 7001, 0, true), member('node-b', 7002, 500)];
    const drained = await call(client, 'locate', { phone: '013800000008' });
    assert.equal(drained.node, 'node-b');
    members.list = [member('node-a', 7001, 0, true)];
    await refused(
      call(client, 'locate', { phone: '013800000009' }),
      grpc.status.UNAVAILABLE,
      /no node/,
    );
    const r = await call(client, 'listDecisions', { limit: 2 });
    const [none, drain] = r.decisions as Obj[];
    assert.equal(drain!.reason, 'DECISION_DRAIN');
    assert.equal(drain!.node, 'node-b');
    assert.deepEqual(
      (drain!.candidates as Obj[]).map((c) => [c.node, c.draining]),
      [
        ['node-a', true],
        ['node-b', false],
      ],
    );
    assert.equal(none!.reason, 'DECISION_NO_NODE');
    assert.equal(none!.node, '');
    assert.equal(none!.phone, '013800000009');
    const buckets = r.buckets as { noNode: number; byNode: Record<string, number> }[];
    assert.equal(
      buckets.reduce((n, b) => n + b.noNode, 0),
      1,
    );
    assert.equal(
      buckets.reduce((n, b) => n + (b.byNode['node-b'] ?? 0), 0),
      1,
    );
  });

  it('WatchDecisions: the ring after after_seq, then each new decision; needs a token', async () => {
    const refusedWatch = watch(client, {}, '');
    assert.equal((await refusedWatch.error).code, grpc.status.UNAUTHENTICATED);
    const last = (await call(client, 'listDecisions', { limit: 1 })).lastSeq as number;
    members.list = [member('node-a', 7001, 10), member('node-b', 7002, 500)];
    const w = watch(client, { afterSeq: last - 2 });
    await until(() => w.got.length === 2, 'the two decisions the ring holds after after_seq');
    await call(client, 'locate', { phone: '013800000010' });
    await until(() => w.got.length === 3, 'the new decision');
    assert.deepEqual(
      w.got.map((m) => [(m.decision as Obj).seq, m.dropped]),
      [
        [last - 1, 0],
        [last, 0],
        [last + 1, 0],
      ],
    );
    assert.equal((w.got[2]!.decision as Obj).phone, '013800000010');
    assert.equal((w.got[2]!.decision as Obj).node, 'node-a');
    w.call.cancel();
    await until(() => api.watch.watchers === 0, 'the watcher gone');
  });

  it('WatchDecisions keeps at most maxWatchBacklog waiting for a caller that does not read, then says how many it dropped', async () => {
    const small = await startLocatorGrpc(locator, {
      tokens: [TOKEN],
      timeLimitMinutes: 60,
      maxWatchBacklog: 5,
      maxWatchers: 1,
    });
    const c = clientOf(small.port);
    try {
      const first = (await call(c, 'listDecisions', { limit: 1 })).lastSeq as number;
      const slow = watch(c, { afterSeq: first });
      await until(() => small.watch.watchers === 1, 'the watcher');
      const second = watch(c, { afterSeq: first });
      assert.equal((await second.error).code, grpc.status.RESOURCE_EXHAUSTED);
      // The caller stops reading and decisions come faster than its stream takes them: past 5
      // messages waiting, newer decisions drop.
      slow.call.pause();
      let made = 0;
      while (small.watch.dropped === 0) {
        for (let i = 0; i < 100; i++, made++) locator.locate(`139${made}`);
        await new Promise((r) => setImmediate(r));
        assert.ok(made < 100_000, 'nothing dropped after 100 000 decisions');
      }
      slow.call.resume();
      // Reading again: a message says how many were dropped, and each decision after after_seq
      // is delivered or counted, none twice, in order. (A drop is reported with the next
      // decision there is room for: decisions keep coming until everything is accounted for.)
      const delivered = (): number[] =>
        slow.got.filter((m) => m.decision).map((m) => Number((m.decision as Obj).seq));
      const dropped = (): number => slow.got.reduce((n, m) => n + Number(m.dropped), 0);
      for (let more = 0; delivered().length + dropped() < locator.decisions.recorded - first;) {
        locator.locate(`1399${more++}`);
        await new Promise((r) => setTimeout(r, 10));
        assert.ok(more < 1000, `${delivered().length} + ${dropped()} of ${made}`);
      }
      const seqs = delivered();
      assert.ok(dropped() > 0);
      assert.ok(
        slow.got.some((m) => !m.decision && Number(m.dropped) > 0),
        'a message with the count',
      );
      assert.equal(dropped(), small.watch.dropped);
      assert.ok(
        seqs.every((x, i) => (i === 0 ? x > first : x > seqs[i - 1]!)),
        'delivered in order, each once',
      );
      assert.equal(seqs.length + dropped(), locator.decisions.recorded - first);
    } finally {
      c.close();
      await small.stop();
    }
  });
});
