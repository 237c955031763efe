// The online fleet as ListOnlineVehicles pages it, and the members' load over the last minutes.
// The public API names no members, so a member is what the vehicles say: the node each online
// vehicle's session is on (plus the node this dashboard runs beside, even with none). Its load is
// the number of vehicles online on it, sampled every few seconds into a bounded history.
import type { OnlineVehicle, VehicleClient } from './vehicleClient.js';

export interface OnlineSnapshot {
  takenUnixMs: number;
  vehicles: OnlineVehicle[];
  totalOnline: number;
  /** More were online than one snapshot holds (`maxVehicles`): the list is a prefix. */
  truncated: boolean;
}

export interface LoadSample {
  tUnixMs: number;
  /** Vehicles online per node. */
  online: Record<string, number>;
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

export class FleetSnapshot {
  private last: OnlineSnapshot | undefined;
  private inFlight: Promise<OnlineSnapshot> | undefined;
  private readonly samples: LoadSample[] = [];
  readonly options: SnapshotOptions;

  constructor(
    private readonly client: VehicleClient,
    readonly selfNode: string | undefined,
    options: Partial<SnapshotOptions> = {},
  ) {
    this.options = { maxAgeMs: 1000, maxVehicles: 100_000, maxSamples: 180, ...options };
  }

  /** The online vehicles, read with `token` unless a fresh enough snapshot exists. */
  online(token: string): Promise<OnlineSnapshot> {
    if (this.last && Date.now() - this.last.takenUnixMs < this.options.maxAgeMs) {
      return Promise.resolve(this.last);
    }
    // Browsers polling at once share one read of the pages.
    this.inFlight ??= this.read(token).finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  /** Takes a snapshot now and records it as a load sample. */
  async sample(token: string): Promise<LoadSample> {
    const snap = await this.online(token);
    const s = { tUnixMs: snap.takenUnixMs, online: this.byNode(snap) };
    const prev = this.samples[this.samples.length - 1];
    if (prev?.tUnixMs === s.tUnixMs) return prev;
    this.samples.push(s);
    if (this.samples.length > this.options.maxSamples) this.samples.shift();
    return s;
  }

  /** Vehicles online per member: each node holding sessions, and this dashboard's node. */
  byNode(snap: OnlineSnapshot): Record<string, number> {
    const online: Record<string, number> = {};
    if (this.selfNode) online[this.selfNode] = 0;
    for (const v of snap.vehicles) online[v.node] = (online[v.node] ?? 0) + 1;
    return online;
  }

  history(): LoadSample[] {
    return [...this.samples];
  }

  private async read(token: string): Promise<OnlineSnapshot> {
    const vehicles: OnlineVehicle[] = [];
    let pageToken = '';
    let totalOnline = 0;
    do {
      const page = await this.client.listOnline(token, PAGE, pageToken);
      vehicles.push(...page.vehicles);
      totalOnline = page.totalOnline;
      pageToken = page.nextPageToken;
    } while (pageToken !== '' && vehicles.length < this.options.maxVehicles);
    this.last = {
      takenUnixMs: Date.now(),
      vehicles,
      totalOnline,
      truncated: pageToken !== '',
    };
    return this.last;
  }
}
