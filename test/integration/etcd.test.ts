// The etcd we start (or ETCD_ENDPOINTS) does what membership will rely on: put/get, watches
// that see changes, and keys bound to a lease vanishing when the lease expires.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';

describe('etcd (real)', () => {
  let servers: LocalServers;
  let client: Etcd3;

  before(async () => {
    servers = await startLocalServers();
    client = new Etcd3({ hosts: servers.etcdEndpoints });
  });
  after(async () => {
    client?.close();
    await servers?.stop();
  });

  it('puts and gets a key', async () => {
    await client.put('fleetmesh/test/a').value('1');
    assert.equal(await client.get('fleetmesh/test/a').string(), '1');
  });

  it('a watch sees a put and a delete', async () => {
    const watcher = await client.watch().prefix('fleetmesh/test/w/').create();
    try {
      const put = once(watcher, 'put');
      await client.put('fleetmesh/test/w/x').value('hello');
      const [kv] = (await put) as [{ key: Buffer; value: Buffer }];
      assert.equal(kv.key.toString(), 'fleetmesh/test/w/x');
      assert.equal(kv.value.toString(), 'hello');
      const del = once(watcher, 'delete');
      await client.delete().key('fleetmesh/test/w/x');
      const [gone] = (await del) as [{ key: Buffer }];
      assert.equal(gone.key.toString(), 'fleetmesh/test/w/x');
    } finally {
      await watcher.cancel();
    }
  });

  it('a key bound to a lease disappears when the lease expires', async () => {
    const lease = client.lease(1, { autoKeepAlive: false });
    await lease.put('fleetmesh/test/lease').value('alive');
    assert.equal(await client.get('fleetmesh/test/lease').string(), 'alive');
    const watcher = await client.watch().key('fleetmesh/test/lease').create();
    try {
      // The delete event is what a node watching membership would see.
      const [gone] = (await once(watcher, 'delete')) as [{ key: Buffer }];
      assert.equal(gone.key.toString(), 'fleetmesh/test/lease');
      assert.equal(await client.get('fleetmesh/test/lease').string(), null);
    } finally {
      await watcher.cancel();
      lease.release();
    }
  });
});
