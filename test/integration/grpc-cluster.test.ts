// The vehicle service on a node of a 2-node cluster (real etcd, real store, real sockets), for
// vehicles the other node owns: a command or a confirmation for one that never registered is
// NOT_FOUND and stores nothing; a registered one's command is queued there, and its created time
// is the same in every answer.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { SimTerminal } from '../../bench/terminal.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import {
  projectRoot,
  startLocalServers,
  type LocalServers,
} from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { vehicleIdOf } from '../../jt808/header.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (e: grpc.ServiceError | null, r?: Obj) => void,
) => void;
const TOKEN = 'cluster-grpc-token';

let servers: LocalServers;
const nodes: FleetNode[] = [];
let api: GrpcServer;
let client: grpc.Client & Record<string, Call>;
const database = testDatabase('grpccluster');

function call(method: string, req: Obj): Promise<Obj> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  return new Promise((resolve, reject) =>
    (client[method] as Call).call(client, req, md, (err, res) =>
      err ? reject(err) : resolve(res ?? {}),
    ),
  );
}

before(async () => {
  servers = await startLocalServers();
  for (const node of ['g1', 'g2'])
    nodes.push(
      await startTestNode(servers.mongodbUri, database, {
        node,
        workers: 1,
        membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: 2 },
      }),
    );
  await until(
    () => nodes.every((n) => n.router!.shardsPerNode().size === 2),
    'both nodes to place vehicles over both',
  );
  api = await startGrpcServer(nodes[0]!, { tokens: [TOKEN] });
  const def = protoLoader.loadSync(join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'), {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const Service = (
    grpc.loadPackageDefinition(def) as unknown as {
      fleetmesh: { v1: { VehicleService: grpc.ServiceClientConstructor } };
    }
  ).fleetmesh.v1.VehicleService;
  client = new Service(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client;
});

after(async () => {
  client?.close();
  await api?.stop();
  for (const n of nodes.reverse()) await n.stop();
  await servers?.stop();
});

/** The first phone from 0138… up whose vehicle the node `owner` owns. */
function phoneOwnedBy(owner: string, from: number): string {
  for (let i = from; i < from + 10_000; i++) {
    const phone = `0138${String(i).padStart(8, '0')}`;
    if (nodes[0]!.router!.ownerOf(vehicleIdOf(phone)).node === owner) return phone;
  }
  throw new Error(`no vehicle owned by ${owner}`);
}

describe('VehicleService in a cluster (real etcd, real store)', { timeout: 120_000 }, () => {
  it('a vehicle the other node owns: never registered is NOT_FOUND with nothing stored; registered is queued with one created time', async () => {
    const unknown = vehicleIdOf(phoneOwnedBy('g2', 0));
    for (const req of [
      { vehicleId: unknown, textMessage: { flag: 8, text: 'hello' } },
      { vehicleId: unknown, textMessage: { flag: 8, text: 'hello' }, wait: true },
    ])
      await assert.rejects(call('sendCommand', req), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.NOT_FOUND);
        assert.match(err.details, /has never registered/);
        return true;
      });
    await assert.rejects(call('confirmAlarms', { vehicleId: unknown }), {
      code: grpc.status.NOT_FOUND,
    });

    const phone = phoneOwnedBy('g2', 5000);
    const vehicleId = vehicleIdOf(phone);
    const t = new SimTerminal({ port: nodes[1]!.port, phone });
    await t.connect();
    assert.equal(await t.register(), 0);
    t.close();
    const res = await call('sendCommand', { vehicleId, queryPosition: {} });
    const status = res.status as Obj;
    assert.equal(status.state, 'QUEUED');
    assert.equal(status.kind, 'LocationQuery');
    const pending = (await call('getVehicle', { vehicleId })).pendingCommands as Obj[];
    assert.deepEqual(
      pending.map((c) => [c.commandId, c.createdUnixMs]),
      [[res.commandId, status.createdUnixMs]],
    );

    const db = nodes[0]!.client.db(database);
    for (let tries = 0; ; tries++) {
      await Promise.all(nodes.map((n) => n.flush()));
      if ((await db.collection(COLLECTIONS.commands).countDocuments({ vehicleId })) > 0) break;
      assert.ok(tries < 500, 'the registered vehicle’s command never reached the log');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(
      await db.collection(COLLECTIONS.vehicles).countDocuments({ _id: unknown as never }),
      0,
    );
    assert.equal(
      await db.collection(COLLECTIONS.commands).countDocuments({ vehicleId: unknown }),
      0,
    );
  });
});
