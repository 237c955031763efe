// The gateway's limits over real loopback sockets, with the vehicles' side faked by `deliver`:
// the authentication deadline, connections waiting to authenticate (in total and per address),
// a terminal that stops reading, and frames held for a full mailbox. At each limit the
// connection is closed or refused and counted; nothing else is disturbed. Frames held for a full
// mailbox are delivered, then the closed-link notice, even after the terminal disconnects.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { TerminalLink } from '../../actors/vehicleActor.js';
import { Gateway, type GatewayDelivery, type GatewayOptions } from '../../gateway/gateway.js';
import { encodeFrame } from '../../jt808/codec.js';

const PHONE = '013912340000';

/** A gateway whose deliver authenticates every 0x0102 at once (unless told not to take frames). */
async function gatewayWith(
  opts: Partial<GatewayOptions>,
  take: (d: GatewayDelivery) => boolean = () => true,
): Promise<{
  gateway: Gateway;
  port: number;
  delivered: GatewayDelivery[];
  links: TerminalLink[];
}> {
  const delivered: GatewayDelivery[] = [];
  const links: TerminalLink[] = [];
  const gateway = new Gateway({
    node: 'test',
    ...opts,
    deliver: (vehicleId, d) => {
      if (!take(d)) return false;
      delivered.push(d);
      if (d.kind === 'uplink' && d.message?.type === 'Authenticate') {
        d.link.authenticated(vehicleId, 2013);
        links.push(d.link);
      }
      return true;
    },
  });
  const port = await gateway.listen();
  return { gateway, port, delivered, links };
}

async function open(port: number): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

function closed(s: Socket): Promise<void> {
  return s.destroyed || s.readableEnded
    ? Promise.resolve()
    : new Promise((resolve) => s.once('close', () => resolve()));
}

const authenticate = (serial = 0): Uint8Array =>
  encodeFrame(
    { type: 'Authenticate', body: { authCode: 'x' } },
    { phone: PHONE, serial, edition: 2013 },
  );

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

describe('Gateway limits (loopback sockets)', { timeout: 20_000 }, () => {
  it('closes a connection that does not authenticate in time, and keeps one that did', async () => {
    const { gateway, port, links } = await gatewayWith({ authDeadlineMs: 150 });
    try {
      const silent = await open(port);
      const terminal = await open(port);
      terminal.write(authenticate());
      await until(() => links.length === 1);
      assert.equal(gateway.stats.pending, 1, 'the silent one is still waiting');
      await closed(silent);
      assert.equal(gateway.stats.authDeadlineClosed, 1);
      await until(() => gateway.stats.pending === 0);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(terminal.destroyed, false, 'the authenticated terminal stays connected');
      assert.equal(gateway.stats.connections, 1);
      terminal.destroy();
    } finally {
      await gateway.close();
    }
  });

  it('refuses connections past the limit of those waiting to authenticate, per address and in total', async () => {
    for (const limit of [
      { maxPendingPerAddress: 3 },
      { maxPendingConnections: 3 },
    ] satisfies Partial<GatewayOptions>[]) {
      const { gateway, port, links } = await gatewayWith(limit);
      try {
        const waiting = await Promise.all([open(port), open(port), open(port)]);
        await until(() => gateway.stats.pending === 3);
        const refused = await open(port);
        await closed(refused);
        assert.equal(gateway.stats.refusedPending, 1, JSON.stringify(limit));
        // One authenticates: room for another.
        waiting[0]!.write(authenticate());
        await until(() => links.length === 1);
        const next = await open(port);
        await until(() => gateway.stats.pending === 3);
        assert.equal(next.destroyed, false);
        assert.equal(gateway.stats.refusedPending, 1);
        for (const s of [...waiting, next]) s.destroy();
        await until(() => gateway.stats.connections === 0);
        assert.equal(gateway.stats.pending, 0, 'closing releases the places');
      } finally {
        await gateway.close();
      }
    }
  });

  it('closes a terminal that stops reading once its unread bytes pass the limit', async () => {
    const { gateway, port, links } = await gatewayWith({ maxWriteBufferBytes: 256 * 1024 });
    try {
      const terminal = await open(port);
      terminal.write(authenticate());
      await until(() => links.length === 1);
      terminal.pause(); // reads nothing from now on
      const frame = new Uint8Array(1024).fill(0x30);
      for (let i = 0; i < 64 * 1024 && gateway.stats.closedSlowReader === 0; i++)
        links[0]!.send(frame);
      assert.equal(gateway.stats.closedSlowReader, 1);
      await until(() => gateway.stats.connections === 0);
    } finally {
      await gateway.close();
    }
  });

  it('closes a connection whose frames waiting for a full mailbox pass the limit; what it held still goes, then the link closed', async () => {
    let mailboxFull = false;
    const { gateway, port, links, delivered } = await gatewayWith({ maxBacklog: 5 }, (d) =>
      d.kind === 'linkClosed' ? true : !mailboxFull,
    );
    try {
      const terminal = await open(port);
      terminal.write(authenticate());
      await until(() => links.length === 1);
      mailboxFull = true;
      const heartbeats = Array.from({ length: 10 }, (_, i) =>
        encodeFrame(
          { type: 'Heartbeat', body: {} },
          { phone: PHONE, serial: i + 1, edition: 2013 },
        ),
      );
      terminal.write(Buffer.concat(heartbeats));
      await closed(terminal);
      assert.equal(gateway.stats.closedBacklogFull, 1);
      // The mailbox frees: what was held goes in order, then the notice that the link closed.
      mailboxFull = false;
      await until(() => delivered.some((d) => d.kind === 'linkClosed'));
      const after = delivered.slice(
        delivered.findIndex((d) => d.kind === 'uplink' && d.message?.type === 'Heartbeat'),
      );
      assert.deepEqual(
        after.map((d) => (d.kind === 'uplink' ? d.header.serial : d.kind)),
        [1, 2, 3, 4, 5, 'linkClosed'],
      );
    } finally {
      await gateway.close();
    }
  });

  it('a terminal that disconnects while its frames wait for a full mailbox: they still go, then the link closed', async () => {
    let mailboxFull = false;
    const { gateway, port, links, delivered } = await gatewayWith({}, () => !mailboxFull);
    try {
      const terminal = await open(port);
      terminal.write(authenticate());
      await until(() => links.length === 1);
      mailboxFull = true;
      terminal.write(
        Buffer.concat(
          [1, 2, 3].map((serial) =>
            encodeFrame({ type: 'Heartbeat', body: {} }, { phone: PHONE, serial, edition: 2013 }),
          ),
        ),
      );
      await until(() => gateway.stats.pausedForBackpressure > 0);
      terminal.destroy();
      await until(() => gateway.stats.connections === 0);
      mailboxFull = false;
      await until(() => delivered.some((d) => d.kind === 'linkClosed'));
      assert.deepEqual(
        delivered.slice(1).map((d) => (d.kind === 'uplink' ? d.header.serial : d.kind)),
        [1, 2, 3, 'linkClosed'],
      );
      // Numbered in the order read, from 1, kept through the retries (the vehicle orders by it).
      assert.deepEqual(
        delivered.map((d) => d.seq),
        [1, 2, 3, 4, 5],
      );
    } finally {
      await gateway.close();
    }
  });
});
