// Event fan-out: filters by vehicle and kind, the wanted kinds follow the subscribers, and a
// subscriber that throws is dropped without stopping the others.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VehicleEvent } from '../../actors/vehicleEvents.js';
import { EventHub } from '../../actors/eventHub.js';

const online = (vehicleId: string): VehicleEvent => ({
  kind: 'online',
  vehicleId,
  online: true,
  reason: 'authenticated',
  at: 1,
});
const alarm = (vehicleId: string): VehicleEvent => ({
  kind: 'alarm',
  vehicleId,
  change: 'opened',
  bit: 0,
  at: 1,
});

describe('EventHub', () => {
  it('delivers by vehicle and kind; ackLatency only to those who ask for it', () => {
    const hub = new EventHub();
    const a: VehicleEvent[] = [];
    const all: VehicleEvent[] = [];
    hub.subscribe({ vehicleIds: new Set(['1']), kinds: new Set(['alarm'] as const) }, (e) =>
      a.push(e),
    );
    hub.subscribe({}, (e) => all.push(e));
    hub.publish(online('1'));
    hub.publish(alarm('1'));
    hub.publish(alarm('2'));
    hub.publish({ kind: 'ackLatency', ms: 3 });
    assert.deepEqual(a, [alarm('1')]);
    assert.deepEqual(all, [online('1'), alarm('1'), alarm('2')]);
  });

  it('tells which kinds are wanted as subscribers come and go', () => {
    const hub = new EventHub();
    const seen: string[][] = [];
    hub.onKindsChanged((k) => seen.push([...k].sort()));
    const off = hub.subscribe({ kinds: new Set(['position'] as const) }, () => undefined);
    off();
    assert.deepEqual(seen, [['position'], []]);
  });

  it('drops a subscriber that throws; the others still get every event', () => {
    const hub = new EventHub();
    const got: VehicleEvent[] = [];
    hub.subscribe({}, () => {
      throw new Error('broken consumer');
    });
    hub.subscribe({}, (e) => got.push(e));
    hub.publish(online('1'));
    hub.publish(online('2'));
    assert.equal(got.length, 2);
    assert.equal(hub.size, 1);
    assert.equal(hub.failedSubscribers, 1);
  });
});
