// VehicleActor against a store that records what it is asked to write, with the clock driven by
// the test: the periodic save of last state keeps working across offline and online, a save
// writes only the fields that changed (nothing for heartbeats), and a refused save is redone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActorSystem } from '../../actors/runtime.js';
import { VehicleActor, type TerminalLink, type VehicleMessage } from '../../actors/vehicleActor.js';
import { decodeFrame, encodeFrame } from '../../jt808/codec.js';
import type { Message } from '../../jt808/messages.js';
import { StaleOwner } from '../../storage/batchWriter.js';
import type { RecordChange } from '../../storage/recordChanges.js';
import type { VehicleRecord, VehicleStore } from '../../storage/vehicleStore.js';
import { trackPoint } from '../../bench/terminal.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';

const PHONE = '013912340000';
const SAVE_EVERY_MS = 1000;
const ID = '13912340000';
const REGISTER: Message = {
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
};

/**
 * The part of VehicleStore an actor uses: the vehicle's stored document (what `load` returned,
 * with every change applied), each change asked for, and the document after each.
 */
function recordingStore(
  load: () => Promise<VehicleRecord | null> = async () => null,
  refuse: (change: RecordChange) => boolean = () => false,
): {
  store: VehicleStore;
  saves: VehicleRecord[];
  changes: RecordChange[];
} {
  const saves: VehicleRecord[] = [];
  const changes: RecordChange[] = [];
  let document: Record<string, unknown> | undefined;
  const stored = Promise.resolve('stored' as const);
  const store = {
    load: async () => {
      const r = await load();
      document = r ? { ...structuredClone(r) } : undefined;
      return r;
    },
    saveChanges: (id: string, change: RecordChange) => {
      if (refuse(change)) return Promise.reject(new Error('write refused'));
      changes.push(structuredClone(change));
      document = { ...(document ?? { _id: id }), ...structuredClone(change.set) };
      for (const k of change.unset) delete document[k];
      saves.push(structuredClone(document) as unknown as VehicleRecord);
      return stored;
    },
    insertPosition: () => stored,
    saveAlarm: () => stored,
    logSession: () => stored,
    logCommand: () => stored,
  } as unknown as VehicleStore;
  return { store, saves, changes };
}

class RecordingLink implements TerminalLink {
  readonly node = 'node-test';
  readonly sent: Uint8Array[] = [];
  constructor(readonly id: string) {}
  send(frame: Uint8Array): void {
    this.sent.push(frame);
  }
  close(): void {}
  authenticated(): void {}
  /** The last frame sent, decoded. */
  last(): Message | undefined {
    const frame = this.sent[this.sent.length - 1]!;
    const r = decodeFrame(frame.subarray(1, -1)); // without its 0x7e flags
    return r.ok && r.message ? r.message : undefined;
  }
}

let serial = 0;
function uplink(link: TerminalLink, message: Message, at: number, seq?: number): VehicleMessage {
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
    ...(seq !== undefined ? { seq } : {}),
  };
}

describe('VehicleActor', () => {
  it('saves its last state periodically after the terminal went offline and came back', async () => {
    const scheduler = new FakeScheduler();
    const { store, saves } = recordingStore();
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
        }),
    });
    const id = '13912340000';
    const online = async (link: RecordingLink): Promise<void> => {
      sys.tell(id, uplink(link, REGISTER, scheduler.now()));
      await sys.whenIdle();
      const reply = link.last();
      assert.ok(reply?.type === 'RegisterReply' && reply.body.result === 0);
      const code = reply.body.authCode as string;
      sys.tell(
        id,
        uplink(link, { type: 'Authenticate', body: { authCode: code } }, scheduler.now()),
      );
      await sys.whenIdle();
    };

    const first = new RecordingLink('a');
    await online(first);
    await scheduler.advance(SAVE_EVERY_MS);
    assert.equal(saves.at(-1)?.online, true, 'saved online after authentication');

    sys.tell(id, { kind: 'linkClosed', linkId: 'a', reason: 'socket closed', at: scheduler.now() });
    await sys.whenIdle();
    await scheduler.advance(SAVE_EVERY_MS);
    assert.equal(saves.at(-1)?.online, false, 'the offline state is saved by the timer');

    const second = new RecordingLink('b');
    await online(second);
    sys.tell(id, uplink(second, { type: 'LocationReport', body: trackPoint(42) }, scheduler.now()));
    await sys.whenIdle();
    const before = saves.length;
    await scheduler.advance(SAVE_EVERY_MS);
    assert.ok(saves.length > before, 'a save fired after coming back');
    assert.equal(saves.at(-1)?.online, true);
    assert.equal(saves.at(-1)?.lastState?.time, trackPoint(42).time);
  });

  it('a failed state load is retried: a registration waits for the stored record instead of replacing it', async () => {
    const scheduler = new FakeScheduler();
    const storedRecord: VehicleRecord = {
      _id: '13912340000',
      authCode: 'stored-code',
      edition: 2013,
    };
    let loads = 0;
    const { store, saves } = recordingStore(async () => {
      loads++;
      if (loads === 1) throw new Error('store unavailable');
      return structuredClone(storedRecord);
    });
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      activateRetryMs: 100,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
        }),
    });
    const link = new RecordingLink('a');
    sys.tell('13912340000', uplink(link, REGISTER, scheduler.now()));
    await new Promise((r) => setImmediate(r));
    assert.equal(loads, 1);
    assert.equal(link.sent.length, 0, 'nothing answered from empty state');
    assert.equal(saves.length, 0, 'nothing written from empty state');
    await scheduler.advance(100);
    await sys.whenIdle();
    assert.equal(loads, 2);
    const reply = link.last();
    assert.ok(reply?.type === 'RegisterReply');
    assert.equal(reply.body.authCode, 'stored-code', 'the stored auth code is kept');
    assert.equal(saves.at(-1)?.authCode, 'stored-code');
  });

  /** A system of one vehicle on a driven clock, registered and authenticated on link 'a'. */
  async function onlineVehicle(store: VehicleStore): Promise<{
    sys: ActorSystem<VehicleMessage>;
    scheduler: FakeScheduler;
    link: RecordingLink;
  }> {
    const scheduler = new FakeScheduler();
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
        }),
    });
    const link = new RecordingLink('a');
    sys.tell(ID, uplink(link, REGISTER, scheduler.now()));
    await sys.whenIdle();
    const reply = link.last();
    assert.ok(reply?.type === 'RegisterReply');
    const authCode = reply.body.authCode as string;
    sys.tell(ID, uplink(link, { type: 'Authenticate', body: { authCode } }, scheduler.now()));
    await sys.whenIdle();
    return { sys, scheduler, link };
  }

  it('a save writes only the fields that changed; heartbeats alone write nothing', async () => {
    const { store, changes, saves } = recordingStore();
    const { sys, scheduler, link } = await onlineVehicle(store);
    assert.equal(changes.length, 1, 'registration wrote the record once, before answering');
    assert.ok(changes[0]!.set.authCode && changes[0]!.set.registration);
    await scheduler.advance(SAVE_EVERY_MS);
    assert.deepEqual(Object.keys(changes[1]!.set).sort(), [
      'lastSeen',
      'linkId',
      'node',
      'online',
      'openAlarms',
      'phone',
    ]);

    for (let i = 0; i < 5; i++) {
      sys.tell(ID, uplink(link, { type: 'Heartbeat', body: {} }, scheduler.now()));
      await sys.whenIdle();
      await scheduler.advance(SAVE_EVERY_MS);
    }
    assert.equal(changes.length, 2, 'heartbeats wrote nothing');

    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(7) }, scheduler.now()));
    await sys.whenIdle();
    await scheduler.advance(SAVE_EVERY_MS);
    assert.equal(changes.length, 3);
    assert.deepEqual(Object.keys(changes[2]!.set).sort(), [
      'lastSeen',
      'lastState',
      'lastUplinkSerial',
    ]);
    assert.deepEqual(changes[2]!.unset, []);
    // What the store holds equals the whole record, as a full rewrite would have left it.
    await sys.passivateAll();
    assert.equal(changes.length, 3, 'passivation with nothing new writes nothing');
    const doc = saves.at(-1)!;
    assert.equal(doc.online, true);
    assert.equal(doc.lastState?.time, trackPoint(7).time);
    assert.equal(doc.registration?.plate, 'A12345');
  });

  it('fields of a refused save are written by the next save', async () => {
    let refuseNext = false;
    const { store, changes, saves } = recordingStore(
      async () => null,
      () => {
        if (!refuseNext) return false;
        refuseNext = false;
        return true;
      },
    );
    const { sys, scheduler, link } = await onlineVehicle(store);
    await scheduler.advance(SAVE_EVERY_MS);
    const written = changes.length;
    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(9) }, scheduler.now()));
    await sys.whenIdle();
    refuseNext = true;
    await scheduler.advance(SAVE_EVERY_MS);
    assert.equal(changes.length, written, 'the periodic save was refused');
    // Nothing changes after it; passivation still writes what the refused save held.
    await sys.passivateAll();
    assert.equal(changes.length, written + 1);
    assert.ok(changes.at(-1)!.set.lastState, 'the refused fields are written again');
    assert.equal(saves.at(-1)!.lastState?.time, trackPoint(9).time);
  });

  it('a refused save is redone while the terminal stays connected and only sends heartbeats', async () => {
    let refuseNext = false;
    const { store, changes, saves } = recordingStore(
      async () => null,
      () => {
        if (!refuseNext) return false;
        refuseNext = false;
        return true;
      },
    );
    const { sys, scheduler, link } = await onlineVehicle(store);
    await scheduler.advance(SAVE_EVERY_MS);
    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(11) }, scheduler.now()));
    await sys.whenIdle();
    refuseNext = true;
    const written = changes.length;
    await scheduler.advance(SAVE_EVERY_MS); // refused
    assert.equal(changes.length, written);
    for (let i = 0; i < 3; i++) {
      sys.tell(ID, uplink(link, { type: 'Heartbeat', body: {} }, scheduler.now()));
      await sys.whenIdle();
      await scheduler.advance(SAVE_EVERY_MS);
    }
    assert.equal(changes.length, written + 1, 'written by the next save, not at passivation');
    assert.equal(saves.at(-1)!.lastState?.time, trackPoint(11).time);
  });

  it('a vehicle handed over while online resumes its session on the same link, and no other', async () => {
    const scheduler = new FakeScheduler();
    const saved: VehicleRecord = {
      _id: ID,
      authCode: 'abc',
      edition: 2013,
      online: true,
      linkId: 'node-a/1/7',
      pendingCommands: [
        { id: 'c1', message: { type: 'TextMessage', body: { flag: 8, text: 'hi' } }, createdAt: 0 },
      ],
    };
    const { store, changes } = recordingStore(async () => structuredClone(saved));
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
        }),
    });
    const other = new RecordingLink('node-b/1/3');
    sys.tell(ID, uplink(other, { type: 'Heartbeat', body: {} }, scheduler.now()));
    await sys.whenIdle();
    const refused = other.last();
    assert.ok(refused?.type === 'PlatformResponse' && refused.body.result === 1, 'another link');

    const same = new RecordingLink('node-a/1/7');
    sys.tell(ID, uplink(same, { type: 'Heartbeat', body: {} }, scheduler.now()));
    await sys.whenIdle();
    const types = same.sent.map((f) => {
      const r = decodeFrame(f.subarray(1, -1));
      return r.ok ? r.message?.type : undefined;
    });
    assert.ok(types.includes('TextMessage'), 'its queued command goes out on the resumed session');
    assert.ok(types.includes('PlatformResponse'));
    const ack = same.sent
      .map((f) => decodeFrame(f.subarray(1, -1)))
      .find((r) => r.ok && r.message?.type === 'PlatformResponse');
    assert.ok(ack?.ok && ack.message?.type === 'PlatformResponse' && ack.message.body.result === 0);
    await scheduler.advance(SAVE_EVERY_MS);
    assert.ok(
      changes.every((c) => c.set.online !== false && !c.unset.includes('linkId')),
      'the stored session stays online',
    );
  });

  it('a write refused for a newer owner stops the actor writing and it leaves memory', async () => {
    const scheduler = new FakeScheduler();
    let newerOwner = false;
    const epochs: (number | undefined)[] = [];
    const { store, changes } = recordingStore();
    const fenced = {
      ...store,
      load: store.load,
      saveChanges: (id: string, change: RecordChange, epoch?: number) => {
        epochs.push(epoch);
        if (newerOwner) return Promise.reject(new StaleOwner(id));
        return store.saveChanges(id, change);
      },
    } as unknown as VehicleStore;
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store: fenced,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
          ownerEpoch: () => 41,
        }),
    });
    const link = new RecordingLink('l1');
    sys.tell(ID, uplink(link, REGISTER, scheduler.now()));
    await sys.whenIdle();
    assert.deepEqual(epochs, [41], 'the registration was written under the owner epoch');
    const reply = link.last();
    assert.ok(reply?.type === 'RegisterReply');
    const authCode = reply.body.authCode as string;
    sys.tell(ID, uplink(link, { type: 'Authenticate', body: { authCode } }, scheduler.now()));
    await sys.whenIdle();
    newerOwner = true;
    sys.tell(ID, { kind: 'linkClosed', linkId: 'l1', reason: 'gone', at: scheduler.now() });
    await sys.whenIdle();
    await scheduler.advance(SAVE_EVERY_MS);
    await sys.whenIdle();
    assert.equal(sys.has(ID), false, 'the superseded actor left memory');
    const writesAfter = epochs.length;
    assert.ok(writesAfter >= 2, 'it tried once, was refused');
    assert.equal(changes.length, 1, 'nothing was stored after the refusal');
  });

  it('an alarm record refused for a newer owner stops the actor writing and it leaves memory', async () => {
    const scheduler = new FakeScheduler();
    let newerOwner = false;
    const alarmEpochs: (number | undefined)[] = [];
    const { store, changes } = recordingStore();
    const fenced = {
      ...store,
      load: store.load,
      saveChanges: store.saveChanges,
      saveAlarm: (_r: unknown, epoch?: number) => {
        alarmEpochs.push(epoch);
        return newerOwner ? Promise.reject(new StaleOwner(ID)) : Promise.resolve('stored');
      },
    } as unknown as VehicleStore;
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store: fenced,
          policy: { registration: 'open', ackMode: 'durable', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
          ownerEpoch: () => 41,
        }),
    });
    const link = new RecordingLink('l1');
    sys.tell(ID, uplink(link, REGISTER, scheduler.now()));
    await sys.whenIdle();
    const reply = link.last();
    assert.ok(reply?.type === 'RegisterReply');
    const authCode = reply.body.authCode as string;
    sys.tell(ID, uplink(link, { type: 'Authenticate', body: { authCode } }, scheduler.now()));
    await sys.whenIdle();
    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(1, { alarm: 1 }) }, 0));
    await sys.whenIdle();
    assert.deepEqual(alarmEpochs, [41], 'the alarm record was written under the owner epoch');
    const written = changes.length;
    newerOwner = true;
    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(2, { alarm: 0 }) }, 0));
    await sys.whenIdle();
    await new Promise((r) => setImmediate(r));
    await sys.whenIdle();
    const ack = link.last();
    assert.ok(ack?.type === 'PlatformResponse' && ack.body.result === 1, 'not acknowledged');
    assert.equal(sys.has(ID), false, 'the superseded actor left memory');
    assert.equal(changes.length, written, 'it saved nothing more, not even at passivation');
  });

  it('a connection reached by a new way (relayed, then direct) is answered the new way', async () => {
    const scheduler = new FakeScheduler();
    const { store } = recordingStore();
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
        }),
    });
    const relayed = new RecordingLink('node-a/1/7');
    sys.tell(ID, uplink(relayed, REGISTER, scheduler.now()));
    await sys.whenIdle();
    const reply = relayed.last();
    assert.ok(reply?.type === 'RegisterReply');
    const authCode = reply.body.authCode as string;
    sys.tell(ID, uplink(relayed, { type: 'Authenticate', body: { authCode } }, scheduler.now()));
    await sys.whenIdle();
    // The same terminal connection (same id), its frames now coming another way.
    const direct = new RecordingLink('node-a/1/7');
    sys.tell(ID, uplink(direct, { type: 'Heartbeat', body: {} }, scheduler.now()));
    await sys.whenIdle();
    const before = relayed.sent.length;
    sys.tell(ID, {
      kind: 'command',
      command: {
        id: 'c1',
        message: { type: 'TextMessage', body: { flag: 8, text: 'hi' } },
        createdAt: 0,
      },
    });
    await sys.whenIdle();
    assert.equal(direct.last()?.type, 'TextMessage', 'the command goes the new way');
    assert.equal(relayed.sent.length, before, 'not the old one');
  });

  it('an operator confirming alarms hears of a refused write (the call does not hang)', async () => {
    const scheduler = new FakeScheduler();
    let newerOwner = false;
    const { store } = recordingStore();
    const fenced = {
      ...store,
      load: store.load,
      saveChanges: store.saveChanges,
      saveAlarm: () =>
        newerOwner ? Promise.reject(new StaleOwner(ID)) : Promise.resolve('stored'),
    } as unknown as VehicleStore;
    const sys = new ActorSystem<VehicleMessage>({
      scheduler,
      create: (id) =>
        new VehicleActor(id, {
          store: fenced,
          policy: { registration: 'open', ackMode: 'receive', saveEveryMs: SAVE_EVERY_MS },
          now: () => scheduler.now(),
          ownerEpoch: () => 41,
        }),
    });
    const link = new RecordingLink('l1');
    sys.tell(ID, uplink(link, REGISTER, scheduler.now()));
    await sys.whenIdle();
    const reply = link.last();
    assert.ok(reply?.type === 'RegisterReply');
    const authCode = reply.body.authCode as string;
    sys.tell(ID, uplink(link, { type: 'Authenticate', body: { authCode } }, scheduler.now()));
    sys.tell(ID, uplink(link, { type: 'LocationReport', body: trackPoint(1, { alarm: 1 }) }, 0));
    await sys.whenIdle();
    newerOwner = true;
    const outcome = await new Promise<unknown>((resolve) => {
      sys.tell(ID, {
        kind: 'confirmAlarms',
        bits: 0,
        commandId: 'c1',
        operator: 'ops',
        done: (r) => resolve(r),
        failed: (err) => resolve(err),
      });
    });
    assert.ok(outcome instanceof StaleOwner, 'told the write was refused');
  });

  describe("a connection's frames in the gateway's order (seq), whatever way they came", () => {
    const LINK = 'node-a/1/7';
    const report = (step: number): Message => ({ type: 'LocationReport', body: trackPoint(step) });
    /** A vehicle handed over while online after frame 10 of its connection. */
    function handedOver(policy: { linkOrderWaitMs?: number } = {}) {
      const scheduler = new FakeScheduler();
      const saved: VehicleRecord = {
        _id: ID,
        authCode: 'abc',
        edition: 2013,
        online: true,
        linkId: LINK,
        linkSeq: 10,
      };
      const { store, saves } = recordingStore(async () => structuredClone(saved));
      const stats = { held: 0, gapsSkipped: 0, late: 0 };
      const seen: number[] = [];
      const sys = new ActorSystem<VehicleMessage>({
        scheduler,
        create: (id) =>
          new VehicleActor(id, {
            store,
            policy: {
              registration: 'open',
              ackMode: 'receive',
              saveEveryMs: SAVE_EVERY_MS,
              ...policy,
            },
            now: () => scheduler.now(),
            events: { position: (_id, state) => seen.push(state.time) },
            linkOrderStats: stats,
          }),
      });
      return { scheduler, sys, saves, stats, seen, link: new RecordingLink(LINK) };
    }
    const times = (...steps: number[]): number[] => steps.map((n) => trackPoint(n).time!);

    it('a frame that overtook an earlier one waits for it, then both go on in order', async () => {
      const { sys, seen, stats, link, scheduler } = handedOver();
      sys.tell(ID, uplink(link, report(3), scheduler.now(), 13));
      sys.tell(ID, uplink(link, report(2), scheduler.now(), 12));
      await sys.whenIdle();
      assert.deepEqual(seen, [], 'both wait for frame 11');
      sys.tell(ID, uplink(link, report(1), scheduler.now(), 11));
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2, 3));
      assert.equal(stats.held, 2);
      assert.equal(stats.gapsSkipped, 0);
      assert.equal(link.sent.length, 3, 'each acknowledged');
    });

    it('a closed-link notice that overtook the last report waits for it (the report is not refused)', async () => {
      const { sys, seen, saves, link, scheduler } = handedOver();
      sys.tell(ID, { kind: 'linkClosed', linkId: LINK, seq: 12, reason: 'gone', at: 0 });
      sys.tell(ID, uplink(link, report(1), scheduler.now(), 11));
      await sys.whenIdle();
      assert.deepEqual(seen, times(1));
      const ack = link.last();
      assert.ok(ack?.type === 'PlatformResponse' && ack.body.result === 0, 'accepted, then closed');
      await scheduler.advance(SAVE_EVERY_MS);
      await sys.whenIdle();
      assert.equal(saves.at(-1)?.online, false, 'the notice went on after the report');
    });

    it('gives up a gap after linkOrderWaitMs; the missing frame, when it comes, is taken at once', async () => {
      const { sys, seen, stats, link, scheduler } = handedOver({ linkOrderWaitMs: 500 });
      sys.tell(ID, uplink(link, report(2), scheduler.now(), 12));
      await sys.whenIdle();
      await scheduler.advance(499);
      await sys.whenIdle();
      assert.deepEqual(seen, []);
      await scheduler.advance(1);
      await sys.whenIdle();
      assert.deepEqual(seen, times(2), 'went on without frame 11');
      sys.tell(ID, uplink(link, report(1), scheduler.now(), 11));
      await sys.whenIdle();
      assert.deepEqual(seen, times(2, 1), 'nothing dropped');
      assert.deepEqual(stats, { held: 1, gapsSkipped: 1, late: 1 });
    });

    it('each held frame waits its own time: a gap that opened later is not given up with an earlier one', async () => {
      const { sys, seen, link, scheduler } = handedOver({ linkOrderWaitMs: 1000 });
      sys.tell(ID, uplink(link, report(2), scheduler.now(), 12)); // waits for 11 from t0
      await sys.whenIdle();
      await scheduler.advance(900);
      sys.tell(ID, uplink(link, report(4), scheduler.now(), 14)); // waits for 13 from t0 + 900
      await sys.whenIdle();
      await scheduler.advance(50);
      sys.tell(ID, uplink(link, report(1), scheduler.now(), 11));
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2), '11 came: 11 and 12 go on');
      await scheduler.advance(60); // t0 + 1010: the first wait would have ended here
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2), '14 still waits for 13');
      sys.tell(ID, uplink(link, report(3), scheduler.now(), 13));
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2, 3, 4));
      sys.tell(ID, uplink(link, report(6), scheduler.now(), 16)); // waits for 15
      await sys.whenIdle();
      await scheduler.advance(999);
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2, 3, 4));
      await scheduler.advance(1);
      await sys.whenIdle();
      assert.deepEqual(seen, times(1, 2, 3, 4, 6), 'given up after its own wait');
    });

    it('held frames go on before it passivates, and the number of the last one is saved', async () => {
      const { sys, seen, saves, link, scheduler } = handedOver();
      sys.tell(ID, uplink(link, report(1), scheduler.now(), 11));
      sys.tell(ID, uplink(link, report(3), scheduler.now(), 13));
      await sys.whenIdle();
      assert.deepEqual(seen, times(1));
      await sys.passivateWhere(() => true);
      assert.deepEqual(seen, times(1, 3));
      assert.equal(saves.at(-1)?.linkSeq, 13);
    });
  });
});
