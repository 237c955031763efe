// `fleetmesh start`: the local system. Today that is the real servers the cluster needs
// (etcd and the MongoDB-protocol server), kept under .fleetmesh/data so data survives restarts;
// the gateway and nodes join here as they are built.
import { join } from 'node:path';
import { projectRoot, startLocalServers } from '../cluster/localServers.js';
import { externalServers } from '../cluster/serverConfig.js';

export async function runStart(args: string[]): Promise<number> {
  const external = externalServers(args);
  const servers = await startLocalServers({
    external,
    dataDir: join(projectRoot, '.fleetmesh', 'data'),
  });
  const lines = [
    `fleetmesh: MongoDB ${servers.mongodbUri}${external.mongodbUri ? ' (external)' : ' (local FerretDB)'}`,
    `fleetmesh: etcd    ${servers.etcdEndpoints.join(',')}${external.etcdEndpoints ? ' (external)' : ' (local)'}`,
    ...servers.processes.map((p) => `fleetmesh: ${p.name} pid ${p.pid}, log ${p.logFile}`),
    'fleetmesh: running; Ctrl-C stops it',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    const keepAlive = setInterval(() => undefined, 60_000);
    const stop = (): void => {
      clearInterval(keepAlive);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await servers.stop();
  process.stdout.write('fleetmesh: stopped\n');
  return 0;
}
