// The node's half of a drain without sockets or a clock: the rate bound (never more than one
// tick's worth at once, rates under 10/s still move), each terminal told once and sent to a node
// that is neither this one nor draining, the late ones closed (not those that left), nothing sent
// when there is nowhere to go; and the orders etcd may hold.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TerminalLink } from '../../actors/vehicleActor.js';
import { NodeDrain, parseDrainOrder, checkDrainRate } from '../../cluster/drain.js';
import type { Member } from '../../cluster/memberTable.js';
import type { Message } from '../../jt808/messages.js';
import { parseConnectToServer } from '../../jt808/terminalControl.js';

interface FakeConn {
  number: number;
  link: TerminalLink;
  vehicleId: string;
  alive: boolean;
  closed: boolean;
  got: Message[];
}

function fakeGateway(count: number) {
  const conns: FakeConn[] = [];
  for (let i = 1; i <= count; i++) {
    const c: FakeConn = {
      number: i,
      vehicleId: String(13900000000 + i),
      alive: true,
      closed: false,
      got: [],
      link: undefined as unknown as TerminalLink,
    };
    c.link = {
      id: `node-3/x/${i}`,
      node: 'node-3',
      send: () => undefined,
      close: () => {
        c.closed = true;
        c.alive = false;
      },
      authenticated: () => undefined,
    };
    conns.push(c);
  }
  return {
    conns,
    sendToAuthenticated(
      n: number,
      messageFor: (c: {
        link: TerminalLink;
        vehicleId: string;
        edition: 2013;
      }) => Message | undefined,
    ): TerminalLink[] {
      const sent: TerminalLink[] = [];
      for (const c of conns) {
        if (sent.length >= n) break;
        if (!c.alive) continue;
        const m = messageFor({ link: c.link, vehicleId: c.vehicleId, edition: 2013 });
        if (!m) continue;
        c.got.push(m);
        sent.push(c.link);
      }
      return sent;
    },
    linkByNumber(n: number): TerminalLink | undefined {
      const c = conns.find((x) => x.number === n);
      return c?.alive ? c.link : undefined;
    },
  };
}

function member(node: string, port: number, terminals: number, draining = false): Member {
  return {
    node,
    gateway: `127.0.0.1:${port}`,
    startedAt: 0,
    workers: 1,
    load: { terminals, ...(draining ? { draining } : {}) },
    reportedAt: 0,
  };
}

function drainWith(
  members: Member[],
  gateway: ReturnType<typeof fakeGateway>,
  clock: { t: number },
): NodeDrain {
  return new NodeDrain({
    node: 'node-3',
    gateway,
    members: () => members,
    closeAfterMs: 1000,
    tickMs: 100,
    now: () => clock.t,
    random: () => 0.3,
  });
}

describe('NodeDrain', () => {
  it('tells at most one tick of the rate at a time, each terminal once, to a live other node', () => {
    const g = fakeGateway(100);
    const clock = { t: 1_000_000 };
    const members = [
      member('node-1', 8809, 10),
      member('node-2', 8810, 0, true),
      member('node-3', 8811, 100),
    ];
    const d = drainWith(members, g, clock);
    d.set({ rate: 20, at: 0 });
    const perTick: number[] = [];
    // A long pause first: the bucket must not have saved it up.
    clock.t += 60_000;
    for (let i = 0; i < 30; i++) {
      const before = d.stats.told;
      d.tick();
      perTick.push(d.stats.told - before);
      clock.t += 100;
    }
    d.stop();
    assert.ok(Math.max(...perTick) <= 2, `per tick ${perTick.join(',')}`);
    assert.equal(d.stats.told, 2 + 29 * 2); // 2 at the first tick, then 20/s
    for (const c of g.conns) {
      assert.ok(c.got.length <= 1, `${c.vehicleId} told ${c.got.length} times`);
      for (const m of c.got) {
        assert.equal(m.type, 'TerminalControl');
        const body = (m as Extract<Message, { type: 'TerminalControl' }>).body;
        const target = parseConnectToServer(body.parameters ?? '');
        // node-2 drains, node-3 is this one: only node-1 may take them.
        assert.equal(target?.tcpPort, 8809);
        assert.equal(target?.authCode, undefined);
      }
    }
    assert.equal(d.draining, false);
  });

  it('still moves at rates under one per tick', () => {
    const g = fakeGateway(10);
    const clock = { t: 0 };
    const d = drainWith([member('node-1', 8809, 0), member('node-3', 8811, 10)], g, clock);
    d.set({ rate: 2, at: 0 });
    for (let i = 0; i < 20; i++) {
      clock.t += 100;
      d.tick();
    }
    d.stop();
    assert.equal(d.stats.told, 4); // 2 s at 2/s
  });

  it('closes terminals still here after closeAfterMs, not those that left', () => {
    const g = fakeGateway(4);
    const clock = { t: 0 };
    const d = drainWith([member('node-1', 8809, 0), member('node-3', 8811, 4)], g, clock);
    d.set({ rate: 100, at: 0 });
    clock.t += 100;
    d.tick();
    assert.equal(d.stats.told, 4);
    g.conns[0]!.alive = false; // followed its 0x8105
    g.conns[1]!.alive = false;
    clock.t += 1000;
    d.tick();
    d.stop();
    assert.equal(d.stats.closedLate, 2);
    assert.deepEqual(
      g.conns.map((c) => c.closed),
      [false, false, true, true],
    );
  });

  it('sends nothing when no other node can take terminals', () => {
    const g = fakeGateway(3);
    const clock = { t: 0 };
    const d = drainWith([member('node-1', 8809, 0, true), member('node-3', 8811, 3)], g, clock);
    d.set({ rate: 100, at: 0 });
    clock.t += 100;
    d.tick();
    d.stop();
    assert.equal(d.stats.told, 0);
    assert.equal(d.stats.noTarget, 1);
    assert.ok(g.conns.every((c) => c.got.length === 0));
  });
});

describe('drain orders', () => {
  it('reads only well-formed orders with a rate in bounds', () => {
    assert.deepEqual(parseDrainOrder('{"rate":20,"at":5}'), { rate: 20, at: 5 });
    for (const bad of [
      '',
      'x',
      '{}',
      '{"rate":0,"at":1}',
      '{"rate":10001,"at":1}',
      '{"rate":1.5,"at":1}',
      '{"rate":"5","at":1}',
      'null',
    ])
      assert.equal(parseDrainOrder(bad), undefined, bad);
    assert.equal(checkDrainRate(1), 1);
    assert.throws(() => checkDrainRate(0), RangeError);
    assert.throws(() => checkDrainRate(Number.NaN), RangeError);
  });
});
