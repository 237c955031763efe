// What a vehicle's stored record lacks of its live one: the top-level fields that changed since
// they were last handed to the store, as one `$set`/`$unset`. A save then writes a few fields
// instead of the whole record (its registration, queued commands and open alarms rarely change),
// and a vehicle with nothing new writes nothing. Pure: no I/O.

/** A change to one stored document: fields to set, fields to remove. */
export interface RecordChange {
  set: Record<string, unknown>;
  unset: string[];
}

/** A field's value as compared: objects by content (they may be rebuilt or mutated in place). */
function fingerprint(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? JSON.stringify(v) : v;
}

const UNKNOWN = Symbol('unknown');

export class RecordSnapshot {
  /** Field → fingerprint of the value last handed to the store (UNKNOWN: must be written). */
  private readonly saved = new Map<string, unknown>();

  /** `stored`: the record as read from the store (absent: nothing stored yet). */
  constructor(stored?: object | null) {
    if (stored) for (const [k, v] of Object.entries(stored)) this.remember(k, v);
  }

  private remember(key: string, value: unknown): void {
    if (value === undefined) this.saved.delete(key);
    else this.saved.set(key, fingerprint(value));
  }

  /**
   * The change that brings the stored record to `record` (undefined: none), taken as handed to
   * the store: the next call reports only what changes after this one.
   */
  take(record: object): RecordChange | undefined {
    const set: Record<string, unknown> = {};
    const unset: string[] = [];
    const present = new Set<string>();
    for (const [k, v] of Object.entries(record)) {
      if (k === '_id' || v === undefined) continue;
      present.add(k);
      const f = fingerprint(v);
      if (this.saved.get(k) === f) continue;
      set[k] = v;
      this.saved.set(k, f);
    }
    for (const k of [...this.saved.keys()]) {
      if (k === '_id' || present.has(k)) continue;
      unset.push(k);
      this.saved.delete(k);
    }
    return unset.length === 0 && Object.keys(set).length === 0 ? undefined : { set, unset };
  }

  /**
   * The store refused `change`: its fields are written again by the next `take`, unless a newer
   * value has been taken since.
   */
  forget(change: RecordChange): void {
    for (const [k, v] of Object.entries(change.set)) {
      if (this.saved.get(k) === fingerprint(v)) this.saved.set(k, UNKNOWN);
    }
    // A removal that failed: the stored value is unknown, so the field is written (or removed) again.
    for (const k of change.unset) if (!this.saved.has(k)) this.saved.set(k, UNKNOWN);
  }
}
