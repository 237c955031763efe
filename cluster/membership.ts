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

export class Membership {
  readonly table = new MemberTable();
  /** Times the lease was lost and the node registered again. */
  rejoins = 0;
  private lease: Lease | undefined;
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
      ttlSeconds: opts.ttlSeconds ?? 10,
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
    try {
      const id = await lease.grant();
      this.self.reportedAt = Date.now();
      // Create-if-absent: two live processes must never share a name (they would share vehicles).
      const txn = await this.client
        .if(this.key, 'Create', '==', 0)
        .then(this.client.put(this.key).value(JSON.stringify(this.self)).lease(id))
        .commit();
      if (!txn.succeeded) throw new MemberNameTaken(`node name ${this.self.node} is in use`);
    } catch (err) {
      await lease.revoke().catch(() => lease.release());
      throw err;
    }
    lease.on('lost', (err) => this.lost(String(err.message)));
    this.lease = lease;
  }

  /** The lease expired (etcd was out of reach longer than the TTL): register again. */
  private lost(why: string): void {
    if (this.closed) return;
    this.lease?.release();
    this.lease = undefined;
    this.opts.log?.(`membership: lease of ${this.self.node} lost (${why}); registering again`);
    const retry = (delayMs: number): void => {
      this.rejoinTimer = setTimeout(() => {
        if (this.closed) return;
        this.register().then(
          () => this.rejoins++,
          (err: unknown) => {
            this.opts.log?.(`membership: registering again failed: ${String(err)}`);
            retry(Math.min(30_000, delayMs * 2));
          },
        );
      }, delayMs);
      this.rejoinTimer.unref();
    };
    retry(200);
  }

  private async watch(): Promise<void> {
    const all = await this.client.getAll().prefix(this.opts.prefix).exec();
    const revision = Number(all.header.revision);
    for (const kv of all.kvs) this.table.put(kv.key.toString(), kv.value.toString(), revision);
    this.table.revision = revision;
    this.watcher = await this.client
      .watch()
      .prefix(this.opts.prefix)
      .startRevision(String(revision + 1))
      .create();
    const changed = (): void => {
      const members = this.table.members();
      for (const fn of this.listeners) {
        try {
          fn(members, this.table.revision);
        } catch (err) {
          this.opts.log?.(`membership: a listener failed: ${String(err)}`);
        }
      }
    };
    this.watcher.on('put', (kv: IKeyValue) => {
      this.table.put(kv.key.toString(), kv.value.toString(), Number(kv.mod_revision));
      changed();
    });
    this.watcher.on('delete', (kv: IKeyValue) => {
      this.table.delete(kv.key.toString(), Number(kv.mod_revision));
      changed();
    });
    // The client reconnects and resumes the watch from its last revision by itself.
    this.watcher.on('error', (err) => this.opts.log?.(`membership: watch error: ${String(err)}`));
  }
}
