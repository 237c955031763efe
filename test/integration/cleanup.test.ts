// However the program that started the servers ends — SIGKILL, SIGTERM, SIGINT (alone or to its
// whole process group, as Ctrl-C does), an uncaught exception, a failing test — no etcd, FerretDB
// or PostgreSQL process outlives it. And their throwaway data (LocalServers' fresh directory under
// .fleetmesh/run) is gone after a program that passed, kept and named after one that failed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { projectRoot } from '../../devservers/localServers.js';
import { localStoreBackend } from '../../devservers/serverConfig.js';

// etcd, FerretDB, and the PostgreSQL under it unless the local store is SQLite.
const serverCount = localStoreBackend([]) === 'postgresql' ? 3 : 2;

const fixtures = join(projectRoot, 'dist', 'test', 'fixtures');

// Children must start their own servers, and a nested `node --test` must not think it is ours.
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MONGODB_URI: '', ETCD_ENDPOINTS: '', ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** The fields of /proc/PID/stat after the command name: [state, ppid, pgrp, …]. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie (an orphaned zombie waiting for a reaper is as good as gone). */
function running(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

const runDir = join(projectRoot, '.fleetmesh', 'run');

/** The fresh directories (see freshRunDir) a process with this pid made. */
function runDirsOf(pid: number): string[] {
  if (!existsSync(runDir)) return [];
  const name = new RegExp(`(^|-)${pid}-[0-9a-f]{8}$`);
  return readdirSync(runDir)
    .filter((n) => name.test(n))
    .map((n) => join(runDir, n));
}

/** The directories a failed program said it kept. */
function keptDirs(output: string): string[] {
  return [...output.matchAll(/kept server data and logs of a failed run in (\S+)/g)].map(
    (m) => m[1] as string,
  );
}

async function gone(pids: number[], withinMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  let left = pids.filter(running);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = left.filter(running);
  }
  return left;
}

const holders = new Set<ReturnType<typeof spawn>>();
// A failed assertion must not leave a holder (and so its servers) running.
after(() => {
  for (const child of holders) child.kill('SIGKILL');
});

interface Holder {
  child: ReturnType<typeof spawn>;
  pids: number[];
  stderr(): string;
}

/** `detached`: the holder leads a process group of its own, as a terminal's foreground job. */
async function startHolder(mode: string, detached = false): Promise<Holder> {
  const child = spawn(process.execPath, [join(fixtures, 'holdServers.js'), mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv(),
    detached,
  });
  holders.add(child);
  child.once('exit', () => holders.delete(child));
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  const { pids } = JSON.parse(line) as { pids: number[] };
  assert.equal(pids.length, serverCount, 'every server was started');
  assert.deepEqual(pids.filter(running), pids, 'the servers run while the holder lives');
  return { child, pids, stderr: () => stderr };
}

/** The holder failed: it kept its servers' directory and said where (unless SIGKILLed). */
function assertKeptAndRemove(holder: Holder, named: boolean): void {
  const dirs = runDirsOf(holder.child.pid as number);
  try {
    assert.equal(dirs.length, 1, 'the failed holder kept its directory');
    if (named) assert.deepEqual(keptDirs(holder.stderr()), dirs, holder.stderr());
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

describe('no server outlives its program', () => {
  for (const sig of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it(`after ${sig}`, async () => {
      const holder = await startHolder('hold');
      const exited = once(holder.child, 'exit');
      holder.child.kill(sig);
      const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(signal, sig, 'the holder ended by the signal');
      assert.deepEqual(await gone(holder.pids), []);
      assertKeptAndRemove(holder, sig !== 'SIGKILL');
    });
  }

  it('after Ctrl-C, SIGINT to its whole process group, which the servers are not in', async () => {
    const holder = await startHolder('hold', true);
    const group = Number(statFields(holder.child.pid as number)?.[2]);
    assert.equal(group, holder.child.pid, 'the holder leads its group');
    for (const pid of holder.pids) {
      assert.notEqual(
        Number(statFields(pid)?.[2]),
        group,
        `server ${pid} is in the holder's group`,
      );
    }
    const exited = once(holder.child, 'exit');
    process.kill(-group, 'SIGINT');
    const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, 'SIGINT');
    assert.deepEqual(await gone(holder.pids), [], 'the holder stopped its servers');
    assertKeptAndRemove(holder, true);
  });

  it('after an uncaught exception', async () => {
    const holder = await startHolder('throw');
    const [code] = (await once(holder.child, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.deepEqual(await gone(holder.pids), []);
    assertKeptAndRemove(holder, true);
  });

  it('after a failing test that never stops its servers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetmesh-cleanup-'));
    let kept: string[] = [];
    try {
      const pidsFile = join(dir, 'pids.json');
      const child = spawn(process.execPath, ['--test', join(fixtures, 'failingTest.js')], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: childEnv({ PIDS_FILE: pidsFile }),
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, 'the failing test run reports failure');
      const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as number[];
      assert.equal(pids.length, serverCount);
      assert.deepEqual(await gone(pids), []);
      kept = keptDirs(out);
      assert.equal(kept.length, 1, out);
      assert.ok(existsSync(join(kept[0] as string, 'logs', 'etcd.log')), 'its logs are kept');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      for (const d of kept) rmSync(d, { recursive: true, force: true });
    }
  });
});

/** Runs the serversInTest fixture under `node --test`; where its servers kept their data. */
async function testWithServers(
  result: 'pass' | 'fail',
  stop: boolean,
): Promise<{ code: number | null; dataDir: string; out: string }> {
  const tmp = mkdtempSync(join(tmpdir(), 'fleetmesh-rundir-'));
  try {
    const dirFile = join(tmp, 'dir');
    const child = spawn(process.execPath, ['--test', join(fixtures, 'serversInTest.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv({ DIR_FILE: dirFile, RESULT: result, STOP: stop ? '1' : '0' }),
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    const dataDir = readFileSync(dirFile, 'utf8');
    assert.ok(dataDir.startsWith(runDir), dataDir);
    return { code, dataDir, out };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe("no servers' data outlives a passing program", () => {
  for (const stop of [true, false]) {
    it(`a passing test ${stop ? 'that stops its servers' : 'that never stops them'} leaves nothing`, async () => {
      const { code, dataDir, out } = await testWithServers('pass', stop);
      try {
        assert.equal(code, 0, out);
        assert.equal(existsSync(dataDir), false, `${dataDir} is left behind`);
        assert.deepEqual(keptDirs(out), []);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  it('a failing test that stops its servers keeps their data and logs, and names the folder', async () => {
    const { code, dataDir, out } = await testWithServers('fail', true);
    try {
      assert.equal(code, 1, out);
      assert.deepEqual(keptDirs(out), [dataDir], out);
      assert.ok(existsSync(join(dataDir, 'logs', 'etcd.log')), 'its logs are kept');
      assert.ok(existsSync(join(dataDir, 'etcd')), 'its data is kept');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
