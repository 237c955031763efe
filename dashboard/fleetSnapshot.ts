// The online fleet as ListOnlineVehicles pages it, the members as ListMembers names them, and
// the members' load over the last minutes. A member is what the membership says (so one holding
// no vehicles shows), plus any node an online vehicle's session is on that the membership does
// not name (a node without membership, or one that just left), plus the node this dashboard runs
// beside. The load over time is sampled every few seconds into a bounded history: vehicles online
// per node (counted from the vehicles) and the reports/s each member last published.
import { grpc, grpcCode } from './vehicleClient.js';
import type { ClusterMember, MemberLoad, OnlineVehicle, VehicleClient } from './vehicleClient.js';

export interface OnlineSnapshot {
  takenUnixMs: number;
  vehicles: OnlineVehicle[];
  totalOnline: number;
  /** More were online than one snapshot holds (`maxVehicles`): the list is a prefix. */
  truncated: boolean;
}

export interface MembersSnapshot {
  takenUnixMs: number;
  /** ListMembers' answer; empty from a node without membership or without the call. */
  members: ClusterMember[];
  /** The node does not offer ListMembers (an older node): members come from the vehicles. */
  unimplemented: boolean;
}

/** One line of the cluster page. */
export interface MemberRow {
  node: string;
  /** Vehicles online on it (their sessions). */
  vehicles: number;
  /** In the membership (ListMembers); false for a node known only from vehicles or as self. */
  member: boolean;
  gateway?: string;
  grpc?: string;
  workers?: number;
  startedAtUnixMs?: number;
  /** Its last load report (its clock). */
  reportedAtUnixMs?: number;
  load?: MemberLoad;
  draining?: boolean;
}

export interface LoadSample {
  tUnixMs: number;
  /** Vehicles online per node. */
  online: Record<string, number>;
  /** Reports/s per member, as its last load report says (members that report it). */
  reportsPerSecond: Record<string, number>;
}

export interface SnapshotOptions {
  /** A snapshot younger than this is served as is (default 1 000 ms). */
  maxAgeMs: number;
  /** Vehicles read per snapshot at most (default 100 000). */
  maxVehicles: number;
  /** Samples kept (default 180: 15 minutes at 5 s). */
  maxSamples: number;
}

const PAGE = 1000;

/** A value read at most once per `maxAgeMs`, concurrent readers sharing one read. */
class Cached<T extends { takenUnixMs: number }> {
  private last: T | undefined;
  private inFlight: Promise<T> | undefined;
  constructor(
    private readonly maxAgeMs: number,
    private readonly read: (token: string) => Promise<T>,
  ) {}
  get(token: string): Promise<T> {
    if (this.last && Date.now() - this.last.takenUnixMs < this.maxAgeMs) {
      return Promise.resolve(this.last);
    }
    this.inFlight ??= this.read(token)
      .then((v) => (this.last = v))
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }
}

export class FleetSnapshot {
  private readonly onlineCache: Cached<OnlineSnapshot>;
  private readonly membersCache: Cached<MembersSnapshot>;
  private readonly samples: LoadSample[] = [];
  readonly options: SnapshotOptions;

  constructor(
    private readonly client: VehicleClient,
    readonly selfNode: string | undefined,
    options: Partial<SnapshotOptions> = {},
  ) {
    this.options = { maxAgeMs: 1000, maxVehicles: 100_000, maxSamples: 180, ...options };
    this.onlineCache = new Cached(this.options.maxAgeMs, (t) => this.readOnline(t));
    this.membersCache = new Cached(this.options.maxAgeMs, (t) => this.readMembers(t));
  }

  /** The online vehicles, read with `token` unless a fresh enough snapshot exists. */
  online(token: string): Promise<OnlineSnapshot> {
    return this.onlineCache.get(token);
  }

  /** The members, read with `token` unless a fresh enough answer exists. */
  members(token: string): Promise<MembersSnapshot> {
    return this.membersCache.get(token);
  }

  /** Takes both snapshots now and records them as a load sample. */
  async sample(token: string): Promise<LoadSample> {
    const [snap, members] = await Promise.all([this.online(token), this.members(token)]);
    const rows = this.rows(snap, members);
    const online: Record<string, number> = {};
    const reportsPerSecond: Record<string, number> = {};
    for (const r of rows) {
      online[r.node] = r.vehicles;
      const rps = r.load?.reportsPerSecond;
      if (rps !== undefined) reportsPerSecond[r.node] = rps;
    }
    const s: LoadSample = { tUnixMs: snap.takenUnixMs, online, reportsPerSecond };
    const prev = this.samples[this.samples.length - 1];
    if (prev?.tUnixMs === s.tUnixMs) return prev;
    this.samples.push(s);
    if (this.samples.length > this.options.maxSamples) this.samples.shift();
    return s;
  }

  /**
   * The cluster page's lines, by node name: every member with its vehicles online (0 when it
   * holds none), then nodes holding sessions the membership does not name, and this node.
   */
  rows(snap: OnlineSnapshot, members: MembersSnapshot): MemberRow[] {
    const byNode = new Map<string, MemberRow>();
    for (const m of members.members) {
      byNode.set(m.node, {
        node: m.node,
        vehicles: 0,
        member: true,
        gateway: m.gateway,
        grpc: m.grpc,
        workers: m.workers,
        startedAtUnixMs: m.startedAtUnixMs,
        reportedAtUnixMs: m.reportedAtUnixMs,
        load: m.load,
        draining: m.draining,
      });
    }
    const row = (node: string): MemberRow => {
      let r = byNode.get(node);
      if (!r) byNode.set(node, (r = { node, vehicles: 0, member: false }));
      return r;
    };
    if (this.selfNode) row(this.selfNode);
    for (const v of snap.vehicles) row(v.node).vehicles++;
    return [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  history(): LoadSample[] {
    return [...this.samples];
  }

  private async readOnline(token: string): Promise<OnlineSnapshot> {
    const vehicles: OnlineVehicle[] = [];
    let pageToken = '';
    let totalOnline = 0;
    do {
      const page = await this.client.listOnline(token, PAGE, pageToken);
      vehicles.push(...page.vehicles);
      totalOnline = page.totalOnline;
      pageToken = page.nextPageToken;
    } while (pageToken !== '' && vehicles.length < this.options.maxVehicles);
    return { takenUnixMs: Date.now(), vehicles, totalOnline, truncated: pageToken !== '' };
  }

  private async readMembers(token: string): Promise<MembersSnapshot> {
    try {
      const { members } = await this.client.listMembers(token);
      return { takenUnixMs: Date.now(), members, unimplemented: false };
    } catch (err) {
      if (grpcCode(err) !== grpc.status.UNIMPLEMENTED) throw err;
      return { takenUnixMs: Date.now(), members: [], unimplemented: true };
    }
  }
}
