// The dashboard's JSON API over real sockets, without a browser: a real node, its gRPC server,
// real storage and simulated terminals; requests carry the gRPC token as a bearer token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { startDashboard, type Dashboard } from '../../dashboard/index.js';
import { projectRoot, type LocalServers } from '../../devservers/localServers.js';
import { startNode, type FleetNode } from '../../node/node.js';
import { startMongoForTests } from '../helpers/mongoServer.js';

type Obj = Record<string, unknown>;
const TOKEN = 'dashboard-api-token';

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let dashboard: Dashboard;
let client: grpc.Client;

async function http(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string; json: Obj }> {
  const res = await fetch(`${dashboard.url.replace(/\/$/, '')}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Obj };
}

/** Every key of a JSON value, at every depth. */
function keysOf(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) keysOf(x, out);
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      keysOf(x, out);
    }
  return out;
}

async function online(phone: string): Promise<SimTerminal> {
  const t = new SimTerminal({ port: node.port, phone });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  return t;
}

/** Until `get` gives something `ok` accepts (every 20 ms, 500 tries at most). */
async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  for (let tries = 0; ; tries++) {
    const v = await get();
    if (ok(v)) return v;
    assert.ok(tries < 500, `${what}: not reached`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  servers = await startMongoForTests();
  node = await startNode({
    mongodbUri: servers.mongodbUri,
    database: `fleetmesh_dashapi_${process.pid}`,
    workers: 2,
    writer: { maxDelayMs: 5 },
  });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  dashboard = await startDashboard({
    grpcAddress: `127.0.0.1:${api.port}`,
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    nodeName: node.node,
  });
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
  client = new Service(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await dashboard?.stop();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('dashboard JSON API (real node, real sockets, real storage)', () => {
  it('a command for a vehicle that never registered is 404 and stores nothing', async () => {
    const r = await http('POST', '/api/vehicles/99999999999/commands', {
      kind: 'text',
      text: 'hello',
    });
    assert.equal(r.status, 404);
    assert.match(String(r.json.error), /vehicle 99999999999 has never registered/);
    const confirm = await http('POST', '/api/vehicles/99999999999/confirm', { bits: 0 });
    assert.equal(confirm.status, 404);
    await node.flush();
    const db = node.client.db(node.database);
    assert.equal(
      await db.collection('vehicles').countDocuments({ _id: '99999999999' as never }),
      0,
    );
    assert.equal(await db.collection('commands').countDocuments({ vehicleId: '99999999999' }), 0);
  });

  it('a vehicle’s JSON carries its position’s fields only (no synthetic oneof keys)', async () => {
    const t = await online('013900000001');
    assert.equal(await t.report(trackPoint(1)), 0);
    const r = await http('GET', '/api/vehicles/13900000001');
    assert.equal(r.status, 200);
    const vehicle = r.json.vehicle as Obj;
    const p = vehicle.lastPosition as Obj;
    assert.equal(p.mileageKm, trackPoint(1).mileageKm);
    assert.equal(p.satellites, 12);
    assert.deepEqual(
      keysOf(r.json).filter((k) => k.startsWith('_')),
      [],
      `keys starting with _ in ${r.text}`,
    );
    t.close();
  });

  it('a command another client sent over gRPC says what it is (kind and message id)', async () => {
    const t = await online('013900000002');
    t.answerCommands(() => trackPoint(2));
    const sent = await new Promise<Obj>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${TOKEN}`);
      (
        client as unknown as Record<
          string,
          (r: Obj, m: grpc.Metadata, cb: (e: Error | null, v?: Obj) => void) => void
        >
      ).sendCommand!.call(
        client,
        { vehicleId: '13900000002', queryPosition: {}, wait: true, waitTimeoutMs: 5000 },
        md,
        (err, res) => (err ? reject(err) : resolve(res ?? {})),
      );
    });
    const commands = await until(
      async () => (await http('GET', '/api/vehicles/13900000002/commands')).json.commands as Obj[],
      (c) => c.some((x) => x.commandId === sent.commandId),
      'the command in the history',
    );
    const entry = commands.find((x) => x.commandId === sent.commandId) as Obj;
    assert.equal(entry.what, 'LocationQuery 0x8201');
    t.close();
  });
});
