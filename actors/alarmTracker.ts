// The alarm state machine of one vehicle: each alarm bit's rising edge opens an alarm record
// with the start position, its falling edge closes it with the end position (the seed's
// alarm_his_infos). Pure: the VehicleActor feeds it reports in GNSS-time order and stores
// what it returns.
//
// Bits the standard clears "after the platform's response" (2013 table 24: 0, 3, 20, 21, 22,
// 27, 28, 31; 2019 table 25: 0, 20, 21, 22, 27, 28) stay set on the terminal until the platform
// confirms them (0x8203, or 0x8001 result 4): their records are marked as needing a
// confirmation, `confirm` marks them handled, and the terminal's next report clears the bit,
// which closes them like any other.
import type { AlarmPoint, AlarmRecord, HandlingStatus } from '../domain/vehicle.js';
import type { Edition } from '../jt808/header.js';

export type { AlarmPoint, AlarmRecord, HandlingStatus } from '../domain/vehicle.js';

const mask = (bits: number[]): number => bits.reduce((m, b) => (m | (1 << b)) >>> 0, 0);
export const CLEARED_AFTER_REPLY: Record<Edition, number> = {
  2011: mask([0, 3, 20, 21, 22, 27, 28, 31]),
  2013: mask([0, 3, 20, 21, 22, 27, 28, 31]),
  2019: mask([0, 20, 21, 22, 27, 28]),
};

export interface AlarmChanges {
  opened: AlarmRecord[];
  closed: AlarmRecord[];
}

export class AlarmTracker {
  private readonly openByBit = new Map<number, AlarmRecord>();
  private word = 0;

  constructor(
    readonly vehicleId: string,
    private edition: Edition,
    open: readonly AlarmRecord[] = [],
  ) {
    for (const r of open) {
      this.openByBit.set(r.bit, r);
      this.word = (this.word | (1 << r.bit)) >>> 0;
    }
  }

  setEdition(edition: Edition): void {
    this.edition = edition;
  }

  /** The alarm records open now. */
  get open(): AlarmRecord[] {
    return [...this.openByBit.values()];
  }

  /** Applies a report's alarm word; returns the records opened and closed by it. */
  apply(alarm: number, at: AlarmPoint): AlarmChanges {
    const changes: AlarmChanges = { opened: [], closed: [] };
    const rising = (alarm & ~this.word) >>> 0;
    const falling = (this.word & ~alarm) >>> 0;
    if (rising === 0 && falling === 0) return changes;
    for (let bit = 0; bit < 32; bit++) {
      const m = (1 << bit) >>> 0;
      if (falling & m) {
        const r = this.openByBit.get(bit);
        if (r) {
          r.end = at;
          r.endTime = at.time;
          this.openByBit.delete(bit);
          changes.closed.push(r);
        }
      } else if (rising & m) {
        const r: AlarmRecord = {
          _id: `${this.vehicleId}:${bit}:${at.time}`,
          vehicleId: this.vehicleId,
          bit,
          typeCode: bit,
          source: 1,
          startTime: at.time,
          start: at,
          endTime: null,
          end: null,
          handlingStatus: -1,
          needsConfirmation: (CLEARED_AFTER_REPLY[this.edition] & m) !== 0,
        };
        this.openByBit.set(bit, r);
        changes.opened.push(r);
      }
    }
    this.word = alarm >>> 0;
    return changes;
  }

  /**
   * The platform confirmed these alarm bits (0x8203 type word; 0 = all): marks them handled, by
   * whom and when when `by` says (a later confirmation replaces both).
   */
  confirm(
    bits: number,
    status: HandlingStatus = 2,
    by?: { operator: string; at: number },
  ): AlarmRecord[] {
    const out: AlarmRecord[] = [];
    for (const r of this.openByBit.values()) {
      if (bits === 0 || (bits & (1 << r.bit)) !== 0) {
        r.handlingStatus = status;
        if (by) {
          r.handledBy = by.operator;
          r.handledAt = by.at;
        }
        out.push(r);
      }
    }
    return out;
  }
}
