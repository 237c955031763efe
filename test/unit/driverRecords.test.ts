// A driver identity report (0x0702) whose write fails for good: the vehicle's actor stores it
// through a real BatchWriter over a collection that refuses every bulk write; the failure is
// counted by the writer, the terminal gets a failure result with durable acknowledgements (so it
// sends the report again) and 0 with acknowledgements on receipt, and the vehicle goes on
// answering. Also the stored document of each edition's report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Collection, Document } from 'mongodb';
import { ActorSystem } from '../../actors/runtime.js';
import {
  VehicleActor,
  type TerminalLink,
  type VehiclePolicy,
  type VehicleMessage,
} from '../../actors/vehicleActor.js';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import type { Edition } from '../../jt808/header.js';
import type { Message } from '../../jt808/messages.js';
import { BatchWriter } from '../../storage/batchWriter.js';
import { driverRecordDocument } from '../../storage/driverRecords.js';
import type { VehicleStore } from '../../storage/vehicleStore.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';
import { until } from '../helpers/until.js';

const PHONE = '013912340077';
const ID = '13912340077';

/** A collection whose every bulk write fails with an error that is not worth retrying. */
function refusingCollection(): { collection: Collection<Document>; attempts: () => number } {
  let attempts = 0;
  const collection = {
    collectionName: 'driverRecords',
    bulkWrite: async () => {
      attempts++;
      throw new Error('disk full');
    },
  } as unknown as Collection<Document>;
  return { collection, attempts: () => attempts };
}

/** The part of VehicleStore the actor uses, driver records through `writer`, the rest stored. */
function storeWith(writer: BatchWriter): VehicleStore {
  const stored = Promise.resolve('stored' as const);
  return {
    load: async () => null,
    saveChanges: () => stored,
    insertPosition: () => stored,
    saveAlarm: () => stored,
    logSession: () => stored,
    logCommand: () => stored,
    saveDriverRecord: (doc: Document) => writer.insert(doc),
  } as unknown as VehicleStore;
}

class RecordingLink implements TerminalLink {
  readonly node = 'node-test';
  readonly sent: Message[] = [];
  constructor(readonly id: string) {}
  send(frame: Uint8Array): void {
    const r = decodeFrame(frame.subarray(1, -1));
    if (r.ok && r.message) this.sent.push(r.message);
  }
  close(): void {}
  authenticated(): void {}
}

let serial = 0;
function uplink(link: TerminalLink, message: Message, at: number): VehicleMessage {
  const frame = encodeFrame(message, { phone: PHONE, serial: serial++, edition: 2013 });
  const r = decodeFrame(frame.subarray(1, -1));
  assert.ok(r.ok && r.message);
  return {
    kind: 'uplink',
    link,
    header: r.header,
    edition: 2013,
    message: r.message,
    receivedAt: at,
  };
}

const answers = (link: RecordingLink, replyId: number): number[] =>
  link.sent.flatMap((m) =>
    m.type === 'PlatformResponse' && m.body.replyId === replyId ? [m.body.result] : [],
  );

async function vehicleOnline(
  store: VehicleStore,
  ackMode: VehiclePolicy['ackMode'],
): Promise<{ sys: ActorSystem<VehicleMessage>; link: RecordingLink; now: () => number }> {
  const scheduler = new FakeScheduler();
  const sys = new ActorSystem<VehicleMessage>({
    scheduler,
    create: (id) =>
      new VehicleActor(id, {
        store,
        policy: { registration: 'open', ackMode, saveEveryMs: 1000 },
        now: () => scheduler.now(),
      }),
  });
  const link = new RecordingLink('a');
  sys.tell(
    ID,
    uplink(
      link,
      {
        type: 'Register',
        body: {
          province: 11,
          city: 1,
          maker: 'ACME',
          model: 'M1',
          terminalId: 'T1',
          plateColor: 1,
          plate: 'A12345',
        },
      },
      scheduler.now(),
    ),
  );
  await sys.whenIdle();
  const reply = link.sent.at(-1);
  assert.ok(reply?.type === 'RegisterReply' && reply.body.authCode);
  sys.tell(
    ID,
    uplink(
      link,
      { type: 'Authenticate', body: { authCode: reply.body.authCode } },
      scheduler.now(),
    ),
  );
  await sys.whenIdle();
  assert.deepEqual(answers(link, 0x0102), [0]);
  return { sys, link, now: () => scheduler.now() };
}

const CARD: Message = {
  type: 'DriverIdentity',
  body: { state: 1, time: Date.UTC(2026, 10, 2, 1, 2, 3), readResult: 0, driverName: '张三' },
};

describe('driver identity records', () => {
  for (const ackMode of ['durable', 'receive'] as const) {
    it(`a write that fails for good is counted by the writer, not thrown; ${ackMode} acknowledgement answers ${ackMode === 'durable' ? 'failure' : 'at once'}, and the vehicle goes on`, async () => {
      const refusing = refusingCollection();
      const writer = new BatchWriter(refusing.collection, { maxDelayMs: 1 });
      const { sys, link, now } = await vehicleOnline(storeWith(writer), ackMode);
      sys.tell(ID, uplink(link, CARD, now()));
      await sys.whenIdle();
      await until(() => writer.stats.failed === 1, 'the failed write counted');
      await until(() => answers(link, 0x0702).length === 1, 'the 0x0702 answered');
      assert.deepEqual(answers(link, 0x0702), [ackMode === 'durable' ? 1 : 0]);
      assert.equal(refusing.attempts(), 1, 'not retried: the error is not transient');
      // The vehicle still answers its terminal (a heartbeat, then the card again).
      sys.tell(ID, uplink(link, { type: 'Heartbeat', body: {} }, now()));
      await sys.whenIdle();
      assert.deepEqual(answers(link, 0x0002), [0]);
      sys.tell(ID, uplink(link, CARD, now()));
      await until(() => writer.stats.failed === 2, 'the second failure counted');
      await until(() => answers(link, 0x0702).length === 2, 'answered again');
      await writer.close();
    });
  }

  it('the stored document of each edition: fields as the codec reads them, ids that collapse retransmissions', () => {
    const at = Date.UTC(2026, 10, 2, 1, 2, 3);
    const body = { state: 1, time: at, readResult: 0, driverName: '李四', driverIdNumber: '4403' };
    const d19 = driverRecordDocument('1', body, 2019 as Edition, at + 500, 7);
    assert.deepEqual(
      { ...d19, _id: undefined },
      {
        _id: undefined,
        vehicleId: '1',
        time: new Date(at),
        receivedAt: new Date(at + 500),
        edition: 2019,
        state: 1,
        readResult: 0,
        driverName: '李四',
        driverIdNumber: '4403',
      },
    );
    assert.equal(
      driverRecordDocument('1', body, 2019, at + 900, 8)._id,
      d19._id,
      'the same report received again has the same id',
    );
    assert.notEqual(driverRecordDocument('1', { ...body, state: 2 }, 2019, at, 7)._id, d19._id);
    const invalid = driverRecordDocument('1', { state: 2, time: null }, 2013, at + 500, 9);
    assert.equal((invalid.time as Date).getTime(), at + 500);
    assert.equal(invalid.timeInvalid, true);
    assert.equal(invalid._id, `1:r${at + 500}:9`);
    const old = driverRecordDocument('1', { driverName: '王五' }, 2011, at, 3);
    assert.equal(old.timeInvalid, undefined, '2011 has no time: none is invalid');
  });
});
