// A node in a process of its own, for benchmarks that measure the node's CPU apart from the
// terminals driving it. The parent forks this file with the node's options as JSON in argv[2]
// and talks over IPC: the child sends { ready, port } once listening, then answers each
// request { id, op } with { id, result } (or { id, error }).
//   ops: cpu (this process's user+system ms), stats, memory, flush, stop (then it exits)
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startNode, type NodeOptions } from '../node/node.js';
import type { ThreadStats } from '../hosting/vehicleThread.js';

type Op = 'cpu' | 'memory' | 'stats' | 'flush' | 'stop';

interface Request {
  id: number;
  op: Op;
}

/** The parent's handle on a node process. */
export interface NodeProcess {
  port: number;
  pid: number;
  /** CPU milliseconds (user + system, every thread) the node's process has used. */
  cpuMs(): Promise<number>;
  /** Bytes: the process's RSS, and heap + external over its threads (after a GC when exposed). */
  memory(): Promise<{ rss: number; heap: number }>;
  stats(): Promise<ThreadStats[]>;
  flush(): Promise<void>;
  /** Stops the node (passivating every vehicle) and waits for the process to exit. */
  stop(): Promise<void>;
}

export async function forkNode(opts: NodeOptions): Promise<NodeProcess> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify(opts)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--expose-gc'],
  });
  let next = 0;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.on(
      'message',
      (m: { ready?: boolean; port?: number; id?: number; result?: unknown; error?: string }) => {
        if (m.ready) resolve(m.port as number);
        const w = m.id !== undefined ? waiting.get(m.id) : undefined;
        if (!w) return;
        waiting.delete(m.id as number);
        if (m.error !== undefined) w.reject(new Error(m.error));
        else w.resolve(m.result);
      },
    );
    child.once('exit', (code) => {
      reject(new Error(`node process exited (${code}) before it was ready`));
      for (const w of waiting.values()) w.reject(new Error(`node process exited (${code})`));
    });
  });
  const ask = <T>(op: Op): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op } satisfies Request);
    });
  return {
    port,
    pid: child.pid as number,
    cpuMs: () => ask<number>('cpu'),
    memory: () => ask<{ rss: number; heap: number }>('memory'),
    stats: () => ask<ThreadStats[]>('stats'),
    flush: () => ask<void>('flush'),
    stop: async () => {
      await ask<void>('stop');
      await exited;
    },
  };
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] as string) as NodeOptions;
  const node = await startNode(opts);
  process.on('message', (req: Request) => {
    const answer = async (): Promise<unknown> => {
      switch (req.op) {
        case 'cpu': {
          const u = process.cpuUsage();
          return (u.user + u.system) / 1000;
        }
        case 'memory': {
          // RSS of the process; heap + external of the main thread and every vehicle thread.
          global.gc?.();
          const threads = await node.memory();
          const main = process.memoryUsage();
          return {
            rss: main.rss,
            heap:
              main.heapUsed +
              main.external +
              threads.reduce((a, t) => a + t.heapUsed + t.external, 0),
          };
        }
        case 'stats':
          return node.stats();
        case 'flush':
          return node.flush();
        case 'stop':
          await node.stop();
          return undefined;
      }
    };
    answer().then(
      (result) => {
        process.send?.({ id: req.id, result }, () => {
          if (req.op === 'stop') process.exit(0);
        });
      },
      (err: unknown) => process.send?.({ id: req.id, error: String(err) }),
    );
  });
  process.send?.({ ready: true, port: node.port });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
