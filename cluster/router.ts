// Every vehicle lives on one (node, worker) slot of the cluster, wherever its terminal connects
// and whichever node a service calls. The router is the node's VehicleHost: it places a vehicle
// by the membership (cluster/placement.ts over every member's workers), hands the vehicles this
// node owns to the local host (its worker threads), and sends the others' frames and calls to
// their owner over the node-to-node service (proto/fleetmesh/internal/v1/peer.proto): one stream
// per peer for frames (cluster/peerChannel.ts out, cluster/peerInbound.ts in), unary calls for
// commands and views. While two nodes' views of the membership differ, a node that receives a
// frame it does not own relays it once to the owner it sees; a second hop waits for views to agree.
import * as grpc from '@grpc/grpc-js';
import type { CommandEvent } from '../actors/commandQueue.js';
import type { AlarmConfirmation, TerminalLink, VehicleView } from '../actors/vehicleActor.js';
import type { VehicleEventKind } from '../actors/vehicleEvents.js';
import type { Message } from '../jt808/messages.js';
import type { EventHub } from '../actors/eventHub.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import type { Member } from './memberTable.js';
import { PeerChannel } from './peerChannel.js';
import { PeerEventFeed, servePeerEvents, type EventsServerStream } from './peerEvents.js';
import { PeerInbound, ProxyTerminalLink } from './peerInbound.js';
import { ProxyLinkTable } from './peerLinks.js';
import { PROXY_LINK_BASE } from '../hosting/frameBatch.js';
import {
  fromPeerJson,
  peerServer,
  peerServerWindow,
  peerService,
  toPeerJson,
  type PeerCall,
  type PeerReply,
  type RouteServerStream,
} from './peerService.js';
import type { HandoffMarkers } from './handoffBoard.js';
import { planHandoff, PlacementView } from './handoffPlan.js';
import { SHARDS, shardOf } from '../domain/shard.js';
import type { ThreadMemory, VehicleHost } from '../hosting/vehicleHost.js';
import {
  mergeAreaAnswers,
  type AreaNowAnswer,
  type OnlineVehicle,
  type ThreadStats,
} from '../hosting/vehicleThread.js';
import type { AreaNowFilter, AreaShape } from '../storage/historyShapes.js';
import { VehiclesUnavailable, type LinkDirectory } from '../hosting/workerHost.js';

export interface RouterOptions {
  node: string;
  /** This node's link id prefix (the gateway's), told to peers so link ids are cluster-wide. */
  linkPrefix: string;
  /** This node's slots: its worker threads (1 when the vehicles run on the main thread). */
  workers: number;
  /** Records a peer may hold from us before our sockets pause (default 8192). */
  maxInFlightPerPeer?: number;
  /** Links of other nodes' terminals this node serves at most (default 1 000 000). */
  maxProxyLinks?: number;
  /** Other nodes' handoff markers (etcd); none: gained shards do not wait (routing tests). */
  board?: HandoffMarkers;
  /** A placement change applies this long after the membership's last change (default 300 ms). */
  settleMs?: number;
  /** Gained shards wait at most this long for their previous owner's marker (default 10 s). */
  handoffTimeoutMs?: number;
  /**
   * How long a member's registration has left as etcd sees it now (undefined: etcd does not
   * answer); peers that lost sight of etcd ask it about themselves (membership.remainingFor).
   */
  remainingFor?: (node: string) => Promise<number | undefined>;
  /**
   * Events across the cluster: this node's own (`local`, served to peers), every node's
   * (`cluster`, what subscribers here read), and when the local vehicles produce the kinds
   * asked for (`applied`).
   */
  events?: { local: EventHub; cluster: EventHub; applied: () => Promise<void> };
  /** Lines for operators: `info` for routine ones (a handoff done), else warnings. */
  log?: (line: string, level?: 'info' | 'warn') => void;
}

export interface RouterStats {
  /** Records sent to owners on other nodes, and relayed for a peer whose view was behind. */
  routedOut: number;
  relayed: number;
  /** Records from peers handed to this node's vehicles. */
  routedIn: number;
  /** Calls answered for other nodes, and calls made to owners elsewhere. */
  callsIn: number;
  callsOut: number;
  proxyLinks: number;
  placementChanges: number;
  /** Shards this node gained and lost over placement changes, vehicles it handed off. */
  shardsGained: number;
  shardsLost: number;
  vehiclesHandedOff: number;
  /** Gained shards released because the previous owner's marker never came. */
  handoffTimeouts: number;
  /** Records a worker sent back after a placement change, routed again. */
  rerouted: number;
  /** Times this node was cut off from the cluster and handed its vehicles over. */
  isolations: number;
  /** Records given up after MAX_RELAYS relays (their links closed). */
  relayLimit: number;
}

/** Times a record may be relayed between nodes whose views of the membership differ. */
const MAX_RELAYS = 2;

/** Not this node's vehicle (views of the membership differ for a moment): try again. */
export class NotOwner extends VehiclesUnavailable {}

type CallMethod = 'command' | 'vehicle' | 'confirmAlarms' | 'online' | 'inArea' | 'remainingFor';

export class ClusterRouter implements VehicleHost, LinkDirectory {
  private readonly counters: RouterStats = {
    routedOut: 0,
    relayed: 0,
    routedIn: 0,
    callsIn: 0,
    callsOut: 0,
    proxyLinks: 0,
    placementChanges: 0,
    shardsGained: 0,
    shardsLost: 0,
    vehiclesHandedOff: 0,
    handoffTimeouts: 0,
    rerouted: 0,
    isolations: 0,
    relayLimit: 0,
  };
  private local: VehicleHost | undefined;
  private gateway: LinkDirectory | undefined;
  /** The placement applied now, with each slot's node and worker. */
  private view: PlacementView;
  private applied = false;
  /**
   * Which registrations of its members the applied placement is made of: the newest key's
   * create revision among them (sinceOf). The same slot list with a member that registered
   * again (a new key) is another placement. Handoff markers carry it; a gainer takes a marker
   * only of the same slot list from the same registrations or newer ones.
   */
  private viewSince = 0;
  /** The revision this node registered at (for its own slot while its key is not in view). */
  private registeredAt = 0;
  /** A placement waiting for the membership to settle. */
  private latest: { view: PlacementView; revision: number; since: number } | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private settlingSince: number | undefined;
  private members: readonly Member[] = [];
  private live = new Set<string>();
  private leaving = false;
  /** Cut off from the cluster (lease lost): this node serves no vehicle of its own. */
  private cutOff = false;
  /** Shards gained from each previous owner that wait for its handoff marker. */
  private readonly pending = new Map<string, Set<number>>();
  private readonly pendingShard = new Uint8Array(SHARDS);
  private readonly pendingTimers = new Map<string, NodeJS.Timeout>();
  private releaseWaiters: (() => void)[] = [];
  /** This node's threads letting go of lost shards, one placement after another. */
  private handoff: Promise<void> = Promise.resolve();
  private readonly bounced: { vehicleId: string; d: GatewayDelivery }[] = [];
  /** Local assignments in progress (this node's threads taking a new placement). */
  private assigning = 0;
  /** Event streams this node serves to peers (ended when it stops). */
  private readonly servedEvents = new Set<EventsServerStream>();
  /** Each peer's events, followed for the kinds subscribers here want. */
  private readonly feeds = new Map<string, PeerEventFeed>();
  private readonly addresses = new Map<string, string>();
  private readonly channels = new Map<string, PeerChannel>();
  private readonly inbound = new Set<PeerInbound>();
  private readonly proxies: ProxyLinkTable<ProxyTerminalLink>;
  private readonly drainListeners = new Set<() => void>();
  private server: grpc.Server | undefined;
  private closed = false;
  /** The membership revision the placement comes from (0: this node alone, before joining). */
  revision = 0;
  /** The newest membership revision seen (load reports included). */
  private seenRevision = 0;
  /** Registered again after a lost lease at this revision: serving resumes once it is seen. */
  private rejoinRevision: number | undefined;

  constructor(private readonly opts: RouterOptions) {
    this.proxies = new ProxyLinkTable(opts.maxProxyLinks ?? 1_000_000);
    this.view = new PlacementView([{ node: opts.node, workers: opts.workers }]);
    opts.board?.onMarker(() => this.checkPending());
    opts.events?.cluster.onKindsChanged(() => this.syncFeeds());
  }

  get bodies(): 'decode' | 'raw' {
    return this.local?.bodies ?? 'raw';
  }

  /** The vehicles of this node (its worker threads, or the main thread). */
  attachLocal(local: VehicleHost): void {
    this.local = local;
    local.onDrain(() => this.drained());
  }

  /** The gateway whose links answers from peers go to. */
  attachGateway(gateway: LinkDirectory): void {
    this.gateway = gateway;
  }

  private get host(): VehicleHost {
    if (!this.local) throw new Error('router: no local host attached');
    return this.local;
  }

  /**
   * The members changed (etcd watch): peers' addresses are kept current, and when the slots
   * changed the new placement is applied once the membership has been quiet for `settleMs` (a
   * flapping node does not move shards back and forth); the first view applies at once.
   * Members without a peer address host nothing of the cluster's.
   */
  setMembers(members: readonly Member[], revision: number): void {
    this.members = members;
    this.seenRevision = Math.max(this.seenRevision, revision);
    this.resumeIfRejoined();
    this.live = new Set(members.map((m) => m.node));
    for (const m of members)
      if (m.node !== this.opts.node && m.peer !== undefined) {
        const known = this.channels.get(m.node);
        if (known && known.address !== m.peer) {
          known.close();
          this.channels.delete(m.node);
        }
        this.addresses.set(m.node, m.peer);
      }
    this.checkPending();
    this.syncFeeds();
    const hosting = this.hosting(members);
    if (hosting.length === 0) return;
    // Most changes are load reports: the placement is built only when the slots changed.
    const signature = PlacementView.signatureOf(hosting);
    const since = this.sinceOf(hosting);
    if (this.applied && signature === this.view.signature && since === this.viewSince) {
      // Back to the placement applied now (a node flapped): nothing moves.
      this.latest = undefined;
      this.settlingSince = undefined;
      clearTimeout(this.settleTimer);
      return;
    }
    // A load report, not churn.
    if (this.latest?.view.signature === signature && this.latest.since === since) return;
    this.latest = { view: new PlacementView(hosting), revision, since };
    if (!this.applied) {
      clearTimeout(this.settleTimer);
      this.apply();
      return;
    }
    // Churn restarts the wait, up to a bound: a steady trickle of changes cannot starve it.
    const settleMs = this.opts.settleMs ?? 300;
    const now = Date.now();
    this.settlingSince ??= now;
    const wait = Math.min(settleMs, Math.max(0, this.settlingSince + 5 * settleMs - now));
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.apply(), wait);
    this.settleTimer.unref();
  }

  /** The members that host vehicles (with a peer address), this node included unless leaving. */
  private hosting(members: readonly Member[]): { node: string; workers: number }[] {
    const self = this.opts.node;
    const away = this.leaving || this.cutOff;
    const out = members
      .filter((m) => m.workers > 0 && (m.node === self || m.peer !== undefined))
      .filter((m) => !(away && m.node === self))
      .map((m) => ({ node: m.node, workers: m.node === self ? this.opts.workers : m.workers }));
    if (!away && !out.some((m) => m.node === self))
      out.push({ node: self, workers: this.opts.workers });
    return out;
  }

  /**
   * Applies the latest placement: frames route by it from now on; shards gained from a live
   * node wait for its handoff marker; this node's threads let go of what they lost (saved and
   * written before the marker says so).
   */
  private apply(): void {
    const latest = this.latest;
    this.latest = undefined;
    this.settlingSince = undefined;
    if (!latest) return;
    const self = this.opts.node;
    // Before the first view, the others owned everything (a joining node waits for them).
    const others = this.hosting(this.members).filter((m) => m.node !== self);
    const before = this.applied
      ? this.view
      : others.length > 0
        ? new PlacementView(others)
        : undefined;
    const plan = planHandoff(before, latest.view, self, this.opts.workers);
    this.view = latest.view;
    this.viewSince = latest.since;
    this.applied = true;
    this.revision = latest.revision;
    this.counters.placementChanges++;
    this.counters.shardsGained += [...plan.gained.values()].reduce((n, l) => n + l.length, 0);
    this.counters.shardsLost += plan.lost;
    // Pending shards now owned elsewhere do not wait any more; newly gained ones do.
    for (const [node, shards] of this.pending) {
      const still = new Set([...shards].filter((s) => latest.view.nodeOfShard(s) === self));
      if (still.size === shards.size) continue;
      for (const s of shards) if (!still.has(s)) this.pendingShard[s] = 0;
      if (still.size === 0) this.release(node, 'no longer gained');
      else this.pending.set(node, still);
    }
    for (const [node, shards] of plan.gained) {
      const set = this.pending.get(node) ?? new Set<number>();
      for (const s of shards) {
        set.add(s);
        this.pendingShard[s] = 1;
      }
      this.pending.set(node, set);
      // Each placement that gains shards from a node gives it the full time again.
      clearTimeout(this.pendingTimers.get(node));
      const timer = setTimeout(
        () => this.release(node, 'timed out waiting for its handoff marker'),
        this.opts.handoffTimeoutMs ?? 10_000,
      );
      timer.unref();
      this.pendingTimers.set(node, timer);
    }
    // Peers no longer in the placement: their streams go.
    const nodes = new Set(latest.view.nodes);
    for (const [node, channel] of this.channels)
      if (!nodes.has(node)) {
        channel.close();
        this.channels.delete(node);
      }
    const epoch = latest.revision;
    const { signature } = latest.view;
    const { since } = latest;
    this.handoff = this.handoff
      .then(async () => {
        this.assigning++;
        let left = 0;
        try {
          left = (await this.local?.assign(epoch, plan.owned)) ?? 0;
        } finally {
          this.assigning--;
          this.drained(); // records sent back meanwhile go out now
        }
        this.counters.vehiclesHandedOff += left;
        // Only once its threads let go: a failed handoff publishes nothing (gainers time out).
        await this.opts.board?.publish(self, signature, since, this.leaving ? 'left' : 'serving');
      })
      .catch((err: unknown) => this.opts.log?.(`router: handoff failed: ${String(err)}`));
    this.checkPending();
    // Held records may belong elsewhere now; paused sockets try again.
    this.drained();
  }

  /**
   * The registrations a placement is made of: the newest create revision of its members' keys
   * (this node's own registration while its key is not in view). Every node computes the same
   * value from the same members, whenever and however it read them.
   */
  private sinceOf(hosting: readonly { node: string }[]): number {
    // Asked at every membership change (load reports too): one pass over the members.
    const placed = new Set(hosting.map((h) => h.node));
    let since = placed.has(this.opts.node) ? this.registeredAt : 0;
    for (const m of this.members)
      if (placed.has(m.node) && m.createRevision !== undefined)
        since = Math.max(since, m.createRevision);
    return since;
  }

  /** This node registered in the membership at `revision` (before its first view). */
  registered(revision: number): void {
    this.registeredAt = revision;
  }

  /** Releases the shards gained from nodes that handed off, left, died or timed out. */
  private checkPending(): void {
    for (const node of [...this.pending.keys()]) {
      const marker = this.opts.board?.marker(node);
      const current = marker?.signature === this.view.signature && marker.since >= this.viewSince;
      if (marker && (current || marker.state === 'left')) this.release(node, 'handed off');
      else if (!this.live.has(node) && marker?.state !== 'leaving')
        this.release(node, 'gone without a handoff (its writes are fenced)');
      else if (!this.opts.board) this.release(node, 'no handoff board');
    }
  }

  private release(node: string, why: string): void {
    const shards = this.pending.get(node);
    this.pending.delete(node);
    clearTimeout(this.pendingTimers.get(node));
    this.pendingTimers.delete(node);
    if (!shards) return;
    for (const s of shards) this.pendingShard[s] = 0;
    const routine = why === 'handed off' || why === 'no longer gained';
    if (why.startsWith('timed out')) this.counters.handoffTimeouts++;
    this.opts.log?.(
      `router: ${shards.size} shards from ${node} released: ${why}`,
      routine ? 'info' : 'warn',
    );
    for (const w of this.releaseWaiters.splice(0)) w();
    this.drained();
  }

  /** Resolves once the shard no longer waits for its previous owner. */
  private async whenReleased(shard: number): Promise<void> {
    while (this.pendingShard[shard] === 1)
      await new Promise<void>((resolve) => this.releaseWaiters.push(resolve));
  }

  /** Shards waiting for their previous owner's handoff now. */
  get pendingShards(): number {
    let n = 0;
    for (const s of this.pending.values()) n += s.size;
    return n;
  }

  /** Resolves once this node's threads have let go of every shard they lost so far. */
  handoffDone(): Promise<void> {
    return this.handoff;
  }

  /** Tells the cluster this node is about to leave (its gainers then wait for its last saves). */
  async announceLeaving(): Promise<void> {
    await this.opts.board?.publish(this.opts.node, this.view.signature, this.viewSince, 'leaving');
  }

  /**
   * After leaving the membership: every vehicle of this node goes to the others (saved first,
   * then the marker says "left"). A last node keeps its vehicles (they are saved at close).
   */
  async handOffAll(): Promise<void> {
    this.leaving = true;
    const hosting = this.hosting(this.members);
    if (hosting.length > 0) {
      clearTimeout(this.settleTimer);
      this.latest = {
        view: new PlacementView(hosting),
        revision: this.seenRevision,
        since: this.sinceOf(hosting),
      };
      this.apply();
    }
    await this.handoff;
  }

  /** Follows every live peer's events for the kinds wanted here (none wanted: no feeds). */
  private syncFeeds(): void {
    const events = this.opts.events;
    if (!events || this.closed) return;
    const kinds = events.cluster.wantedKinds();
    kinds.delete('ackLatency'); // a node's own acknowledgement latency stays its own
    const key = [...kinds].sort().join(',');
    const live = new Set(
      this.members.filter((m) => m.node !== this.opts.node && m.peer).map((m) => m.node),
    );
    for (const [node, feed] of this.feeds)
      if (!live.has(node) || [...feed.kinds].sort().join(',') !== key) {
        feed.close();
        this.feeds.delete(node);
      }
    if (kinds.size === 0) return;
    for (const node of live) {
      if (this.feeds.has(node)) continue;
      if (!this.channel(node)) continue;
      this.feeds.set(
        node,
        new PeerEventFeed(
          // Looked up at each (re)connection: the peer's address may have changed since.
          () => this.channel(node)?.callClient(),
          this.opts.node,
          kinds,
          (e) => events.cluster.publish(e),
        ),
      );
    }
  }

  /** Resolves once every peer produces the event kinds subscribed to here so far. */
  async eventsReady(): Promise<void> {
    await Promise.all([...this.feeds.values()].map((f) => f.ready));
  }

  /** True while this node is cut off and serves none of its own vehicles. */
  get isolated(): boolean {
    return this.cutOff;
  }

  /**
   * Cut off (its lease was revoked, or etcd is out of its reach while its peers reach it): the
   * others own its vehicles now, so it hands every one over (saved first; their later writes
   * are fenced anyway) and routes all frames to the others, until it is a member again. A node
   * with nobody to hand to keeps serving.
   */
  setIsolated(isolated: boolean, why: string): void {
    if (this.cutOff === isolated) return;
    // Registered again meanwhile: it serves again only once it sees its own new registration.
    if (!isolated && this.rejoinRevision !== undefined) {
      this.resumeIfRejoined();
      return;
    }
    this.cutOff = isolated;
    this.counters.isolations += isolated ? 1 : 0;
    this.opts.log?.(
      `router: ${isolated ? 'cut off' : 'back in the cluster'}: ${why}`,
      isolated ? 'warn' : 'info',
    );
    const hosting = this.hosting(this.members);
    if (hosting.length === 0) {
      this.cutOff = false;
      return;
    }
    clearTimeout(this.settleTimer);
    this.latest = {
      view: new PlacementView(hosting),
      revision: this.seenRevision,
      since: this.sinceOf(hosting),
    };
    this.apply();
  }

  /**
   * Registered again after its lease was lost, by a write at `revision`: it serves again once its
   * view of the membership is at least that new, so its epoch is newer than that of whoever
   * took its vehicles meanwhile (they did after its old key went, before this write).
   */
  rejoined(revision: number): void {
    if (!this.cutOff) return;
    this.rejoinRevision = revision;
    this.resumeIfRejoined();
  }

  private resumeIfRejoined(): void {
    const at = this.rejoinRevision;
    if (at === undefined || this.seenRevision < at) return;
    if (!this.members.some((m) => m.node === this.opts.node)) return;
    this.rejoinRevision = undefined;
    this.cutOff = false;
    this.opts.log?.('router: back in the cluster: registered again', 'info');
    clearTimeout(this.settleTimer);
    const hosting = this.hosting(this.members);
    this.latest = {
      view: new PlacementView(hosting),
      revision: this.seenRevision,
      since: this.sinceOf(hosting),
    };
    this.apply();
  }

  /**
   * How long this node's registration has left as etcd sees it now, asked of its peers that are
   * registered themselves (the least they report); undefined when no peer both reaches etcd and
   * is registered: etcd is down, or the whole cluster is registering again, and nobody would
   * take this node's vehicles.
   */
  async registrationLeftByPeers(): Promise<number | undefined> {
    const self = this.opts.node;
    const peers = [...new Set(this.members.map((m) => m.node))].filter((n) => n !== self);
    const answers = await Promise.all(
      peers.map((n) =>
        this.call<{ mine: number | null; yours: number | null }>(n, 'remainingFor', [self], 1500)
          .then((a) => (a.mine !== null && a.mine > 0 ? a.yours : null))
          .catch(() => null),
      ),
    );
    const known = answers.filter((a): a is number => a !== null);
    return known.length === 0 ? undefined : Math.min(...known);
  }

  /** The node and worker that own the vehicle under the current placement. */
  ownerOf(vehicleId: string): { node: string; worker: number } {
    const i = this.view.placement.ownerOf(vehicleId);
    return { node: this.view.nodes[i]!, worker: this.view.workers[i]! };
  }

  /** The local worker that owns the vehicle; -1 when another node owns it. */
  localWorkerOf(vehicleId: string): number {
    const i = this.view.placement.ownerOf(vehicleId);
    return this.view.nodes[i] === this.opts.node ? this.view.workers[i]! : -1;
  }

  /** Shards per node under the current placement (for status and tests). */
  shardsPerNode(): Map<string, number> {
    const out = new Map<string, number>();
    this.view.placement.load().forEach((n, i) => {
      const node = this.view.nodes[i]!;
      out.set(node, (out.get(node) ?? 0) + n);
    });
    return out;
  }

  // --- data plane ---

  deliver(vehicleId: string, d: GatewayDelivery): boolean {
    const shard = shardOf(vehicleId);
    const owner = this.view.nodeOfShard(shard);
    if (owner === this.opts.node) {
      // Gained from a node still saving it: the frame waits (the socket pauses).
      if (this.pendingShard[shard] === 1) return false;
      return this.host.deliver(vehicleId, d);
    }
    const ok = this.channel(owner)?.deliver(vehicleId, d, 0) ?? false;
    if (ok) this.counters.routedOut++;
    return ok;
  }

  /** A record from a peer's stream: ours, or relayed to the owner we see. */
  private deliverFromPeer(vehicleId: string, d: GatewayDelivery, hops: number): boolean {
    const shard = shardOf(vehicleId);
    const owner = this.view.nodeOfShard(shard);
    if (owner === this.opts.node) {
      if (this.pendingShard[shard] === 1) return false;
      const ok = this.host.deliver(vehicleId, d);
      if (ok) this.counters.routedIn++;
      return ok;
    }
    // Our view says another node owns it: relay it there. Views agree within moments; a record
    // still bouncing after two relays is given up (its terminal connects again and resends).
    if (hops >= MAX_RELAYS) {
      this.counters.relayLimit++;
      d.link.close('routing between nodes did not settle');
      return true;
    }
    const ok = this.channel(owner)?.deliver(vehicleId, d, (hops + 1) as 1 | 2) ?? false;
    if (ok) this.counters.relayed++;
    return ok;
  }

  /**
   * A record a worker sent back (its vehicle moved after the record was posted): routed again,
   * in order behind any others sent back. Bounded by the workers' credit.
   */
  reroute(vehicleId: string, d: GatewayDelivery): void {
    this.counters.rerouted++;
    if (this.bounced.length === 0 && this.canReroute(vehicleId) && this.deliver(vehicleId, d))
      return;
    this.bounced.push({ vehicleId, d });
  }

  /**
   * A record sent back by a worker goes out again, except to a local worker while this node's
   * threads are still taking a new placement (the worker would send it back again: a loop).
   */
  private canReroute(vehicleId: string): boolean {
    return this.assigning === 0 || this.localWorkerOf(vehicleId) < 0;
  }

  private channel(node: string): PeerChannel | undefined {
    let c = this.channels.get(node);
    if (c) return c;
    const address = this.addresses.get(node);
    if (address === undefined || this.closed) return undefined;
    c = new PeerChannel({
      self: this.opts.node,
      linkPrefix: this.opts.linkPrefix,
      peer: node,
      address,
      maxInFlight: this.opts.maxInFlightPerPeer ?? 8192,
      linkByNumber: (n) => this.linkByNumber(n),
      drained: () => this.drained(),
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.channels.set(node, c);
    return c;
  }

  linkByNumber(n: number): TerminalLink | undefined {
    if (n >= PROXY_LINK_BASE) return this.proxies.get(n)?.link;
    return this.gateway?.linkByNumber(n);
  }

  closeWhere(match: (vehicleId: string) => boolean, reason: string): number {
    let n = this.gateway?.closeWhere(match, reason) ?? 0;
    for (const p of this.proxies.values())
      if (p.link.vehicleId !== undefined && match(p.link.vehicleId)) {
        p.link.close(reason);
        n++;
      }
    return n;
  }

  private drained(): void {
    let n = 0;
    while (
      n < this.bounced.length &&
      this.canReroute(this.bounced[n]!.vehicleId) &&
      this.deliver(this.bounced[n]!.vehicleId, this.bounced[n]!.d)
    )
      n++;
    if (n > 0) this.bounced.splice(0, n);
    for (const i of this.inbound) i.retry();
    if (this.local?.storageFull()) return;
    for (const fn of this.drainListeners) fn();
  }

  storageFull(): boolean {
    return this.host.storageFull();
  }

  onDrain(fn: () => void): void {
    this.drainListeners.add(fn);
  }

  // --- the peer service ---

  /** Serves the node-to-node service; returns its port. */
  async listen(host: string, port: number): Promise<number> {
    const server = peerServer();
    server.addService(peerService().service, {
      route: (stream: RouteServerStream) => this.acceptStream(stream),
      events: (call: EventsServerStream) => {
        const events = this.opts.events;
        if (!events || this.closed) {
          call.end();
          return;
        }
        this.servedEvents.add(call);
        call.on('close', () => this.servedEvents.delete(call));
        servePeerEvents(call, events.local, events.applied);
      },
      call: (
        call: grpc.ServerUnaryCall<PeerCall, PeerReply>,
        callback: grpc.sendUnaryData<PeerReply>,
      ) => {
        this.answerCall(call.request).then(
          (resultJson) => callback(null, { resultJson }),
          (err: unknown) =>
            callback({
              code:
                err instanceof VehiclesUnavailable ? grpc.status.UNAVAILABLE : grpc.status.INTERNAL,
              details: err instanceof Error ? err.message : String(err),
            }),
        );
      },
    });
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    if (!peerServerWindow(server))
      this.opts.log?.(
        "router: the peer service's HTTP/2 window could not be opened (grpc-js changed?): the hop runs at HTTP/2's default window",
      );
    this.server = server;
    return bound;
  }

  private acceptStream(stream: RouteServerStream): void {
    if (this.closed) {
      stream.destroy(new Error('node stopping'));
      return;
    }
    const inbound = new PeerInbound(
      stream,
      this.proxies,
      (vehicleId, d, hops) => this.deliverFromPeer(vehicleId, d, hops),
      (ended, proxies) => {
        this.inbound.delete(ended);
        // The peer's terminals are gone from here: this node's vehicles hear it (they go
        // offline). Not relayed: an owner elsewhere gets the terminal's frames from the
        // terminal's own node, on a stream of theirs that tells it when the connection closes.
        const at = Date.now();
        for (const p of proxies) {
          const vehicleId = p.link.vehicleId;
          if (vehicleId === undefined || this.localWorkerOf(vehicleId) < 0) continue;
          this.deliverFromPeer(
            vehicleId,
            {
              kind: 'linkClosed',
              link: p.link,
              linkNumber: p.number,
              reason: 'peer stream ended',
              at,
            },
            MAX_RELAYS,
          );
        }
      },
    );
    this.inbound.add(inbound);
  }

  private async answerCall(req: PeerCall): Promise<string> {
    this.counters.callsIn++;
    const args = fromPeerJson<unknown[]>(req.argsJson);
    const method = req.method as CallMethod;
    if (method === 'online') return toPeerJson(await this.host.online());
    if (method === 'inArea')
      return toPeerJson(
        await this.host.inArea(args[0] as AreaShape, args[1] as AreaNowFilter, Number(args[2])),
      );
    if (method === 'remainingFor') {
      const [mine, yours] = await Promise.all([
        this.opts.remainingFor?.(this.opts.node),
        this.opts.remainingFor?.(String(args[0])),
      ]);
      return toPeerJson({ mine: mine ?? null, yours: yours ?? null });
    }
    const vehicleId = String(args[0]);
    // Only the owner answers for a vehicle: a caller with an older view tries again.
    if ((await this.answering(vehicleId)) !== this.opts.node)
      throw new NotOwner(`${this.opts.node} does not own vehicle ${vehicleId} (views differ)`);
    switch (method) {
      case 'command':
        return toPeerJson(
          await this.onThisNode(() =>
            this.host.command(vehicleId, String(args[1]), args[2] as Message),
          ),
        );
      case 'vehicle':
        return toPeerJson((await this.host.vehicle(vehicleId)) ?? null);
      case 'confirmAlarms':
        return toPeerJson(
          await this.onThisNode(() =>
            this.host.confirmAlarms(
              vehicleId,
              Number(args[1]),
              String(args[2]),
              String(args[3] ?? 'api'),
            ),
          ),
        );
      default:
        throw new Error(`unknown peer call ${String(req.method)}`);
    }
  }

  private call<T>(
    node: string,
    method: CallMethod,
    args: unknown[],
    deadlineMs?: number,
  ): Promise<T> {
    const channel = this.channel(node);
    if (!channel) return Promise.reject(new VehiclesUnavailable(`node ${node} is not reachable`));
    this.counters.callsOut++;
    return new Promise<T>((resolve, reject) => {
      const options = deadlineMs !== undefined ? { deadline: Date.now() + deadlineMs } : {};
      channel.callClient().call({ method, argsJson: toPeerJson(args) }, options, (err, reply) => {
        if (err) {
          reject(
            err.code === grpc.status.UNAVAILABLE
              ? new VehiclesUnavailable(`${node}: ${err.details}`)
              : new Error(`${node}: ${err.details}`),
          );
          return;
        }
        resolve(fromPeerJson<T>(reply?.resultJson ?? 'null'));
      });
    });
  }

  // --- the services' operations, answered by the owner ---

  /**
   * The node that answers for the vehicle now: this one once any handoff of its shard is over
   * (the previous owner's state is in the database), else the owner elsewhere.
   */
  private async answering(vehicleId: string): Promise<string> {
    for (;;) {
      const shard = shardOf(vehicleId);
      const owner = this.view.nodeOfShard(shard);
      if (owner !== this.opts.node || this.pendingShard[shard] !== 1) return owner;
      await this.whenReleased(shard);
    }
  }

  async command(vehicleId: string, id: string, message: Message): Promise<CommandEvent> {
    const owner = await this.answering(vehicleId);
    if (owner === this.opts.node)
      return this.onThisNode(() => this.host.command(vehicleId, id, message));
    return this.call(owner, 'command', [vehicleId, id, message]);
  }

  async vehicle(vehicleId: string): Promise<VehicleView | undefined> {
    const owner = await this.answering(vehicleId);
    if (owner === this.opts.node) return this.host.vehicle(vehicleId);
    return (await this.call<VehicleView | null>(owner, 'vehicle', [vehicleId])) ?? undefined;
  }

  async confirmAlarms(
    vehicleId: string,
    bits: number,
    commandId: string,
    operator?: string,
  ): Promise<AlarmConfirmation> {
    const owner = await this.answering(vehicleId);
    if (owner === this.opts.node)
      return this.onThisNode(() => this.host.confirmAlarms(vehicleId, bits, commandId, operator));
    return this.call(owner, 'confirmAlarms', [vehicleId, bits, commandId, operator]);
  }

  /** A call on this node's threads; one that raced a placement change is UNAVAILABLE (retry). */
  private async onThisNode<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Error && err.name === 'NotOwnedHere') throw new NotOwner(err.message);
      throw err;
    }
  }

  assign(): Promise<number> {
    return Promise.reject(new Error('the router assigns its own threads (setMembers)'));
  }

  /** Online vehicles of the whole cluster: this node's and every peer's (a peer down: skipped). */
  async online(): Promise<OnlineVehicle[]> {
    const peers = this.placedPeers();
    const lists = await Promise.all([
      this.host.online(),
      ...peers.map((n) =>
        this.call<OnlineVehicle[]>(n, 'online', []).catch((err: unknown) => {
          this.opts.log?.(`router: online list of ${n} failed: ${String(err)}`);
          return [] as OnlineVehicle[];
        }),
      ),
    ]);
    return lists.flat();
  }

  /**
   * Vehicles whose last position is in the area now, over the whole cluster: this node's threads
   * and every peer's (each answers for its own actors), at most `limit`. A peer that does not
   * answer is skipped and the answer says `partial`.
   */
  async inArea(
    shape: AreaShape,
    filter: AreaNowFilter,
    limit: number,
  ): Promise<AreaNowAnswer & { partial?: boolean }> {
    const peers = this.placedPeers();
    let partial = false;
    const answers = await Promise.all([
      this.host.inArea(shape, filter, limit),
      ...peers.map((n) =>
        this.call<AreaNowAnswer>(n, 'inArea', [shape, filter, limit], 5000).catch(
          (err: unknown) => {
            partial = true;
            this.opts.log?.(`router: area query on ${n} failed: ${String(err)}`);
            return { vehicles: [], more: false };
          },
        ),
      ),
    ]);
    const merged = mergeAreaAnswers(answers, limit);
    return partial ? { ...merged, partial } : merged;
  }

  /** Vehicles online whose actors run on this node. */
  localOnline(): Promise<OnlineVehicle[]> {
    return this.host.online();
  }

  /** The other nodes of the placement applied now (each answers for its own vehicles). */
  private placedPeers(): string[] {
    return [...new Set(this.view.nodes)].filter((n) => n !== this.opts.node);
  }

  /** What crossed between nodes so far. */
  routing(): RouterStats {
    return { ...this.counters, proxyLinks: this.proxies.size };
  }

  // --- this node's own (not routed) ---

  stats(): Promise<ThreadStats[]> {
    return this.host.stats();
  }

  flush(): Promise<void> {
    return this.host.flush();
  }

  passivateAll(): Promise<void> {
    return this.host.passivateAll();
  }

  memory(): Promise<ThreadMemory[]> {
    return this.host.memory();
  }

  wantEvents(kinds: Iterable<VehicleEventKind>): Promise<void> {
    return this.host.wantEvents(kinds);
  }

  /** Streams to peers end; the service stops taking streams; the local host closes. */
  async close(): Promise<void> {
    this.closed = true;
    // Calls waiting for a handoff go on (and find the node stopping) instead of hanging.
    this.pending.clear();
    this.pendingShard.fill(0);
    for (const w of this.releaseWaiters.splice(0)) w();
    for (const call of this.servedEvents) call.end();
    this.servedEvents.clear();
    for (const f of this.feeds.values()) f.close();
    this.feeds.clear();
    clearTimeout(this.settleTimer);
    for (const t of this.pendingTimers.values()) clearTimeout(t);
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
    for (const i of [...this.inbound]) i.end();
    const server = this.server;
    if (server) {
      // Peers' calls get a moment to finish; then whatever is open is cut.
      await Promise.race([
        new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
        new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()),
      ]);
      server.forceShutdown();
    }
    await this.local?.close();
  }
}
