// The per-cause log limit: N lines of a cause per window, the rest counted and reported on the
// cause's next line; causes independent; the table bounded; levels filter before counting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CauseLimiter, createLog, logLevelFrom } from '../../telemetry/log.js';

describe('CauseLimiter', () => {
  it('admits N lines per cause per window, then reports how many it left out', () => {
    let now = 0;
    const l = new CauseLimiter({ perWindow: 3, windowMs: 10_000, now: () => now });
    const admitted = Array.from({ length: 5 }, () => l.admit('a').log);
    assert.deepEqual(admitted, [true, true, true, false, false]);
    assert.deepEqual(
      l.admit('b'),
      { log: true, suppressed: 0 },
      'another cause has its own budget',
    );
    now = 9_999;
    assert.deepEqual(l.admit('a'), { log: false });
    now = 10_000;
    assert.deepEqual(l.admit('a'), { log: true, suppressed: 3 });
    assert.deepEqual(l.admit('a'), { log: true, suppressed: 0 }, 'counted once');
  });

  it('keeps at most maxCauses causes, forgetting the oldest', () => {
    let now = 0;
    const l = new CauseLimiter({ perWindow: 1, maxCauses: 2, now: () => now });
    l.admit('a');
    l.admit('a'); // suppressed, then forgotten with its cause
    l.admit('b');
    l.admit('c');
    assert.equal(l.causes, 2);
    assert.equal(l.forgotten, 1);
    for (let i = 0; i < 1000; i++) l.admit(`reason-${i}`);
    assert.equal(l.causes, 2);
    now = 0;
    assert.deepEqual(l.admit('a'), { log: true, suppressed: 0 }, 'a forgotten cause starts afresh');
  });
});

describe('FleetLog', () => {
  it('writes JSON lines with level, cause and fields; limited per cause; a suppressed count on the next line', () => {
    let now = 0;
    const lines: string[] = [];
    const log = createLog({
      level: 'info',
      base: { node: 'n1' },
      destination: { write: (s) => lines.push(s) },
      limiter: { perWindow: 10, windowMs: 10_000, now: () => now },
    });
    for (let i = 0; i < 25; i++) log.warn('gateway.bad-frame', { link: `l${i}` }, 'bad frame');
    log.error('store.retry', { attempt: 1 }, 'retrying');
    const first = lines.map((s) => JSON.parse(s) as Record<string, unknown>);
    assert.equal(first.filter((l) => l.cause === 'gateway.bad-frame').length, 10);
    assert.equal(first.filter((l) => l.cause === 'store.retry').length, 1);
    const line = first[0]!;
    assert.equal(line.level, 40);
    assert.equal(line.node, 'n1');
    assert.equal(line.link, 'l0');
    assert.equal(line.msg, 'bad frame');
    assert.equal(line.suppressed, undefined);
    now = 10_000;
    log.warn('gateway.bad-frame', { link: 'late' }, 'bad frame');
    const next = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    assert.equal(next.link, 'late');
    assert.equal(next.suppressed, 15);
  });

  it('lines below the level are neither written nor counted', () => {
    const lines: string[] = [];
    const log = createLog({
      level: 'warn',
      destination: { write: (s) => lines.push(s) },
      limiter: { perWindow: 1 },
    });
    for (let i = 0; i < 5; i++) log.info('x', {}, 'chatter');
    log.warn('x', {}, 'real');
    assert.equal(lines.length, 1);
    const l = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(l.msg, 'real');
    assert.equal(l.suppressed, undefined);
  });

  it('takes the level from the option, else FLEETMESH_LOG_LEVEL, else info; refuses unknown names', () => {
    assert.equal(logLevelFrom(undefined, undefined), 'info');
    assert.equal(logLevelFrom(undefined, 'debug'), 'debug');
    assert.equal(logLevelFrom('error', 'debug'), 'error');
    assert.throws(() => logLevelFrom('loud', undefined), /log level/);
  });
});
