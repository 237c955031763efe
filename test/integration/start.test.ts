// The README's start command end to end: local servers, the locator on the port terminals are
// configured with, two node processes (`--nodes 2`), simulated terminals that start at the
// locator, the status line showing each node, a terminal configured with the locator's port sent
// on to a node and its report acknowledged there (and its visit in the dashboard's Locator
// panel), the gRPC service answering with the configured token, and a clean stop on SIGINT; and Ctrl-C as a terminal sends it (to the whole foreground
// process group): the node leaves the membership before its servers stop, so the next start does
// not wait out an old lease, and no node process is left.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Etcd3 } from 'etcd3';
import { followLocator } from '../../bench/locatorTerminal.js';
import { trackPoint } from '../../bench/terminal.js';
import { freePort, freshRunDir, projectRoot } from '../../devservers/localServers.js';

type Obj = Record<string, unknown>;

const main = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

interface Started {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** stdout and stderr so far. */
  out(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Ms from spawn to 'running'. */
  ready: Promise<number>;
}

/** `fleetmesh start` as the foreground job of a terminal: the leader of its own process group. */
function startInOwnGroup(dataDir: string): Started {
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [
      main,
      'start',
      ...['--port', '0', '--grpc-port', '0', '--grpc-token', 'start-test', '--host', '127.0.0.1'],
      ...['--gateway-port', '0', '--locator-grpc-port', '0'],
      ...['--metrics-port', '0'], // off: the default port may be taken on this machine
      ...['--data-dir', dataDir],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = (async (): Promise<number> => {
    const deadline = Date.now() + 60_000;
    while (!/fleetmesh: running/.test(out)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return Date.now() - t0;
  })();
  return { child, out: () => out, exited, ready };
}

/** What a terminal's Ctrl-C does: SIGINT to every process of the foreground group. */
function ctrlC(s: Started): void {
  process.kill(-(s.child.pid as number), 'SIGINT');
}

function killGroup(s: Started): void {
  try {
    process.kill(-(s.child.pid as number), 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('fleetmesh start', () => {
  it('--nodes 2: starts everything, a terminal at the locator ends on a node and is acknowledged, each node shown, gRPC served, clean stop on SIGINT', async () => {
    const dataDir = freshRunDir('start'); // removed after a pass, kept and named after a failure
    const dashboardPort = await freePort();
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('../../cli/main.js', import.meta.url)),
        'start',
        ...['--port', '0', '--grpc-port', '0', '--grpc-token', 'start-test', '--host', '127.0.0.1'],
        ...['--nodes', '2', '--gateway-port', '0', '--locator-grpc-port', '0'],
        ...['--metrics-port', '0', '--dashboard-port', String(dashboardPort)],
        ...['--sim', '3', '--interval-ms', '500', '--data-dir', dataDir],
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const deadline = Date.now() + 60_000;
      while (!/terminals online 3 /.test(out)) {
        assert.ok(Date.now() < deadline, `no status line with 3 terminals online:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // Each node's ports are printed, and the status line shows each node.
      const gateways = [
        ...out.matchAll(
          /node (node-\d) \(pid \d+\): JT\/T 808 gateway on port (\d+), gRPC on port (\d+)/g,
        ),
      ];
      assert.deepEqual(
        gateways.map((m) => m[1]),
        ['node-1', 'node-2'],
        out,
      );
      const statusLine = out.split('\n').find((l) => /terminals online 3 /.test(l)) ?? '';
      assert.match(statusLine, /\| node-1 \d+\/\d+ \d+\/s \| node-2 \d+\/\d+ \d+\/s/);
      // A terminal configured with the locator's port (8808 by default) is sent on to a node,
      // authenticates there and has its report acknowledged.
      const locatorPort = Number(/terminals connect to JT\/T 808 port (\d+)/.exec(out)?.[1]);
      assert.ok(locatorPort > 0, out);
      const visit = await followLocator({ locatorPort, phone: '013700000001' });
      const terminal = visit.terminal!;
      assert.ok(
        gateways.some((m) => Number(m[2]) === visit.target.tcpPort),
        `sent to port ${visit.target.tcpPort}, not a node's gateway`,
      );
      assert.equal(await terminal.report(trackPoint(1)), 0, 'report acknowledged on the node');
      const grpcPort = Number(/gRPC fleetmesh\.v1\.VehicleService on port (\d+)/.exec(out)?.[1]);
      assert.ok(grpcPort > 0, out);
      assert.equal(grpcPort, Number(gateways[0]![3]), 'the first node serves the printed gRPC');
      const def = protoLoader.loadSync(
        join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto'),
        {
          keepCase: false,
          longs: Number,
          defaults: true,
        },
      );
      const pkg = grpc.loadPackageDefinition(def) as unknown as {
        fleetmesh: { v1: { VehicleService: grpc.ServiceClientConstructor } };
      };
      const client = new pkg.fleetmesh.v1.VehicleService(
        `127.0.0.1:${grpcPort}`,
        grpc.credentials.createInsecure(),
      );
      const md = new grpc.Metadata();
      md.set('authorization', 'Bearer start-test');
      const res = await new Promise<Obj>((resolve, reject) =>
        (
          client as unknown as Record<
            string,
            (r: Obj, m: grpc.Metadata, cb: (e: Error | null, r?: Obj) => void) => void
          >
        ).listOnlineVehicles!.call(client, {}, md, (e, r) => (e ? reject(e) : resolve(r ?? {}))),
      );
      client.close();
      terminal.close();
      // The 3 simulated terminals and the one above, over both nodes.
      assert.equal(res.totalOnline, 4);
      // The dashboard was given the locator: its Locator panel's JSON has the terminal's visit.
      assert.match(out, new RegExp(`dashboard at http://127\\.0\\.0\\.1:${dashboardPort}/`));
      const located = await fetch(`http://127.0.0.1:${dashboardPort}/api/locator`, {
        headers: { authorization: 'Bearer start-test' },
      });
      const panel = (await located.json()) as { configured: boolean; decisions?: Obj[] };
      assert.equal(panel.configured, true, JSON.stringify(panel));
      const ours = panel.decisions?.find((d) => d.phone === '013700000001');
      assert.ok(ours, JSON.stringify(panel));
      assert.equal(
        gateways.find((m) => m[1] === ours.node)?.[2],
        String(visit.target.tcpPort),
        'the decision names the node the terminal was sent to',
      );
      child.kill('SIGINT');
      assert.equal(await exited, 0);
      assert.match(out, /fleetmesh: stopped/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('Ctrl-C to the process group: the node leaves the membership, then the servers stop; a restart joins at once', async () => {
    const dataDir = freshRunDir('start-ctrl-c');
    const first = startInOwnGroup(dataDir);
    let second: Started | undefined;
    let etcd: Etcd3 | undefined;
    try {
      await first.ready;
      const endpoint = /fleetmesh: etcd +(\S+) \(local\)/.exec(first.out())?.[1];
      assert.ok(endpoint, first.out());
      // Watch the member key from outside: a delete event means the node left while etcd was
      // still up; a local etcd stopped by the same Ctrl-C never gets to delete it.
      etcd = new Etcd3({ hosts: endpoint });
      const key = 'fleetmesh/members/node-1';
      assert.ok(await etcd.get(key).string(), 'node-1 is a member');
      const watcher = await etcd.watch().key(key).create();
      let deleted = false;
      watcher.on('delete', () => (deleted = true));

      ctrlC(first);
      const end = await first.exited;
      // etcd is gone now: close without waiting for an answer from it.
      watcher.removeAllListeners();
      void watcher.cancel().catch(() => undefined);
      etcd.close();
      etcd = undefined;
      assert.deepEqual(end, { code: 0, signal: null }, first.out());
      assert.match(first.out(), /fleetmesh: stopped/);
      assert.ok(deleted, `the member key was not deleted before etcd stopped:\n${first.out()}`);
      // The node ran in a process of its own: it is gone too.
      const nodePid = Number(/node node-1 \(pid (\d+)\)/.exec(first.out())?.[1]);
      assert.ok(nodePid > 0, first.out());
      assert.throws(() => process.kill(nodePid, 0), 'the node process is gone');

      // The name is free at once: no waiting out the old lease (8 s TTL). A node that had to
      // wait says its name is in use while it waits.
      second = startInOwnGroup(dataDir);
      await second.ready;
      assert.doesNotMatch(second.out(), /in use/, second.out());
      ctrlC(second);
      assert.deepEqual(await second.exited, { code: 0, signal: null }, second.out());
    } finally {
      etcd?.close();
      killGroup(first);
      if (second) killGroup(second);
    }
  });
});
