// A node's membership in etcd: it registers itself under `fleetmesh/members/<node>` on a lease
// (gone within the TTL when the node dies or loses etcd), reports its load there, and watches
// the prefix to know every live member (MemberTable). What placement across nodes and the
// locator build on.
import type { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import { MemberTable, NODE_NAME, type Member, type MemberLoad } from './memberTable.js';

export interface MembershipOptions {
  prefix?: string;
  /** Lease TTL: a dead node leaves the view this long after its last keepalive (default 10). */
  ttlSeconds?: number;
  log?: (line: string) => void;
}

/** Another live process holds this node name. */
export class MemberNameTaken extends Error {}

export type MemberSelf = Omit<Member, 'reportedAt' | 'load'> & { load?: MemberLoad };

/**
 * A member's lease, when none is given: a dead node's vehicles move after at most this long,
 * and a node cut off from etcd stops serving after half of it. 8 s: a kill -9 is over (every
 * terminal reporting again) within 10 s (`npm run bench -- cluster --parts failover`), with
 * keepalives every ~2.7 s.
 */
export const DEFAULT_LEASE_TTL_SECONDS = 8;

export class Membership {
  readonly table = new MemberTable();
  /** Times the lease was lost and the node registered again. */
  rejoins = 0;
  private lease: Lease | undefined;
  /** The lease last held: our key may still be on it after etcd was out of reach. */
  private previousLeaseId: string | undefined;
  /** When etcd last answered a keepalive (or granted the lease). */
  private lastContactAt = Date.now();
  /** The etcd revision of this node's last registration. */
  registeredRevision = 0;
  private readonly lostListeners = new Set<(revoked: boolean) => void>();
  private readonly rejoinListeners = new Set<() => void>();
  private watcher: Watcher | undefined;
  private closed = false;
  private rejoinTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(members: Member[], revision: number) => void>();
  private readonly key: string;
  private readonly self: Member;

  private constructor(
    private readonly client: Etcd3,
    self: MemberSelf,
    private readonly opts: Required<Omit<MembershipOptions, 'log'>> & MembershipOptions,
  ) {
    if (!NODE_NAME.test(self.node)) throw new RangeError(`not a node name: ${self.node}`);
    this.key = `${opts.prefix}${self.node}`;
    this.self = { ...self, load: self.load ?? { terminals: 0 }, reportedAt: Date.now() };
  }

  /** Registers the node (MemberNameTaken if a live process has its name) and starts watching. */
  static async join(
    client: Etcd3,
    self: MemberSelf,
    opts: MembershipOptions = {},
  ): Promise<Membership> {
    const m = new Membership(client, self, {
      ...opts,
      prefix: opts.prefix ?? 'fleetmesh/members/',
      ttlSeconds: opts.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS,
    });
    await m.register();
    try {
      await m.watch();
    } catch (err) {
      await m.leave();
      throw err;
    }
    return m;
  }

  /** Live members, by node name. */
  members(): Member[] {
    return this.table.members();
  }

  /** Called with the members after every change (and the etcd revision it comes from). */
  onChange(fn: (members: Member[], revision: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Publishes this node's load. */
  async report(load: MemberLoad): Promise<void> {
    this.self.load = load;
    this.self.reportedAt = Date.now();
    const lease = this.lease;
    if (this.closed || lease === undefined) return; // re-registering: the next one carries it
    await lease.put(this.key).value(JSON.stringify(this.self));
  }

  /** Leaves at once (the others see it gone now, not after the TTL). */
  async leave(): Promise<void> {
    this.closed = true;
    clearTimeout(this.rejoinTimer);
    await this.watcher?.cancel().catch(() => undefined);
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await lease.revoke().catch(() => lease.release());
  }

  private async register(): Promise<void> {
    const lease = this.client.lease(this.opts.ttlSeconds);
    let id: string;
    try {
      id = await lease.grant();
      this.self.reportedAt = Date.now();
      const put = this.client.put(this.key).value(JSON.stringify(this.self)).lease(id);
      // Create-if-absent: two live processes must never share a name (they would share vehicles).
      let txn = await this.client.if(this.key, 'Create', '==', 0).then(put).commit();
      if (!txn.succeeded && this.previousLeaseId !== undefined) {
        // Still our key, on the lease we lost sight of while etcd was out of reach (etcd keeps
        // leases across its restarts): take it over instead of waiting for it to expire, so the
        // others never see this node leave and come back.
        txn = await this.client
          .if(this.key, 'Lease', '==', this.previousLeaseId)
          .then(put)
          .commit();
      }
      if (!txn.succeeded) throw new MemberNameTaken(`node name ${this.self.node} is in use`);
      this.registeredRevision = Number(txn.header.revision);
    } catch (err) {
      await lease.revoke().catch(() => lease.release());
      throw err;
    }
    const previous = this.previousLeaseId;
    this.previousLeaseId = id;
    if (previous !== undefined && previous !== id)
      void this.client.leaseClient.leaseRevoke({ ID: previous }).catch(() => undefined);
    this.lastContactAt = Date.now();
    lease.on('keepaliveSucceeded', () => (this.lastContactAt = Date.now()));
    lease.on('lost', (err) => this.lost(String(err.message)));
    this.lease = lease;
  }

  /** True when etcd answers a read within `timeoutMs` (whatever the state of the lease). */
  async ping(timeoutMs = 1000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race<boolean>([
        this.client
          .get(this.key)
          .string()
          .then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * How long another member's registration has left as etcd sees it now: the remaining time of
   * the lease its key is on, 0 when its key is gone, undefined when etcd does not answer within
   * `timeoutMs`. A member that lost sight of etcd asks its peers this about itself.
   */
  async remainingFor(node: string, timeoutMs = 1000): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const ask = async (): Promise<number> => {
      const kv = await this.client.get(`${this.opts.prefix}${node}`).exec();
      const lease = kv.kvs[0]?.lease;
      if (lease === undefined) return 0;
      if (String(lease) === '0') return Number.POSITIVE_INFINITY; // not on a lease
      const ttl = await this.client.leaseClient.leaseTimeToLive({ ID: String(lease) });
      return Math.max(0, Number(ttl.TTL)) * 1000;
    };
    try {
      return await Promise.race<number | undefined>([
        ask(),
        new Promise<undefined>(
          (resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)),
        ),
      ]);
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The id of the lease this node registered on last (for fault tests and logs). */
  get leaseId(): string | undefined {
    return this.previousLeaseId;
  }

  /**
   * True while this node holds its lease and etcd answered within the TTL. False while etcd is
   * out of reach (an outage, or this node cut off) and after the lease is lost.
   */
  get inContact(): boolean {
    return (
      this.lease !== undefined && Date.now() - this.lastContactAt < this.opts.ttlSeconds * 1000
    );
  }

  /** Milliseconds since etcd last answered this node (a keepalive or a grant). */
  get sinceContactMs(): number {
    return Date.now() - this.lastContactAt;
  }

  get ttlSeconds(): number {
    return this.opts.ttlSeconds;
  }

  /**
   * Told when the lease is lost: `revoked` when etcd said so (the others have seen this node go),
   * false when etcd was out of reach past the lease's end (the others may not have).
   */
  onLeaseLost(fn: (revoked: boolean) => void): void {
    this.lostListeners.add(fn);
  }

  /** Told when the node is registered again after a loss. */
  onRejoined(fn: () => void): void {
    this.rejoinListeners.add(fn);
  }

  /** The lease expired (etcd was out of reach longer than the TTL): register again. */
  private lost(why: string): void {
    if (this.closed) return;
    this.lease?.release();
    this.lease = undefined;
    this.opts.log?.(`membership: lease of ${this.self.node} lost (${why}); registering again`);
    // etcd3 says "lost connection" when no keepalive got through; anything else is etcd's word.
    const revoked = !/lost connection/i.test(why);
    for (const fn of this.lostListeners) fn(revoked);
    const retry = (delayMs: number): void => {
      this.rejoinTimer = setTimeout(() => {
        if (this.closed) return;
        this.register().then(
          () => {
            this.rejoins++;
            for (const fn of this.rejoinListeners) fn();
          },
          (err: unknown) => {
            this.opts.log?.(`membership: registering again failed: ${String(err)}`);
            // Short enough that a node is back soon after etcd is.
            retry(Math.min(2_000, delayMs * 2));
          },
        );
      }, delayMs);
      this.rejoinTimer.unref();
    };
    retry(200);
  }

  private async watch(): Promise<void> {
    this.watcher = await watchMembers(
      this.client,
      this.opts.prefix,
      this.table,
      this.listeners,
      this.opts.log,
    );
  }
}

/**
 * Reads every member under `prefix` into `table`, then follows the changes from the next revision
 * on, telling `listeners` after each. Shared by a member (Membership) and an observer that does
 * not register (MemberWatch, the locator's).
 */
async function watchMembers(
  client: Etcd3,
  prefix: string,
  table: MemberTable,
  listeners: Set<(members: Member[], revision: number) => void>,
  log: ((line: string) => void) | undefined,
): Promise<Watcher> {
  const all = await client.getAll().prefix(prefix).exec();
  const revision = Number(all.header.revision);
  for (const kv of all.kvs)
    table.put(kv.key.toString(), kv.value.toString(), revision, Number(kv.create_revision));
  table.revision = revision;
  const watcher = await client
    .watch()
    .prefix(prefix)
    .startRevision(String(revision + 1))
    .create();
  const changed = (): void => {
    const members = table.members();
    for (const fn of listeners) {
      try {
        fn(members, table.revision);
      } catch (err) {
        log?.(`membership: a listener failed: ${String(err)}`);
      }
    }
  };
  watcher.on('put', (kv: IKeyValue) => {
    table.put(
      kv.key.toString(),
      kv.value.toString(),
      Number(kv.mod_revision),
      Number(kv.create_revision),
    );
    changed();
  });
  watcher.on('delete', (kv: IKeyValue) => {
    table.delete(kv.key.toString(), Number(kv.mod_revision));
    changed();
  });
  // The client reconnects and resumes the watch from its last revision by itself.
  watcher.on('error', (err) => log?.(`membership: watch error: ${String(err)}`));
  return watcher;
}

/**
 * The members as an observer sees them, without registering: a locator reads the nodes and their
 * load this way (it is no member: it hosts no vehicles and takes no slot in the placement).
 */
export class MemberWatch {
  readonly table = new MemberTable();
  private readonly listeners = new Set<(members: Member[], revision: number) => void>();
  private watcher: Watcher | undefined;

  private constructor() {}

  static async start(
    client: Etcd3,
    opts: { prefix?: string; log?: (line: string) => void } = {},
  ): Promise<MemberWatch> {
    const w = new MemberWatch();
    w.watcher = await watchMembers(
      client,
      opts.prefix ?? 'fleetmesh/members/',
      w.table,
      w.listeners,
      opts.log,
    );
    return w;
  }

  members(): Member[] {
    return this.table.members();
  }

  /** Called with the members after every change (and the etcd revision it comes from). */
  onChange(fn: (members: Member[], revision: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.watcher?.cancel().catch(() => undefined);
  }
}
