// RecordSnapshot: the change between what the store holds and the live record, field by field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordSnapshot } from '../../storage/recordChanges.js';

describe('RecordSnapshot', () => {
  it('a new record is written whole, without _id; then only what changes', () => {
    const s = new RecordSnapshot();
    const record: Record<string, unknown> = { _id: 'v1', a: 1, nested: { x: [1, 2] } };
    assert.deepEqual(s.take(record), { set: { a: 1, nested: { x: [1, 2] } }, unset: [] });
    assert.equal(s.take(record), undefined, 'nothing changed');
    record.a = 2;
    (record.nested as { x: number[] }).x.push(3); // mutated in place: still seen
    assert.deepEqual(s.take(record), { set: { a: 2, nested: { x: [1, 2, 3] } }, unset: [] });
    record.nested = { x: [1, 2, 3] }; // rebuilt, same content: not written
    delete record.a;
    assert.deepEqual(s.take(record), { set: {}, unset: ['a'] });
    record.b = undefined; // undefined is absent
    assert.equal(s.take(record), undefined);
  });

  it('starts from the stored record', () => {
    const s = new RecordSnapshot({ _id: 'v1', a: 1, when: new Date(5) });
    assert.equal(s.take({ _id: 'v1', a: 1, when: new Date(5) }), undefined);
    assert.deepEqual(s.take({ _id: 'v1', a: 1 }), { set: {}, unset: ['when'] });
  });

  it('a forgotten change is taken again, unless a newer value was taken since', () => {
    const s = new RecordSnapshot({ _id: 'v1', a: 1, b: 1, c: 1 });
    const refused = s.take({ _id: 'v1', a: 2, b: 2 })!;
    assert.deepEqual(refused, { set: { a: 2, b: 2 }, unset: ['c'] });
    assert.deepEqual(s.take({ _id: 'v1', a: 3, b: 2 }), { set: { a: 3 }, unset: [] });
    s.forget(refused);
    // b and the removal of c are written again; a is not (3 was taken after the refusal).
    assert.deepEqual(s.take({ _id: 'v1', a: 3, b: 2 }), { set: { b: 2 }, unset: ['c'] });
  });
});
