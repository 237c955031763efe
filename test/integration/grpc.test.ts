// The gRPC vehicle service over a real socket, against a node with real terminals and real
// storage: token auth, health, reflection, vehicle state, paged online list, typed commands
// (waited for and not), command status, the filtered event stream, and the members of a node
// with membership (its own etcd).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { mapEntryName } from '../../api/grpcReflection.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { HISTORY_PROTO } from '../../api/historyService.js';
import {
  freePort,
  projectRoot,
  startLocalServers,
  type LocalServers,
} from '../../devservers/localServers.js';
import { startNode, type FleetNode } from '../../node/node.js';
import { startMongoForTests } from '../helpers/mongoServer.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;

const require = createRequire(import.meta.url);
const TOKEN = 'test-token-123';
const options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

let servers: LocalServers;
/** Until `condition` holds (checked every 10 ms), failing after 10 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, 'condition not reached in 10 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

let node: FleetNode;
let api: GrpcServer;
let client: grpc.Client & Record<string, Call>;
let history: grpc.Client & Record<string, Call>;

function auth(token = TOKEN): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

function call(method: string, req: Obj, md = auth(), c = client): Promise<Obj> {
  return new Promise((resolve, reject) => {
    const fn = c[method] as Call;
    fn.call(c, req, md, (err, res) => (err ? reject(err) : resolve(res ?? {})));
  });
}

async function online(phone: string): Promise<SimTerminal> {
  const t = new SimTerminal({ port: node.port, phone });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  return t;
}

/** One request on the server reflection stream (what grpcurl sends), and its answer. */
async function reflect(req: Obj, version: 'v1' | 'v1alpha' = 'v1'): Promise<Obj> {
  const proto = join(
    require.resolve('@grpc/reflection').replace(/build[/\\]src[/\\]index\.js$/, ''),
    'build',
    'proto',
    'grpc',
    'reflection',
    version,
    'reflection.proto',
  );
  const Reflection = loadClient<grpc.ServiceClientConstructor>(proto, [
    'grpc',
    'reflection',
    version,
    'ServerReflection',
  ]);
  const r = new Reflection(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure());
  try {
    const stream = (
      r as unknown as Record<string, () => grpc.ClientDuplexStream<Obj, Obj>>
    ).serverReflectionInfo!.call(r);
    const answer = new Promise<Obj>((resolve, reject) => {
      stream.once('data', resolve);
      stream.once('error', reject);
    });
    stream.write(req);
    const res = await answer;
    stream.end();
    if (res.errorResponse) throw new Error(JSON.stringify(res.errorResponse));
    return res;
  } finally {
    r.close();
  }
}

// google/protobuf/descriptor.proto, to read what reflection publishes.
const descriptorProto = protoLoader.loadSync('google/protobuf/descriptor.proto');
const FileDescriptorProto = descriptorProto[
  'google.protobuf.FileDescriptorProto'
] as protoLoader.MessageTypeDefinition<Obj, Obj>;
const FileDescriptorSet = descriptorProto[
  'google.protobuf.FileDescriptorSet'
] as protoLoader.MessageTypeDefinition<Obj, Obj>;

/** The published files holding `symbol` (with the files they import), as encoded. */
async function publishedFiles(symbol: string): Promise<Buffer[]> {
  const res = await reflect({ fileContainingSymbol: symbol });
  return (res.fileDescriptorResponse as Obj).fileDescriptorProto as Buffer[];
}

/**
 * The package definition a reflection client (grpcurl) builds: the published files holding
 * `symbol`, as a FileDescriptorSet, loaded with the names exactly as published.
 */
async function reflectedDefinition(symbol: string): Promise<protoLoader.PackageDefinition> {
  const files = await publishedFiles(symbol);
  const set = FileDescriptorSet.serialize({
    file: files.map((f) => FileDescriptorProto.deserialize(f)),
  });
  return protoLoader.loadFileDescriptorSetFromBuffer(set, options);
}

function loadClient<T>(protoPath: string, path: string[], includeDirs: string[] = []): T {
  const def = protoLoader.loadSync(protoPath, { ...options, includeDirs });
  let o: unknown = grpc.loadPackageDefinition(def);
  for (const p of path) o = (o as Record<string, unknown>)[p];
  return o as T;
}

before(async () => {
  servers = await startMongoForTests();
  node = await startNode({
    mongodbUri: servers.mongodbUri,
    database: `fleetmesh_grpc_${process.pid}`,
    workers: 2,
    writer: { maxDelayMs: 5 },
  });
  api = await startGrpcServer(node, {
    tokens: [TOKEN, 'second-token'],
    tokenNames: { 'second-token': 'desk-2' },
  });
  const Service = loadClient<grpc.ServiceClientConstructor>(
    join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'),
    ['fleetmesh', 'v1', 'VehicleService'],
  );
  client = new Service(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client;
  const History = loadClient<grpc.ServiceClientConstructor>(HISTORY_PROTO, [
    'fleetmesh',
    'v1',
    'HistoryService',
  ]);
  history = new History(
    `127.0.0.1:${api.port}`,
    grpc.credentials.createInsecure(),
  ) as typeof history;
});

after(async () => {
  client?.close();
  history?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('gRPC vehicle service (real sockets, real storage)', () => {
  it('calls without a valid bearer token get UNAUTHENTICATED; either configured token works', async () => {
    await assert.rejects(call('getVehicle', { vehicleId: '1' }, new grpc.Metadata()), {
      code: grpc.status.UNAUTHENTICATED,
    });
    await assert.rejects(call('getVehicle', { vehicleId: '1' }, auth('wrong')), {
      code: grpc.status.UNAUTHENTICATED,
    });
    await assert.rejects(call('getVehicle', { vehicleId: '1' }, auth('second-token')), {
      code: grpc.status.NOT_FOUND,
    });
  });

  it('the standard health service answers SERVING without a token', async () => {
    const Health = loadClient<grpc.ServiceClientConstructor>(
      require('grpc-health-check').protoPath as string,
      ['grpc', 'health', 'v1', 'Health'],
    );
    const health = new Health(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure());
    const res = await new Promise<Obj>((resolve, reject) =>
      (health as unknown as Record<string, Call>).check!.call(
        health,
        { service: 'fleetmesh.v1.VehicleService' },
        new grpc.Metadata(),
        (err, r) => (err ? reject(err) : resolve(r ?? {})),
      ),
    );
    health.close();
    assert.equal(res.status, 'SERVING');
  });

  it('server reflection (v1 and v1alpha) lists the vehicle service and the health service', async () => {
    for (const version of ['v1', 'v1alpha'] as const) {
      const res = await reflect({ listServices: '*' }, version);
      const services = ((res.listServicesResponse as Obj).service as Obj[]).map((s) => s.name);
      assert.ok(services.includes('fleetmesh.v1.VehicleService'), `${version}: ${services}`);
      assert.ok(services.includes('grpc.health.v1.Health'), `${version}: ${services}`);
    }
  });

  it('reflection publishes the .proto’s own field names (snake_case, what grpcurl -d takes)', async () => {
    const def = await reflectedDefinition('fleetmesh.v1.VehicleService');
    // A message type's DescriptorProto, as published.
    const fields = (type: string): unknown[] =>
      ((def[type] as { type: { field: Obj[] } }).type.field ?? []).map((f) => f.name);
    assert.deepEqual(fields('fleetmesh.v1.GetVehicleRequest'), ['vehicle_id']);
    assert.deepEqual(fields('fleetmesh.v1.SendCommandRequest'), [
      'vehicle_id',
      'set_parameters',
      'query_parameters',
      'query_position',
      'text_message',
      'terminal_control',
      'take_photo',
      'raw',
      'wait',
      'wait_timeout_ms',
    ]);
    assert.deepEqual(fields('fleetmesh.v1.StreamEventsRequest'), ['vehicle_ids', 'kinds']);
    assert.ok(fields('fleetmesh.v1.Vehicle').includes('last_position'));
    const health = await reflectedDefinition('grpc.health.v1.Health');
    assert.ok(health['grpc.health.v1.Health'], 'the health service is resolvable by symbol');
  });

  it('published map fields name their entry types as protoc does (grpcurl refuses the file otherwise)', async () => {
    interface Message {
      name: string;
      field?: { name: string; typeName?: string }[];
      nestedType?: Message[];
      options?: { mapEntry?: boolean };
    }
    const maps: string[] = [];
    const check = (m: Message): void => {
      for (const n of m.nestedType ?? []) {
        if (n.options?.mapEntry) {
          const f = (m.field ?? []).find((x) => x.typeName?.split('.').pop() === n.name);
          assert.ok(f, `${m.name}.${n.name} is a map entry no field uses`);
          assert.equal(n.name, mapEntryName(f.name), `${m.name}.${f.name}`);
          maps.push(`${m.name}.${f.name} -> ${n.name}`);
        }
        check(n);
      }
    };
    for (const symbol of ['fleetmesh.v1.VehicleService', 'grpc.health.v1.Health'])
      for (const bytes of await publishedFiles(symbol)) {
        const file = FileDescriptorProto.deserialize(bytes) as { messageType?: Message[] };
        for (const m of file.messageType ?? []) check(m);
      }
    assert.ok(maps.includes('HealthListResponse.statuses -> StatusesEntry'), String(maps));
  });

  it('a client built only from the published descriptors (field vehicle_id) reaches the right vehicle, and health answers', async () => {
    const t = await online('013800000007');
    const def = await reflectedDefinition('fleetmesh.v1.VehicleService');
    const Service = (
      grpc.loadPackageDefinition(def) as unknown as {
        fleetmesh: { v1: { VehicleService: grpc.ServiceClientConstructor } };
      }
    ).fleetmesh.v1.VehicleService;
    const c = new Service(
      `127.0.0.1:${api.port}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Call>;
    const unary = (method: string, req: Obj, md = auth()): Promise<Obj> =>
      new Promise((resolve, reject) =>
        (c[method] as Call).call(c, req, md, (err, res) =>
          err ? reject(err) : resolve(res ?? {}),
        ),
      );
    try {
      const v = await unary('GetVehicle', { vehicle_id: '13800000007' });
      assert.equal(v.vehicle_id, '13800000007');
      assert.equal(v.phone, '013800000007');
      assert.equal(v.online, true);
      // The docs' SendCommand example, as grpcurl encodes it: it reaches this vehicle's terminal.
      const text = t.waitFor((f) => f.message?.type === 'TextMessage');
      const sent = await unary('SendCommand', {
        vehicle_id: '13800000007',
        text_message: { flag: 8, text: 'hello' },
      });
      const f = await text;
      assert.ok(f.message?.type === 'TextMessage');
      assert.equal((f.message.body as Obj).text, 'hello');
      assert.equal((sent.status as Obj).vehicle_id, '13800000007');
    } finally {
      c.close();
      t.close();
    }
    const healthDef = await reflectedDefinition('grpc.health.v1.Health');
    const Health = (
      grpc.loadPackageDefinition(healthDef) as unknown as {
        grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
      }
    ).grpc.health.v1.Health;
    const h = new Health(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure());
    const res = await new Promise<Obj>((resolve, reject) =>
      (h as unknown as Record<string, Call>).Check!.call(
        h,
        { service: 'fleetmesh.v1.VehicleService' },
        new grpc.Metadata(),
        (err, r) => (err ? reject(err) : resolve(r ?? {})),
      ),
    );
    h.close();
    assert.equal(res.status, 'SERVING');
  });

  it('GetVehicle gives the live state and session; an unknown vehicle is NOT_FOUND', async () => {
    const t = await online('013800000001');
    const serial = t.nextSerial();
    assert.equal(await t.report(trackPoint(3, { alarm: 2 }), serial), 0);
    const v = await call('getVehicle', { vehicleId: '13800000001' });
    assert.equal(v.lastUplinkSerial, serial);
    // Platform frames so far: 0x8100, 0x8001 to the authentication, 0x8001 to the report.
    assert.equal(v.nextDownlinkSerial, 3);
    assert.equal(v.vehicleId, '13800000001');
    assert.equal(v.online, true);
    assert.equal(v.registered, true);
    assert.equal(v.edition, 2013);
    assert.equal(v.phone, '013800000001');
    assert.equal(v.node, node.node);
    const p = v.lastPosition as Obj;
    assert.equal(p.latitude, trackPoint(3).latitude);
    assert.equal(p.timeUnixMs, trackPoint(3).time);
    assert.equal(p.alarm, 2);
    assert.deepEqual(
      (v.openAlarms as Obj[]).map((a) => [a.bit, a.startUnixMs]),
      [[1, trackPoint(3).time]],
    );
    assert.equal((v.registration as Obj).plate, '粤A12345');
    await assert.rejects(call('getVehicle', { vehicleId: '999' }), { code: grpc.status.NOT_FOUND });
    await assert.rejects(call('getVehicle', { vehicleId: 'abc' }), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    t.close();
  });

  it('ConfirmAlarms marks open alarms handled and tells the terminal (0x8203) about sticky bits; its next report closes them', async () => {
    const t = await online('013800000006');
    t.answerCommands(() => trackPoint(2));
    const confirm = t.waitFor((f) => f.message?.type === 'AlarmConfirm');
    // Emergency (bit 0, kept until confirmed) and overspeed (bit 1, not).
    assert.equal(await t.report(trackPoint(1, { alarm: 0b11 })), 0);
    const res = await call('confirmAlarms', { vehicleId: '13800000006', bits: 0 });
    assert.deepEqual((res.confirmed as Obj[]).map((a) => a.bit).sort(), [0, 1]);
    assert.notEqual(res.commandId, '');
    const f = await confirm;
    assert.ok(f.message?.type === 'AlarmConfirm');
    assert.deepEqual(f.message.body, { alarmSerial: 0, alarmType: 0b1 });
    // The terminal clears the emergency bit; overspeed goes on.
    assert.equal(await t.report(trackPoint(2, { alarm: 0b10 })), 0);
    await node.flush();
    const records = await node.client
      .db(`fleetmesh_grpc_${process.pid}`)
      .collection('alarms')
      .find({ vehicleId: '13800000006' })
      .toArray();
    const byBit = new Map(records.map((r) => [r.bit as number, r]));
    assert.equal(byBit.get(0)?.handlingStatus, 2);
    assert.equal(byBit.get(0)?.needsConfirmation, true);
    assert.equal((byBit.get(0)?.endTime as Date).getTime(), trackPoint(2).time);
    assert.equal(byBit.get(1)?.handlingStatus, 2);
    assert.equal(byBit.get(1)?.endTime, null);
    const status = await call('getCommand', { commandId: res.commandId });
    assert.equal(status.state, 'ANSWERED');
    t.close();
  });

  it('ConfirmAlarms records who handled each alarm and when (the operator, else the token’s name, else "api"); ListAlarms shows them, also after the alarm closes', async () => {
    const t = await online('013800000008');
    t.answerCommands(() => trackPoint(2));
    // Emergency (bit 0, kept until confirmed), overspeed (1) and fatigue (2).
    assert.equal(await t.report(trackPoint(1, { alarm: 0b111 })), 0);
    const told = t.waitFor((f) => f.message?.type === 'AlarmConfirm');
    const before0 = Date.now();
    const first = await call('confirmAlarms', {
      vehicleId: '13800000008',
      bits: 0b1,
      operator: '  张三  ',
    });
    const after0 = Date.now();
    assert.deepEqual(
      (first.confirmed as Obj[]).map((a) => a.bit),
      [0],
    );
    await call('confirmAlarms', { vehicleId: '13800000008', bits: 0b10 }, auth('second-token'));
    await call('confirmAlarms', { vehicleId: '13800000008', bits: 0b100 });
    await assert.rejects(
      call('confirmAlarms', { vehicleId: '13800000008', bits: 0b100, operator: 'x'.repeat(65) }),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.INVALID_ARGUMENT &&
        /operator is 65 characters, at most 64/.test(err.details),
    );
    // The terminal clears the emergency bit once told (0x8203): its record closes, handled.
    await told;
    assert.equal(await t.report(trackPoint(2, { alarm: 0b110 })), 0);
    await node.flush();
    const res = await call(
      'listAlarms',
      {
        vehicleIds: ['13800000008'],
        fromUnixMs: (trackPoint(1).time as number) - 1,
        toUnixMs: (trackPoint(2).time as number) + 1,
      },
      auth(),
      history,
    );
    const byType = new Map((res.alarms as Obj[]).map((a) => [a.typeCode as number, a]));
    assert.deepEqual([...byType.keys()].sort(), [0, 1, 2]);
    assert.equal(byType.get(0)?.handlingStatus, 2);
    assert.equal(byType.get(0)?.handledBy, '张三');
    const at0 = byType.get(0)?.handledUnixMs as number;
    assert.ok(
      at0 >= before0 && at0 <= after0,
      `handled at ${at0}, asked in [${before0}, ${after0}]`,
    );
    assert.equal(
      ((byType.get(0)?.end as Obj | null)?.timeUnixMs as number) ?? 0,
      trackPoint(2).time,
    );
    assert.equal(byType.get(1)?.handledBy, 'desk-2');
    assert.equal(byType.get(2)?.handledBy, 'api');
    assert.ok((byType.get(2)?.handledUnixMs as number) >= at0);
    t.close();
  });

  it('ListOnlineVehicles pages through every online vehicle in id order', async () => {
    const phones = [5, 3, 1, 4, 2].map((i) => `0138100000${String(i).padStart(2, '0')}`);
    const terminals = await Promise.all(phones.map(online));
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const res = await call('listOnlineVehicles', { pageSize: 2, pageToken: token });
      const ids = (res.vehicles as Obj[]).map((o) => String(o.vehicleId));
      assert.ok(ids.length <= 2);
      seen.push(...ids);
      token = String(res.nextPageToken);
      pages++;
      assert.ok(pages < 10);
    } while (token !== '');
    const ours = seen.filter((id) => id.startsWith('13810'));
    assert.deepEqual(ours, [
      '13810000001',
      '13810000002',
      '13810000003',
      '13810000004',
      '13810000005',
    ]);
    assert.deepEqual([...seen].sort(), seen, 'in id order');
    terminals.forEach((t) => t.close());
  });

  it('ListOnlineVehicles refuses a page over 1000 or not a whole number, as the other list calls do', async () => {
    for (const pageSize of [1001, 100_000])
      await assert.rejects(call('listOnlineVehicles', { pageSize }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
        assert.match(err.details, /page_size .* over the limit of 1000/);
        return true;
      });
    await assert.rejects(call('listOnlineVehicles', { pageSize: -1 }), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    assert.equal(
      typeof (await call('listOnlineVehicles', { pageSize: 1000 })).totalOnline,
      'number',
    );
  });

  it('SendCommand with wait returns the terminal’s answer; GetCommand reports it', async () => {
    const t = await online('013800000002');
    t.waitFor((f) => f.message?.type === 'TextMessage').then((f) =>
      t.send({
        type: 'TerminalResponse',
        body: { replySerial: f.header.serial, replyId: 0x8300, result: 0 },
      }),
    );
    const res = await call('sendCommand', {
      vehicleId: '13800000002',
      textMessage: { flag: 8, text: '请注意安全' },
      wait: true,
      waitTimeoutMs: 5000,
    });
    const status = res.status as Obj;
    assert.equal(status.state, 'ANSWERED');
    assert.equal(status.result, 0);
    assert.equal(status.replyType, 'TerminalResponse');
    assert.equal(status.attempts, 1);
    const again = await call('getCommand', { commandId: res.commandId });
    assert.equal(again.state, 'ANSWERED');
    assert.equal(again.vehicleId, '13800000002');
    t.close();
  });

  it('a TakePhoto’s status has the 0x0805’s result (0 answered, else failed), as its reply JSON, also from the log', async () => {
    const vehicleId = '13800000096';
    const t = await online('013800000096');
    const photo = async (result: number): Promise<Obj> => {
      const asked = t.waitFor((f) => f.message?.type === 'TakePhoto');
      const res = call('sendCommand', {
        vehicleId,
        takePhoto: { channel: 1, count: 1 },
        wait: true,
        waitTimeoutMs: 5000,
      });
      const f = await asked;
      t.send({
        type: 'PhotoReply',
        body: { replySerial: f.header.serial, result, mediaIds: result === 0 ? [7] : [] },
      });
      return (await res).status as Obj;
    };
    const ok = await photo(0);
    assert.equal(ok.state, 'ANSWERED');
    assert.equal(ok.replyType, 'PhotoReply');
    assert.equal(ok.result, 0);
    assert.equal(JSON.parse(String(ok.replyJson)).result, 0);
    const refused = await photo(2);
    assert.equal(refused.state, 'FAILED');
    assert.equal(refused.result, 2);
    // From the log (no reply body there): the answered one's result is 0.
    let listed: Obj[] = [];
    for (let tries = 0; ; tries++) {
      await node.flush();
      listed = (await call('listCommands', { vehicleId })).commands as Obj[];
      if (listed.length === 2 && listed.every((c) => c.state !== 'SENT' && c.state !== 'QUEUED'))
        break;
      assert.ok(tries < 500, 'the photos never reached the log');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(
      listed.map((c) => [c.kind, c.state, c.result]),
      [
        ['TakePhoto', 'FAILED', 2],
        ['TakePhoto', 'ANSWERED', 0],
      ],
    );
    t.close();
  });

  it('a parameter query is answered with the parameters, as JSON in the status', async () => {
    const t = await online('013800000003');
    t.waitFor((f) => f.message?.type === 'QueryParameters').then((f) =>
      t.send({
        type: 'ParametersReply',
        body: { replySerial: f.header.serial, params: [{ id: 0x0001, value: 30 }] },
      }),
    );
    const res = await call('sendCommand', {
      vehicleId: '13800000003',
      queryParameters: { ids: [1] },
      wait: true,
    });
    const status = res.status as Obj;
    assert.equal(status.state, 'ANSWERED');
    assert.equal(status.replyType, 'ParametersReply');
    assert.deepEqual(JSON.parse(String(status.replyJson)).params, [{ id: 1, value: 30 }]);
    t.close();
  });

  it('without wait, or for an offline vehicle past the wait timeout, the command id comes back queued', async () => {
    // Registered once, offline now.
    (await online('013800000099')).close();
    const res = await call('sendCommand', { vehicleId: '13800000099', queryPosition: {} });
    assert.match(String(res.commandId), /^[0-9a-f-]{36}$/);
    assert.equal((res.status as Obj).state, 'QUEUED');
    const waited = await call('sendCommand', {
      vehicleId: '13800000099',
      queryPosition: {},
      wait: true,
      waitTimeoutMs: 200,
    });
    assert.equal((waited.status as Obj).state, 'QUEUED');
    const s = await call('getCommand', { commandId: res.commandId });
    assert.equal(s.state, 'QUEUED');
    await assert.rejects(call('getCommand', { commandId: 'nope' }), {
      code: grpc.status.NOT_FOUND,
    });
  });

  it('commands and confirmations for a vehicle that never registered are NOT_FOUND, and nothing is stored', async () => {
    const vehicleId = '99999999999';
    const db = node.client.db(node.database);
    for (const req of [
      { vehicleId, textMessage: { flag: 8, text: 'hello' } },
      { vehicleId, textMessage: { flag: 8, text: 'hello' }, wait: true, waitTimeoutMs: 5000 },
      { vehicleId, takePhoto: { channel: 1, count: 1 } },
    ])
      await assert.rejects(call('sendCommand', req), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.NOT_FOUND);
        assert.match(err.details, /vehicle 99999999999 has never registered/);
        return true;
      });
    await assert.rejects(call('confirmAlarms', { vehicleId, bits: 0, operator: 'x' }), {
      code: grpc.status.NOT_FOUND,
    });
    await assert.rejects(call('getVehicle', { vehicleId }), { code: grpc.status.NOT_FOUND });
    // A registered vehicle's command after them: once the log has it, the unknown one's would be.
    (await online('013800000098')).close();
    const later = await call('sendCommand', { vehicleId: '13800000098', queryPosition: {} });
    for (let tries = 0; ; tries++) {
      await node.flush();
      const logged = await db
        .collection('commands')
        .countDocuments({ commandId: String(later.commandId) });
      if (logged > 0) break;
      assert.ok(tries < 500, 'the registered vehicle’s command never reached the log');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await db.collection('vehicles').countDocuments({ _id: vehicleId as never }), 0);
    assert.equal(await db.collection('commands').countDocuments({ vehicleId }), 0);
    assert.deepEqual((await call('listCommands', { vehicleId })).commands, []);
  });

  it('a command’s created time is one reading: SendCommand, GetCommand, ListCommands and GetVehicle agree', async () => {
    const vehicleId = '13800000097';
    (await online('013800000097')).close();
    const res = await call('sendCommand', { vehicleId, textMessage: { flag: 8, text: 'when' } });
    const created = (res.status as Obj).createdUnixMs;
    assert.equal(typeof created, 'number');
    assert.equal((res.status as Obj).kind, 'TextMessage');
    assert.equal((res.status as Obj).messageId, 0x8300);
    assert.equal((await call('getCommand', { commandId: res.commandId })).createdUnixMs, created);
    const pending = (await call('getVehicle', { vehicleId })).pendingCommands as Obj[];
    assert.deepEqual(
      pending.map((c) => [c.commandId, c.createdUnixMs]),
      [[res.commandId, created]],
    );
    let listed: Obj[] = [];
    for (let tries = 0; listed.length === 0; tries++) {
      assert.ok(tries < 500, 'the command never reached the log');
      await node.flush();
      listed = (await call('listCommands', { vehicleId })).commands as Obj[];
      if (listed.length === 0) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(listed[0]!.commandId, res.commandId);
    assert.equal(listed[0]!.createdUnixMs, created);
  });

  it('malformed commands are INVALID_ARGUMENT', async () => {
    await assert.rejects(call('sendCommand', { vehicleId: '13800000001' }), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    await assert.rejects(
      call('sendCommand', {
        vehicleId: '13800000001',
        raw: { messageId: 0x0200, body: Buffer.alloc(0) },
      }),
      { code: grpc.status.INVALID_ARGUMENT },
    );
    await assert.rejects(
      call('sendCommand', { vehicleId: '13800000001', textMessage: { flag: 300, text: 'x' } }),
      { code: grpc.status.INVALID_ARGUMENT },
    );
  });

  it('ListCommands pages through a vehicle’s commands from the log, newest first, with kind, message id, state and reply; a range narrows them', async () => {
    const vehicleId = '13800000009';
    const t = await online('013800000009');
    t.answerCommands(() => trackPoint(3));
    // Answered while the terminal is online, one after the other.
    const answered: string[] = [];
    for (const command of [
      { textMessage: { flag: 8, text: 'one' } },
      { queryParameters: { ids: [1] } },
      { queryPosition: {} },
      { textMessage: { flag: 8, text: 'four' } },
    ]) {
      const res = await call('sendCommand', { vehicleId, ...command, wait: true });
      assert.equal((res.status as Obj).state, 'ANSWERED');
      answered.push(String(res.commandId));
    }
    // The same terminal on a new connection that answers nothing: a command goes out to it and
    // is in flight when it leaves (then logged 'queued' again: it waits for the terminal).
    const silent = new SimTerminal({ port: node.port, phone: '013800000009' });
    await silent.connect();
    assert.equal(await silent.authenticate(t.authCode), 0);
    const sent = silent.waitFor((f) => f.message?.type === 'TextMessage');
    const inFlight = String(
      (await call('sendCommand', { vehicleId, textMessage: { flag: 8, text: 'five' } })).commandId,
    );
    await sent;
    silent.close();
    t.close();
    // Once the vehicle knows its terminal left (GetVehicle says offline):
    for (let tries = 0; (await call('getVehicle', { vehicleId })).online === true; tries++) {
      assert.ok(tries < 1000, 'the vehicle never went offline');
      await new Promise((r) => setTimeout(r, 10));
    }
    // Queued for an offline terminal: never answered here.
    const queued: string[] = [inFlight];
    for (let i = 0; i < 3; i++)
      queued.push(String((await call('sendCommand', { vehicleId, queryPosition: {} })).commandId));
    // Logged: queued (first, named), sent, queued again (terminal offline).
    const requeued = await (async () => {
      for (let tries = 0; ; tries++) {
        await node.flush();
        const s = await call('getCommand', { commandId: inFlight });
        if (s.state === 'QUEUED' && s.attempts === 1) return s;
        assert.ok(
          tries < 1000,
          `the command in flight was never queued again (${String(s.state)})`,
        );
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    assert.equal(requeued.detail, 'terminal offline');
    await node.flush();

    // Brute force: every entry of the log for the vehicle, read with one find.
    const log = await node.client
      .db(`fleetmesh_grpc_${process.pid}`)
      .collection('commands')
      .find({ vehicleId })
      .toArray();
    // A command's first entry names it (createdAt); 'queued' may come again (requeued).
    const firsts = log
      .filter((d) => d.createdAt instanceof Date)
      .sort((a, b) => {
        const d = (b.createdAt as Date).getTime() - (a.createdAt as Date).getTime();
        return d !== 0 ? d : String(b._id) < String(a._id) ? -1 : 1;
      });
    assert.deepEqual(firsts.map((d) => d.commandId).sort(), [...answered, ...queued].sort());

    const list = async (req: Obj, pageSize: number): Promise<Obj[]> => {
      const got: Obj[] = [];
      let token = '';
      let pages = 0;
      do {
        const page = await call('listCommands', { vehicleId, ...req, pageSize, pageToken: token });
        const commands = page.commands as Obj[];
        assert.ok(commands.length <= pageSize);
        got.push(...commands);
        token = String(page.nextPageToken);
        assert.ok(++pages <= 10);
      } while (token !== '');
      return got;
    };
    for (const size of [1, 2, 3, 7, 500]) {
      const all = await list({}, size);
      assert.deepEqual(
        all.map((c) => c.commandId),
        firsts.map((d) => d.commandId),
        `page size ${size}`,
      );
    }
    const all = await list({}, 100);
    const byId = new Map(all.map((c) => [String(c.commandId), c]));
    for (const id of answered) {
      const c = byId.get(id) as Obj;
      assert.equal(c.state, 'ANSWERED');
      assert.equal(c.vehicleId, vehicleId);
      assert.equal(c.attempts, 1);
      assert.notEqual(c.replyType, '');
      assert.notEqual(c.replyJson, '', 'the reply body from the server’s memory');
    }
    assert.deepEqual(
      answered.map((id) => [byId.get(id)?.kind, byId.get(id)?.messageId]),
      [
        ['TextMessage', 0x8300],
        ['QueryParameters', 0x8106],
        ['LocationQuery', 0x8201],
        ['TextMessage', 0x8300],
      ],
    );
    assert.equal(byId.get(answered[0] as string)?.result, 0);
    assert.equal(byId.get(answered[1] as string)?.replyType, 'ParametersReply');
    for (const id of queued) {
      const c = byId.get(id) as Obj;
      assert.equal(c.state, 'QUEUED');
      assert.equal(c.kind, id === inFlight ? 'TextMessage' : 'LocationQuery');
      assert.equal(c.attempts, id === inFlight ? 1 : 0);
      assert.equal(c.result, -1);
    }
    for (const [i, d] of firsts.entries()) {
      const c = all[i] as Obj;
      assert.equal(c.createdUnixMs, (d.createdAt as Date).getTime());
      const events = log.filter((e) => e.commandId === d.commandId);
      assert.equal(c.updatedUnixMs, Math.max(...events.map((e) => (e.at as Date).getTime())));
    }

    // A range of queued times: [the 2nd oldest, the newest) leaves out the oldest and newest.
    const times = firsts.map((d) => (d.createdAt as Date).getTime());
    const from = times[times.length - 2] as number;
    const to = times[0] as number;
    const ranged = await list({ fromUnixMs: from, toUnixMs: to }, 2);
    assert.deepEqual(
      ranged.map((c) => c.commandId),
      firsts.filter((_, i) => times[i]! >= from && times[i]! < to).map((d) => d.commandId),
    );
    assert.deepEqual(
      (await list({ fromUnixMs: to }, 2)).map((c) => c.commandId),
      firsts.filter((_, i) => times[i]! >= to).map((d) => d.commandId),
    );
    assert.deepEqual(await list({}, 5).then((l) => l.length), firsts.length);

    assert.ok(
      log.some((d) => d.state === 'queued' && d.createdAt === undefined),
      'the commands in flight when the terminal left were logged queued again',
    );
    assert.deepEqual((await call('listCommands', { vehicleId: '13899999999' })).commands, []);
  });

  it('ListCommands refuses bad input with INVALID_ARGUMENT, and calls without a token', async () => {
    const bad = async (req: Obj, message: RegExp): Promise<void> =>
      assert.rejects(call('listCommands', req), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
        assert.match(err.details, message);
        return true;
      });
    await bad({ vehicleId: 'abc' }, /vehicle id 'abc' must be 1 to 20 digits/);
    await bad({ vehicleId: '' }, /must be 1 to 20 digits/);
    await bad(
      { vehicleId: '13800000009', pageSize: 501 },
      /page_size 501 is over the limit of 500/,
    );
    await bad(
      { vehicleId: '13800000009', fromUnixMs: 2000, toUnixMs: 1000 },
      /to_unix_ms \(1000\) must be after from_unix_ms \(2000\)/,
    );
    await bad(
      { vehicleId: '13800000009', fromUnixMs: -5 },
      /from_unix_ms must be Unix milliseconds/,
    );
    await bad({ vehicleId: '13800000009', pageToken: 'nonsense' }, /page_token is not one/);
    await assert.rejects(call('listCommands', { vehicleId: '13800000009' }, auth('wrong')), {
      code: grpc.status.UNAUTHENTICATED,
    });
  });

  it('StreamEvents delivers only the vehicles and kinds asked for', async () => {
    const stream = (
      client as unknown as Record<
        string,
        (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
      >
    ).streamEvents!.call(
      client,
      { vehicleIds: ['13800000004'], kinds: ['POSITION', 'ALARM'] },
      auth(),
    );
    const events: Obj[] = [];
    stream.on('data', (e: Obj) => events.push(e));
    stream.on('error', () => undefined);
    // Until the server has subscribed and the workers produce the wanted kinds.
    await until(() => node.events.wantedKinds().has('position'));
    await node.eventsReady();
    const a = await online('013800000004');
    const b = await online('013800000005');
    assert.equal(await a.report(trackPoint(1, { alarm: 1 })), 0);
    assert.equal(await b.report(trackPoint(1, { alarm: 1 })), 0);
    assert.equal(await a.report(trackPoint(2)), 0);
    const deadline = Date.now() + 5000;
    while (events.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stream.cancel();
    assert.deepEqual(
      events.map((e) => [e.kind, e.vehicleId]),
      [
        ['POSITION', '13800000004'],
        ['ALARM', '13800000004'],
        ['POSITION', '13800000004'],
        ['ALARM', '13800000004'],
      ],
    );
    assert.deepEqual(events[1]!.alarm, { opened: true, bit: 0 });
    assert.deepEqual(events[3]!.alarm, { opened: false, bit: 0 });
    assert.equal((events[0]!.position as Obj).latitude, trackPoint(1).latitude);
    assert.equal(events[0]!.source, 'live');
    a.close();
    b.close();
  });

  it('at its limits: one stream too many is RESOURCE_EXHAUSTED; a status evicted from memory is read from storage', async () => {
    const small = await startGrpcServer(node, {
      tokens: [TOKEN],
      maxStreams: 1,
      maxCachedCommands: 1,
    });
    const Service = client.constructor as grpc.ServiceClientConstructor;
    const c = new Service(
      `127.0.0.1:${small.port}`,
      grpc.credentials.createInsecure(),
    ) as typeof client;
    try {
      const open = (): grpc.ClientReadableStream<Obj> =>
        (
          c as unknown as Record<
            string,
            (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
          >
        ).streamEvents!.call(c, {}, auth());
      // The first stream is open once its subscription (default kinds, online among them) is
      // in the node's event hub: the server counts a stream and subscribes in one step.
      await until(() => !node.events.wantedKinds().has('online'));
      const first = open();
      first.on('error', () => undefined);
      await until(() => node.events.wantedKinds().has('online'));
      const second = open();
      const err = await new Promise<grpc.ServiceError>((resolve) => second.on('error', resolve));
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      first.cancel();

      const send = (): Promise<Obj> =>
        new Promise((resolve, reject) =>
          (c.sendCommand as Call).call(
            c,
            { vehicleId: '13800000098', queryPosition: {} },
            auth(),
            (e, r) => (e ? reject(e) : resolve(r ?? {})),
          ),
        );
      const a = await send();
      await send(); // evicts a's status from the one-entry cache
      await node.flush();
      const status = await new Promise<Obj>((resolve, reject) =>
        (c.getCommand as Call).call(c, { commandId: a.commandId }, auth(), (e, r) =>
          e ? reject(e) : resolve(r ?? {}),
        ),
      );
      assert.equal(status.state, 'QUEUED');
      assert.equal(status.vehicleId, '13800000098');
      assert.equal(status.replyJson, '', 'storage keeps no reply JSON');
    } finally {
      c.close();
      await small.stop();
    }
  });

  it('StreamEvents without a token is UNAUTHENTICATED', async () => {
    const stream = (
      client as unknown as Record<
        string,
        (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
      >
    ).streamEvents!.call(client, {}, new grpc.Metadata());
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
  });

  it('ListMembers without membership answers an empty list and the node that answered', async () => {
    const res = await call('listMembers', {});
    assert.deepEqual(res.members, []);
    assert.equal(res.node, node.node);
  });

  it('ListMembers names a node with membership, its gateway, gRPC address, workers and load; without a token it is refused', async () => {
    // etcd of its own (the file's servers have none); the MongoDB-protocol server is shared.
    const etcd = await startLocalServers({ external: { mongodbUri: servers.mongodbUri } });
    const grpcPort = await freePort();
    let member: FleetNode | undefined;
    let memberApi: GrpcServer | undefined;
    let c: (grpc.Client & Record<string, Call>) | undefined;
    let terminal: SimTerminal | undefined;
    try {
      member = await startNode({
        node: 'grpc-member-1',
        mongodbUri: servers.mongodbUri,
        database: `fleetmesh_grpc_members_${process.pid}`,
        workers: 2,
        writer: { maxDelayMs: 5 },
        membership: {
          etcdEndpoints: etcd.etcdEndpoints,
          grpc: `127.0.0.1:${grpcPort}`,
          ttlSeconds: 5,
          capacity: 1234,
          zone: 'test-zone',
        },
      });
      memberApi = await startGrpcServer(member, { tokens: [TOKEN], port: grpcPort });
      const Service = loadClient<grpc.ServiceClientConstructor>(
        join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'),
        ['fleetmesh', 'v1', 'VehicleService'],
      );
      c = new Service(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as typeof c;
      const list = (md = auth()): Promise<Obj> =>
        new Promise((resolve, reject) =>
          (c!.listMembers as Call).call(c, {}, md, (err, res) =>
            err ? reject(err) : resolve(res ?? {}),
          ),
        );

      await assert.rejects(list(new grpc.Metadata()), { code: grpc.status.UNAUTHENTICATED });
      await assert.rejects(list(auth('wrong')), { code: grpc.status.UNAUTHENTICATED });

      const res = await list();
      assert.equal(res.node, 'grpc-member-1');
      const members = res.members as Obj[];
      assert.equal(members.length, 1, JSON.stringify(members));
      const m = members[0]!;
      assert.equal(m.node, 'grpc-member-1');
      assert.equal(m.gateway, `127.0.0.1:${member.port}`);
      assert.equal(m.grpc, `127.0.0.1:${grpcPort}`);
      assert.equal(m.workers, 2);
      assert.equal(m.draining, false);
      assert.ok((m.startedAtUnixMs as number) > 0, 'started_at is set');
      assert.ok((m.reportedAtUnixMs as number) >= (m.startedAtUnixMs as number));
      const load = m.load as Obj;
      assert.equal(load.capacity, 1234);
      assert.equal(load.zone, 'test-zone');
      assert.equal(load.terminals, 0);
      assert.ok((load.rssBytes as number) > 0, 'rss_bytes is reported');

      // A terminal connects: the next load report (sampled every second) counts it.
      terminal = new SimTerminal({ port: member.port, phone: '13800000201' });
      await terminal.connect();
      assert.equal(await terminal.register(), 0);
      assert.equal(await terminal.authenticate(), 0);
      let seen: Obj = {};
      const deadline = Date.now() + 10_000;
      for (;;) {
        seen = ((await list()).members as Obj[])[0]!.load as Obj;
        if (seen.terminals === 1 && seen.authenticated === 1) break;
        assert.ok(
          Date.now() < deadline,
          `the load report never counted the terminal: ${JSON.stringify(seen)}`,
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      terminal?.close();
      c?.close();
      await memberApi?.stop();
      await member?.stop();
      await etcd.stop();
    }
  });
});
