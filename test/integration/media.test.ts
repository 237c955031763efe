// Media uploads (0x0801) end to end: a photo sent in sub-packages is reassembled, stored in
// GridFS with its metadata, and only then answered with 0x8800; an upload sent again is stored
// once; a reused media id with other content is a new file.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import type { LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { encodeBody } from '../../jt808/codec.js';
import type { Message } from '../../jt808/messages.js';
import { splitMessage } from '../../jt808/split.js';
import { MEDIA_BUCKET, MediaStore } from '../../storage/mediaStore.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';

let servers: LocalServers;
let node: FleetNode;
const database = testDatabase('media');

before(async () => {
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database);
});
after(async () => {
  await node?.stop();
  await servers?.stop();
});

/** Uploads `data` as media `mediaId` in packages of 500 bytes; resolves with the 0x8800 body. */
async function upload(t: SimTerminal, mediaId: number, data: Uint8Array): Promise<unknown> {
  const message: Message = {
    type: 'MediaData',
    body: {
      mediaId,
      mediaType: 0,
      format: 0,
      event: 1,
      channel: 2,
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
});
