// Load reports: when a new sample is worth an etcd write, how the counters become rates, and
// what a member's published load may hold (bounded, validated, older nodes' values still read).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  completeLoad,
  DEFAULT_THRESHOLDS,
  LoadSampler,
  parseLoadReport,
  worthPublishing,
  type LoadReport,
} from '../../cluster/loadReport.js';
import { MAX_MEMBER_BYTES, parseMember } from '../../cluster/memberTable.js';

const base: LoadReport = {
  terminals: 100,
  authenticated: 90,
  reportsPerSecond: 50,
  elu: 0.2,
  cpu: 0.1,
  rssBytes: 200e6,
  capacity: 1000,
  zone: 'east',
};

describe('load reports: when to write', () => {
  it('writes the first report, and again after maxSilentMs even when nothing moved', () => {
    assert.equal(worthPublishing(undefined, 0, base, 0), true);
    assert.equal(worthPublishing(base, 0, { ...base }, 1000), false);
    assert.equal(worthPublishing(base, 0, { ...base }, DEFAULT_THRESHOLDS.maxSilentMs), true);
  });

  it('writes when a terminal comes or goes, or capacity, zone or draining change', () => {
    for (const next of [
      { terminals: 101 },
      { authenticated: 89 },
      { capacity: 2000 },
      { zone: 'west' },
      { draining: true },
    ])
      assert.equal(worthPublishing(base, 0, { ...base, ...next }, 1), true, JSON.stringify(next));
  });

  it('does not write for small moves of rates, utilisation and memory; does for large ones', () => {
    const small = { reportsPerSecond: 53, elu: 0.24, cpu: 0.13, rssBytes: 205e6 };
    assert.equal(worthPublishing(base, 0, { ...base, ...small }, 1), false);
    for (const big of [{ reportsPerSecond: 60 }, { elu: 0.26 }, { cpu: 0.16 }, { rssBytes: 215e6 }])
      assert.equal(worthPublishing(base, 0, { ...base, ...big }, 1), true, JSON.stringify(big));
    // A relative jump of a tiny rate (1 -> 3 reports/s) is noise, not news.
    const idle = { ...base, reportsPerSecond: 1 };
    assert.equal(worthPublishing(idle, 0, { ...idle, reportsPerSecond: 3 }, 1), false);
  });
});

describe('load reports: sampling', () => {
  it('turns counters into rates over the time between samples', () => {
    let t = 0;
    const counters = { connections: 10, pending: 4, reportsReceived: 0 };
    const sampler = new LoadSampler(
      () => counters,
      { capacity: 500, zone: 'east' },
      () => t,
    );
    t = 2000;
    counters.reportsReceived = 300;
    const r = sampler.sample();
    assert.equal(r.terminals, 10);
    assert.equal(r.authenticated, 6);
    assert.equal(r.reportsPerSecond, 150);
    assert.equal(r.capacity, 500);
    assert.equal(r.zone, 'east');
    assert.ok(r.elu >= 0 && r.elu <= 1);
    assert.ok(r.cpu >= 0 && r.cpu <= 1);
    assert.ok(r.rssBytes > 0);
    t = 3000;
    counters.reportsReceived = 310;
    assert.equal(sampler.sample().reportsPerSecond, 10);
  });

  it('refuses a capacity or zone out of bounds', () => {
    const c = () => ({ connections: 0, pending: 0, reportsReceived: 0 });
    assert.throws(() => new LoadSampler(c, { capacity: 0, zone: 'a' }), RangeError);
    assert.throws(() => new LoadSampler(c, { capacity: 1.5, zone: 'a' }), RangeError);
    assert.throws(() => new LoadSampler(c, { capacity: 10, zone: 'x'.repeat(33) }), RangeError);
    assert.throws(() => new LoadSampler(c, { capacity: 10, zone: 'a b' }), RangeError);
  });
});

describe('load reports: what a member may publish', () => {
  const member = (load: unknown): string =>
    JSON.stringify({
      node: 'node-a',
      gateway: '10.0.0.1:8808',
      startedAt: 1,
      workers: 2,
      reportedAt: 2,
      load,
    });
  const key = 'fleetmesh/members/node-a';

  it('reads a full report and an older node’s terminals-only one', () => {
    assert.deepEqual(parseMember(key, member(base))?.load, base);
    const older = parseMember(key, member({ terminals: 7 }))?.load;
    assert.deepEqual(older, { terminals: 7 });
    assert.deepEqual(completeLoad(older!), {
      terminals: 7,
      authenticated: 7,
      reportsPerSecond: 0,
      elu: 0,
      cpu: 0,
      rssBytes: 0,
      capacity: 10_000,
      zone: 'default',
    });
  });

  it('refuses a member whose load fields are wrong', () => {
    for (const bad of [
      { ...base, authenticated: -1 },
      { ...base, reportsPerSecond: 'many' },
      { ...base, elu: 7 },
      { ...base, cpu: Number.NaN },
      { ...base, capacity: 0 },
      { ...base, capacity: 2.5 },
      { ...base, zone: 'a b' },
      { ...base, zone: 'z'.repeat(40) },
      { ...base, draining: 'yes' },
    ])
      assert.equal(parseMember(key, member(bad)), undefined, JSON.stringify(bad));
  });

  it('a full report stays far below the member size bound', () => {
    const v = member({ ...base, zone: 'z'.repeat(32), draining: true, rssBytes: 2 ** 40 });
    assert.ok(v.length < MAX_MEMBER_BYTES / 4, `${v.length} bytes`);
    assert.ok(parseLoadReport(JSON.parse(v).load as Record<string, unknown>));
  });
});
