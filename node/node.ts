// One fleetmesh node: the JT/T 808 gateway on this thread, the vehicles in worker threads (or on
// this thread with `workers: 0`), each thread with its own batch writers to MongoDB, and the
// operations services call (commands, a vehicle's view, who is online, events).
import { Etcd3 } from 'etcd3';
import { MongoClient } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { CommandEvent } from '../actors/commandQueue.js';
import type {
  AlarmConfirmation,
  VehicleEvents,
  VehiclePolicy,
  VehicleView,
} from '../actors/vehicleActor.js';
import { dispatchEvent, kindsOf, type VehicleEvent } from '../actors/vehicleEvents.js';
import type { Message } from '../jt808/messages.js';
import {
  DEFAULT_RETENTION,
  RetentionSweeper,
  type RetentionPolicy,
} from '../storage/historyRetention.js';
import { ensureIndexes } from '../storage/schema.js';
import { NodeDrain, watchDrainOrder, type DrainOrder } from '../cluster/drain.js';
import { EventHub } from '../actors/eventHub.js';
import { Gateway, type GatewayDelivery, type GatewayOptions } from '../gateway/gateway.js';
import { HandoffBoard } from '../cluster/handoffBoard.js';
import type { FleetLog } from '../telemetry/log.js';
import { NodeMetrics, restartCounter, serveMetrics, watchStore } from './metrics.js';
import type { Member } from '../cluster/memberTable.js';
import { DEFAULT_LEASE_TTL_SECONDS, MemberNameTaken, Membership } from '../cluster/membership.js';
import {
  DEFAULT_CAPACITY,
  DEFAULT_THRESHOLDS,
  DEFAULT_ZONE,
  LoadSampler,
  worthPublishing,
  type LoadReport,
  type PublishThresholds,
} from '../cluster/loadReport.js';
import { ownWorkers } from '../cluster/placement.js';
import { ClusterRouter } from '../cluster/router.js';
import { LocalVehicleHost, type ThreadMemory, type VehicleHost } from '../hosting/vehicleHost.js';
import type { AreaNowAnswer, OnlineVehicle, ThreadStats } from '../hosting/vehicleThread.js';
import type { AreaNowFilter, AreaShape } from '../storage/historyShapes.js';
import { WorkerVehicleHost } from '../hosting/workerHost.js';

/** A vehicle's changed state is written this long after its first change (and at passivation). */
export const DEFAULT_SAVE_EVERY_MS = 30_000;

/**
 * Vehicles that left (disconnected, nothing since) are dropped from memory after 10 minutes: a
 * node that sees many vehicles come and go keeps only the recent ones, and a vehicle reconnecting
 * within minutes (a tunnel, a dead spot) still finds its actor.
 */
export const DEFAULT_IDLE_PASSIVATE_MS = 10 * 60_000;

export interface NodeOptions {
  node?: string;
  mongodbUri: string;
  database?: string;
  host?: string;
  /** Gateway port; 0 picks a free one. */
  port?: number;
  /** Vehicle worker threads; 0 keeps the vehicles on the gateway's thread. Default: one per core. */
  workers?: number;
  policy?: Partial<VehiclePolicy>;
  gateway?: Partial<Omit<GatewayOptions, 'deliver' | 'node' | 'bodies' | 'linkPrefix'>>;
  mailboxLimit?: number;
  /**
   * A vehicle leaves memory (its state saved) after this long without a message while its
   * terminal is not connected; 0 keeps every vehicle. Default DEFAULT_IDLE_PASSIVATE_MS.
   */
  idlePassivateMs?: number;
  events?: VehicleEvents;
  writer?: { maxBatch?: number; maxDelayMs?: number; maxBuffered?: number };
  /** Records a worker may hold before the gateway pauses reading. */
  maxInFlight?: number;
  /** Register in etcd and report the load there (see cluster/membership.ts). */
  membership?: NodeMembershipOptions;
  log?: (line: string) => void;
  /**
   * Structured logs (telemetry/log.ts): refused and bad frames, closed connections, store retries,
   * failed writes and stalls, actor errors, and the `log` lines when `log` is not given. The
   * vehicle threads log at its level on their own. None: no log at all.
   */
  logger?: FleetLog;
  /**
   * How long each collection keeps its documents, in days (storage/historyRetention.ts; FerretDB
   * has no TTL indexes, so the node deletes what is older, in bounded batches, hourly). Default
   * DEFAULT_RETENTION; false: keep everything. In a cluster only the first member by name sweeps.
   */
  retention?: Partial<RetentionPolicy> | false;
  /** Prometheus metrics at GET /metrics on this port (0: a free one; see node/metrics.ts). */
  metrics?: { port: number; host?: string };
}

export interface NodeMembershipOptions {
  etcdEndpoints: string[];
  /** The host other nodes and terminals reach this node at (see advertisedHost). */
  advertise?: string;
  /** host:port of this node's gRPC server, when it has one. */
  grpc?: string;
  /** Port of the node-to-node service (cluster/router.ts); 0 (default) picks a free one. */
  peerPort?: number;
  ttlSeconds?: number;
  /**
   * How often the load is sampled (default 1 s); it is written to etcd only when it moved past
   * the thresholds (cluster/loadReport.ts), and at least every `thresholds.maxSilentMs`.
   */
  loadIntervalMs?: number;
  /** Terminals this node is meant to hold (the locator balances by terminals / capacity). */
  capacity?: number;
  /** The zone this node runs in (terminals of the zone prefer it); default 'default'. */
  zone?: string;
  thresholds?: Partial<PublishThresholds>;
  /**
   * Drain (cluster/drain.ts): a terminal still connected this long after its 0x8105 is closed
   * (default 30 s); the 0x8105's time limit in minutes (default 60).
   */
  drain?: { closeAfterMs?: number; timeLimitMinutes?: number };
}

export interface FleetNode {
  node: string;
  port: number;
  gateway: Gateway;
  host: VehicleHost;
  /** This thread's own client, for reads (the writers live with the vehicles). */
  client: MongoClient;
  database: string;
  /** Every vehicle event, for subscribers with filters (the gRPC event stream). */
  events: EventHub;
  /** Resolves once every vehicle thread produces the event kinds subscribed to so far. */
  eventsReady(): Promise<void>;
  /**
   * Queues a downlink command for a vehicle (sent when its terminal is online, kept across
   * passivation and restarts). `settled` resolves with its final state, or 'refused' when the
   * vehicle's mailbox or queue is full; with 'queued' when the vehicle is passivated or the node
   * stops first (the command stays queued in storage; its later states go to the commands log);
   * it rejects with VehiclesUnavailable when the vehicle's worker died. Ignoring it is safe.
   */
  command(vehicleId: string, message: Message): { id: string; settled: Promise<CommandEvent> };
  vehicle(vehicleId: string): Promise<VehicleView | undefined>;
  /**
   * An operator handled a vehicle's open alarms (`bits` mask, 0 = all): their records are marked
   * handled, and a 0x8203 is queued for the bits the terminal keeps until confirmed.
   */
  confirmAlarms(vehicleId: string, bits: number): Promise<AlarmConfirmation>;
  online(): Promise<OnlineVehicle[]>;
  /**
   * Vehicles whose last position is in the area now (rectangle, circle or polygon; see
   * storage/historyShapes.ts areaShape), filtered, at most `limit`, from the actors of every node
   * (`partial`: a node did not answer).
   */
  inArea(
    shape: AreaShape,
    filter: AreaNowFilter,
    limit: number,
  ): Promise<AreaNowAnswer & { partial?: boolean }>;
  stats(): Promise<ThreadStats[]>;
  /** Memory of the threads that hold vehicles (the main thread's too when workers: 0). */
  memory(): Promise<ThreadMemory[]>;
  /** Every turn done and every buffered write in the database. */
  flush(): Promise<void>;
  passivateAll(): Promise<void>;
  /** The cluster's live members as this node sees them (empty without `membership`). */
  members(): Member[];
  membership: Membership | undefined;
  /** Where vehicles live across the cluster (with `membership`). */
  router: ClusterRouter | undefined;
  /** Sends the terminals away while an operator's drain order stands (with `membership`). */
  drain: NodeDrain | undefined;
  /** The metrics and the port they are served on, with `metrics`. */
  metrics: { port: number; collector: NodeMetrics } | undefined;
  stop(): Promise<void>;
}

export async function startNode(opts: NodeOptions): Promise<FleetNode> {
  const node = opts.node ?? 'node-1';
  const database = opts.database ?? 'fleetmesh';
  // Short server selection: a database outage shows up as retries in the batch writers
  // (which never drop) instead of 30-second stalls.
  const client = new MongoClient(opts.mongodbUri, {
    serverSelectionTimeoutMS: 2000,
    connectTimeoutMS: 2000,
  });
  await client.connect();
  await ensureIndexes(client.db(database));
  const policy: VehiclePolicy = {
    registration: 'open',
    ackMode: 'durable',
    saveEveryMs: DEFAULT_SAVE_EVERY_MS,
    ...opts.policy,
  };
  // Subscribers read every node's events from `hub`; peers read this node's own from `localHub`.
  const hub = new EventHub();
  const localHub = new EventHub();
  const fixedKinds = kindsOf(opts.events);
  const onEvent = (e: VehicleEvent): void => {
    if (opts.events) dispatchEvent(e, opts.events);
    localHub.publish(e);
    hub.publish(e);
  };
  const linkPrefix = `${node}/${Date.now().toString(36)}/`;
  const workers = opts.workers ?? availableParallelism();
  const logger = opts.logger;
  // The node's own lines name their subsystem first ("membership: …", "vehicle worker 2 …");
  // warnings unless the line says it is routine.
  const log =
    opts.log ??
    (logger
      ? (line: string, level: 'info' | 'warn' = 'warn') =>
          logger[level](`node.${/^[a-z]+/.exec(line)?.[0] ?? 'other'}`, {}, line)
      : undefined);
  const metrics = opts.metrics ? new NodeMetrics() : undefined;
  const threadOptions = {
    policy,
    ...(opts.mailboxLimit !== undefined ? { mailboxLimit: opts.mailboxLimit } : {}),
    idlePassivateMs: opts.idlePassivateMs ?? DEFAULT_IDLE_PASSIVATE_MS,
    ...(opts.writer ? { writer: opts.writer } : {}),
  };
  // A member of a cluster places its vehicles over every member's workers and reaches the
  // others' through the router; a node alone keeps them all.
  const boardEtcd = opts.membership
    ? new Etcd3({ hosts: opts.membership.etcdEndpoints })
    : undefined;
  const board = boardEtcd ? new HandoffBoard(boardEtcd) : undefined;
  try {
    await board?.start();
  } catch (err) {
    boardEtcd?.close();
    await client.close();
    throw err;
  }
  const router = opts.membership
    ? new ClusterRouter({
        node,
        linkPrefix,
        workers: Math.max(1, workers),
        ...(board ? { board } : {}),
        ...(log ? { log } : {}),
        remainingFor: async (member: string) => joined?.membership.remainingFor(member, 700),
        events: { local: localHub, cluster: hub, applied: () => kindsApplied },
      })
    : undefined;
  let host: VehicleHost;
  let workerHost: WorkerVehicleHost | undefined;
  if (workers > 0) {
    workerHost = new WorkerVehicleHost({
      workers,
      config: {
        ...threadOptions,
        node,
        linkPrefix,
        mongodbUri: opts.mongodbUri,
        database,
        ...(logger ? { logLevel: logger.level } : {}),
      },
      events: fixedKinds,
      onEvent,
      ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
      ...(log ? { log } : {}),
      ...(router
        ? {
            workerOf: (vehicleId: string) => router.localWorkerOf(vehicleId),
            onBounce: (vehicleId: string, d: GatewayDelivery) => router.reroute(vehicleId, d),
          }
        : { workerOf: ownWorkers(workers) }),
    });
    await workerHost.ready();
    host = workerHost;
  } else {
    const local = {
      ...threadOptions,
      ...(logger ? { log: logger.child({ thread: 'main' }) } : {}),
    };
    host = new LocalVehicleHost(client.db(database), local, {
      kinds: fixedKinds,
      onEvent,
    });
  }
  if (router) {
    router.attachLocal(host);
    host = router;
  }
  // The workers learn the wanted kinds asynchronously; `eventsReady` waits for the last change.
  let kindsApplied: Promise<void> = Promise.resolve();
  const kindsChanged = (): void => {
    const kinds = new Set([...fixedKinds, ...hub.wantedKinds(), ...localHub.wantedKinds()]);
    kindsApplied = host.wantEvents(kinds).catch(() => undefined);
  };
  hub.onKindsChanged(kindsChanged);
  localHub.onKindsChanged(kindsChanged);
  const gateway = new Gateway({
    node,
    linkPrefix,
    ...(opts.host ? { host: opts.host } : {}),
    port: opts.port ?? 0,
    ...opts.gateway,
    bodies: host.bodies,
    deliver: (vehicleId, d) => host.deliver(vehicleId, d),
    storageFull: () => host.storageFull(),
    ...(logger
      ? {
          log: (cause: string, fields: Record<string, string | number>) =>
            logger.warn(
              // Each reason of a bad frame has its own budget: one flood does not hide another.
              `gateway.${cause}${fields.reason !== undefined ? `.${fields.reason}` : ''}`,
              fields,
              `gateway: ${cause}`,
            ),
        }
      : {}),
    ...(metrics ? { onDownlink: metrics.onDownlink } : {}),
  });
  workerHost?.attach(router ?? gateway);
  router?.attachGateway(gateway);
  host.onDrain(() => gateway.resume());
  const port = await gateway.listen();
  const peerPort = router
    ? await router.listen(opts.host ?? '127.0.0.1', opts.membership?.peerPort ?? 0)
    : undefined;
  let joined: Awaited<ReturnType<typeof joinMembership>> | undefined;
  let stopContactWatch: (() => void) | undefined;
  try {
    if (opts.membership)
      joined = await joinMembership(
        node,
        opts.membership,
        opts.host,
        port,
        // Its slots in the cluster's placement: the worker threads, or the main thread alone.
        Math.max(1, workers),
        peerPort,
        gateway,
        log,
      );
    if (joined && router) {
      const membership = joined.membership;
      membership.onChange((members, revision) => router.setMembers(members, revision));
      router.registered(membership.registeredRevision);
      router.setMembers(membership.members(), membership.table.revision);
      stopContactWatch = watchContact(membership, router);
    }
  } catch (err) {
    // Not a member (etcd unreachable, the name in use): this node must not serve.
    await gateway.close();
    await host.close();
    await board?.close();
    boardEtcd?.close();
    await client.close();
    throw err;
  }
  const stopWatch = logger ? watchStore(() => host.stats(), logger) : undefined;
  const sweeper =
    opts.retention === false
      ? undefined
      : new RetentionSweeper(
          client.db(database),
          { ...DEFAULT_RETENTION, ...opts.retention },
          {
            // One sweeper per cluster is enough: the first member by name (all would only repeat it).
            shouldSweep: () => {
              const members = joined?.membership.members() ?? [];
              return members.length === 0 || members[0]!.node === node;
            },
            onError: (err: unknown) => log?.(`retention: sweep failed: ${String(err)}`),
          },
        );
  sweeper?.start();
  let served: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  if (metrics && opts.metrics) {
    const restarts = workerHost ? restartCounter(workerHost.restarts) : undefined;
    metrics.attach({
      gateway,
      events: hub,
      stats: () => host.stats(),
      members: () => joined?.membership.members() ?? [],
      ...(restarts ? { workerRestarts: restarts } : {}),
      ...(router
        ? {
            routing: () => ({
              ...router.routing(),
              pendingShards: router.pendingShards,
              isolated: router.isolated,
            }),
          }
        : {}),
    });
    try {
      served = await serveMetrics(metrics, {
        port: opts.metrics.port,
        ...(opts.metrics.host ? { host: opts.metrics.host } : {}),
      });
    } catch (err) {
      // The port is taken: a node nobody can watch does not start.
      stopWatch?.();
      metrics.detach();
      await joined?.stop();
      await gateway.close();
      await host.close();
      await client.close();
      throw err;
    }
  }
  return {
    node,
    port,
    gateway,
    host,
    client,
    database,
    events: hub,
    eventsReady: async () => {
      await kindsApplied;
      await router?.eventsReady();
    },
    command(vehicleId, message) {
      const id = randomUUID();
      const settled = host.command(vehicleId, id, message);
      settled.catch(() => undefined); // a caller that does not wait must not stop the process
      return { id, settled };
    },
    vehicle: (vehicleId) => host.vehicle(vehicleId),
    confirmAlarms: (vehicleId, bits) => host.confirmAlarms(vehicleId, bits, randomUUID()),
    online: () => host.online(),
    inArea: (shape, filter, limit) => host.inArea(shape, filter, limit),
    stats: () => host.stats(),
    memory: () => host.memory(),
    flush: () => host.flush(),
    passivateAll: () => host.passivateAll(),
    members: () => joined?.membership.members() ?? [],
    membership: joined?.membership,
    router,
    drain: joined?.drain,
    metrics: metrics && served ? { port: served.port, collector: metrics } : undefined,
    async stop() {
      stopWatch?.();
      await sweeper?.stop();
      stopContactWatch?.();
      metrics?.detach();
      await served?.close();
      // The nodes that gain this one's vehicles wait for their saves ("leaving", then "left").
      await router?.announceLeaving().catch((err: unknown) => log?.(`router: ${String(err)}`));
      // Leave first: a locator stops sending terminals here before the gateway closes.
      await joined?.stop();
      // Every vehicle goes to the others, saved first; the terminals here follow them there.
      await router?.handOffAll();
      await gateway.close();
      // Passivation saves every vehicle's state; then the writers flush what is left.
      await host.close();
      await board?.close();
      boardEtcd?.close();
      await client.close();
    },
  };
}

/**
 * A member that loses etcd: if etcd revoked its lease, the others have moved on and it stops
 * serving its vehicles at once. If etcd has not answered it for half its TTL, it asks its peers
 * how long its registration has left as etcd sees it: under half the TTL (or gone), this node is
 * the one cut off and it stops serving before the others can take its vehicles; when no peer
 * reaches etcd, etcd itself is down and every node keeps serving on the last membership it saw.
 * (A peer's answer, not this node's own attempt: after an outage etcd3's client may refuse to
 * try for a while.) It serves again once registered again (`rejoined`) or back in touch.
 */
function watchContact(membership: Membership, router: ClusterRouter): () => void {
  // A lost lease means a new registration: serving resumes through `rejoined` only.
  let lostLease = false;
  membership.onLeaseLost((revoked) => {
    lostLease = true;
    if (revoked) router.setIsolated(true, 'its etcd lease was revoked');
  });
  membership.onRejoined(() => {
    lostLease = false;
    router.rejoined(membership.registeredRevision);
  });
  const halfTtlMs = (membership.ttlSeconds * 1000) / 2;
  let asking = false;
  const timer = setInterval(
    () => {
      if (membership.sinceContactMs < halfTtlMs) {
        // Back in touch on the same lease (the others never saw it go): it serves again.
        if (router.isolated && membership.inContact && !lostLease)
          router.setIsolated(false, 'etcd answers again');
        return;
      }
      if (router.isolated || asking) return;
      asking = true;
      router
        .registrationLeftByPeers()
        .then((left) => {
          if (left !== undefined && left < halfTtlMs && membership.sinceContactMs >= halfTtlMs)
            router.setIsolated(
              true,
              `etcd is out of its reach; its registration ends in ${left} ms`,
            );
        })
        .finally(() => (asking = false));
    },
    Math.min(1000, halfTtlMs / 2),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/** The host to hand out for a server listening on `host`: reachable, unlike 0.0.0.0. */
export function advertisedHost(host: string | undefined, advertise?: string): string {
  return advertise ?? (host === undefined || host === '0.0.0.0' ? '127.0.0.1' : host);
}

async function joinMembership(
  node: string,
  m: NodeMembershipOptions,
  host: string | undefined,
  port: number,
  workers: number,
  peerPort: number | undefined,
  gateway: Gateway,
  log: ((line: string) => void) | undefined,
): Promise<{ membership: Membership; drain: NodeDrain; stop(): Promise<void> }> {
  const etcd = new Etcd3({ hosts: m.etcdEndpoints });
  const self = {
    node,
    gateway: `${advertisedHost(host, m.advertise)}:${port}`,
    ...(m.grpc ? { grpc: m.grpc } : {}),
    ...(peerPort !== undefined ? { peer: `${advertisedHost(host, m.advertise)}:${peerPort}` } : {}),
    startedAt: Date.now(),
    workers,
  };
  const ttlSeconds = m.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
  // A predecessor killed without leaving holds the name until its lease expires: a restart waits
  // that long; a name still held after it belongs to a live process.
  const deadline = Date.now() + (ttlSeconds + 2) * 1000;
  let membership: Membership;
  for (;;) {
    try {
      membership = await Membership.join(etcd, self, { ttlSeconds, ...(log ? { log } : {}) });
      break;
    } catch (err) {
      if (err instanceof MemberNameTaken && Date.now() < deadline) {
        log?.(`membership: node name ${node} in use; waiting for its lease to expire`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      etcd.close();
      throw err;
    }
  }
  const drain = new NodeDrain({
    node,
    gateway,
    members: () => membership.members(),
    ...m.drain,
    ...(log ? { log } : {}),
  });
  const sampler = new LoadSampler(
    () => ({
      connections: gateway.stats.connections,
      pending: gateway.stats.pending,
      reportsReceived:
        (gateway.stats.framesById.get(0x0200) ?? 0) + (gateway.stats.framesById.get(0x0704) ?? 0),
    }),
    {
      capacity: m.capacity ?? DEFAULT_CAPACITY,
      zone: m.zone ?? DEFAULT_ZONE,
      draining: () => drain.draining,
    },
  );
  const thresholds = { ...DEFAULT_THRESHOLDS, ...m.thresholds };
  let published: LoadReport | undefined;
  let publishedAt = 0;
  let writing = false;
  const report = (): void => {
    const load = sampler.sample();
    const now = Date.now();
    // One write at a time: a slow etcd must not pile up puts.
    if (writing || !worthPublishing(published, publishedAt, load, now, thresholds)) return;
    writing = true;
    membership
      .report(load)
      .then(
        () => {
          published = load;
          publishedAt = now;
        },
        (err: unknown) => log?.(`membership: load report failed: ${String(err)}`),
      )
      .finally(() => (writing = false));
  };
  report();
  const timer = setInterval(report, m.loadIntervalMs ?? 1000);
  timer.unref();
  let stopDrainWatch: (() => Promise<void>) | undefined;
  try {
    stopDrainWatch = await watchDrainOrder(etcd, node, (order: DrainOrder | undefined, bad) => {
      if (bad) log?.(`drain: the drain order of ${node} in etcd is malformed; ignored`);
      drain.set(order);
      report(); // the locators learn it now, not at the next sample
    });
  } catch (err) {
    clearInterval(timer);
    await membership.leave();
    etcd.close();
    throw err;
  }
  return {
    membership,
    drain,
    async stop() {
      clearInterval(timer);
      drain.stop();
      await stopDrainWatch?.();
      await membership.leave();
      etcd.close();
    },
  };
}
