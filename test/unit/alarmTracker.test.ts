import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlarmTracker, CLEARED_AFTER_REPLY, type AlarmPoint } from '../../actors/alarmTracker.js';

const at = (time: number, latitude = 30): AlarmPoint => ({
  time,
  latitude,
  longitude: 120,
  speed: 50,
  direction: 90,
  altitude: 10,
});
const bit = (...bits: number[]): number => bits.reduce((m, b) => (m | (1 << b)) >>> 0, 0);

describe('AlarmTracker', () => {
  it('opens on the rising edge and closes on the falling edge with start and end positions', () => {
    const t = new AlarmTracker('v1', 2013);
    assert.deepEqual(t.apply(0, at(1)), { opened: [], closed: [] });
    const a = t.apply(bit(1), at(2, 31));
    assert.equal(a.opened.length, 1);
    assert.deepEqual(
      {
        bit: a.opened[0]!.bit,
        start: a.opened[0]!.start.latitude,
        status: a.opened[0]!.handlingStatus,
      },
      { bit: 1, start: 31, status: -1 },
    );
    assert.deepEqual(
      t.apply(bit(1), at(3)),
      { opened: [], closed: [] },
      'a held bit changes nothing',
    );
    const b = t.apply(bit(1, 7), at(4));
    assert.deepEqual(
      b.opened.map((r) => r.bit),
      [7],
    );
    const c = t.apply(bit(7), at(5, 32));
    assert.deepEqual(
      c.closed.map((r) => [r.bit, r.startTime, r.endTime, r.end?.latitude]),
      [[1, 2, 5, 32]],
    );
    assert.deepEqual(
      t.open.map((r) => r.bit),
      [7],
    );
  });

  it('bit 31 (top bit) opens and closes like the others', () => {
    const t = new AlarmTracker('v1', 2013);
    assert.deepEqual(
      t.apply(0x80000000, at(1)).opened.map((r) => r.bit),
      [31],
    );
    assert.deepEqual(
      t.apply(0, at(2)).closed.map((r) => r.bit),
      [31],
    );
  });

  it('alarms the standard clears after the platform replies need a confirmation, per edition', () => {
    const t13 = new AlarmTracker('v1', 2013);
    const t19 = new AlarmTracker('v2', 2019);
    const word = bit(0, 3, 1);
    const o13 = t13.apply(word, at(1)).opened.map((r) => [r.bit, r.needsConfirmation]);
    const o19 = t19.apply(word, at(1)).opened.map((r) => [r.bit, r.needsConfirmation]);
    assert.deepEqual(o13, [
      [0, true],
      [1, false],
      [3, true],
    ]);
    assert.deepEqual(
      o19,
      [
        [0, true],
        [1, false],
        [3, false],
      ],
      '2019 made bit 3 persistent',
    );
    assert.equal(CLEARED_AFTER_REPLY[2019] & bit(31), 0);
  });

  it('a confirmation marks the open records handled; the terminal then clears the bit', () => {
    const t = new AlarmTracker('v1', 2013);
    t.apply(bit(0, 20), at(1));
    assert.deepEqual(
      t.confirm(bit(0)).map((r) => r.bit),
      [0],
    );
    assert.deepEqual(
      t.open.map((r) => [r.bit, r.handlingStatus]),
      [
        [0, 2],
        [20, -1],
      ],
    );
    assert.deepEqual(
      t.confirm(0).map((r) => r.bit),
      [0, 20],
      '0 confirms all',
    );
    const closed = t.apply(0, at(2)).closed;
    assert.deepEqual(
      closed.map((r) => [r.bit, r.handlingStatus, r.endTime]),
      [
        [0, 2, 2],
        [20, 2, 2],
      ],
    );
  });

  it('a confirmation names who handled the records and when; a later one replaces both, and the closed record keeps them', () => {
    const t = new AlarmTracker('v1', 2013);
    t.apply(bit(0, 1), at(1));
    t.confirm(bit(0), 2, { operator: 'ann', at: 10 });
    t.confirm(bit(1), 2, { operator: 'bob', at: 11 });
    assert.deepEqual(
      t.open.map((r) => [r.bit, r.handledBy, r.handledAt]),
      [
        [0, 'ann', 10],
        [1, 'bob', 11],
      ],
    );
    t.confirm(0, 2, { operator: 'cy', at: 12 });
    const closed = t.apply(0, at(2)).closed;
    assert.deepEqual(
      closed.map((r) => [r.bit, r.handlingStatus, r.handledBy, r.handledAt]),
      [
        [0, 2, 'cy', 12],
        [1, 2, 'cy', 12],
      ],
    );
  });

  it('resumes from the open records it is given (after a passivation or restart)', () => {
    const first = new AlarmTracker('v1', 2013);
    const opened = first.apply(bit(2), at(1)).opened;
    const resumed = new AlarmTracker('v1', 2013, opened);
    assert.deepEqual(resumed.apply(bit(2), at(2)), { opened: [], closed: [] });
    assert.equal(resumed.apply(0, at(3)).closed[0]?._id, 'v1:2:1');
  });
});
