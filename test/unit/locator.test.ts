// The locator's JT/T 808 endpoint on loopback sockets, with a fixed member list standing in for
// etcd: every edition registers or authenticates, gets 0x8105 command word 2 naming a node and
// is closed once it acknowledges; and bad input (garbage, reports before anything, terminals
// that never authenticate or never acknowledge, floods, terminals refusing command word 2) is
// answered as the standard says, closed, counted.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { followLocator } from '../../bench/locatorTerminal.js';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import {
  Locator,
  locatorAuthCode,
  type LocatorOptions,
  type MemberSource,
} from '../../locator/locator.js';
import { splitHostPort, type Member } from '../../cluster/memberTable.js';
import type { Message } from '../../jt808/messages.js';
import { until } from '../helpers/until.js';

const member = (node: string, gateway: string, terminals = 0, over = {}): Member => ({
  node,
  gateway,
  startedAt: 0,
  workers: 1,
  reportedAt: 1,
  load: { terminals, capacity: 1000, zone: 'default', ...over },
});

class FixedMembers implements MemberSource {
  private fns = new Set<(m: Member[], r: number) => void>();
  constructor(public list: Member[]) {}
  members(): Member[] {
    return this.list;
  }
  onChange(fn: (m: Member[], r: number) => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  set(list: Member[]): void {
    this.list = list;
    for (const fn of this.fns) fn(list, 0);
  }
}

const open: Locator[] = [];
async function startLocator(
  opts: Partial<LocatorOptions> & { members: MemberSource },
): Promise<{ locator: Locator; port: number }> {
  const locator = new Locator(opts);
  open.push(locator);
  return { locator, port: await locator.listen() };
}
after(async () => {
  for (const l of open) await l.close();
});

const phone = (n: number, edition = 2013): string =>
  String(13_800_000_000 + n).padStart(edition === 2019 ? 20 : 12, '0');

describe('locator endpoint (loopback sockets)', () => {
  for (const edition of [2011, 2013, 2019] as const) {
    it(`edition ${edition}: register, authenticate, 0x8105 to the node, closed after the ack`, async () => {
      const members = new FixedMembers([member('n1', '10.1.2.3:8809')]);
      const { locator, port } = await startLocator({ members, timeLimitMinutes: 30 });
      const r = await followLocator({
        locatorPort: port,
        phone: phone(1, edition),
        edition,
        stopAtRedirect: true,
      });
      assert.deepEqual(r.target, {
        connectionControl: 0,
        address: '10.1.2.3',
        tcpPort: 8809,
        timeLimitMinutes: 30,
      });
      assert.equal(locator.stats.registered, 1);
      assert.equal(locator.stats.redirected, 1);
      await until(() => locator.stats.connections === 0, 'the connection closed');
    });
  }

  it('a 2011 terminal’s short registration is read as 2011 and answered', async () => {
    const members = new FixedMembers([member('n1', '10.1.2.3:8809')]);
    const { locator, port } = await startLocator({ members });
    const t = new SimTerminal({ port, phone: phone(2), edition: 2011 });
    await t.connect();
    assert.equal(await t.register(), 0);
    assert.equal(t.authCode, locatorAuthCode('13800000002'));
    t.close();
    assert.equal(locator.stats.registered, 1);
  });

  it('authentication alone is enough, and its code goes with the 0x8105 to the node', async () => {
    const members = new FixedMembers([member('n1', '127.0.0.1:9000')]);
    const { port } = await startLocator({ members });
    const r = await followLocator({
      locatorPort: port,
      phone: phone(3),
      authCode: 'a1b2c3',
      stopAtRedirect: true,
    });
    assert.equal(r.target.authCode, 'a1b2c3');
    // A code the locator itself gave is not passed on: the node does not know it.
    const again = await followLocator({
      locatorPort: port,
      phone: phone(3),
      authCode: locatorAuthCode('13800000003'),
      stopAtRedirect: true,
    });
    assert.equal(again.target.authCode, undefined);
  });

  it('sends terminals to the least loaded node and spreads a burst between reports', async () => {
    const members = new FixedMembers([
      member('a', 'h:1', 10),
      member('b', 'h:2', 0),
      member('c', 'h:3', 10),
    ]);
    const { locator, port } = await startLocator({ members });
    const targets: number[] = [];
    for (let i = 0; i < 40; i++)
      targets.push(
        (
          await followLocator({
            locatorPort: port,
            phone: phone(100 + i),
            authCode: 'x',
            stopAtRedirect: true,
          })
        ).target.tcpPort!,
      );
    const count = (p: number): number => targets.filter((x) => x === p).length;
    // b first takes the 10 it lacked, then the rest spread: 20 + 10 each = 60 / 3.
    assert.deepEqual([count(1), count(2), count(3)], [10, 20, 10]);
    assert.deepEqual(Object.fromEntries(locator.stats.byNode), { b: 20, a: 10, c: 10 });
  });

  it('with no node to go to: authentication answered result 1 and the connection closed', async () => {
    const members = new FixedMembers([member('a', 'h:1', 0, { draining: true })]);
    const { locator, port } = await startLocator({ members });
    const t = new SimTerminal({ port, phone: phone(4) });
    await t.connect();
    assert.equal(await t.authenticate('x'), 1);
    await until(() => t.closed, 'closed');
    assert.equal(locator.stats.noNode, 1);
  });

  it('a report before (or instead of) the redirect is answered result 1: kept by the terminal', async () => {
    const members = new FixedMembers([member('a', 'h:1')]);
    const { locator, port } = await startLocator({ members });
    const t = new SimTerminal({ port, phone: phone(5) });
    await t.connect();
    assert.equal(await t.report(trackPoint(1)), 1, 'before authenticating');
    assert.equal(await t.request({ type: 'Heartbeat', body: {} }), 0, 'heartbeats are answered');
    t.close();
    assert.equal(locator.stats.unauthenticated, 1);
  });

  it('garbage and broken frames: result 2 where a header is readable, then closed; counted', async () => {
    const members = new FixedMembers([member('a', 'h:1')]);
    const { locator, port } = await startLocator({ members, maxBadFrames: 3 });
    const t = new SimTerminal({ port, phone: phone(6) });
    await t.connect();
    // A heartbeat frame with a wrong check code: its header is readable, so it gets 0x8001/2.
    const bad = Buffer.from(
      hbFrame(phone(6)).map((b, i, a) => (i === a.length - 2 ? b ^ 0x55 : b)),
    );
    const answered = t.waitFor((f) => f.message?.type === 'PlatformResponse');
    t.writeRaw(bad);
    const f = await answered;
    assert.equal((f.message as Extract<Message, { type: 'PlatformResponse' }>).body.result, 2);
    for (let i = 0; i < 4; i++) t.writeRaw(bad);
    await until(() => t.closed, 'closed for bad frames');
    assert.equal(locator.stats.rejected['bad-check-code'], 5);
    assert.equal(locator.stats.closedForGarbage, 1);
    // Bytes that are no frame at all, past the garbage limit.
    const { locator: l2, port: p2 } = await startLocator({ members, maxGarbageBytes: 1000 });
    const s = connect({ port: p2, host: '127.0.0.1' });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.alloc(2000, 0x41));
    await new Promise((r) => s.once('close', r));
    assert.equal(l2.stats.closedForGarbage, 1);
  });

  it('a terminal that never authenticates, or never acknowledges, is closed at the deadline', async () => {
    const members = new FixedMembers([member('a', 'h:1')]);
    const { locator, port } = await startLocator({ members, connectionDeadlineMs: 200 });
    const silent = new SimTerminal({ port, phone: phone(7) });
    await silent.connect();
    const noAck = new SimTerminal({ port, phone: phone(8) });
    await noAck.connect();
    assert.equal(await noAck.authenticate('x'), 0); // gets the 0x8105, never answers it
    await until(() => silent.closed && noAck.closed, 'both closed');
    assert.equal(locator.stats.closedAtDeadline, 2);
    assert.equal(locator.stats.redirects, 1);
    assert.equal(locator.stats.redirected, 0);
  });

  it('connections past the total or per-address limit are refused and counted', async () => {
    const members = new FixedMembers([member('a', 'h:1')]);
    const { locator, port } = await startLocator({ members, maxPerAddress: 5 });
    const held: SimTerminal[] = [];
    for (let i = 0; i < 8; i++) {
      const t = new SimTerminal({ port, phone: phone(20 + i) });
      await t.connect();
      held.push(t);
    }
    await until(() => held.filter((t) => t.closed).length === 3, 'three refused');
    assert.equal(locator.stats.refusedConnections, 3);
    assert.equal(locator.stats.connections, 5);
    for (const t of held) t.close();
    await until(() => locator.stats.connections === 0, 'all gone');
    // Room again once they left.
    const t = new SimTerminal({ port, phone: phone(30) });
    await t.connect();
    assert.equal(await t.authenticate('x'), 0);
    t.close();
    const { locator: l2, port: p2 } = await startLocator({ members, maxConnections: 2 });
    const few: SimTerminal[] = [];
    for (let i = 0; i < 3; i++) {
      const x = new SimTerminal({ port: p2, phone: phone(40 + i) });
      await x.connect();
      few.push(x);
    }
    await until(() => l2.stats.refusedConnections === 1, 'one refused');
    for (const x of few) x.close();
  });

  it('a terminal refusing command word 2: closed and counted; or moved with 0x8103 when so set', async () => {
    const members = new FixedMembers([member('a', '10.9.9.9:7001')]);
    for (const unsupported of ['close', 'parameters'] as const) {
      const { locator, port } = await startLocator({ members, unsupported });
      const t = new SimTerminal({ port, phone: phone(50) });
      await t.connect();
      const control = t.waitFor((f) => f.message?.type === 'TerminalControl');
      assert.equal(await t.authenticate('x'), 0);
      const c = await control;
      const params =
        unsupported === 'parameters'
          ? t.waitFor((f) => f.message?.type === 'SetParameters')
          : undefined;
      // 3: "not supported" (2013 table 4).
      t.send({
        type: 'TerminalResponse',
        body: { replySerial: c.header.serial, replyId: 0x8105, result: 3 },
      });
      if (params) {
        const p = await params;
        assert.deepEqual((p.message as Extract<Message, { type: 'SetParameters' }>).body.params, [
          { id: 0x0013, value: '10.9.9.9' },
          { id: 0x0018, value: 7001 },
        ]);
        t.send({
          type: 'TerminalResponse',
          body: { replySerial: p.header.serial, replyId: 0x8103, result: 0 },
        });
      }
      await until(() => t.closed, 'closed');
      assert.equal(locator.stats.unsupported, 1);
      assert.equal(locator.stats.movedByParameters, unsupported === 'parameters' ? 1 : 0);
    }
  });

  it('a node report takes in the assignments made before it was sampled; a node gone is not chosen', async () => {
    let now = 10_000;
    const members = new FixedMembers([member('a', 'h:1', 0), member('b', 'h:2', 0)]);
    const { locator } = await startLocator({ members, now: () => now });
    for (let i = 0; i < 10; i++) locator.locate(String(i)); // 5 each, at 10 000
    now = 12_000;
    locator.locate('late'); // after a's sample below: not in its report
    const lateNode = locator.locate('probe')!.candidate.node; // the other one, to even up
    // a's report sampled at 11 000 with its 5 arrived, reaching us at 13 000 (a busy node).
    now = 13_000;
    members.set([{ ...member('a', 'h:1', 5), reportedAt: 11_000 }, member('b', 'h:2', 0)]);
    // a: 5 reported + the late one if it went there; b: 0 reported + 5 + the other, still counted.
    const picks = Array.from({ length: 12 }, (_, i) => locator.locate(`x${i}`)!.candidate.node);
    assert.equal(picks.filter((p) => p === 'a').length, 6, `${lateNode} ${picks.join(',')}`);
    members.set([member('b', 'h:2', 10)]);
    assert.equal(locator.locate('y')!.candidate.node, 'b');
  });

  it('splits host:port, IPv6 too', () => {
    assert.deepEqual(splitHostPort('10.0.0.1:8808'), { host: '10.0.0.1', port: 8808 });
    assert.deepEqual(splitHostPort('[::1]:8808'), { host: '::1', port: 8808 });
  });
});

/** A 2013 heartbeat frame (escaped, with delimiters). */
function hbFrame(p: string): number[] {
  const body = [0x00, 0x02, 0x00, 0x00, ...Buffer.from(p, 'hex'), 0x00, 0x01];
  const x = body.reduce((a, b) => a ^ b, 0);
  const out = [0x7e];
  for (const b of [...body, x]) {
    if (b === 0x7e) out.push(0x7d, 0x02);
    else if (b === 0x7d) out.push(0x7d, 0x01);
    else out.push(b);
  }
  out.push(0x7e);
  return out;
}
