// The README's start command end to end: local servers, one node, simulated terminals, the
// status line, the gRPC service answering with the configured token, and a clean stop on SIGINT.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { projectRoot } from '../../cluster/localServers.js';

type Obj = Record<string, unknown>;

describe('fleetmesh start', () => {
  it('starts everything, shows terminals online, serves gRPC, and stops cleanly on SIGINT', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fleetmesh-start-'));
    chmodSync(dataDir, 0o755); // mkdtemp's 0700 would keep PostgreSQL's own user out, as root
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('../../cli/main.js', import.meta.url)),
        'start',
        ...['--port', '0', '--grpc-port', '0', '--grpc-token', 'start-test', '--host', '127.0.0.1'],
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
      const grpcPort = Number(/gRPC fleetmesh\.v1\.VehicleService on port (\d+)/.exec(out)?.[1]);
      assert.ok(grpcPort > 0, out);
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
      assert.equal(res.totalOnline, 3);
      child.kill('SIGINT');
      assert.equal(await exited, 0);
      assert.match(out, /fleetmesh: stopped/);
    } finally {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
