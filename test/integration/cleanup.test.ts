// However the program that started the servers ends — SIGKILL, SIGTERM, SIGINT, an uncaught
// exception, a failing test — no etcd, FerretDB or PostgreSQL process outlives it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { projectRoot } from '../../cluster/localServers.js';
import { localStoreBackend } from '../../cluster/serverConfig.js';

// etcd, FerretDB, and the PostgreSQL under it unless the local store is SQLite.
const serverCount = localStoreBackend([]) === 'postgresql' ? 3 : 2;

const fixtures = join(projectRoot, 'dist', 'test', 'fixtures');

// Children must start their own servers, and a nested `node --test` must not think it is ours.
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MONGODB_URI: '', ETCD_ENDPOINTS: '', ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** Alive and not a zombie (an orphaned zombie waiting for a reaper is as good as gone). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
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

async function startHolder(
  mode: string,
): Promise<{ child: ReturnType<typeof spawn>; pids: number[] }> {
  const child = spawn(process.execPath, [join(fixtures, 'holdServers.js'), mode], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: childEnv(),
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  const { pids } = JSON.parse(line) as { pids: number[] };
  assert.equal(pids.length, serverCount, 'every server was started');
  assert.deepEqual(pids.filter(running), pids, 'the servers run while the holder lives');
  return { child, pids };
}

describe('no server outlives its program', () => {
  for (const sig of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it(`after ${sig}`, async () => {
      const { child, pids } = await startHolder('hold');
      const exited = once(child, 'exit');
      child.kill(sig);
      const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(signal, sig, 'the holder ended by the signal');
      assert.deepEqual(await gone(pids), []);
    });
  }

  it('after an uncaught exception', async () => {
    const { child, pids } = await startHolder('throw');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.deepEqual(await gone(pids), []);
  });

  it('after a failing test that never stops its servers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetmesh-cleanup-'));
    try {
      const pidsFile = join(dir, 'pids.json');
      const child = spawn(process.execPath, ['--test', join(fixtures, 'failingTest.js')], {
        stdio: ['ignore', 'ignore', 'ignore'],
        env: childEnv({ PIDS_FILE: pidsFile }),
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, 'the failing test run reports failure');
      const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as number[];
      assert.equal(pids.length, serverCount);
      assert.deepEqual(await gone(pids), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
