// Fan-out of vehicle events to subscribers, each with its own filter (vehicles, kinds). The
// hub tells the vehicles' side which kinds anyone wants, so nobody pays for position events
// nobody reads. Delivery to a subscriber is synchronous; a slow consumer's bounds are its own.
import type { VehicleEvent, VehicleEventKind } from './vehicleEvents.js';

export interface EventFilter {
  /** Empty or absent: every vehicle. */
  vehicleIds?: ReadonlySet<string>;
  /** Empty or absent: every kind but ackLatency. */
  kinds?: ReadonlySet<VehicleEventKind>;
}

interface Subscriber {
  filter: EventFilter;
  kinds: ReadonlySet<VehicleEventKind>;
  fn: (e: VehicleEvent) => void;
}

const DEFAULT_KINDS: ReadonlySet<VehicleEventKind> = new Set([
  'position',
  'alarm',
  'online',
  'command',
]);

export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  /** Subscribers dropped because they threw. */
  failedSubscribers = 0;
  private readonly kindListeners = new Set<(kinds: Set<VehicleEventKind>) => void>();

  subscribe(filter: EventFilter, fn: (e: VehicleEvent) => void): () => void {
    const kinds = filter.kinds && filter.kinds.size > 0 ? filter.kinds : DEFAULT_KINDS;
    const sub: Subscriber = { filter, kinds, fn };
    this.subscribers.add(sub);
    this.kindsChanged();
    return () => {
      if (this.subscribers.delete(sub)) this.kindsChanged();
    };
  }

  get size(): number {
    return this.subscribers.size;
  }

  publish(e: VehicleEvent): void {
    if (this.subscribers.size === 0) return;
    const vehicleId = e.kind === 'ackLatency' ? undefined : e.vehicleId;
    for (const s of this.subscribers) {
      if (!s.kinds.has(e.kind)) continue;
      const ids = s.filter.vehicleIds;
      if (ids && ids.size > 0 && (vehicleId === undefined || !ids.has(vehicleId))) continue;
      try {
        s.fn(e);
      } catch {
        // A subscriber that throws is dropped; the others and the publisher go on.
        this.failedSubscribers++;
        if (this.subscribers.delete(s)) this.kindsChanged();
      }
    }
  }

  /** The union of the kinds subscribers want. */
  wantedKinds(): Set<VehicleEventKind> {
    const out = new Set<VehicleEventKind>();
    for (const s of this.subscribers) for (const k of s.kinds) out.add(k);
    return out;
  }

  onKindsChanged(fn: (kinds: Set<VehicleEventKind>) => void): void {
    this.kindListeners.add(fn);
  }

  private kindsChanged(): void {
    const kinds = this.wantedKinds();
    for (const fn of this.kindListeners) fn(kinds);
  }
}
