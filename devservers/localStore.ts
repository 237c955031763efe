// The local MongoDB-protocol store for development, tests and benchmarks: our embedded FerretDB
// (deps/ferretdb) on PostgreSQL (Debian's postgresql-15, the default) or on SQLite. Measured side
// by side (`npm run bench -- store`, figures in the README), PostgreSQL with our FerretDB patches
// reads and updates by _id tens of times faster than SQLite at 10 000 vehicles, and never fails a
// concurrent update with SQLITE_BUSY; SQLite needs
// nothing installed and stays selectable. Production points MONGODB_URI at a real MongoDB instead.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import {
  freePort,
  commandAs,
  spawnServer,
  stopChild,
  waitUntil,
  type ServerProcess,
} from './serverProcess.js';
import { DEFAULT_STORE_BACKEND, type StoreBackend } from './serverConfig.js';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ferretdbBinary = join(projectRoot, '.fleetmesh', 'bin', 'ferretdb-embedded');

export interface LocalStoreOptions {
  /** Holds the backend's data (`postgresql/` or `ferretdb/`); kept across starts. */
  dataDir: string;
  /** Where the servers' logs go. */
  logDir: string;
  backend?: StoreBackend;
  /** The MongoDB-protocol port; 0 or absent: a free one. */
  port?: number;
  deadline?: number;
}

export interface LocalStore {
  uri: string;
  backend: StoreBackend;
  /** The PostgreSQL under FerretDB (postgresql backend): for inspecting what FerretDB does. */
  postgresqlUrl?: string;
  processes: ServerProcess[];
  /** Stops FerretDB, then PostgreSQL; the data stays in dataDir. */
  stop(): Promise<void>;
}

export async function pingMongo(uri: string): Promise<void> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close();
  }
}

/** The newest PostgreSQL server on this machine (Debian keeps each major under its own dir). */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(base, majors[0], 'bin');
}

// PostgreSQL refuses to run as root; as root we run it as Debian's `postgres` user.
const POSTGRES_USER = 'postgres';

function userIds(user: string): { uid: number; gid: number } {
  const id = (flag: string): number =>
    Number(spawnSync('id', [flag, user], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid <= 0) {
    throw new Error(`user ${user} is missing; install postgresql-15 (npm run setup does)`);
  }
  return { uid, gid };
}

/** A cluster of our own: initdb once per data directory, trust auth on loopback only. */
function initPostgres(bin: string, dataDir: string): void {
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  // Only the cluster's own directory is private: `recursive` would give every parent 0700 too,
  // and the postgres user must be able to reach it.
  mkdirSync(dirname(dataDir), { recursive: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) {
    const { uid, gid } = userIds(POSTGRES_USER);
    chownSync(dataDir, uid, gid);
  }
  const [file, argv] = commandAs(
    join(bin, 'initdb'),
    [
      ...['-D', dataDir, '-A', 'trust', '-U', 'fleetmesh', '-E', 'UTF8', '--locale=C'],
      '--no-instructions',
    ],
    { user: POSTGRES_USER },
  );
  const r = spawnSync(file, argv, { encoding: 'utf8' });
  if (r.status !== 0) {
    const out = (r.stderr || r.stdout).trim();
    const hint = /Permission denied/.test(out)
      ? ` (the ${POSTGRES_USER} user must be able to reach ${dataDir}: choose a data directory whose parents others may enter, or --local-store sqlite)`
      : '';
    throw new Error(`initdb failed (${r.status ?? r.error?.message}): ${out}${hint}`);
  }
}

function pgIsReady(bin: string, port: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const c = spawn(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)], {
      stdio: 'ignore',
    });
    c.once('error', reject);
    c.once('exit', (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`pg_isready: ${code}`)),
    );
  });
}

async function startPostgres(
  dataDir: string,
  logFile: string,
  deadline: number,
): Promise<{ child: ChildProcess; url: string }> {
  const bin = postgresBinDir();
  if (!bin) {
    throw new Error(
      'PostgreSQL is missing: run `npm run setup` (installs postgresql-15), or choose --local-store sqlite, or set MONGODB_URI',
    );
  }
  initPostgres(bin, dataDir);
  let lastErr: unknown;
  // A port taken between choosing and binding fails the start; try again with another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawnServer(
      'postgresql',
      join(bin, 'postgres'),
      [
        ...['-D', dataDir, '-p', String(port)],
        ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      ],
      logFile,
      { stopSignal: 'SIGINT', user: POSTGRES_USER },
    );
    try {
      await waitUntil('postgresql', deadline, () => pgIsReady(bin, port), child, logFile);
      return { child, url: `postgres://fleetmesh@127.0.0.1:${port}/postgres` };
    } catch (err) {
      lastErr = err;
      await stopChild(child);
    }
  }
  throw lastErr;
}

async function startFerretdb(
  backendArgs: string[],
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
    ['-listen', `127.0.0.1:${port}`, ...backendArgs],
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

/**
 * Starts the local store and waits until it answers a real ping. Starting again on the same
 * dataDir finds the data of the previous start (a fault test stops and restarts it).
 */
export async function startLocalStore(opts: LocalStoreOptions): Promise<LocalStore> {
  const backend = opts.backend ?? DEFAULT_STORE_BACKEND;
  const deadline = opts.deadline ?? Date.now() + 30_000;
  const processes: ServerProcess[] = [];
  const children: ChildProcess[] = [];
  // Stop in reverse order of start: FerretDB before the PostgreSQL it talks to.
  const stop = async (): Promise<void> => {
    for (const c of [...children].reverse()) await stopChild(c);
  };
  // The servers' handles are unref'd; hold the event loop open while we wait for them.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    let backendArgs: string[];
    let postgresqlUrl: string | undefined;
    if (backend === 'postgresql') {
      const logFile = join(opts.logDir, 'postgresql.log');
      const pg = await startPostgres(join(opts.dataDir, 'postgresql'), logFile, deadline);
      children.push(pg.child);
      processes.push({ name: 'postgresql', pid: pg.child.pid as number, logFile });
      backendArgs = ['-handler', 'postgresql', '-postgresql-url', pg.url];
      postgresqlUrl = pg.url;
    } else {
      backendArgs = ['-handler', 'sqlite', '-data', join(opts.dataDir, 'ferretdb')];
    }
    const logFile = join(opts.logDir, 'ferretdb.log');
    const ferret = await startFerretdb(backendArgs, opts.port ?? 0, logFile, deadline);
    children.push(ferret.child);
    processes.push({ name: 'ferretdb', pid: ferret.child.pid as number, logFile });
    return {
      uri: ferret.uri,
      backend,
      ...(postgresqlUrl ? { postgresqlUrl } : {}),
      processes,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
}
