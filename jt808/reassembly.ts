// Sub-package reassembly (2013 §4.4.3, §7.12; 2019 §8.7). Sets are keyed by (terminal,
// message id, package total) and packages by their index — real devices do not use
// consecutive serials. Bounded: open sets per terminal, total bytes held, packages per set,
// and an age after which a set is handed back as expired with its missing indexes (for a
// 0x8003 or 0x8800 request). Pure: the caller passes the time in.

export interface ReassemblyLimits {
  /** Open sets per terminal; a new one beyond it evicts that terminal's oldest. */
  maxSetsPerTerminal: number;
  /** Bytes held across all sets; beyond it the oldest sets are evicted. */
  maxTotalBytes: number;
  /** Largest package total accepted (a lying header could claim 65535). */
  maxPackagesPerSet: number;
  /** A set with no new package for this long is expired. */
  expiryMs: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  maxSetsPerTerminal: 4,
  maxTotalBytes: 16 * 1024 * 1024,
  maxPackagesPerSet: 2048,
  expiryMs: 30_000,
};

export interface PackageInfo {
  phone: string;
  messageId: number;
  serial: number;
  packageTotal: number;
  packageIndex: number;
}

export interface SetInfo {
  phone: string;
  messageId: number;
  packageTotal: number;
  /** Serial of package 1 (estimated from another package when 1 has not arrived). */
  firstSerial: number;
  /** Indexes (from 1) not received yet. */
  missing: number[];
}

export type AddResult =
  | { status: 'incomplete'; received: number; packageTotal: number }
  | { status: 'duplicate' }
  | { status: 'complete'; body: Uint8Array; firstSerial: number; lastSerial: number; set: SetInfo }
  | {
      status: 'rejected';
      reason: 'bad-package-index' | 'too-many-packages' | 'package-too-large';
      detail: string;
    };

export interface ReassemblyStats {
  completed: number;
  duplicates: number;
  rejected: number;
  expired: number;
  /** Sets dropped to stay within maxSetsPerTerminal or maxTotalBytes. */
  evicted: number;
}

interface OpenSet {
  key: string;
  info: PackageInfo;
  parts: (Uint8Array | undefined)[];
  serials: number[];
  received: number;
  bytes: number;
  lastAt: number;
}

export class SubpackageReassembler {
  readonly stats: ReassemblyStats = {
    completed: 0,
    duplicates: 0,
    rejected: 0,
    expired: 0,
    evicted: 0,
  };
  // Map keeps insertion order; a set is re-inserted on each package, so the first is the oldest.
  private readonly sets = new Map<string, OpenSet>();
  private readonly perTerminal = new Map<string, number>();
  private bytes = 0;
  readonly limits: ReassemblyLimits;

  constructor(limits: Partial<ReassemblyLimits> = {}) {
    this.limits = { ...DEFAULT_REASSEMBLY_LIMITS, ...limits };
  }

  get openSets(): number {
    return this.sets.size;
  }

  get bytesHeld(): number {
    return this.bytes;
  }

  /** Adds one package's body (copied). Returns the whole body once every index has arrived. */
  add(pkg: PackageInfo, body: Uint8Array, now: number): AddResult {
    const { packageTotal: total, packageIndex: index } = pkg;
    if (index < 1 || index > total) {
      this.stats.rejected++;
      return {
        status: 'rejected',
        reason: 'bad-package-index',
        detail: `package ${index} of ${total}`,
      };
    }
    if (total > this.limits.maxPackagesPerSet) {
      this.stats.rejected++;
      return {
        status: 'rejected',
        reason: 'too-many-packages',
        detail: `${total} packages, limit ${this.limits.maxPackagesPerSet}`,
      };
    }
    if (body.length > this.limits.maxTotalBytes) {
      this.stats.rejected++;
      return { status: 'rejected', reason: 'package-too-large', detail: `${body.length} bytes` };
    }
    const key = `${pkg.phone}/${pkg.messageId}/${total}`;
    let set = this.sets.get(key);
    if (set === undefined) {
      this.makeRoomForSet(pkg.phone);
      set = {
        key,
        info: pkg,
        parts: new Array(total),
        serials: new Array(total),
        received: 0,
        bytes: 0,
        lastAt: now,
      };
      this.perTerminal.set(pkg.phone, (this.perTerminal.get(pkg.phone) ?? 0) + 1);
    } else {
      this.sets.delete(key); // re-inserted below as the newest
    }
    this.sets.set(key, set);
    if (set.parts[index - 1] !== undefined) {
      this.stats.duplicates++;
      set.lastAt = now;
      return { status: 'duplicate' };
    }
    this.makeRoomForBytes(body.length, key);
    set.parts[index - 1] = body.slice();
    set.serials[index - 1] = pkg.serial;
    set.received++;
    set.bytes += body.length;
    set.lastAt = now;
    this.bytes += body.length;
    if (set.received < total)
      return { status: 'incomplete', received: set.received, packageTotal: total };

    const out = new Uint8Array(set.bytes);
    let o = 0;
    for (const part of set.parts) {
      out.set(part as Uint8Array, o);
      o += (part as Uint8Array).length;
    }
    const info = this.describe(set);
    this.remove(set);
    this.stats.completed++;
    return {
      status: 'complete',
      body: out,
      firstSerial: info.firstSerial,
      lastSerial: set.serials[total - 1] as number,
      set: info,
    };
  }

  /** Sets idle for longer than expiryMs, removed and returned with their missing indexes. */
  expire(now: number): SetInfo[] {
    const out: SetInfo[] = [];
    for (const set of [...this.sets.values()]) {
      if (now - set.lastAt >= this.limits.expiryMs) {
        out.push(this.describe(set));
        this.remove(set);
        this.stats.expired++;
      }
    }
    return out;
  }

  /** Open sets (for a status page or a 0x8003 before expiry). */
  pending(): SetInfo[] {
    return [...this.sets.values()].map((s) => this.describe(s));
  }

  /** Drops every set of a terminal (it disconnected). */
  dropTerminal(phone: string): void {
    for (const set of [...this.sets.values()]) if (set.info.phone === phone) this.remove(set);
  }

  private describe(set: OpenSet): SetInfo {
    const missing: number[] = [];
    let firstSerial = set.serials[0];
    for (let i = 0; i < set.parts.length; i++) {
      if (set.parts[i] === undefined) missing.push(i + 1);
      else if (firstSerial === undefined)
        firstSerial = ((set.serials[i] as number) - i + 0x10000) & 0xffff;
    }
    return {
      phone: set.info.phone,
      messageId: set.info.messageId,
      packageTotal: set.parts.length,
      firstSerial: firstSerial ?? 0,
      missing,
    };
  }

  private remove(set: OpenSet): void {
    if (!this.sets.delete(set.key)) return;
    this.bytes -= set.bytes;
    const n = (this.perTerminal.get(set.info.phone) ?? 1) - 1;
    if (n <= 0) this.perTerminal.delete(set.info.phone);
    else this.perTerminal.set(set.info.phone, n);
  }

  private makeRoomForSet(phone: string): void {
    if ((this.perTerminal.get(phone) ?? 0) < this.limits.maxSetsPerTerminal) return;
    for (const set of this.sets.values()) {
      if (set.info.phone === phone) {
        this.remove(set);
        this.stats.evicted++;
        return;
      }
    }
  }

  private makeRoomForBytes(incoming: number, keep: string): void {
    for (const set of [...this.sets.values()]) {
      if (this.bytes + incoming <= this.limits.maxTotalBytes) return;
      if (set.key === keep) continue;
      this.remove(set);
      this.stats.evicted++;
    }
  }
}

/** 0x8003 (or 0x0005) body asking for a set's missing packages; 2013 counts them in a BYTE. */
export function retransmitRequestFor(
  set: SetInfo,
  edition: 2011 | 2013 | 2019,
): { originalSerial: number; packageIds: number[] } {
  const max = edition === 2019 ? 0xffff : 0xff;
  return { originalSerial: set.firstSerial, packageIds: set.missing.slice(0, max) };
}

/** 0x8800 body for a multimedia upload: all received, or at most 125 missing package ids. */
export function mediaReplyFor(
  mediaId: number,
  missing: readonly number[],
): { mediaId: number; retransmitIds?: number[] } {
  return missing.length === 0 ? { mediaId } : { mediaId, retransmitIds: missing.slice(0, 125) };
}
