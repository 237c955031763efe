// `fleetmesh decode` as a person runs it: hex in, one JSON object per frame out, in the shape
// docs/decode-json.md promises to other tools.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../../devservers/localServers.js';
import { readCorpusJson, type Vector } from '../helpers/corpus.js';

const bin = join(projectRoot, 'bin', 'fleetmesh.js');
const vectors = new Map(readCorpusJson<Vector[]>('vectors.json').map((v) => [v.id, v.hex]));

function decode(
  args: string[],
  input?: string,
): { status: number | null; lines: Record<string, unknown>[] } {
  const r = spawnSync(process.execPath, [bin, 'decode', ...args], {
    input: input ?? '',
    encoding: 'utf8',
  });
  assert.equal(r.stderr, '');
  return {
    status: r.status,
    lines: r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('fleetmesh decode', () => {
  it('prints a 0x0200 with the documented fields', () => {
    const { status, lines } = decode([vectors.get('emqx-0200')!]);
    assert.equal(status, 0);
    assert.equal(lines.length, 1);
    const [out] = lines as [Record<string, Record<string, unknown>>];
    assert.equal(out.ok, true);
    assert.equal(out.type, 'LocationReport');
    assert.deepEqual(
      { messageId: out.header.messageId, phone: out.header.phone, serial: out.header.serial },
      { messageId: 512, phone: '018876638972', serial: 229 },
    );
    const b = out.body;
    assert.equal(b.alarm, 0);
    assert.equal(b.status, 262144);
    assert.equal(b.latitude, 20.019815);
    assert.equal(b.longitude, 110.323793);
    assert.equal(b.altitude, 14);
    assert.equal(b.speed, 0);
    assert.equal(b.direction, 39);
    assert.equal(b.time, '2017-10-19T11:35:38.000Z'); // 17-10-19 19:35:38 GMT+8
    assert.equal(b.mileageKm, 1630.6);
    assert.equal(b.signal, 31);
    assert.equal(b.satellites, 0);
  });

  it('reads one frame per line from stdin, and says why a frame is rejected (exit 1)', () => {
    const input = `${vectors.get('sc-0002')}\n\n${vectors.get('go-neg-bad-escape')}\n`;
    const { status, lines } = decode([], input);
    assert.equal(status, 1);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.type, 'Heartbeat');
    assert.deepEqual(
      { ok: lines[1]?.ok, reason: lines[1]?.reason },
      { ok: false, reason: 'bad-escape' },
    );
    assert.match(String(lines[1]?.detail), /0x03/);
  });

  it('--lenient accepts a wrong check code and says so', () => {
    const hex = vectors.get('fake-neg-checkcode')!;
    assert.equal(decode([hex]).lines[0]?.reason, 'bad-check-code');
    const { status, lines } = decode(['--lenient', hex]);
    assert.equal(status, 0);
    assert.deepEqual(lines[0]?.warnings, ['bad-check-code']);
  });

  it('splits a hex dump holding several frames, and rejects what is not hex', () => {
    const { lines } = decode([`${vectors.get('sc-0002')}${vectors.get('sc-0003')}`, 'zz']);
    assert.deepEqual(
      lines.map((l) => l.type ?? l.reason),
      ['Heartbeat', 'Logout', 'not-hex'],
    );
  });
});
