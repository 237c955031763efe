// The `fleetmesh` command's help as a person asks for it: every option `start` takes is listed
// (the cluster's --nodes, --node and --advertise among them), `start --help` prints help and
// starts nothing, and a mistyped option is refused instead of ignored; `drain` likewise.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../../devservers/localServers.js';

const bin = join(projectRoot, 'bin', 'fleetmesh.js');

// Servers are named (unreachable), so a `start` that runs by mistake starts none of its own; it
// then waits for etcd until the timeout ends it.
function fleetmesh(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    timeout: 15_000,
    env: {
      ...process.env,
      MONGODB_URI: 'mongodb://127.0.0.1:1/',
      ETCD_ENDPOINTS: 'http://127.0.0.1:1',
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The options README and `npm start` document.
const startOptions = [
  '--nodes',
  '--port',
  '--gateway-port',
  '--locator-grpc-port',
  '--grpc-port',
  '--grpc-token',
  '--host',
  '--node',
  '--advertise',
  '--ack',
  '--sim',
  '--interval-ms',
  '--data-dir',
  '--mongodb-uri',
  '--local-store',
  '--etcd-endpoints',
];

function assertListsStartOptions(text: string): void {
  for (const o of startOptions)
    assert.match(text, new RegExp(`^ +${o} \\S`, 'm'), `${o} in:\n${text}`);
}

describe('fleetmesh help', () => {
  it('--help lists the commands and every option of start', () => {
    const r = fleetmesh(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ +start /m);
    assert.match(r.stdout, /^ +decode /m);
    assertListsStartOptions(r.stdout);
  });

  for (const h of ['--help', '-h']) {
    it(`start ${h} prints start's options and starts nothing`, () => {
      const r = fleetmesh(['start', '--port', '0', h]);
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^usage: fleetmesh start/);
      assertListsStartOptions(r.stdout);
      assert.doesNotMatch(r.stdout + r.stderr, /fleetmesh: (MongoDB|running|stopped)|membership:/);
    });
  }

  it('start refuses an unknown option or a bad value, and starts nothing', () => {
    for (const args of [
      ['--prot', '1'],
      ['--ack', 'fast'],
      ['--port', 'x'],
      ['--node'],
      ['--nodes', '0'],
      ['--nodes', '17'],
      ['--gateway-port', '65535', '--nodes', '2'],
    ]) {
      const r = fleetmesh(['start', ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /see: fleetmesh start --help/);
      assert.equal(r.stdout, '');
    }
  });

  it('drain: --help lists its options; no node, a bad name or rate, an unknown option are refused', () => {
    const help = fleetmesh(['drain', '--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^usage: fleetmesh drain NODE/);
    for (const o of ['--rate', '--no-wait', '--cancel', '--etcd-endpoints'])
      assert.match(help.stdout, new RegExp(`^ +${o}\\b`, 'm'), o);
    assert.match(fleetmesh(['--help']).stdout, /^ +drain NODE/m);
    for (const args of [
      [],
      ['bad/name'],
      ['node-2', '--rate', '0'],
      ['node-2', '--rate', '10001'],
      ['node-2', '--rate', 'fast'],
      ['node-2', '--slow'],
      ['node-2', 'node-3'],
    ]) {
      const r = fleetmesh(['drain', ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /see: fleetmesh drain --help/);
      assert.equal(r.stdout, '');
    }
  });

  it('decode --help prints its usage instead of decoding "--help"', () => {
    const r = fleetmesh(['decode', '--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: fleetmesh decode \[--lenient\]/);
  });
});
