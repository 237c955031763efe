// The MongoDB-protocol server for a test file: the local FerretDB (or MONGODB_URI when set);
// etcd is not started (these tests do not use it).
import { startLocalServers, type LocalServers } from '../../devservers/localServers.js';

export function startMongoForTests(): Promise<LocalServers> {
  return startLocalServers({
    external: {
      etcdEndpoints: ['http://unused:1'],
      ...(process.env.MONGODB_URI ? { mongodbUri: process.env.MONGODB_URI } : {}),
    },
  });
}
