// Driver identity (0x0702) end to end: simulated terminals of the 2013 and 2019 editions report
// IC cards inserted and removed over real sockets; each report is stored as
// a driver record before its general response, a retransmission once, and
// HistoryService.ListDriverRecords gives back exactly the stored records of a range, in time
// order, page by page. Bad requests are INVALID_ARGUMENT.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Document } from 'mongodb';
import { SimTerminal } from '../../bench/terminal.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { HISTORY_PROTO } from '../../api/historyService.js';
import type { LocalServers } from '../../devservers/localServers.js';
import { vehicleIdOf, type Edition } from '../../jt808/header.js';
import type { DriverIdentity } from '../../jt808/messages.js';
import type { FleetNode } from '../../node/node.js';
import { COLLECTIONS } from '../../storage/schema.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;

const TOKEN = 'driver-token';
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };
const database = testDatabase('drivers');
/** Card times: whole seconds (BCD on the wire), GMT+8 on the wire, ms here. */
const T0 = Date.UTC(2026, 10, 2, 0, 0, 0);

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let client: grpc.Client & Record<string, Call>;

function call(method: string, req: Obj, token = TOKEN): Promise<Obj> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (client[method] as Call).call(client, req, md, (err, res) =>
      err ? reject(err) : resolve(res ?? {}),
    );
  });
}

async function online(phone: string, edition: Edition): Promise<SimTerminal> {
  const t = new SimTerminal({ port: node.port, phone, edition });
  await t.connect();
  assert.equal(await t.register(), 0);
  assert.equal(await t.authenticate(), 0);
  return t;
}

/** Sends a 0x0702 and resolves with the result of the platform's general response to it. */
async function report(
  t: SimTerminal,
  body: DriverIdentity,
  serial = t.nextSerial(),
): Promise<number> {
  const answer = t.waitFor(
    (f) =>
      f.message?.type === 'PlatformResponse' &&
      f.message.body.replySerial === serial &&
      f.message.body.replyId === 0x0702,
  );
  t.send({ type: 'DriverIdentity', body }, serial);
  const f = await answer;
  assert.ok(f.message?.type === 'PlatformResponse');
  return f.message.body.result;
}

before(async () => {
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database, { workers: 1 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(HISTORY_PROTO, LOADER)) as Obj;
  const History = ((loaded.fleetmesh as Obj).v1 as Obj)
    .HistoryService as grpc.ServiceClientConstructor;
  client = new History(`127.0.0.1:${api.port}`, grpc.credentials.createInsecure()) as typeof client;
});

after(async () => {
  client?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

/** Every page of a request, each checked against its size bound. */
async function allPages(req: Obj, size: number): Promise<Obj[]> {
  const out: Obj[] = [];
  let token = '';
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 100, 'paging does not end');
    const page = await call('listDriverRecords', { ...req, pageSize: size, pageToken: token });
    const records = page.records as Obj[];
    assert.ok(records.length <= size);
    out.push(...records);
    token = String(page.nextPageToken);
    if (token === '') return out;
  }
}

/** A stored document as ListDriverRecords shows it. */
function expected(d: Document): Obj {
  return {
    recordId: d._id,
    vehicleId: d.vehicleId,
    timeUnixMs: (d.time as Date).getTime(),
    receivedUnixMs: (d.receivedAt as Date).getTime(),
    timeInvalid: d.timeInvalid === true,
    edition: d.edition,
    cardState: d.state ?? 0,
    readResult: d.readResult ?? -1,
    driverName: d.driverName ?? '',
    certificateCode: d.certificateCode ?? '',
    issuingAuthority: d.issuingAuthority ?? '',
    certificateValidity: d.certificateValidity ?? '',
    driverIdNumber: d.driverIdNumber ?? '',
  };
}

describe('driver identity records (0x0702)', () => {
  it('2013 and 2019 terminals: each report is stored before its answer, a retransmission once; ListDriverRecords pages give exactly the stored records in time order', async () => {
    const t13 = await online('013600000001', 2013);
    const on13: DriverIdentity = {
      state: 1,
      time: T0 + 8 * 3_600_000,
      readResult: 0,
      driverName: '张三',
      certificateCode: '12345678901234567890',
      issuingAuthority: '广州市交通运输局',
      certificateValidity: '20301231',
    };
    const serial = t13.nextSerial();
    assert.equal(await report(t13, on13, serial), 0);
    // Answered only once stored: the record is there as soon as the answer is.
    const stored = node.client.db(database).collection(COLLECTIONS.driverRecords);
    const first = await stored.findOne({ vehicleId: '13600000001' });
    assert.ok(first, 'stored before the general response');
    assert.equal(first.driverName, '张三');
    assert.equal((first.time as Date).getTime(), on13.time);
    assert.equal(await report(t13, on13, serial), 0, 'a retransmission is answered');
    assert.equal(await report(t13, { state: 1, time: T0 + 9 * 3_600_000, readResult: 2 }), 0);
    assert.equal(await report(t13, { state: 2, time: T0 + 17 * 3_600_000 }), 0);

    const t19 = await online('01360000000200000000', 2019);
    const on19: DriverIdentity = {
      state: 1,
      time: T0 + 10 * 3_600_000,
      readResult: 0,
      driverName: '李四',
      certificateCode: 'A2345678901234567890',
      issuingAuthority: '深圳市交通运输局',
      certificateValidity: '20291130',
      driverIdNumber: '440301199001011234',
    };
    assert.equal(await report(t19, on19), 0);
    assert.equal(await report(t19, { state: 2, time: T0 + 18 * 3_600_000 }), 0);
    // A card time the terminal could not give (all zeros): kept at the receive time, marked.
    assert.equal(await report(t19, { state: 2, time: null }), 0);

    const docs = await stored.find({}).toArray();
    assert.equal(docs.length, 6, 'every report once (the retransmission collapsed)');
    const v19 = docs.filter((d) => d.vehicleId === vehicleIdOf('01360000000200000000'));
    assert.equal(v19.length, 3);
    assert.equal(v19.find((d) => d.driverName === '李四')?.driverIdNumber, on19.driverIdNumber);
    assert.equal(v19.filter((d) => d.timeInvalid === true).length, 1);
    for (const d0 of docs) {
      const vehicleId = String(d0.vehicleId);
      const mine = docs
        .filter((d) => d.vehicleId === vehicleId)
        .sort(
          (a, b) =>
            (a.time as Date).getTime() - (b.time as Date).getTime() ||
            (String(a._id) < String(b._id) ? -1 : 1),
        );
      const range = { vehicleId, fromUnixMs: T0 - 86_400_000, toUnixMs: Date.now() + 60_000 };
      for (const size of [1, 2, 1000])
        assert.deepEqual(
          await allPages(range, size),
          mine.map(expected),
          `${vehicleId} by ${size}`,
        );
    }
    // A range cuts by card time, half-open.
    const cut = await allPages(
      { vehicleId: '13600000001', fromUnixMs: on13.time, toUnixMs: T0 + 17 * 3_600_000 },
      10,
    );
    assert.deepEqual(
      cut.map((r) => [r.cardState, r.readResult, r.driverName]),
      [
        [1, 0, '张三'],
        [1, 2, ''],
      ],
    );
    for (const t of [t13, t19]) t.close();
  });

  it('a 2011 terminal: its edition, known from its registration, holds for the session after authentication (same header as 2013), so its 0x0702 (table 64) is read and stored', async () => {
    const t11 = await online('013600000011', 2011);
    const card: DriverIdentity = {
      driverName: '王五',
      driverIdNumber: '440301198001011234',
      certificateCode: 'C2345678901234567890',
      issuingAuthority: '佛山市交通运输局',
    };
    assert.equal(await report(t11, card), 0);
    const stored = node.client.db(database).collection(COLLECTIONS.driverRecords);
    const doc = await stored.findOne({ vehicleId: vehicleIdOf('013600000011') });
    assert.ok(doc, 'stored');
    assert.equal(doc.edition, 2011);
    assert.equal(doc.driverName, '王五');
    assert.equal(doc.driverIdNumber, card.driverIdNumber);
  });

  it('bad requests are INVALID_ARGUMENT with what is wrong; a wrong token is UNAUTHENTICATED', async () => {
    const bad = (req: Obj, message: RegExp): Promise<void> =>
      assert.rejects(call('listDriverRecords', req), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
        assert.match(err.details, message);
        return true;
      });
    const ok = { vehicleId: '13600000001', fromUnixMs: T0, toUnixMs: T0 + 86_400_000 };
    await bad({ ...ok, vehicleId: 'x1' }, /vehicle id 'x1' must be 1 to 20 digits/);
    await bad({ ...ok, toUnixMs: T0 }, /to_unix_ms .* must be after from_unix_ms/);
    await bad(
      { ...ok, toUnixMs: T0 + 367 * 86_400_000 },
      /the range is 367 days, at most 366 days/,
    );
    await bad({ ...ok, pageSize: 1001 }, /page_size 1001 is over the limit of 1000/);
    await bad({ ...ok, pageToken: '%%' }, /page_token is not one this service handed out/);
    await assert.rejects(call('listDriverRecords', ok, 'nope'), {
      code: grpc.status.UNAUTHENTICATED,
    });
  });
});
