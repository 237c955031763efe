// The dashboard's bounded memories, alone: a browser's SSE backlog (a slow browser costs at most
// maxBacklog events, then drops and is told how many), the recent tracks and command log, the
// login sessions and the operator's name they carry; the cluster page's members (ListMembers merged with the vehicles' nodes).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { IncomingMessage } from 'node:http';
import { FleetSnapshot } from '../../dashboard/fleetSnapshot.js';
import { RecentCommands, RecentTracks } from '../../dashboard/recent.js';
import {
  MAX_OPERATOR_NAME,
  NotAuthenticated,
  SESSION_COOKIE,
  Sessions,
} from '../../dashboard/sessions.js';
import { operatorName } from '../../dashboard/server.js';
import { SseChannel, type EventSink } from '../../dashboard/sse.js';
import {
  grpc,
  type ClusterMember,
  type CommandStatus,
  type Position,
  type VehicleClient,
} from '../../dashboard/vehicleClient.js';

/** A socket that takes `room` writes, then reports itself full until drained. */
class SlowSink extends EventEmitter implements EventSink {
  readonly frames: string[] = [];
  constructor(public room: number) {
    super();
  }
  write(chunk: string): boolean {
    this.frames.push(chunk);
    this.room--;
    return this.room > 0;
  }
  drainWith(room: number): void {
    this.room = room;
    this.emit('drain');
  }
  events(): { event: string; data: unknown }[] {
    return this.frames.map((f) => {
      const [e, d] = f.split('\n');
      return { event: (e as string).slice(7), data: JSON.parse((d as string).slice(6)) };
    });
  }
}

describe('a browser’s SSE channel', () => {
  it('holds at most maxBacklog events while the socket is full, drops newer ones and says how many once drained', () => {
    const sink = new SlowSink(2);
    const ch = new SseChannel(sink, 3);
    for (let i = 0; i < 10; i++) ch.send('position', { i });
    // Two went out (the second filled the socket), three wait, five were dropped.
    assert.equal(sink.frames.length, 2);
    assert.deepEqual(ch.stats, { sent: 2, waiting: 3, dropped: 5, droppedTotal: 5 });
    sink.drainWith(100);
    assert.deepEqual(
      sink.events().map((e) => [e.event, e.data]),
      [
        ['position', { i: 0 }],
        ['position', { i: 1 }],
        ['position', { i: 2 }],
        ['position', { i: 3 }],
        ['position', { i: 4 }],
        ['dropped', { count: 5 }],
      ],
    );
    assert.equal(ch.stats.waiting, 0);
    assert.equal(ch.stats.dropped, 0);
    // Flowing again: nothing waits.
    ch.send('alarm', { i: 10 });
    assert.deepEqual(sink.events().at(-1), { event: 'alarm', data: { i: 10 } });
  });

  it('a socket that fills again while the backlog drains keeps the rest waiting, in order', () => {
    const sink = new SlowSink(1);
    const ch = new SseChannel(sink, 10);
    for (let i = 0; i < 5; i++) ch.send('position', { i });
    assert.equal(ch.stats.waiting, 4);
    sink.drainWith(2); // takes two more, then is full
    assert.equal(ch.stats.waiting, 2);
    sink.drainWith(100);
    assert.deepEqual(
      sink.events().map((e) => (e.data as { i: number }).i),
      [0, 1, 2, 3, 4],
    );
    assert.equal(ch.stats.droppedTotal, 0);
  });

  it('refuses a backlog that is not a whole number ≥ 1', () => {
    assert.throws(() => new SseChannel(new SlowSink(1), 0), RangeError);
  });
});

function position(t: number, lat = 31, lon = 121): Position {
  return {
    timeUnixMs: t,
    receivedUnixMs: t,
    latitude: lat,
    longitude: lon,
    altitudeM: 0,
    speedKmh: 10,
    directionDeg: 0,
    alarm: 0,
    status: 0,
  };
}

describe('recent tracks', () => {
  it('keeps points in time order (late blind-area points slot in), one per time', () => {
    const tracks = new RecentTracks();
    for (const t of [1000, 3000, 2000, 3000, 500]) tracks.add('1', position(t, t / 1e6));
    assert.deepEqual(
      tracks.track('1').map((p) => p.t),
      [500, 1000, 2000, 3000],
    );
  });

  it('is bounded in points per vehicle, in time span and in vehicles', () => {
    const tracks = new RecentTracks({ maxPoints: 3, spanMs: 10_000, maxVehicles: 2 });
    for (let t = 0; t < 10; t++) tracks.add('a', position(t * 1000));
    assert.deepEqual(
      tracks.track('a').map((p) => p.t),
      [7000, 8000, 9000],
    );
    tracks.add('b', position(0));
    tracks.add('b', position(60_000)); // the first point is older than the span
    assert.deepEqual(
      tracks.track('b').map((p) => p.t),
      [60_000],
    );
    tracks.add('a', position(10_000)); // a is the most recent again
    tracks.add('c', position(0)); // b, the least recently updated, is forgotten
    assert.equal(tracks.vehicles, 2);
    assert.deepEqual(tracks.track('b'), []);
    assert.equal(tracks.track('a').length, 3);
  });
});

describe('recent commands', () => {
  const status = (commandId: string, state: CommandStatus['state']): CommandStatus => ({
    commandId,
    vehicleId: '7',
    state,
    updatedUnixMs: 5,
    attempts: 1,
    detail: '',
    replyType: '',
    result: -1,
    replyJson: '',
  });

  it('newest first, a status change updates its command, at most perVehicle kept', () => {
    const log = new RecentCommands(2, 10);
    log.sent('7', { commandId: 'a', what: 'location query', sentUnixMs: 1, status: null });
    log.status(status('a', 'ANSWERED'));
    assert.equal(log.of('7')[0]?.status?.state, 'ANSWERED');
    assert.equal(log.of('7')[0]?.what, 'location query');
    log.status(status('b', 'QUEUED')); // another client's command, learnt from the stream
    log.sent('7', { commandId: 'c', what: 'text: hi', sentUnixMs: 9, status: null });
    assert.deepEqual(
      log.of('7').map((e) => e.commandId),
      ['c', 'b'],
    );
  });
});

describe('dashboard sessions', () => {
  /** A node that accepts the tokens in `accepted` (ListOnlineVehicles answers or is refused). */
  function node(accepted: Set<string>): VehicleClient {
    return {
      listOnline: async (token: string) => {
        if (accepted.has(token)) return { vehicles: [], nextPageToken: '', totalOnline: 0 };
        throw Object.assign(new Error('no'), { code: grpc.status.UNAUTHENTICATED });
      },
    } as unknown as VehicleClient;
  }
  const request = (headers: Record<string, string>): IncomingMessage =>
    ({ headers }) as IncomingMessage;
  const cookieOf = (id: string): IncomingMessage => request({ cookie: `${SESSION_COOKIE}=${id}` });

  it('takes only tokens the node accepts; a token the node stops accepting ends its sessions', async () => {
    const accepted = new Set(['t1']);
    const sessions = new Sessions(node(accepted), 60_000, 10, 0);
    await assert.rejects(sessions.login('t2'), NotAuthenticated);
    const id = await sessions.login('t1');
    assert.equal(await sessions.tokenOf(cookieOf(id)), 't1');
    assert.equal(await sessions.tokenOf(request({ authorization: 'Bearer t1' })), 't1');
    await assert.rejects(sessions.tokenOf(request({ authorization: 'Basic x' })), NotAuthenticated);
    accepted.delete('t1');
    await assert.rejects(sessions.tokenOf(cookieOf(id)), NotAuthenticated);
    accepted.add('t1');
    await assert.rejects(sessions.tokenOf(cookieOf(id)), NotAuthenticated, 'the session is gone');
  });

  it('keeps at most maxSessions: the oldest is logged out first', async () => {
    const sessions = new Sessions(node(new Set(['t'])), 60_000, 2, 0);
    const a = await sessions.login('t');
    const b = await sessions.login('t');
    const c = await sessions.login('t');
    await assert.rejects(sessions.tokenOf(cookieOf(a)), NotAuthenticated);
    assert.equal(await sessions.tokenOf(cookieOf(b)), 't');
    assert.equal(await sessions.tokenOf(cookieOf(c)), 't');
  });

  it('a session carries the operator’s name given at login; a bearer token none', async () => {
    const sessions = new Sessions(node(new Set(['t'])), 60_000, 10, 0);
    const named = await sessions.login('t', 'Li Wei');
    assert.deepEqual(await sessions.of(cookieOf(named)), { token: 't', operator: 'Li Wei' });
    const anonymous = await sessions.login('t');
    assert.deepEqual(await sessions.of(cookieOf(anonymous)), { token: 't', operator: '' });
    assert.deepEqual(await sessions.of(request({ authorization: 'Bearer t' })), {
      token: 't',
      operator: '',
    });
    // The name's bound is ConfirmAlarmsRequest.operator's: 64 characters (not bytes), trimmed.
    assert.equal(operatorName(`  ${'李'.repeat(MAX_OPERATOR_NAME)} `), '李'.repeat(64));
    assert.equal(operatorName(undefined), '');
    assert.throws(() => operatorName('x'.repeat(MAX_OPERATOR_NAME + 1)), /at most 64/);
    assert.throws(() => operatorName(7), /operator is a name/);
  });
});

describe('the cluster page’s members', () => {
  const member = (node: string, terminals: number, reportsPerSecond?: number): ClusterMember => ({
    node,
    gateway: `127.0.0.1:${8800 + terminals}`,
    grpc: '',
    workers: 2,
    startedAtUnixMs: 1,
    reportedAtUnixMs: 2,
    load: { terminals, ...(reportsPerSecond === undefined ? {} : { reportsPerSecond }) },
    draining: false,
  });
  /** A node answering ListOnlineVehicles with `online` (vehicle → node) and ListMembers. */
  const fake = (
    online: Record<string, string>,
    members: ClusterMember[] | 'unimplemented',
  ): VehicleClient =>
    ({
      listOnline: async () => ({
        vehicles: Object.entries(online).map(([vehicleId, node]) => ({
          vehicleId,
          node,
          linkId: '',
          lastSeenUnixMs: 0,
        })),
        nextPageToken: '',
        totalOnline: Object.keys(online).length,
      }),
      listMembers: async () => {
        if (members === 'unimplemented')
          throw Object.assign(new Error('12 UNIMPLEMENTED'), { code: grpc.status.UNIMPLEMENTED });
        return { members, node: 'a' };
      },
    }) as unknown as VehicleClient;

  it('every member shows, one holding no vehicles too; a node known only from vehicles is marked', async () => {
    const fleet = new FleetSnapshot(
      fake({ '1': 'a', '2': 'a', '3': 'gone' }, [member('a', 2, 4.5), member('b', 0)]),
      'a',
    );
    const rows = fleet.rows(await fleet.online('t'), await fleet.members('t'));
    assert.deepEqual(
      rows.map((r) => [r.node, r.vehicles, r.member, r.load?.terminals]),
      [
        ['a', 2, true, 2],
        ['b', 0, true, 0],
        ['gone', 1, false, undefined],
      ],
    );
    const sample = await fleet.sample('t');
    assert.deepEqual(sample.online, { a: 2, b: 0, gone: 1 });
    assert.deepEqual(sample.reportsPerSecond, { a: 4.5 }, 'only members that report it');
  });

  it('a node without ListMembers: members are the vehicles’ nodes and this one', async () => {
    const fleet = new FleetSnapshot(fake({ '1': 'x' }, 'unimplemented'), 'self');
    const members = await fleet.members('t');
    assert.equal(members.unimplemented, true);
    const rows = fleet.rows(await fleet.online('t'), members);
    assert.deepEqual(
      rows.map((r) => [r.node, r.vehicles, r.member]),
      [
        ['self', 0, false],
        ['x', 1, false],
      ],
    );
  });

  it('a refusal other than UNIMPLEMENTED is not hidden', async () => {
    const client = fake({}, []);
    (client as unknown as Record<string, unknown>).listMembers = async () => {
      throw Object.assign(new Error('16 UNAUTHENTICATED'), { code: grpc.status.UNAUTHENTICATED });
    };
    await assert.rejects(new FleetSnapshot(client, undefined).members('t'), {
      code: grpc.status.UNAUTHENTICATED,
    });
  });
});
