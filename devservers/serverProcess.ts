// Child server processes (etcd, PostgreSQL, FerretDB) that never outlive the program that started
// them: stopped on stop(), on process exit, on SIGINT/SIGTERM, and (via setpriv's parent-death
// signal) even when this process is SIGKILLed. Each runs in a session of its own, so a terminal's
// Ctrl-C (SIGINT to the whole foreground process group) reaches only our program, which stops its
// users of the servers (a node leaves the membership in etcd) before the servers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

export interface ServerProcess {
  name: 'etcd' | 'ferretdb' | 'postgresql';
  pid: number;
  logFile: string;
}

export interface SpawnOptions {
  /** The signal that stops the server cleanly (PostgreSQL: SIGINT, its fast shutdown). */
  stopSignal?: NodeJS.Signals;
  /** Run as this system user (PostgreSQL refuses to run as root). Needs setpriv and root. */
  user?: string;
}

/** Live children and the signal each one stops on. */
const live = new Map<ChildProcess, NodeJS.Signals>();
let hooksInstalled = false;

/** Called once when the program ends: `ok` when it exits with status 0, not by a signal. */
export type EndTask = (ok: boolean) => void;
const endTasks: EndTask[] = [];

/** Runs `task` when the program ends, after its servers were signalled to stop. */
export function atProgramEnd(task: EndTask): void {
  endTasks.push(task);
  installExitHooks();
}

function runEndTasks(ok: boolean): void {
  for (const task of endTasks.splice(0)) {
    try {
      task(ok);
    } catch (err) {
      process.stderr.write(
        `fleetmesh: at exit: ${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  }
}

// Last resort when the process exits without calling stop(): a synchronous signal to what is
// left. PostgreSQL gets its fast-shutdown signal, so it still ends by itself, cleanly.
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', (code) => {
    for (const [c, sig] of live) c.kill(sig === 'SIGTERM' ? 'SIGKILL' : sig);
    // A clean exit may be followed by removing the servers' data (see atProgramEnd): let them
    // finish first, which also lets PostgreSQL complete its fast shutdown.
    if (code === 0) waitGoneSync([...live.keys()]);
    runEndTasks(code === 0);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      // A program with its own handler shuts down in order (and calls stop()); the 'exit'
      // hook still catches what it leaves. Otherwise stop the servers and die of the signal.
      if (process.listenerCount(sig) > 0) return;
      void Promise.all([...live.keys()].map((c) => stopChild(c))).finally(() => {
        runEndTasks(false); // dying of a signal emits no 'exit'
        process.kill(process.pid, sig);
      });
    };
    process.once(sig, onSignal);
  }
}

/** Alive and not a zombie (a child that ended but is not reaped yet has closed its files). */
function running(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Blocks until none of `children` runs, SIGKILLing what is left after `ms`: for the exit hook,
 * where nothing asynchronous runs any more. Our children are not reaped there, so their pids
 * cannot have been reused by another process.
 */
function waitGoneSync(children: ChildProcess[], ms = 5000): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  const left = (): ChildProcess[] => children.filter((c) => running(c.pid));
  while (left().length > 0 && Date.now() < deadline) Atomics.wait(sleeper, 0, 0, 20);
  for (const c of left()) c.kill('SIGKILL');
  const killedBy = Date.now() + 1000;
  while (left().length > 0 && Date.now() < killedBy) Atomics.wait(sleeper, 0, 0, 20);
}

export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
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
    child.kill(live.get(child) ?? 'SIGTERM');
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
 * The command line that runs `cmd` as `user` (as root only; with setpriv) and, when given, with a
 * parent-death signal. setpriv sets that signal after changing user, so it survives the change.
 */
export function commandAs(
  cmd: string,
  args: string[],
  opts: { user?: string; deathSignal?: NodeJS.Signals } = {},
): [string, string[]] {
  const asUser = opts.user && process.getuid?.() === 0 ? opts.user : undefined;
  if (asUser && !hasSetpriv) throw new Error(`setpriv is needed to run a server as ${asUser}`);
  const prefix = [
    ...(asUser ? ['--reuid', asUser, '--regid', asUser, '--init-groups'] : []),
    ...(opts.deathSignal && hasSetpriv
      ? ['--pdeathsig', opts.deathSignal.replace(/^SIG/, '')]
      : []),
  ];
  return prefix.length > 0 ? ['setpriv', [...prefix, '--', cmd, ...args]] : [cmd, args];
}

/**
 * Spawns a server whose stdout/stderr go to a log file, outside our process group (see the top of
 * this file). With setpriv the child gets its stop signal when this process's main thread dies,
 * however it dies. (Spawn from the main thread only: the signal follows the thread that forked.)
 */
export function spawnServer(
  name: ServerProcess['name'],
  cmd: string,
  args: string[],
  logFile: string,
  opts: SpawnOptions = {},
): ChildProcess {
  const stopSignal = opts.stopSignal ?? 'SIGTERM';
  const [file, argv] = commandAs(cmd, args, {
    ...(opts.user ? { user: opts.user } : {}),
    deathSignal: stopSignal,
  });
  mkdirSync(dirname(logFile), { recursive: true });
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.on('error', (err) => log.write(`spawn error: ${err.message}\n`));
  // Servers never keep this process alive: when it ends, the exit hook stops them.
  child.unref();
  (child.stdout as { unref?: () => void } | null)?.unref?.();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  live.set(child, stopSignal);
  child.once('exit', () => live.delete(child));
  // 'close' comes after the child's stdio has drained into the log.
  child.once('close', (code, sig) => log.end(`${name} exited (${code ?? sig})\n`));
  log.on('error', () => undefined); // a full disk must not take the node down with it
  installExitHooks();
  return child;
}

/** Probes until `probe` resolves; fails early when the child exits, or at the deadline. */
export async function waitUntil(
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
