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
import type { GatewayDelivery } from './gateway.js';
import type { Member } from './memberTable.js';
import { PeerChannel } from './peerChannel.js';
import { PeerInbound, ProxyTerminalLink } from './peerInbound.js';
import { PROXY_LINK_BASE, ProxyLinkTable } from './peerLinks.js';
import {
  fromPeerJson,
  peerService,
  toPeerJson,
  type PeerCall,
  type PeerReply,
  type RouteServerStream,
} from './peerService.js';
import { clusterSlots, parseSlotKey, Placement } from './placement.js';
import type { ThreadMemory, VehicleHost } from './vehicleHost.js';
import type { OnlineVehicle, ShardStats } from './vehicleShard.js';
import { VehiclesUnavailable, type LinkDirectory } from './workerHost.js';

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
  log?: (line: string) => void;
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
}

/** Not this node's vehicle (views of the membership differ for a moment): try again. */
export class NotOwner extends VehiclesUnavailable {}

type CallMethod = 'command' | 'vehicle' | 'confirmAlarms' | 'online';

export class ClusterRouter implements VehicleHost, LinkDirectory {
  private readonly counters: RouterStats = {
    routedOut: 0,
    relayed: 0,
    routedIn: 0,
    callsIn: 0,
    callsOut: 0,
    proxyLinks: 0,
    placementChanges: 0,
  };
  private local: VehicleHost | undefined;
  private gateway: LinkDirectory | undefined;
  private placement: Placement;
  /** Per slot index of the placement: its node, and its worker index there. */
  private slotNodes: string[] = [];
  private slotWorkers: number[] = [];
  private slotSignature = '';
  private readonly addresses = new Map<string, string>();
  private readonly channels = new Map<string, PeerChannel>();
  private readonly inbound = new Set<PeerInbound>();
  private readonly proxies: ProxyLinkTable<ProxyTerminalLink>;
  private readonly drainListeners = new Set<() => void>();
  private server: grpc.Server | undefined;
  private closed = false;
  /** The membership revision the placement comes from (0: this node alone, before joining). */
  revision = 0;

  constructor(private readonly opts: RouterOptions) {
    this.proxies = new ProxyLinkTable(opts.maxProxyLinks ?? 1_000_000);
    this.placement = this.place([{ node: opts.node, workers: opts.workers }]);
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

  private place(members: readonly { node: string; workers: number }[]): Placement {
    const slots = clusterSlots(members);
    const placement = new Placement(slots);
    this.slotNodes = slots.map((k) => parseSlotKey(k).node);
    this.slotWorkers = slots.map((k) => parseSlotKey(k).worker);
    this.slotSignature = slots.join(',');
    return placement;
  }

  /**
   * The members changed (etcd watch): the placement is rebuilt when the slots changed, peers'
   * addresses are kept current. Members without a peer address host nothing of the cluster's.
   */
  setMembers(members: readonly Member[], revision: number): void {
    const hosting = members.filter(
      (m) => m.workers > 0 && (m.node === this.opts.node || m.peer !== undefined),
    );
    if (!hosting.some((m) => m.node === this.opts.node))
      hosting.push({ node: this.opts.node, workers: this.opts.workers } as Member);
    for (const m of hosting)
      if (m.node !== this.opts.node && m.peer !== undefined) {
        const known = this.channels.get(m.node);
        if (known && known.address !== m.peer) {
          known.close();
          this.channels.delete(m.node);
        }
        this.addresses.set(m.node, m.peer);
      }
    const signature = clusterSlots(hosting).join(',');
    if (signature === this.slotSignature) return;
    this.placement = this.place(hosting);
    this.revision = revision;
    this.counters.placementChanges++;
    // Peers no longer in the cluster: their streams go.
    const live = new Set(hosting.map((m) => m.node));
    for (const [node, channel] of this.channels)
      if (!live.has(node)) {
        channel.close();
        this.channels.delete(node);
        this.addresses.delete(node);
      }
    // Held records may belong elsewhere now; paused sockets try again.
    this.drained();
  }

  /** The node and worker that own the vehicle under the current placement. */
  ownerOf(vehicleId: string): { node: string; worker: number } {
    const i = this.placement.ownerOf(vehicleId);
    return { node: this.slotNodes[i]!, worker: this.slotWorkers[i]! };
  }

  /** The local worker that owns the vehicle; -1 when another node owns it. */
  localWorkerOf(vehicleId: string): number {
    const i = this.placement.ownerOf(vehicleId);
    return this.slotNodes[i] === this.opts.node ? this.slotWorkers[i]! : -1;
  }

  /** Shards per node under the current placement (for status and tests). */
  shardsPerNode(): Map<string, number> {
    const out = new Map<string, number>();
    this.placement.load().forEach((n, i) => {
      const node = this.slotNodes[i]!;
      out.set(node, (out.get(node) ?? 0) + n);
    });
    return out;
  }

  // --- data plane ---

  deliver(vehicleId: string, d: GatewayDelivery): boolean {
    const owner = this.ownerOf(vehicleId).node;
    if (owner === this.opts.node) return this.host.deliver(vehicleId, d);
    const ok = this.channel(owner)?.deliver(vehicleId, d, 0) ?? false;
    if (ok) this.counters.routedOut++;
    return ok;
  }

  /** A record from a peer's stream: ours, or relayed once to the owner we see. */
  private deliverFromPeer(vehicleId: string, d: GatewayDelivery, hops: number): boolean {
    const owner = this.ownerOf(vehicleId).node;
    if (owner === this.opts.node) {
      const ok = this.host.deliver(vehicleId, d);
      if (ok) this.counters.routedIn++;
      return ok;
    }
    // Our view says another node owns it. Relay once; a record that already crossed two nodes
    // waits for the views to agree (a placement change offers it again).
    if (hops >= 1) return false;
    const ok = this.channel(owner)?.deliver(vehicleId, d, 1) ?? false;
    if (ok) this.counters.relayed++;
    return ok;
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
    const server = new grpc.Server({
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
    server.addService(peerService().service, {
      route: (stream: RouteServerStream) => this.acceptStream(stream),
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
        // The peer's terminals are gone from here: their vehicles hear it (they go offline).
        const at = Date.now();
        for (const p of proxies)
          if (p.link.vehicleId !== undefined)
            this.deliverFromPeer(
              p.link.vehicleId,
              {
                kind: 'linkClosed',
                link: p.link,
                linkNumber: p.number,
                reason: 'peer stream ended',
                at,
              },
              1,
            );
      },
    );
    this.inbound.add(inbound);
  }

  private async answerCall(req: PeerCall): Promise<string> {
    this.counters.callsIn++;
    const args = fromPeerJson<unknown[]>(req.argsJson);
    const method = req.method as CallMethod;
    if (method === 'online') return toPeerJson(await this.host.online());
    const vehicleId = String(args[0]);
    // Only the owner answers for a vehicle: a caller with an older view tries again.
    if (this.ownerOf(vehicleId).node !== this.opts.node)
      throw new NotOwner(`${this.opts.node} does not own vehicle ${vehicleId} (views differ)`);
    switch (method) {
      case 'command':
        return toPeerJson(await this.host.command(vehicleId, String(args[1]), args[2] as Message));
      case 'vehicle':
        return toPeerJson((await this.host.vehicle(vehicleId)) ?? null);
      case 'confirmAlarms':
        return toPeerJson(
          await this.host.confirmAlarms(vehicleId, Number(args[1]), String(args[2])),
        );
      default:
        throw new Error(`unknown peer call ${String(req.method)}`);
    }
  }

  private call<T>(node: string, method: CallMethod, args: unknown[]): Promise<T> {
    const channel = this.channel(node);
    if (!channel) return Promise.reject(new VehiclesUnavailable(`node ${node} is not reachable`));
    this.counters.callsOut++;
    return new Promise<T>((resolve, reject) => {
      channel.callClient().call({ method, argsJson: toPeerJson(args) }, {}, (err, reply) => {
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

  command(vehicleId: string, id: string, message: Message): Promise<CommandEvent> {
    const owner = this.ownerOf(vehicleId).node;
    if (owner === this.opts.node) return this.host.command(vehicleId, id, message);
    return this.call(owner, 'command', [vehicleId, id, message]);
  }

  async vehicle(vehicleId: string): Promise<VehicleView | undefined> {
    const owner = this.ownerOf(vehicleId).node;
    if (owner === this.opts.node) return this.host.vehicle(vehicleId);
    return (await this.call<VehicleView | null>(owner, 'vehicle', [vehicleId])) ?? undefined;
  }

  confirmAlarms(vehicleId: string, bits: number, commandId: string): Promise<AlarmConfirmation> {
    const owner = this.ownerOf(vehicleId).node;
    if (owner === this.opts.node) return this.host.confirmAlarms(vehicleId, bits, commandId);
    return this.call(owner, 'confirmAlarms', [vehicleId, bits, commandId]);
  }

  /** Online vehicles of the whole cluster: this node's and every peer's (a peer down: skipped). */
  async online(): Promise<OnlineVehicle[]> {
    const peers = [...new Set(this.slotNodes)].filter((n) => n !== this.opts.node);
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

  /** Vehicles online whose actors run on this node. */
  localOnline(): Promise<OnlineVehicle[]> {
    return this.host.online();
  }

  /** What crossed between nodes so far. */
  routing(): RouterStats {
    return { ...this.counters, proxyLinks: this.proxies.size };
  }

  // --- this node's own (not routed) ---

  stats(): Promise<ShardStats[]> {
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
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
    for (const i of [...this.inbound]) i.end();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await this.local?.close();
  }
}
