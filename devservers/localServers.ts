// Starts and stops the real servers fleetmesh needs on one machine — etcd (Debian's
// etcd-server) and the local MongoDB-protocol store (our embedded FerretDB on PostgreSQL or
// SQLite, see localStore.ts) — for tests and for the local cluster. No server is left behind
// (see serverProcess.ts), and no throwaway data of a program that passed (see freshRunDir).
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import {
  externalServers,
  localStoreBackend,
  type ExternalServers,
  type StoreBackend,
} from './serverConfig.js';
import { projectRoot, startLocalStore } from './localStore.js';
import {
  atProgramEnd,
  freePort,
  spawnServer,
  stopChild,
  waitUntil,
  type ServerProcess,
} from './serverProcess.js';

export { ferretdbBinary, pingMongo, projectRoot, startLocalStore } from './localStore.js';
export { freePort, type ServerProcess } from './serverProcess.js';

const stateDir = join(projectRoot, '.fleetmesh');

/**
 * A new directory under .fleetmesh/run for data wanted only while this program runs (a test's
 * servers): removed when the program exits with status 0, kept when it fails or dies of a signal,
 * with its path printed on stderr, because a failing test's server logs and data are what one reads
 * next. Named `[label-]<pid>-<random>`. (Nothing runs after a SIGKILL: that leaves it behind.)
 */
export function freshRunDir(label?: string): string {
  const name = `${label ? `${label}-` : ''}${process.pid}-${randomBytes(4).toString('hex')}`;
  const dir = join(stateDir, 'run', name);
  mkdirSync(dir, { recursive: true });
  atProgramEnd((ok) => {
    if (ok) rmSync(dir, { recursive: true, force: true });
    else if (existsSync(dir)) {
      process.stderr.write(`fleetmesh: kept server data and logs of a failed run in ${dir}\n`);
    }
  });
  return dir;
}

export interface LocalServersOptions {
  /**
   * Keep data here across runs (the local cluster); default: a fresh directory (freshRunDir),
   * removed when the program ends well, kept and named when it fails.
   */
  dataDir?: string;
  /** Fixed ports (the local cluster); default: free ports chosen at start. */
  mongoPort?: number;
  etcdPort?: number;
  /** Servers named by the operator; default: read from flags and environment. */
  external?: ExternalServers;
  /** The local store's backend when no MongoDB is named; default: from flags and environment. */
  storeBackend?: StoreBackend;
  readyTimeoutMs?: number;
}

export interface LocalServers {
  /** Where the servers keep their data, with their logs in `logs/`. */
  dataDir: string;
  mongodbUri: string;
  /** The local store's backend; absent when the MongoDB is external. */
  storeBackend?: StoreBackend;
  /** The PostgreSQL under the local store, when that is its backend. */
  postgresqlUrl?: string;
  etcdEndpoints: string[];
  /** Processes we started (empty when both servers are external). */
  processes: ServerProcess[];
  /**
   * The etcd this started (absent when external), for fault tests: `kill` ends it at once
   * (SIGKILL: no goodbye to anyone), `start` brings it back on the same port and data.
   */
  etcd?: { kill(): Promise<void>; start(): Promise<void> };
  stop(): Promise<void>;
}

export async function pingEtcd(endpoints: string[]): Promise<void> {
  const client = new Etcd3({ hosts: endpoints, dialTimeout: 1000 });
  try {
    await client.maintenance.status();
  } finally {
    client.close();
  }
}

async function startEtcd(
  dataDir: string,
  clientPort: number,
  logFile: string,
  deadline: number,
  knownPeerPort?: number,
): Promise<{ child: ChildProcess; endpoint: string; peerPort: number }> {
  const peerPort = knownPeerPort ?? (await freePort());
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawnServer(
    'etcd',
    'etcd',
    [
      '--name',
      'fleetmesh',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `fleetmesh=${peer}`,
      '--log-level',
      'warn',
      '--logger',
      'zap',
    ],
    logFile,
  );
  try {
    await waitUntil('etcd', deadline, () => pingEtcd([client]), child, logFile);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { child, endpoint: client, peerPort };
}

/**
 * Starts whatever is not external, waits until both answer a real ping, and returns where they
 * are. A port taken between choosing and binding makes a start fail; we retry with new ports.
 */
export async function startLocalServers(opts: LocalServersOptions = {}): Promise<LocalServers> {
  const external = opts.external ?? externalServers();
  const base = opts.dataDir ?? freshRunDir();
  const logDir = join(base, 'logs');
  const timeout = opts.readyTimeoutMs ?? 30_000;
  const stops: Array<() => Promise<void>> = [];
  const processes: ServerProcess[] = [];

  // A fresh directory stays until the program ends: whether to keep it depends on how it ends.
  const stop = async (): Promise<void> => {
    await Promise.all(stops.map((s) => s()));
  };

  // The servers' handles are unref'd; hold the event loop open while we wait for them.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    let mongodbUri = external.mongodbUri;
    let storeBackend: StoreBackend | undefined;
    let postgresqlUrl: string | undefined;
    if (!mongodbUri) {
      const store = await startLocalStore({
        dataDir: base,
        logDir,
        backend: opts.storeBackend ?? localStoreBackend(),
        port: opts.mongoPort ?? 0, // 0: the program binds a free port and tells us which
        deadline: Date.now() + timeout,
      });
      stops.push(store.stop);
      processes.push(...store.processes);
      mongodbUri = store.uri;
      storeBackend = store.backend;
      postgresqlUrl = store.postgresqlUrl;
    }

    let etcdEndpoints = external.etcdEndpoints;
    let etcd: LocalServers['etcd'];
    if (!etcdEndpoints || etcdEndpoints.length === 0) {
      const logFile = join(logDir, 'etcd.log');
      let lastErr: unknown;
      for (let attempt = 0; attempt < 3 && !etcdEndpoints; attempt++) {
        const port = opts.etcdPort ?? (await freePort());
        try {
          const started = await startEtcd(join(base, 'etcd'), port, logFile, Date.now() + timeout);
          let child: ChildProcess | undefined = started.child;
          stops.push(() => (child ? stopChild(child) : Promise.resolve()));
          processes.push({ name: 'etcd', pid: started.child.pid as number, logFile });
          etcdEndpoints = [started.endpoint];
          etcd = {
            async kill() {
              const c = child;
              child = undefined;
              if (!c || c.exitCode !== null) return;
              const exited = new Promise((r) => c.once('exit', r));
              c.kill('SIGKILL');
              await exited;
            },
            async start() {
              if (child) return;
              const again = await startEtcd(
                join(base, 'etcd'),
                port,
                logFile,
                Date.now() + timeout,
                started.peerPort,
              );
              child = again.child;
            },
          };
        } catch (err) {
          lastErr = err;
          if (opts.etcdPort) break;
        }
      }
      if (!etcdEndpoints) throw lastErr;
    }
    return {
      dataDir: base,
      mongodbUri,
      ...(storeBackend ? { storeBackend } : {}),
      ...(postgresqlUrl ? { postgresqlUrl } : {}),
      etcdEndpoints,
      processes,
      ...(etcd ? { etcd } : {}),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
}
