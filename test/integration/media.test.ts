// Media uploads (0x0801) end to end: a photo sent in sub-packages is reassembled, stored in
// GridFS with its metadata, and only then answered with 0x8800; an upload sent again is stored
// once; a reused media id with other content is a new file. And read back over gRPC: a photo
// taken on a SendCommand TakePhoto (0x8801 → 0x0805, then the 0x0801 upload) is listed by
// HistoryService.ListMedia and DownloadMedia streams the identical bytes in bounded chunks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { addHistoryService, HISTORY_PROTO } from '../../api/historyService.js';
import { projectRoot } from '../../devservers/localServers.js';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { encodeBody } from '../../jt808/codec.js';
import type { Message } from '../../jt808/messages.js';
import { splitMessage } from '../../jt808/split.js';
import { MEDIA_BUCKET, MediaStore } from '../../storage/mediaStore.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

type Obj = Record<string, unknown>;
type Call = (
  req: Obj,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res?: Obj) => void,
) => void;
type Client = grpc.Client & Record<string, Call>;
const TOKEN = 'media-token';
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let vehicles: Client;
let history: Client;
const database = testDatabase('media');

function service(path: string, name: string): grpc.ServiceClientConstructor {
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(path, LOADER)) as Obj;
  return ((loaded.fleetmesh as Obj).v1 as Obj)[name] as grpc.ServiceClientConstructor;
}

function auth(token = TOKEN): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

function call(c: Client, method: string, req: Obj, md = auth()): Promise<Obj> {
  return new Promise((resolve, reject) => {
    (c[method] as Call).call(c, req, md, (err, res) => (err ? reject(err) : resolve(res ?? {})));
  });
}

/** Every chunk DownloadMedia streams for `req`. */
function download(req: Obj, md = auth()): Promise<Obj[]> {
  return new Promise((resolve, reject) => {
    const s = (
      history as unknown as Record<
        string,
        (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
      >
    ).downloadMedia!.call(history, req, md);
    const chunks: Obj[] = [];
    s.on('data', (c: Obj) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => resolve(chunks));
  });
}

before(async () => {
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database);
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  const address = `127.0.0.1:${api.port}`;
  const Vehicles = service(
    join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'),
    'VehicleService',
  );
  vehicles = new Vehicles(address, grpc.credentials.createInsecure()) as Client;
  history = new (service(HISTORY_PROTO, 'HistoryService'))(
    address,
    grpc.credentials.createInsecure(),
  ) as Client;
});
after(async () => {
  vehicles?.close();
  history?.close();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

/** Uploads `data` as media `mediaId` in packages of 500 bytes; resolves with the 0x8800 body. */
async function upload(
  t: SimTerminal,
  mediaId: number,
  data: Uint8Array,
  media: { mediaType?: number; format?: number; event?: number; channel?: number } = {},
): Promise<unknown> {
  const message: Message = {
    type: 'MediaData',
    body: {
      mediaId,
      mediaType: media.mediaType ?? 0,
      format: media.format ?? 0,
      event: media.event ?? 1,
      channel: media.channel ?? 2,
      location: trackPoint(5),
      data,
    },
  };
  const body = encodeBody(message, 2013);
  const first = t.nextSerial();
  const split = splitMessage(
    0x0801,
    body,
    { phone: t.options.phone, serial: first, edition: 2013 },
    500,
  );
  for (let i = 1; i < split.serials.length; i++) t.nextSerial();
  const reply = t.waitFor(
    (f) => f.message?.type === 'MediaDataReply' && f.message.body.mediaId === mediaId,
  );
  for (const frame of split.frames) t.writeRaw(frame);
  const f = await reply;
  return JSON.parse(JSON.stringify(f.message?.body)) as unknown; // drops absent optional fields
}

describe('media uploads (real sockets, GridFS on the real MongoDB-protocol server)', () => {
  it('a sub-packaged photo is stored with its metadata before 0x8800; sent again it is stored once', async () => {
    const t = new SimTerminal({ port: node.port, phone: '013700000001' });
    await t.connect();
    assert.equal(await t.register(), 0);
    assert.equal(await t.authenticate(), 0);
    const photo = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(3000)]);
    const reply = await upload(t, 77, photo);
    assert.deepEqual(reply, { mediaId: 77 });
    // Answered only after storing: the file is there as soon as the reply is.
    const files = node.client.db(database).collection(`${MEDIA_BUCKET}.files`);
    const id = MediaStore.fileId({ vehicleId: '13700000001', mediaId: 77, data: photo });
    const file = await files.findOne({ _id: id as never });
    assert.ok(file, 'stored before 0x8800');
    assert.equal(file.length, photo.length);
    assert.equal(file.filename, '13700000001-77.jpg');
    assert.equal(file.metadata.vehicleId, '13700000001');
    assert.equal(file.metadata.channel, 2);
    assert.equal(file.metadata.latitude, trackPoint(5).latitude);
    const stored = await new MediaStore(node.client.db(database)).read(id);
    assert.ok(stored.equals(photo), 'the same bytes');

    assert.deepEqual(await upload(t, 77, photo), { mediaId: 77 }, 'a retransmission is answered');
    const other = Buffer.concat([Buffer.from([0xff, 0xd8]), randomBytes(800)]);
    assert.deepEqual(await upload(t, 77, other), { mediaId: 77 });
    const all = await files.find({ 'metadata.vehicleId': '13700000001' }).toArray();
    assert.equal(
      all.length,
      2,
      'the retransmission stored once, the reused id with new content kept',
    );
    t.close();
  });

  it('TakePhoto: the terminal answers 0x0805 and uploads the photo in packages; ListMedia lists it and DownloadMedia streams the identical bytes', async () => {
    const t = new SimTerminal({ port: node.port, phone: '013700000002' });
    await t.connect();
    assert.equal(await t.register(), 0);
    assert.equal(await t.authenticate(), 0);
    t.answerCommands(() => trackPoint(5));
    const since = Date.now();
    const taken = await call(vehicles, 'sendCommand', {
      vehicleId: '13700000002',
      takePhoto: { channel: 1, count: 1, resolution: 1, quality: 5 },
      wait: true,
    });
    const status = taken.status as Obj;
    assert.equal(status.state, 'ANSWERED');
    assert.equal(status.replyType, 'PhotoReply');
    const reply = JSON.parse(String(status.replyJson)) as { result: number; mediaIds: number[] };
    assert.equal(reply.result, 0);
    const [terminalMediaId] = reply.mediaIds;
    assert.ok(terminalMediaId !== undefined);
    // The photo the 0x0805 named, uploaded in 500-byte packages; then a recording and another
    // photo, for the filter and the pages.
    const photo = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(4321)]);
    assert.deepEqual(await upload(t, terminalMediaId, photo, { event: 0, channel: 1 }), {
      mediaId: terminalMediaId,
    });
    const audio = randomBytes(1200);
    assert.deepEqual(await upload(t, 900, audio, { mediaType: 1, format: 2, event: 1 }), {
      mediaId: 900,
    });
    const second = Buffer.concat([Buffer.from([0xff, 0xd8]), randomBytes(700)]);
    assert.deepEqual(await upload(t, 901, second, { event: 1, channel: 2 }), { mediaId: 901 });
    const range = { vehicleId: '13700000002', fromUnixMs: since, toUnixMs: Date.now() + 1 };

    // Brute force: the bucket's files of the vehicle, read with one find.
    const files = await node.client
      .db(database)
      .collection(`${MEDIA_BUCKET}.files`)
      .find({ 'metadata.vehicleId': '13700000002' })
      .toArray();
    files.sort(
      (a, b) =>
        (a.metadata.receivedAt as Date).getTime() - (b.metadata.receivedAt as Date).getTime() ||
        (String(a._id) < String(b._id) ? -1 : 1),
    );
    assert.equal(files.length, 3);
    const list = async (req: Obj, pageSize: number): Promise<Obj[]> => {
      const out: Obj[] = [];
      let token = '';
      for (let pages = 0; ; pages++) {
        assert.ok(pages < 10);
        const page = await call(history, 'listMedia', { ...req, pageSize, pageToken: token });
        assert.ok((page.media as Obj[]).length <= pageSize);
        out.push(...(page.media as Obj[]));
        token = String(page.nextPageToken);
        if (token === '') return out;
      }
    };
    for (const size of [1, 2, 100])
      assert.deepEqual(
        (await list(range, size)).map((m) => m.mediaId),
        files.map((f) => f._id),
        `pages of ${size}`,
      );
    const images = await list({ ...range, mediaTypes: [0] }, 100);
    assert.deepEqual(
      images.map((m) => m.mediaId),
      files.filter((f) => f.metadata.mediaType === 0).map((f) => f._id),
    );
    const listed = images.find((m) => m.terminalMediaId === terminalMediaId) as Obj;
    assert.ok(listed, 'the photo the TakePhoto asked for is listed');
    assert.equal(listed.vehicleId, '13700000002');
    assert.equal(listed.mediaType, 0);
    assert.equal(listed.format, 0);
    assert.equal(listed.event, 0);
    assert.equal(listed.channel, 1);
    assert.equal(listed.sizeBytes, photo.length);
    assert.equal(listed.timeUnixMs, trackPoint(5).time);
    assert.equal(listed.latitude, trackPoint(5).latitude);
    assert.equal(listed.longitude, trackPoint(5).longitude);
    assert.ok((listed.receivedUnixMs as number) >= since);
    assert.equal(listed.filename, `13700000002-${terminalMediaId}.jpg`);
    assert.deepEqual(
      (await list({ ...range, mediaTypes: [1] }, 100)).map((m) => [m.format, m.sizeBytes]),
      [[2, audio.length]],
    );
    assert.deepEqual(
      await list({ ...range, toUnixMs: since }, 100).catch(() => 'refused'),
      'refused',
    );
    assert.deepEqual(
      await list({ ...range, fromUnixMs: range.toUnixMs, toUnixMs: range.toUnixMs + 60_000 }, 100),
      [],
    );

    // Downloaded in chunks of 1000 bytes: the same bytes, offsets in order, the record first.
    const chunks = await download({ mediaId: listed.mediaId, chunkSize: 1000 });
    assert.equal(chunks.length, Math.ceil(photo.length / 1000));
    let offset = 0;
    for (const c of chunks) {
      assert.equal(c.offset, offset);
      assert.ok((c.data as Buffer).length <= 1000);
      offset += (c.data as Buffer).length;
    }
    assert.ok(Buffer.concat(chunks.map((c) => c.data as Buffer)).equals(photo), 'identical bytes');
    assert.equal((chunks[0]?.media as Obj).mediaId, listed.mediaId);
    assert.ok(chunks.slice(1).every((c) => c.media === null || c.media === undefined));
    // Default chunk size: the whole photo at once.
    const whole = await download({ mediaId: listed.mediaId });
    assert.equal(whole.length, 1);
    assert.ok((whole[0]?.data as Buffer).equals(photo));
    t.close();
  });

  it('DownloadMedia: NOT_FOUND for an unknown id, INVALID_ARGUMENT for a bad id or chunk size, UNAUTHENTICATED without a token; ListMedia refuses bad requests', async () => {
    const refused = async (p: Promise<unknown>, code: grpc.status, message?: RegExp) =>
      assert.rejects(p, (err: grpc.ServiceError) => {
        assert.equal(err.code, code, err.details);
        if (message) assert.match(err.details, message);
        return true;
      });
    await refused(download({ mediaId: '13700000002:1:0000' }), grpc.status.NOT_FOUND, /no media/);
    await refused(download({ mediaId: '' }), grpc.status.INVALID_ARGUMENT, /media_id must be/);
    await refused(
      download({ mediaId: 'x', chunkSize: 2_000_000 }),
      grpc.status.INVALID_ARGUMENT,
      /chunk_size must be from 1 to 1048576/,
    );
    await refused(download({ mediaId: 'x' }, auth('wrong')), grpc.status.UNAUTHENTICATED);
    const ok = { vehicleId: '13700000002', fromUnixMs: 1, toUnixMs: 2 };
    await refused(
      call(history, 'listMedia', { ...ok, pageSize: 1001 }),
      grpc.status.INVALID_ARGUMENT,
      /page_size 1001 is over the limit of 1000/,
    );
    await refused(
      call(history, 'listMedia', { ...ok, toUnixMs: 1 + 367 * 86_400_000 }),
      grpc.status.INVALID_ARGUMENT,
      /at most 366 days/,
    );
    await refused(
      call(history, 'listMedia', { ...ok, mediaTypes: [300] }),
      grpc.status.INVALID_ARGUMENT,
      /media type 300/,
    );
    // Only 0 image, 1 audio, 2 video exist: 3 to 255 are refused too, not matched against nothing.
    for (const t of [3, 7, 255])
      await refused(
        call(history, 'listMedia', { ...ok, mediaTypes: [0, t] }),
        grpc.status.INVALID_ARGUMENT,
        new RegExp(`media type ${t} is not a media type \\(0 image, 1 audio, 2 video\\)`),
      );
    await refused(
      call(history, 'listMedia', { ...ok, vehicleId: 'v' }),
      grpc.status.INVALID_ARGUMENT,
      /must be 1 to 20 digits/,
    );
  });
});

describe('a download whose reader stops reading', () => {
  it('ends with DEADLINE_EXCEEDED after the stall time and gives its query slot back', async () => {
    const db = node.client.db(database);
    // 3 MB: far more than the socket, HTTP/2 and stream buffers hold.
    const data = new Uint8Array(3 * 1024 * 1024).map((_, i) => i & 0xff);
    const { id } = await new MediaStore(db).save({
      vehicleId: '13900000777',
      mediaId: 9,
      mediaType: 0,
      format: 0,
      event: 0,
      channel: 1,
      receivedAt: Date.now(),
      data,
    });
    const server = new grpc.Server();
    const handle = addHistoryService(server, db, () => true, { stalledReaderMs: 300 });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const client = new (service(HISTORY_PROTO, 'HistoryService'))(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as Client;
    try {
      const s = (
        client as unknown as Record<
          string,
          (r: Obj, md: grpc.Metadata) => grpc.ClientReadableStream<Obj>
        >
      ).downloadMedia!.call(client, { mediaId: id, chunkSize: 65536 }, new grpc.Metadata());
      let chunks = 0;
      const ended = new Promise<grpc.ServiceError>((resolve) => s.on('error', resolve));
      s.on('data', () => {
        chunks++;
        s.pause(); // a reader that stops reading
      });
      await until(() => handle.running === 1, 'the download to run');
      await until(() => handle.running === 0, 'the query slot back', 20_000);
      assert.equal(chunks, 1, 'nothing more was read meanwhile');
      // Reading again, the caller gets what was buffered, then the stream's end as an error
      // (a status comes after the messages before it).
      s.removeAllListeners('data');
      s.on('data', () => chunks++);
      s.resume();
      const err = await ended;
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED, err.message);
      assert.match(err.details, /took nothing for 300 ms/);
      assert.ok(chunks < 48, `${chunks} of 48 chunks sent before it stalled`);
    } finally {
      client.close();
      server.forceShutdown();
      await handle.stop();
    }
  });
});
