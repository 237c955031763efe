// Driving behaviour in the vehicle's actor, without sockets: an episode whose write fails for good
// (a real BatchWriter over a collection that refuses every bulk write) is counted by the writer,
// the reports are still acknowledged and the vehicle goes on; episodes open when the vehicle
// passivates are kept in its record and end after it is back (the same episode, from its first
// report), a harsh brake across the passivation included.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Collection, Document } from 'mongodb';
import { BEHAVIOUR_TYPES } from '../../domain/drivingBehaviour.js';
import { ActorSystem } from '../../actors/runtime.js';
import {
  VehicleActor,
  type TerminalLink,
  type VehicleMessage,
  type VehiclePolicy,
} from '../../actors/vehicleActor.js';
import { trackPoint } from '../../bench/terminal.js';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import type { LocationReport } from '../../jt808/location.js';
import type { Message } from '../../jt808/messages.js';
import { BatchWriter } from '../../storage/batchWriter.js';
import type { RecordChange } from '../../storage/recordChanges.js';
import type { VehicleRecord, VehicleStore } from '../../storage/vehicleStore.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';
import { until } from '../helpers/until.js';

const PHONE = '013912340088';
const ID = '13912340088';
const T0 = Date.UTC(2026, 10, 2, 0, 0, 0);

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

/** A report at T0 + `s` seconds. */
function at(s: number, speed: number, alarm = 0): LocationReport {
  return { ...trackPoint(s), time: T0 + s * 1000, speed, alarm };
}

/**
 * A store keeping the vehicle's record (load gives back what was saved) and its episodes; driving
 * behaviour through `writer` when given.
 */
function memoryStore(writer?: BatchWriter): { store: VehicleStore; episodes: Document[] } {
  let record: Record<string, unknown> | undefined;
  const episodes: Document[] = [];
  const stored = Promise.resolve('stored' as const);
  const store = {
    load: async () => (record ? (structuredClone(record) as unknown as VehicleRecord) : null),
    saveChanges: (id: string, change: RecordChange) => {
      record = { ...(record ?? { _id: id }), ...structuredClone(change.set) };
      for (const k of change.unset) delete record[k];
      return stored;
    },
    insertPosition: () => stored,
    saveAlarm: () => stored,
    logSession: () => stored,
    logCommand: () => stored,
    saveBehaviour: (doc: Document) => {
      if (writer) return writer.insert(doc);
      episodes.push(doc);
      return stored;
    },
  } as unknown as VehicleStore;
  return { store, episodes };
}

function system(store: VehicleStore, ackMode: VehiclePolicy['ackMode'] = 'durable') {
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
  return { sys, now: () => scheduler.now() };
}

async function online(
  sys: ActorSystem<VehicleMessage>,
  now: () => number,
  linkId: string,
  authCode?: string,
): Promise<{ link: RecordingLink; authCode: string }> {
  const link = new RecordingLink(linkId);
  if (authCode === undefined) {
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
        now(),
      ),
    );
    await sys.whenIdle();
    const reply = link.sent.at(-1);
    assert.ok(reply?.type === 'RegisterReply' && reply.body.authCode);
    authCode = reply.body.authCode;
  }
  sys.tell(ID, uplink(link, { type: 'Authenticate', body: { authCode } }, now()));
  await sys.whenIdle();
  assert.deepEqual(answers(link, 0x0102), [0]);
  return { link, authCode };
}

async function reportAll(
  sys: ActorSystem<VehicleMessage>,
  link: RecordingLink,
  now: () => number,
  reports: LocationReport[],
): Promise<void> {
  for (const r of reports) sys.tell(ID, uplink(link, { type: 'LocationReport', body: r }, now()));
  await sys.whenIdle();
}

/** A collection whose every bulk write fails with an error that is not worth retrying. */
function refusingCollection(): Collection<Document> {
  return {
    collectionName: 'drivingBehaviour',
    bulkWrite: async () => {
      throw new Error('disk full');
    },
  } as unknown as Collection<Document>;
}

describe('driving behaviour in the vehicle actor', () => {
  for (const ackMode of ['durable', 'receive'] as const) {
    it(`an episode whose write fails for good is counted by the writer, the reports are acknowledged (${ackMode}) and the vehicle goes on`, async () => {
      const writer = new BatchWriter(refusingCollection(), { maxDelayMs: 1 });
      const { store } = memoryStore(writer);
      const { sys, now } = system(store, ackMode);
      const { link } = await online(sys, now, 'a');
      // Overspeed (alarm bit 1) for two reports, then not: one episode ends.
      await reportAll(sys, link, now, [at(0, 90, 0b10), at(10, 90, 0b10), at(20, 80)]);
      await until(() => writer.stats.failed === 1, 'the failed episode write counted');
      await until(() => answers(link, 0x0200).length === 3, 'every report answered');
      assert.deepEqual(answers(link, 0x0200), [0, 0, 0]);
      // It goes on: a harsh brake (80 → 60 in 1 s) ends at the next report.
      await reportAll(sys, link, now, [at(21, 60), at(22, 58)]);
      await until(() => writer.stats.failed === 2, 'the second failure counted');
      sys.tell(ID, uplink(link, { type: 'Heartbeat', body: {} }, now()));
      await sys.whenIdle();
      assert.deepEqual(answers(link, 0x0002), [0]);
      await until(() => answers(link, 0x0200).length === 5, 'every report answered');
      assert.deepEqual(answers(link, 0x0200), [0, 0, 0, 0, 0]);
      await writer.close();
    });
  }

  it('episodes open at passivation are kept in the record and end once the vehicle is back, from their first report', async () => {
    const { store, episodes } = memoryStore();
    const first = system(store);
    const { link, authCode } = await online(first.sys, first.now, 'a');
    // Overspeed from 0 s; a harsh brake from 10 s to 11 s, still open (its next pair unknown).
    await reportAll(first.sys, link, first.now, [
      at(0, 100, 0b10),
      at(10, 100, 0b10),
      at(11, 85, 0b10),
    ]);
    assert.equal(episodes.length, 0, 'nothing ended yet');
    first.sys.tell(ID, { kind: 'linkClosed', linkId: 'a', reason: 'test', at: first.now() });
    await first.sys.passivateAll();
    const saved = (await store.load(ID))!;
    assert.deepEqual(
      saved.openBehaviours?.map((o) => [o.type, o.start.time]),
      [
        [BEHAVIOUR_TYPES.overspeed, T0],
        [BEHAVIOUR_TYPES.harshBraking, T0 + 10_000],
      ],
    );

    // Back (another process, the same store): the brake goes on to 70, then stops; the
    // overspeed ends at 20 s.
    const second = system(store);
    const again = await online(second.sys, second.now, 'b', authCode);
    await reportAll(second.sys, again.link, second.now, [
      at(12, 70, 0b10),
      at(13, 68, 0b10),
      at(20, 60),
    ]);
    assert.deepEqual(
      episodes.map((d) => [d.type, (d.startTime as Date).getTime(), (d.endTime as Date).getTime()]),
      [
        [BEHAVIOUR_TYPES.harshBraking, T0 + 10_000, T0 + 12_000],
        [BEHAVIOUR_TYPES.overspeed, T0, T0 + 20_000],
      ],
    );
    assert.deepEqual(episodes[1]!._id, `${ID}:${BEHAVIOUR_TYPES.overspeed}:${T0}:${T0 + 20_000}`);
    second.sys.tell(ID, { kind: 'linkClosed', linkId: 'b', reason: 'test', at: second.now() });
    await second.sys.passivateAll();
    assert.equal((await store.load(ID))!.openBehaviours, undefined, 'none open: none kept');
  });
});
