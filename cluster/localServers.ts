// Starts and stops the real servers fleetmesh needs on one machine — etcd (Debian's
// etcd-server) and our embedded FerretDB speaking the MongoDB protocol — for tests and for the
// local cluster. Nothing is left behind: children are stopped on stop(), on process exit, on
// SIGINT/SIGTERM, and (via setpriv's parent-death signal) even when this process is SIGKILLed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { MongoClient } from 'mongodb';
import { externalServers, type ExternalServers } from './serverConfig.js';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const stateDir = join(projectRoot, '.fleetmesh');
export const ferretdbBinary = join(stateDir, 'bin', 'ferretdb-embedded');

export interface LocalServersOptions {
  /** Keep data here across runs (the local cluster); default: a fresh directory removed on stop. */
  dataDir?: string;
  /** Fixed ports (the local cluster); default: free ports chosen at start. */
  mongoPort?: number;
  etcdPort?: number;
  /** Servers named by the operator; default: read from flags and environment. */
  external?: ExternalServers;
  readyTimeoutMs?: number;
}

export interface ServerProcess {
  name: 'etcd' | 'ferretdb';
  pid: number;
  logFile: string;
}

export interface LocalServers {
  mongodbUri: string;
  etcdEndpoints: string[];
  /** Processes we started (empty when both servers are external). */
  processes: ServerProcess[];
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooksInstalled = false;

// Last resort when the process exits without calling stop(): synchronous kill of what is left.
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      // A program with its own handler shuts down in order (and calls stop()); the 'exit'
      // hook still catches what it leaves. Otherwise stop the servers and die of the signal.
      if (process.listenerCount(sig) > 0) return;
      void stopAll().finally(() => process.kill(process.pid, sig));
    };
    process.once(sig, onSignal);
  }
}

async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c)));
}

function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child);
      resolvePromise();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      live.delete(child);
      resolvePromise();
    });
    child.kill('SIGTERM');
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

const hasSetpriv = spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status === 0;

/**
 * Spawns a server whose stdout/stderr go to a log file. With setpriv the child gets SIGTERM when
 * this process's main thread dies, however it dies. (Spawn from the main thread only: the signal
 * follows the thread that forked.)
 */
function spawnServer(
  name: ServerProcess['name'],
  cmd: string,
  args: string[],
  logFile: string,
): ChildProcess {
  const [file, argv] = hasSetpriv
    ? ['setpriv', ['--pdeathsig', 'TERM', '--', cmd, ...args]]
    : [cmd, args];
  mkdirSync(dirname(logFile), { recursive: true });
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.on('error', (err) => log.write(`spawn error: ${err.message}\n`));
  // Servers never keep this process alive: when it ends, the exit hook stops them.
  child.unref();
  (child.stdout as { unref?: () => void } | null)?.unref?.();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  live.add(child);
  child.once('exit', () => live.delete(child));
  // 'close' comes after the child's stdio has drained into the log.
  child.once('close', (code, sig) => log.end(`${name} exited (${code ?? sig})\n`));
  log.on('error', () => undefined); // a full disk must not take the node down with it
  installExitHooks();
  return child;
}

async function waitUntil(
  what: string,
  deadline: number,
  probe: () => Promise<void>,
  child?: ChildProcess,
  logFile?: string,
): Promise<void> {
  let last: unknown;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(
        `${what} exited (${child.exitCode ?? child.signalCode}) before it was ready; see ${logFile}`,
      );
    }
    try {
      await probe();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(
    `${what} not ready in time: ${last instanceof Error ? last.message : String(last)}; see ${logFile}`,
  );
}

export async function pingMongo(uri: string): Promise<void> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close();
  }
}

export async function pingEtcd(endpoints: string[]): Promise<void> {
  const client = new Etcd3({ hosts: endpoints, dialTimeout: 1000 });
  try {
    await client.maintenance.status();
  } finally {
    client.close();
  }
}

/** A FerretDB on a fixed port and data directory that a fault test can stop and start again. */
export async function startFerretdbServer(
  dataDir: string,
  port: number,
  timeoutMs = 30_000,
): Promise<{ uri: string; pid: number; stop(): Promise<void> }> {
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    const started = await startFerretdb(
      dataDir,
      port,
      join(dataDir, '..', 'ferretdb.log'),
      Date.now() + timeoutMs,
    );
    return {
      uri: started.uri,
      pid: started.child.pid as number,
      stop: () => stopChild(started.child),
    };
  } finally {
    clearInterval(keepAlive);
  }
}

async function startFerretdb(
  dataDir: string,
  port: number,
  logFile: string,
  deadline: number,
): Promise<{ child: ChildProcess; uri: string }> {
  if (!existsSync(ferretdbBinary)) {
    throw new Error(`${ferretdbBinary} is missing; run \`npm run setup\` (or set MONGODB_URI)`);
  }
  const child = spawnServer(
    'ferretdb',
    ferretdbBinary,
    ['-listen', `127.0.0.1:${port}`, '-data', dataDir],
    logFile,
  );
  // The program prints "ready mongodb://host:port/" once its listener is bound.
  const ready = new Promise<string>((resolvePromise, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const m = /ready (mongodb:\/\/\S+)/.exec(buf);
      if (m) {
        child.stdout?.off('data', onData);
        resolvePromise(m[1] as string);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, sig) =>
      reject(new Error(`ferretdb exited (${code ?? sig}) at start; see ${logFile}`)),
    );
    setTimeout(
      () => reject(new Error(`ferretdb did not start in time; see ${logFile}`)),
      Math.max(0, deadline - Date.now()),
    ).unref();
  });
  let uri: string;
  try {
    uri = await ready;
    await waitUntil('ferretdb', deadline, () => pingMongo(uri), child, logFile);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { child, uri };
}

async function startEtcd(
  dataDir: string,
  clientPort: number,
  logFile: string,
  deadline: number,
): Promise<{ child: ChildProcess; endpoint: string }> {
  const peerPort = await freePort();
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
  return { child, endpoint: client };
}

/**
 * Starts whatever is not external, waits until both answer a real ping, and returns where they
 * are. A port taken between choosing and binding makes a start fail; we retry with new ports.
 */
export async function startLocalServers(opts: LocalServersOptions = {}): Promise<LocalServers> {
  const external = opts.external ?? externalServers();
  const tempDir = opts.dataDir
    ? undefined
    : join(stateDir, 'run', `${process.pid}-${randomBytes(4).toString('hex')}`);
  const base = opts.dataDir ?? (tempDir as string);
  const logDir = join(base, 'logs');
  const timeout = opts.readyTimeoutMs ?? 30_000;
  const children: ChildProcess[] = [];
  const processes: ServerProcess[] = [];

  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => stopChild(c)));
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };

  // The servers' handles are unref'd; hold the event loop open while we wait for them.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    let mongodbUri = external.mongodbUri;
    if (!mongodbUri) {
      const logFile = join(logDir, 'ferretdb.log');
      const port = opts.mongoPort ?? 0; // 0: the program binds a free port and tells us which
      const started = await startFerretdb(
        join(base, 'ferretdb'),
        port,
        logFile,
        Date.now() + timeout,
      );
      children.push(started.child);
      processes.push({ name: 'ferretdb', pid: started.child.pid as number, logFile });
      mongodbUri = started.uri;
    }

    let etcdEndpoints = external.etcdEndpoints;
    if (!etcdEndpoints || etcdEndpoints.length === 0) {
      const logFile = join(logDir, 'etcd.log');
      let lastErr: unknown;
      for (let attempt = 0; attempt < 3 && !etcdEndpoints; attempt++) {
        const port = opts.etcdPort ?? (await freePort());
        try {
          const started = await startEtcd(join(base, 'etcd'), port, logFile, Date.now() + timeout);
          children.push(started.child);
          processes.push({ name: 'etcd', pid: started.child.pid as number, logFile });
          etcdEndpoints = [started.endpoint];
        } catch (err) {
          lastErr = err;
          if (opts.etcdPort) break;
        }
      }
      if (!etcdEndpoints) throw lastErr;
    }
    return { mongodbUri, etcdEndpoints, processes, stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
}
