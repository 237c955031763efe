// The driving-behaviour detector (actors/drivingBehaviour.ts) without sockets or a store: each
// behaviour at the edges of its threshold, the bound on open episodes and their age, and, for
// random report sequences, the same episodes as a brute-force computation over the whole
// sequence, also when the detector is rebuilt mid-way from what a vehicle record keeps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_THRESHOLDS,
  DrivingBehaviour,
  harshChange,
  stateConditions,
  type BehaviourPoint,
  type BehaviourThresholds,
} from '../../actors/drivingBehaviour.js';
import { BEHAVIOUR_TYPES, type BehaviourEpisode } from '../../domain/drivingBehaviour.js';
import { bruteForce } from '../helpers/drivingBehaviourBrute.js';
import { behaviourDocument } from '../../storage/drivingBehaviour.js';

const T0 = Date.UTC(2026, 10, 2, 0, 0, 0);
const { overspeed, fatigue, longIdling, harshAcceleration, harshBraking } = BEHAVIOUR_TYPES;
const ACC = 1;

function pt(time: number, speed: number, alarm = 0, status = ACC): BehaviourPoint {
  return {
    time,
    speed,
    alarm,
    status,
    latitude: 22.5 + time / 1e12,
    longitude: 113.9,
    altitude: 10,
    direction: 90,
  };
}

function run(points: BehaviourPoint[], t: BehaviourThresholds = DEFAULT_THRESHOLDS) {
  const d = new DrivingBehaviour(t);
  const episodes: BehaviourEpisode[] = [];
  for (const p of points) episodes.push(...d.apply(p));
  return { episodes, d };
}

const summary = (es: BehaviourEpisode[]): [number, number, number][] =>
  es
    .map((e): [number, number, number] => [e.type, e.start.time, e.end.time])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);

/** Speeds at 1 s steps from T0. */
const profile = (speeds: number[], step = 1000): BehaviourPoint[] =>
  speeds.map((s, i) => pt(T0 + i * step, s));

describe('driving behaviour: thresholds at their edges', () => {
  it('harsh acceleration and braking: at least 11 km/h per second, reports at most 3 s apart', () => {
    const t = DEFAULT_THRESHOLDS;
    assert.equal(harshChange(pt(T0, 0), pt(T0 + 1000, 11), t), 1, '11 km/h in 1 s');
    assert.equal(harshChange(pt(T0, 0), pt(T0 + 1000, 10.9), t), 0, '10.9 km/h in 1 s');
    assert.equal(harshChange(pt(T0, 60.3), pt(T0 + 1000, 49.3), t), -1, 'exact in tenths');
    assert.equal(harshChange(pt(T0, 60.3), pt(T0 + 1000, 49.4), t), 0);
    assert.equal(harshChange(pt(T0, 80), pt(T0 + 3000, 47), t), -1, '33 km/h in 3 s');
    assert.equal(harshChange(pt(T0, 80), pt(T0 + 3000, 47.1), t), 0, '32.9 km/h in 3 s');
    assert.equal(harshChange(pt(T0, 80), pt(T0 + 3001, 0), t), 0, 'further apart than 3 s');
    assert.equal(harshChange(pt(T0, 0), pt(T0, 50), t), 0, 'same time: not a change');
  });

  it('a harsh brake over three reports is one episode from its first report to its last, stored once the next report is not harsh', () => {
    const { episodes, d } = run(profile([80, 80, 68, 55, 44, 40, 40]));
    assert.deepEqual(summary(episodes), [[harshBraking, T0 + 1000, T0 + 4000]]);
    assert.equal(episodes[0]!.start.speed, 80);
    assert.equal(episodes[0]!.end.speed, 44);
    assert.deepEqual(d.openEpisodes, []);
    // The last pair harsh: still open, not stored.
    const open = run(profile([0, 12, 24]));
    assert.deepEqual(open.episodes, []);
    assert.deepEqual(
      open.d.openEpisodes.map((o) => [o.type, o.start.time]),
      [[harshAcceleration, T0]],
    );
  });

  it('overspeed: alarm bit 1, or over the configured limit (not at it); ends at the first report without it', () => {
    const pts = [
      pt(T0, 90),
      pt(T0 + 10_000, 90, 0b10),
      pt(T0 + 20_000, 90, 0b10),
      pt(T0 + 30_000, 90),
    ];
    assert.deepEqual(summary(run(pts).episodes), [[overspeed, T0 + 10_000, T0 + 30_000]]);
    const limit = { ...DEFAULT_THRESHOLDS, overspeedKmh: 100 };
    assert.deepEqual(stateConditions(pt(T0, 100), limit), new Set());
    assert.deepEqual(stateConditions(pt(T0, 100.1), limit), new Set([overspeed]));
    assert.deepEqual(
      stateConditions(pt(T0, 200), DEFAULT_THRESHOLDS),
      new Set(),
      'no limit: bit only',
    );
    const bySpeed = [pt(T0, 99), pt(T0 + 2000, 100.1), pt(T0 + 4000, 101), pt(T0 + 6000, 100)];
    assert.deepEqual(summary(run(bySpeed, limit).episodes), [[overspeed, T0 + 2000, T0 + 6000]]);
  });

  it('fatigue: alarm bit 2', () => {
    const pts = [pt(T0, 50, 0b100), pt(T0 + 60_000, 50, 0b110), pt(T0 + 120_000, 50, 0)];
    assert.deepEqual(summary(run(pts).episodes), [
      [overspeed, T0 + 60_000, T0 + 120_000],
      [fatigue, T0, T0 + 120_000],
    ]);
  });

  it('long idling: speed 0 with ACC on for more than 10 minutes, first idle report to last', () => {
    const idle = (lastIdleAt: number, status = ACC): BehaviourPoint[] => [
      pt(T0, 0, 0, status),
      pt(T0 + lastIdleAt / 2, 0, 0, status),
      pt(T0 + lastIdleAt, 0, 0, status),
      pt(T0 + lastIdleAt + 5000, 20, 0, status),
    ];
    assert.deepEqual(run(idle(600_000)).episodes, [], 'exactly 10 minutes is not more');
    assert.deepEqual(summary(run(idle(601_000)).episodes), [[longIdling, T0, T0 + 606_000]]);
    assert.deepEqual(run(idle(3_600_000, 0)).episodes, [], 'ACC off: parked, not idling');
    assert.deepEqual(stateConditions(pt(T0, 0.1), DEFAULT_THRESHOLDS), new Set(), 'moving');
  });
});

describe('driving behaviour: stored episodes', () => {
  it('a condition that flips within one report time gives two episodes with one start, stored as two documents', () => {
    const { episodes } = run([
      pt(T0 + 1000, 60, 0b10),
      pt(T0 + 1000, 60, 0),
      pt(T0 + 1000, 60, 0b10),
      pt(T0 + 9000, 60, 0),
    ]);
    const overspeeds = episodes.filter((e) => e.type === overspeed);
    assert.deepEqual(
      overspeeds.map((e) => [e.start.time - T0, e.end.time - T0]),
      [
        [1000, 1000],
        [1000, 9000],
      ],
    );
    const ids = overspeeds.map((e) => behaviourDocument('v1', e)._id as string);
    assert.equal(new Set(ids).size, 2, `distinct ids: ${ids.join(', ')}`);
    assert.equal(
      behaviourDocument('v1', overspeeds[1]!)._id,
      behaviourDocument('v1', { ...overspeeds[1]! })._id,
      'the same episode stored again is the same document',
    );
  });
});

describe('driving behaviour: bounded', () => {
  it('one open episode per type, whatever the reports', () => {
    fc.assert(
      fc.property(reports(), (pts) => {
        const d = new DrivingBehaviour();
        for (const p of pts) {
          d.apply(p);
          const types = d.openEpisodes.map((o) => o.type);
          assert.equal(new Set(types).size, types.length);
          assert.ok(types.length <= 5);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('an episode open 24 hours is closed at its last point, and the next report opens another', () => {
    // Overspeed reported every minute for 25 hours.
    const pts = Array.from({ length: 25 * 60 + 1 }, (_, i) => pt(T0 + i * 60_000, 130, 0b10));
    const { episodes, d } = run(pts);
    assert.deepEqual(summary(episodes), [[overspeed, T0, T0 + 24 * 3_600_000]]);
    assert.deepEqual(
      d.openEpisodes.map((o) => [o.type, o.start.time]),
      [[overspeed, T0 + 24 * 3_600_000 + 60_000]],
    );
  });

  it('no report for more than 24 hours: the episode ends at its last point, not at the next report', () => {
    const pts = [pt(T0, 0), pt(T0 + 700_000, 0), pt(T0 + 700_000 + 25 * 3_600_000, 0)];
    const { episodes, d } = run(pts);
    assert.deepEqual(summary(episodes), [[longIdling, T0, T0 + 700_000]]);
    assert.deepEqual(
      d.openEpisodes.map((o) => [o.type, o.start.time]),
      [[longIdling, T0 + 700_000 + 25 * 3_600_000]],
    );
  });

  it('a report older than the last is ignored', () => {
    const d = new DrivingBehaviour();
    d.apply(pt(T0 + 10_000, 50, 0b10));
    assert.deepEqual(d.apply(pt(T0, 50, 0)), []);
    assert.deepEqual(
      d.openEpisodes.map((o) => o.type),
      [overspeed],
    );
  });
});

/** Reports every 0-20 s (sometimes 4 min), speeds in tenths that change a lot, bits that stick. */
function reports(): fc.Arbitrary<BehaviourPoint[]> {
  const step = fc.record({
    dt: fc.oneof(
      fc.constantFrom(0, 1000, 2000, 3000, 3001, 4000),
      fc.integer({ min: 0, max: 20_000 }),
      fc.constant(240_000),
    ),
    dv: fc.oneof(fc.integer({ min: -400, max: 400 }), fc.constant(0), fc.constant(-10_000)),
    flip: fc.integer({ min: 0, max: 15 }),
  });
  return fc.array(step, { minLength: 1, maxLength: 150 }).map((steps) => {
    let time = T0;
    let speed = 0;
    let alarm = 0;
    let status = ACC;
    return steps.map(({ dt, dv, flip }) => {
      time += dt;
      speed = Math.min(1600, Math.max(0, speed + dv));
      if (flip === 1) alarm ^= 0b10;
      if (flip === 2) alarm ^= 0b100;
      if (flip === 3) status ^= ACC;
      return pt(time, speed / 10, alarm, status);
    });
  });
}

describe('driving behaviour: equal to a brute-force computation', () => {
  it('random sequences give the episodes of the whole sequence computed at once', () => {
    fc.assert(
      fc.property(reports(), (pts) => {
        assert.deepEqual(summary(run(pts).episodes), bruteForce(pts));
      }),
      { numRuns: 500 },
    );
  });

  it('the same when the detector is rebuilt mid-way from its open episodes and the last report (passivation, handoff)', () => {
    fc.assert(
      fc.property(reports(), fc.nat(), (pts, cut) => {
        const at = cut % (pts.length + 1);
        const first = new DrivingBehaviour();
        const episodes: BehaviourEpisode[] = [];
        for (const p of pts.slice(0, at)) episodes.push(...first.apply(p));
        const saved = JSON.parse(JSON.stringify(first.openEpisodes)) as typeof first.openEpisodes;
        const second = new DrivingBehaviour(DEFAULT_THRESHOLDS, pts[at - 1], saved);
        for (const p of pts.slice(at)) episodes.push(...second.apply(p));
        assert.deepEqual(summary(episodes), bruteForce(pts));
      }),
      { numRuns: 300 },
    );
  });
});
