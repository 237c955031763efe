// The members view: what counts as a member's value, and how puts and deletes with their
// revisions change it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_MEMBER_BYTES, MemberTable, parseMember } from '../../cluster/memberTable.js';

const member = (node: string, terminals = 0): Record<string, unknown> => ({
  node,
  gateway: '10.0.0.1:8808',
  startedAt: 1,
  workers: 2,
  reportedAt: 2,
  load: { terminals },
});

describe('member values', () => {
  it('reads a member and keeps only its known fields', () => {
    const v = JSON.stringify({ ...member('node-a', 3), grpc: '10.0.0.1:9808', extra: 'x' });
    assert.deepEqual(parseMember('fleetmesh/members/node-a', v), {
      node: 'node-a',
      gateway: '10.0.0.1:8808',
      grpc: '10.0.0.1:9808',
      startedAt: 1,
      workers: 2,
      load: { terminals: 3 },
      reportedAt: 2,
    });
    // One that does not say how many workers it has (an older version) hosts no vehicles.
    const older = { ...member('node-a'), workers: undefined };
    assert.equal(parseMember('fleetmesh/members/node-a', JSON.stringify(older))?.workers, 0);
  });

  it('refuses what is not a member: bad JSON, missing fields, a node other than its key, bad names, negative load, oversize', () => {
    const key = 'fleetmesh/members/node-a';
    for (const v of [
      'not json',
      'null',
      '[]',
      JSON.stringify({ ...member('node-a'), gateway: 1 }),
      JSON.stringify({ ...member('node-a'), load: { terminals: -1 } }),
      JSON.stringify({ ...member('node-a'), load: undefined }),
      JSON.stringify(member('node-b')),
      JSON.stringify({ ...member('node-a'), grpc: 5 }),
      JSON.stringify({ ...member('node-a'), workers: -1 }),
      JSON.stringify({ ...member('node-a'), workers: 1.5 }),
      JSON.stringify({ ...member('node-a'), workers: 257 }),
      JSON.stringify({ ...member('node-a'), workers: '2' }),
      JSON.stringify({ ...member('node-a'), pad: 'x'.repeat(MAX_MEMBER_BYTES) }),
    ])
      assert.equal(parseMember(key, v), undefined, v.slice(0, 80));
    assert.equal(parseMember('p/../x', JSON.stringify(member('../x'))), undefined);
  });
});

describe('MemberTable', () => {
  it('applies puts and deletes, sorts by node, tracks the revision and counts garbage', () => {
    const t = new MemberTable();
    t.put('m/node-b', JSON.stringify(member('node-b')), 5);
    t.put('m/node-a', JSON.stringify(member('node-a', 1)), 6);
    t.put('m/node-a', JSON.stringify(member('node-a', 9)), 7);
    assert.deepEqual(
      t.members().map((m) => [m.node, m.load.terminals]),
      [
        ['node-a', 9],
        ['node-b', 0],
      ],
    );
    t.put('m/node-b', 'garbage', 8); // a member overwritten by garbage is no member
    t.delete('m/node-a', 9);
    assert.deepEqual(t.members(), []);
    assert.equal(t.malformed, 1);
    assert.equal(t.revision, 9);
  });

  it("keeps each member's key creation (which registration it is) across load reports", () => {
    const t = new MemberTable();
    t.put('m/node-a', JSON.stringify(member('node-a', 1)), 5, 5);
    t.put('m/node-a', JSON.stringify(member('node-a', 2)), 6, 5); // a load report
    assert.equal(t.members()[0]!.createRevision, 5);
    t.delete('m/node-a', 7);
    t.put('m/node-a', JSON.stringify(member('node-a', 0)), 8, 8); // registered again
    assert.equal(t.members()[0]!.createRevision, 8);
  });
});
