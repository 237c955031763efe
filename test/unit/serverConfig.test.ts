import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { externalServers, localStoreBackend } from '../../devservers/serverConfig.js';
import { startLocalServers } from '../../devservers/localServers.js';

describe('server configuration', () => {
  it('reads flags before the environment', () => {
    const got = externalServers(
      ['--mongodb-uri', 'mongodb://a:1/', '--etcd-endpoints=http://e:1, http://e:2'],
      {
        MONGODB_URI: 'mongodb://env:2/',
      },
    );
    assert.deepEqual(got, {
      mongodbUri: 'mongodb://a:1/',
      etcdEndpoints: ['http://e:1', 'http://e:2'],
    });
  });

  it('falls back to MONGODB_URI / ETCD_ENDPOINTS and ignores blanks', () => {
    assert.deepEqual(
      externalServers([], { MONGODB_URI: 'mongodb://env:2/', ETCD_ENDPOINTS: ' ' }),
      {
        mongodbUri: 'mongodb://env:2/',
      },
    );
  });

  it('chooses the local store: flag, then FLEETMESH_LOCAL_STORE, then PostgreSQL', () => {
    assert.equal(localStoreBackend([], {}), 'postgresql');
    assert.equal(localStoreBackend([], { FLEETMESH_LOCAL_STORE: 'sqlite' }), 'sqlite');
    assert.equal(
      localStoreBackend(['--local-store=postgresql'], { FLEETMESH_LOCAL_STORE: 'sqlite' }),
      'postgresql',
    );
    assert.throws(() => localStoreBackend(['--local-store', 'mysql'], {}), /unknown local store/);
  });

  it('starts nothing when both servers are external', async () => {
    const servers = await startLocalServers({
      external: {
        mongodbUri: 'mongodb://db.example:27017/',
        etcdEndpoints: ['http://etcd.example:2379'],
      },
    });
    assert.deepEqual(servers.processes, []);
    assert.equal(servers.mongodbUri, 'mongodb://db.example:27017/');
    assert.deepEqual(servers.etcdEndpoints, ['http://etcd.example:2379']);
    await servers.stop();
  });
});
