// SendCommand, GetCommand and ListCommands at their edges, over a real gRPC socket and real
// storage: a command whose log is long (re-queued each time its terminal dropped) beside others
// on the same page; a node without workers (its actors answer inside the call); and, against a
// node whose owner is slow or silent (a stand-in for the node, with the real store), the call's
// deadline and the owner's fallback.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Document } from 'mongodb';
import { EventHub } from '../../actors/eventHub.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { storedCommandStatus, type StoredCommandEvent } from '../../api/vehicleServiceMapping.js';
import { SimTerminal } from '../../bench/terminal.js';
import { projectRoot, type LocalServers } from '../../devservers/localServers.js';
import type { CommandEvent } from '../../domain/vehicle.js';
import { vehicleIdOf } from '../../jt808/header.js';
import type { FleetNode } from '../../node/node.js';
import { byTimeThenId } from '../../storage/commandHistory.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;
type Client = grpc.Client & Record<string, Call>;

const TOKEN = 'commands-token';
const Service = grpc.loadPackageDefinition(
  protoLoader.loadSync(join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'), {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  }),
) as unknown as { fleetmesh: { v1: { VehicleService: grpc.ServiceClientConstructor } } };

function connect(api: GrpcServer): Client {
  return new Service.fleetmesh.v1.VehicleService(
    `127.0.0.1:${api.port}`,
    grpc.credentials.createInsecure(),
  ) as Client;
}

/** A unary call; `deadlineMs` from now (every call here is bounded: 20 s when not given). */
function call(c: Client, method: string, req: Obj, deadlineMs = 20_000): Promise<Obj> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  return new Promise((resolve, reject) =>
    (c[method] as Call).call(c, req, md, { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res ?? {}),
    ),
  );
}

/** What a status says, for comparing one read from the log with the fold of all its entries. */
function said(s: Obj | undefined): Obj {
  assert.ok(s);
  const fields = ['commandId', 'state', 'updatedUnixMs', 'attempts', 'detail', 'replyType'];
  fields.push('result', 'kind', 'messageId', 'createdUnixMs');
  return Object.fromEntries(fields.map((f) => [f, s[f]]));
}

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let client: Client;

before(async () => {
  servers = await startMongoForTests();
  // No workers: the vehicles' actors live in this thread and answer inside the call.
  node = await startTestNode(servers.mongodbUri, testDatabase('grpc_commands'), { workers: 0 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  client = connect(api);
});

after(async () => {
  client?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('commands at their edges (real sockets, real storage)', () => {
  it('a command re-queued 200 times beside others: ListCommands (every page size) and GetCommand give each one’s latest state, as the fold of its whole log does', async () => {
    const vehicleId = vehicleIdOf('013900000001');
    const log = node.client.db(node.database).collection('commands');
    const t0 = Date.UTC(2026, 10, 1);
    const entries: Document[] = [];
    const at = (ms: number): Date => new Date(t0 + ms);
    const first = (commandId: string, ms: number, text: boolean): Document => ({
      vehicleId,
      commandId,
      state: 'queued',
      at: at(ms),
      kind: text ? 'TextMessage' : 'LocationQuery',
      messageId: text ? 0x8300 : 0x8201,
      createdAt: at(ms),
    });
    const answered = (commandId: string, ms: number, attempt: number): Document => ({
      vehicleId,
      commandId,
      state: 'answered',
      at: at(ms),
      attempt,
      serial: 1,
      reply: 'TerminalResponse',
      result: 0,
    });
    const sent = (commandId: string, ms: number, attempt: number): Document => ({
      vehicleId,
      commandId,
      state: 'sent',
      at: at(ms),
      attempt,
      serial: 1,
    });
    // The oldest, answered at once.
    const small = randomUUID();
    entries.push(first(small, 0, false), sent(small, 1, 1), answered(small, 2, 1));
    // The long one: sent three times in its first round, then 200 rounds of sent and re-queued
    // (the terminal dropped each time), then answered.
    const long = randomUUID();
    let ms = 100;
    entries.push(first(long, ms++, true));
    for (const attempt of [1, 2, 3]) entries.push(sent(long, ms++, attempt));
    const requeued = (): Document => ({
      vehicleId,
      commandId: long,
      state: 'queued',
      at: at(ms++),
      detail: 'terminal offline',
    });
    entries.push(requeued());
    for (let round = 0; round < 200; round++) entries.push(sent(long, ms++, 1), requeued());
    entries.push(sent(long, ms++, 1), answered(long, ms++, 1));
    // Three created while it went round, logged after it (as a slow batch would): answered.
    const others = [randomUUID(), randomUUID(), randomUUID()];
    others.forEach((id, i) =>
      entries.push(first(id, 200 + i, i % 2 === 0), sent(id, 210 + i, 1), answered(id, 220 + i, 1)),
    );
    await log.insertMany(entries);

    // The oracle: each command's whole log, folded in the order it happened.
    const expected = new Map<string, Obj>();
    for (const id of [small, long, ...others])
      expected.set(
        id,
        said(
          storedCommandStatus(
            entries
              .filter((e) => e.commandId === id)
              .sort(byTimeThenId) as unknown as StoredCommandEvent[],
          ) as unknown as Obj,
        ),
      );
    assert.equal(expected.get(long)!.state, 'ANSWERED');
    assert.equal(expected.get(long)!.attempts, 3);
    const newestFirst = [others[2], others[1], others[0], long, small];

    for (const size of [1, 2, 4, 5, 100]) {
      const listed: Obj[] = [];
      let token = '';
      for (let pages = 0; ; pages++) {
        assert.ok(pages < 10, 'too many pages');
        const page = await call(client, 'listCommands', {
          vehicleId: '13900000001',
          pageSize: size,
          pageToken: token,
        });
        listed.push(...(page.commands as Obj[]));
        token = String(page.nextPageToken);
        if (token === '') break;
      }
      assert.deepEqual(
        listed.map((c) => c.commandId),
        newestFirst,
        `page size ${size}`,
      );
      for (const c of listed)
        assert.deepEqual(said(c), expected.get(String(c.commandId)), `page size ${size}`);
    }
    for (const id of [small, long, ...others])
      assert.deepEqual(said(await call(client, 'getCommand', { commandId: id })), expected.get(id));
  });

  it('on a node without workers (its actor takes the command inside the call) SendCommand without wait answers with the command’s kind, message id and created time', async () => {
    const t = new SimTerminal({ port: node.port, phone: '013900000002' });
    await t.connect();
    assert.equal(await t.register(), 0);
    t.close();
    const res = await call(client, 'sendCommand', {
      vehicleId: '13900000002',
      textMessage: { flag: 8, text: 'no workers' },
    });
    const status = res.status as Obj;
    assert.equal(status.state, 'QUEUED');
    assert.equal(status.kind, 'TextMessage');
    assert.equal(status.messageId, 0x8300);
    const pending = (await call(client, 'getVehicle', { vehicleId: '13900000002' }))
      .pendingCommands as Obj[];
    assert.deepEqual(
      pending.map((c) => [c.commandId, c.createdUnixMs]),
      [[res.commandId, status.createdUnixMs]],
    );
    await assert.rejects(
      call(client, 'sendCommand', { vehicleId: '13900009999', queryPosition: {} }),
      { code: grpc.status.NOT_FOUND },
    );
  });
});

/**
 * A stand-in for a node whose vehicles' owner is elsewhere: commands go to `take` (which may emit
 * the actor's first event when it likes), `vehicle` answers as `view` says; the real store.
 */
function slowOwner(
  take: (vehicleId: string, commandId: string, hub: EventHub) => void,
  view: (vehicleId: string) => Promise<unknown>,
): { node: FleetNode; release: () => void } {
  const hub = new EventHub();
  const pending: ((e: CommandEvent) => void)[] = [];
  const fake = {
    client: node.client,
    database: node.database,
    events: hub,
    members: () => [],
    host: {
      command: (vehicleId: string, commandId: string): Promise<CommandEvent> => {
        take(vehicleId, commandId, hub);
        return new Promise<CommandEvent>((r) => pending.push(r));
      },
    },
    vehicle: view,
    // The node's own way in (an id of its own), as node/node.ts has it.
    command: (vehicleId: string): { id: string; settled: Promise<CommandEvent> } => {
      const id = randomUUID();
      return { id, settled: fake.host.command(vehicleId, id) };
    },
  };
  return {
    node: fake as unknown as FleetNode,
    // Settles what is left (timed out), so nothing outlives the test.
    release: () => {
      for (const r of pending) r({ commandId: '', state: 'timed-out', at: 0 });
    },
  };
}

describe('SendCommand against a slow or silent owner (real socket, real store)', () => {
  it('with wait, an actor that takes the command late still leaves the answer inside the call’s deadline (the last state known)', async () => {
    const created = Date.UTC(2026, 10, 2);
    const timers: NodeJS.Timeout[] = [];
    const owner = slowOwner(
      (vehicleId, commandId, hub) =>
        timers.push(
          setTimeout(
            () =>
              hub.publish({
                kind: 'command',
                vehicleId,
                event: { commandId, state: 'queued', at: created },
              }),
            300,
          ),
        ),
      () => new Promise(() => undefined),
    );
    const server = await startGrpcServer(owner.node, { tokens: [TOKEN] });
    const c = connect(server);
    try {
      const res = await call(
        c,
        'sendCommand',
        { vehicleId: '13900000003', textMessage: { flag: 8, text: 'late' }, wait: true },
        1_500,
      );
      const status = res.status as Obj;
      assert.equal(status.state, 'QUEUED');
      assert.equal(status.createdUnixMs, created);
      assert.equal(status.kind, 'TextMessage');
    } finally {
      for (const t of timers) clearTimeout(t);
      owner.release();
      c.close();
      await server.stop();
    }
  });

  it('when the owner’s first event never comes: an owner that does not answer gives UNAVAILABLE within the deadline; one that does gives the command’s created time from the log', async () => {
    const created = Date.UTC(2026, 10, 3);
    const log = node.client.db(node.database).collection('commands');
    const logged: Promise<unknown>[] = [];
    const owner = slowOwner(
      (vehicleId, commandId) => {
        // The owner took it (and it settled there) but its events never reached this node.
        if (vehicleId === '13900000005')
          logged.push(
            log.insertOne({
              vehicleId,
              commandId,
              state: 'queued',
              at: new Date(created),
              kind: 'TextMessage',
              messageId: 0x8300,
              createdAt: new Date(created),
            }),
          );
      },
      (vehicleId) =>
        vehicleId === '13900000005'
          ? Promise.all(logged).then(() => ({ vehicleId, registered: true, pendingCommands: [] }))
          : new Promise(() => undefined), // a handoff that never ends
    );
    const server = await startGrpcServer(owner.node, { tokens: [TOKEN] });
    const c = connect(server);
    try {
      const [silent, answering] = await Promise.allSettled([
        call(c, 'sendCommand', { vehicleId: '13900000004', queryPosition: {} }, 9_500),
        call(c, 'sendCommand', { vehicleId: '13900000005', textMessage: { flag: 8, text: 'x' } }),
      ]);
      assert.equal(answering.status, 'fulfilled');
      const status = answering.value.status as Obj;
      assert.equal(status.state, 'QUEUED');
      assert.equal(status.createdUnixMs, created);
      assert.equal(status.kind, 'TextMessage');
      assert.equal(silent.status, 'rejected');
      assert.equal((silent.reason as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    } finally {
      owner.release();
      c.close();
      await server.stop();
    }
  });
});
