// Membership against a real etcd: nodes see each other and each other's load, a name is held by
// one live process, a node that leaves is gone at once, one that dies is gone after its lease's
// TTL, one whose lease is lost registers again, and garbage under the prefix is ignored.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import { MemberNameTaken, Membership, type MemberSelf } from '../../cluster/membership.js';
import type { Member } from '../../cluster/memberTable.js';
import { startNode } from '../../node/node.js';
import { SimTerminal } from '../../bench/terminal.js';
import { until } from '../helpers/until.js';

let servers: LocalServers;
const clients: Etcd3[] = [];
const client = (): Etcd3 => {
  const c = new Etcd3({ hosts: servers.etcdEndpoints });
  clients.push(c);
  return c;
};

before(async () => {
  servers = await startLocalServers();
});
after(async () => {
  for (const c of clients) c.close();
  await servers?.stop();
});

let run = 0;
/** A fresh prefix per test, so tests do not see each other's members. */
const prefix = (): string => `fleetmesh/test-members/${process.pid}/${run++}/`;
const self = (node: string): MemberSelf => ({
  node,
  gateway: `127.0.0.1:${8800 + node.length}`,
  grpc: '127.0.0.1:9808',
  startedAt: Date.now(),
  workers: 2,
});
const names = (m: Membership): string[] => m.members().map((x) => x.node);

/**
 * A member in another process (TTL 2 s), resolved once it has joined: killing it with SIGKILL
 * is a node dying — no revoke, no more keepalives.
 */
async function memberInChild(node: string, prefix?: string): Promise<ChildProcess> {
  const membership = new URL('../../cluster/membership.js', import.meta.url).href;
  const code = `
    import { Etcd3 } from 'etcd3';
    import { Membership } from ${JSON.stringify(membership)};
    const c = new Etcd3({ hosts: ${JSON.stringify(servers.etcdEndpoints)} });
    await Membership.join(c, { node: ${JSON.stringify(node)}, gateway: 'x:1', startedAt: 0 },
      { ttlSeconds: 2${prefix ? `, prefix: ${JSON.stringify(prefix)}` : ''} });
    process.stdout.write('joined\\n');
    setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: fileURLToPath(new URL('../../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout, 'data');
  return child;
}

describe('membership in etcd (real)', () => {
  it('nodes see each other join and see each other’s load', async () => {
    const p = prefix();
    const a = await Membership.join(client(), self('node-a'), { prefix: p });
    const b = await Membership.join(client(), self('node-b'), { prefix: p });
    try {
      assert.deepEqual(names(b), ['node-a', 'node-b'], 'b reads a at join');
      await until(() => names(a).length === 2, 'a to see b join');
      await b.report({ terminals: 5 });
      await until(
        () => a.members().find((m) => m.node === 'node-b')?.load.terminals === 5,
        'a to see b’s load',
      );
      assert.ok(a.table.revision > 0);
    } finally {
      await Promise.all([a.leave(), b.leave()]);
    }
  });

  it('a node name is held by one live process', async () => {
    const p = prefix();
    const a = await Membership.join(client(), self('node-a'), { prefix: p });
    try {
      await assert.rejects(
        Membership.join(client(), self('node-a'), { prefix: p }),
        MemberNameTaken,
      );
      assert.deepEqual(names(a), ['node-a']);
    } finally {
      await a.leave();
    }
  });

  it('a node that leaves is gone at once; one that dies is gone after its lease TTL', async () => {
    const p = prefix();
    const watcher = await Membership.join(client(), self('watcher'), { prefix: p });
    const leaving = await Membership.join(client(), self('leaving'), { prefix: p });
    const dying = await memberInChild('dying', p);
    try {
      await until(() => names(watcher).length === 3, 'all three seen');
      await leaving.leave();
      await until(() => !names(watcher).includes('leaving'), 'the leaving node gone', 2000);
      dying.kill('SIGKILL');
      await until(() => !names(watcher).includes('dying'), 'the dead node gone');
      assert.deepEqual(names(watcher), ['watcher']);
    } finally {
      dying.kill('SIGKILL');
      await watcher.leave();
    }
  });

  it('a node whose lease is lost registers again', async () => {
    const p = prefix();
    const logs: string[] = [];
    const watcher = await Membership.join(client(), self('watcher'), { prefix: p });
    const flaky = await Membership.join(client(), self('flaky'), {
      prefix: p,
      ttlSeconds: 2,
      log: (l) => logs.push(l),
    });
    try {
      await until(() => names(watcher).includes('flaky'), 'flaky seen');
      // Its lease ends under it (as when etcd was out of reach for longer than the TTL).
      const admin = client();
      const lease = await admin.get(`${p}flaky`).exec();
      await admin.leaseClient.leaseRevoke({ ID: lease.kvs[0]!.lease });
      await until(() => flaky.rejoins === 1, 'flaky to register again');
      await until(() => names(watcher).includes('flaky'), 'flaky seen again');
      assert.ok(
        logs.some((l) => /lost/.test(l)),
        logs.join('\n'),
      );
    } finally {
      await Promise.all([watcher.leave(), flaky.leave()]);
    }
  });

  it('ignores and counts values under the prefix that are not members', async () => {
    const p = prefix();
    const admin = client();
    await admin.put(`${p}garbage`).value('not json');
    await admin
      .put(`${p}impostor`)
      .value(JSON.stringify({ ...self('someone-else'), load: { terminals: 1 }, reportedAt: 0 }));
    const a = await Membership.join(client(), self('node-a'), { prefix: p });
    try {
      assert.deepEqual(names(a), ['node-a']);
      assert.equal(a.table.malformed, 2);
      await admin.put(`${p}later`).value('{}');
      await until(() => a.table.malformed === 3, 'the later garbage counted');
      assert.deepEqual(names(a), ['node-a']);
    } finally {
      await a.leave();
      await admin.delete().prefix(p);
    }
  });

  it('a node registers itself with its gateway address and reports its terminals', async () => {
    const watcher = await Membership.join(client(), self('watcher'));
    const node = await startNode({
      node: `member-${process.pid}`,
      mongodbUri: servers.mongodbUri,
      database: `fleetmesh_members_${process.pid}`,
      workers: 1,
      membership: {
        etcdEndpoints: servers.etcdEndpoints,
        grpc: '127.0.0.1:9808',
        loadIntervalMs: 50,
      },
    });
    const seen = (): Member | undefined => watcher.members().find((m) => m.node === node.node);
    try {
      await until(() => seen() !== undefined, 'the node registered');
      assert.equal(seen()!.gateway, `127.0.0.1:${node.port}`);
      assert.equal(seen()!.grpc, '127.0.0.1:9808');
      assert.deepEqual(
        node
          .members()
          .map((m) => m.node)
          .sort(),
        [node.node, 'watcher'].sort(),
      );
      const t = new SimTerminal({ port: node.port, phone: '013900007001' });
      await t.connect();
      await until(() => seen()?.load.terminals === 1, 'the terminal counted');
      t.close();
      await until(() => seen()?.load.terminals === 0, 'the terminal gone');
      // A second node with the same name is refused once the first's lease has outlived the
      // wait (the first is alive), and does not stay half started.
      await assert.rejects(
        startNode({
          node: node.node,
          mongodbUri: servers.mongodbUri,
          database: `fleetmesh_members_${process.pid}`,
          workers: 1,
          membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: 1 },
        }),
        MemberNameTaken,
      );
    } finally {
      await node.stop();
    }
    await until(() => seen() === undefined, 'the stopped node gone', 2000);
    await watcher.leave();
  });

  it('a node restarted after being killed waits out its predecessor’s lease, then joins', async () => {
    const name = `restarted-${process.pid}`;
    (await memberInChild(name)).kill('SIGKILL');
    const logs: string[] = [];
    const node = await startNode({
      node: name,
      mongodbUri: servers.mongodbUri,
      database: `fleetmesh_members_${process.pid}`,
      workers: 0,
      membership: { etcdEndpoints: servers.etcdEndpoints, ttlSeconds: 2 },
      log: (l) => logs.push(l),
    });
    try {
      assert.ok(
        logs.some((l) => /in use; waiting/.test(l)),
        'it waited for the old lease',
      );
      assert.ok(node.members().some((m) => m.node === name));
    } finally {
      await node.stop();
    }
  });
});
