// A peer's stream into a node, without sockets: records wait per vehicle (one vehicle waiting
// for its handoff does not hold up the others), are taken in order once the vehicle's side
// takes them, the peer's credit counts only what was taken, and a link keeps the cluster-wide
// name the peer gave it (a relayed link's number is the relay's own).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { FRAME_BATCH_FORMAT, FrameBatchBuilder } from '../../hosting/frameBatch.js';
import type { GatewayDelivery } from '../../gateway/gateway.js';
import { PeerInbound, type ProxyTerminalLink } from '../../cluster/peerInbound.js';
import { ProxyLinkTable } from '../../cluster/peerLinks.js';
import type { RouteBatch, RouteServerStream } from '../../cluster/peerService.js';
import type { Header } from '../../jt808/header.js';

class FakeStream extends EventEmitter {
  readonly written: RouteBatch[] = [];
  write(b: RouteBatch): boolean {
    this.written.push(b);
    return true;
  }
  destroyedWith: Error | undefined;
  end(): void {}
  destroy(err?: Error): void {
    this.destroyedWith = err;
  }
}

const header = (phone: string, serial: number): Header => ({
  messageId: 0x0002,
  bodyLength: 0,
  encryption: 0,
  headerEdition: 2013,
  versionFlag: false,
  phone,
  serial,
});

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('PeerInbound', () => {
  it('holds records per vehicle, in order, and counts only what was taken', async () => {
    const stream = new FakeStream();
    let aOpen = false;
    const delivered: { vehicleId: string; serial: number; linkId: string }[] = [];
    const inbound = new PeerInbound(
      stream as unknown as RouteServerStream,
      new ProxyLinkTable<ProxyTerminalLink>(),
      (vehicleId, d: GatewayDelivery) => {
        if (vehicleId === '13900000001' && !aOpen) return false;
        if (d.kind === 'uplink')
          delivered.push({ vehicleId, serial: d.header.serial, linkId: d.link.id });
        return true;
      },
      () => undefined,
    );
    const b = new FrameBatchBuilder();
    b.linkName(7, 'node-a/x/7', 'node-a');
    b.uplink(7, 0, header('013900000001', 1), 2013, new Uint8Array(0));
    b.linkName(8, 'node-a/x/8', 'node-a');
    b.uplink(8, 0, header('013900000002', 1), 2013, new Uint8Array(0));
    b.uplink(7, 0, header('013900000001', 2), 2013, new Uint8Array(0));
    b.uplink(8, 0, header('013900000002', 2), 2013, new Uint8Array(0));
    stream.emit('data', {
      records: new Uint8Array(b.take()),
      consumed: 0,
      fromNode: 'relay',
      linkPrefix: 'relay/y/',
      hops: 1,
      format: FRAME_BATCH_FORMAT,
    } satisfies RouteBatch);
    await tick();
    assert.deepEqual(
      delivered.map((d) => [d.vehicleId, d.serial]),
      [
        ['13900000002', 1],
        ['13900000002', 2],
      ],
      'the other vehicle is not held up',
    );
    assert.equal(inbound.held, 2);
    assert.equal(stream.written.at(-1)?.consumed, 2, 'credit returned for what was taken only');

    aOpen = true;
    inbound.retry();
    await tick();
    assert.deepEqual(
      delivered.slice(2).map((d) => [d.vehicleId, d.serial]),
      [
        ['13900000001', 1],
        ['13900000001', 2],
      ],
      'the held vehicle gets its records in order',
    );
    assert.equal(inbound.held, 0);
    assert.equal(stream.written.at(-1)?.consumed, 2);
    assert.deepEqual(
      [...new Set(delivered.map((d) => d.linkId))].sort(),
      ['node-a/x/7', 'node-a/x/8'],
      "links keep the terminal's cluster-wide name, not the relay's",
    );
  });

  it('refuses a stream whose records are of another format (a node of another version): takes none of them', async () => {
    const stream = new FakeStream();
    const delivered: string[] = [];
    new PeerInbound(
      stream as unknown as RouteServerStream,
      new ProxyLinkTable<ProxyTerminalLink>(),
      (vehicleId) => {
        delivered.push(vehicleId);
        return true;
      },
      () => undefined,
    );
    const b = new FrameBatchBuilder();
    b.linkName(7, 'node-a/x/7', 'node-a');
    b.uplink(7, 0, header('013900000001', 1), 2013, new Uint8Array(0));
    stream.emit('data', {
      records: new Uint8Array(b.take()),
      consumed: 0,
      fromNode: 'old-node',
      linkPrefix: 'old-node/y/',
      hops: 0,
      format: FRAME_BATCH_FORMAT - 1,
    } satisfies RouteBatch);
    await tick();
    assert.deepEqual(delivered, []);
    assert.match(String(stream.destroyedWith), /format 1; this node reads 2/);
  });
});
