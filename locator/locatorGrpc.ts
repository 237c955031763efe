// The locator's gRPC front: fleetmesh.v1.LocatorService (proto/fleetmesh/v1/locator.proto): Locate
// over the same choice the JT/T 808 endpoint makes, Drain, ListDecisions (what it decided lately),
// the standard health service and server reflection (grpcurl works without the .proto).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as HEALTH_PROTO } from 'grpc-health-check';
import { timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { vehicleIdOf } from '../jt808/header.js';
import { DEFAULT_DRAIN_RATE, MAX_DRAIN_RATE } from '../cluster/drain.js';
import { reflectionDefinition } from '../api/grpcReflection.js';
import { NODE_NAME, splitHostPort } from '../cluster/memberTable.js';
import { projectRoot } from '../devservers/localServers.js';
import type { Locator } from './locator.js';
import type { Decision, DecisionReason, DecisionSource } from './decisions.js';
import { EventStreamWriter } from '../api/eventStreamWriter.js';

export const LOCATOR_SERVICE = 'fleetmesh.v1.LocatorService';
export const LOCATOR_PROTO = join(projectRoot, 'proto', 'fleetmesh', 'v1', 'locator.proto');

export interface LocatorGrpcOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Bearer tokens Locate accepts; none: Locate is open. */
  tokens?: string[];
  /** What Locate answers as the time limit (the JT/T 808 endpoint's). */
  timeLimitMinutes: number;
  /**
   * Writes or takes back a node's drain order (cluster/drain.ts); without it, Drain answers
   * UNIMPLEMENTED. Drain needs a token even where Locate is open.
   */
  drain?(node: string, order: { rate: number } | 'cancel'): Promise<DrainAnswer>;
  /** WatchDecisions callers at once (default 100); more get RESOURCE_EXHAUSTED. */
  maxWatchers?: number;
  /** Messages waiting per watcher that does not read, past which decisions drop (1 000). */
  maxWatchBacklog?: number;
}

export interface DrainAnswer {
  node: string;
  draining: boolean;
  rate: number;
  member: boolean;
  terminals: number;
}

interface DrainRequest {
  node?: string;
  rate?: number;
  cancel?: boolean;
}

export interface LocatorGrpc {
  port: number;
  health: HealthImplementation;
  /** WatchDecisions callers now, and decisions dropped for slow ones since start. */
  readonly watch: { watchers: number; dropped: number };
  stop(): Promise<void>;
}

/** A terminal number: what a JT/T 808 header's BCD phone can hold. */
const TERMINAL_NUMBER = /^[0-9]{1,20}$/;

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

interface ListDecisionsRequest {
  limit?: number;
  afterSeq?: number;
}

/** ListDecisions' limits: what a caller may ask for, and what it gets without asking. */
export const MAX_DECISIONS = 1000;
const DEFAULT_DECISIONS = 100;

const REASONS: Record<DecisionReason, string> = {
  'least-loaded': 'DECISION_LEAST_LOADED',
  zone: 'DECISION_ZONE',
  drain: 'DECISION_DRAIN',
  fallback: 'DECISION_FALLBACK',
  'no-node': 'DECISION_NO_NODE',
};
const SOURCES: Record<DecisionSource, string> = {
  jt808: 'DECISION_SOURCE_JT808',
  locate: 'DECISION_SOURCE_LOCATE',
};

interface WatchDecisionsRequest {
  afterSeq?: number;
}

/** A decision as the proto has it (enums by name). */
function decisionMessage(d: Decision): object {
  return { ...d, source: SOURCES[d.source], reason: REASONS[d.reason] };
}

interface LocateRequest {
  phone?: string;
  vehicleId?: string;
  province?: number;
  city?: number;
}

export async function startLocatorGrpc(
  locator: Locator,
  opts: LocatorGrpcOptions,
): Promise<LocatorGrpc> {
  const definition = protoLoader.loadSync(LOCATOR_PROTO, {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    fleetmesh: { v1: { LocatorService: grpc.ServiceClientConstructor } };
  };
  const tokens = (opts.tokens ?? []).map((t) => Buffer.from(`Bearer ${t}`));
  const authorized = (md: grpc.Metadata): boolean => {
    if (tokens.length === 0) return true;
    const got = md.get('authorization')[0];
    if (typeof got !== 'string') return false;
    const b = Buffer.from(got);
    return tokens.some((t) => t.length === b.length && timingSafeEqual(t, b));
  };
  // Drain moves terminals in bulk, ListDecisions names vehicles: never open, even where Locate is.
  const mayDrain = (md: grpc.Metadata, what = 'Drain'): grpc.ServiceError | undefined =>
    tokens.length === 0
      ? grpcError(
          grpc.status.FAILED_PRECONDITION,
          `${what} needs the locator started with tokens (--grpc-token)`,
        )
      : authorized(md)
        ? undefined
        : grpcError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required');
  const server = new grpc.Server();
  const locate = (
    call: grpc.ServerUnaryCall<LocateRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => {
    if (!authorized(call.metadata)) {
      callback(grpcError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required'));
      return;
    }
    const req = call.request;
    const number = req.phone || req.vehicleId || '';
    if (!TERMINAL_NUMBER.test(number)) {
      callback(
        grpcError(
          grpc.status.INVALID_ARGUMENT,
          'phone or vehicle_id must be a terminal number of 1 to 20 digits',
        ),
      );
      return;
    }
    const region =
      req.province || req.city ? { province: req.province ?? 0, city: req.city ?? 0 } : undefined;
    const choice = locator.locate(vehicleIdOf(number), region, {
      source: 'locate',
      phone: req.phone ?? '',
    });
    if (!choice) {
      callback(grpcError(grpc.status.UNAVAILABLE, 'no node can take a terminal now'));
      return;
    }
    const { host, port } = splitHostPort(choice.candidate.gateway);
    callback(null, {
      node: choice.candidate.node,
      host,
      port,
      zone: choice.candidate.zone,
      terminalZone: choice.zone ?? '',
      inZone: choice.inZone,
      overCapacity: choice.overCapacity,
      timeLimitMinutes: opts.timeLimitMinutes,
    });
  };
  const drain = (
    call: grpc.ServerUnaryCall<DrainRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void => {
    if (!opts.drain) {
      callback(grpcError(grpc.status.UNIMPLEMENTED, 'this locator cannot reach etcd to drain'));
      return;
    }
    const refused = mayDrain(call.metadata);
    if (refused) return callback(refused);
    const req = call.request;
    const node = req.node ?? '';
    if (!NODE_NAME.test(node)) {
      callback(grpcError(grpc.status.INVALID_ARGUMENT, `'${node}' is not a node name`));
      return;
    }
    const rate = req.rate || DEFAULT_DRAIN_RATE;
    if (!req.cancel && rate > MAX_DRAIN_RATE) {
      callback(
        grpcError(
          grpc.status.INVALID_ARGUMENT,
          `rate is terminals per second, 1 to ${MAX_DRAIN_RATE}`,
        ),
      );
      return;
    }
    opts.drain(node, req.cancel ? 'cancel' : { rate }).then(
      (a) => callback(null, a),
      (err: unknown) =>
        callback(
          grpcError(
            grpc.status.UNAVAILABLE,
            `etcd: ${err instanceof Error ? err.message : String(err)}`,
          ),
        ),
    );
  };
  const listDecisions = (
    call: grpc.ServerUnaryCall<ListDecisionsRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void => {
    const refused = mayDrain(call.metadata, 'ListDecisions');
    if (refused) return callback(refused);
    const limit = call.request.limit || DEFAULT_DECISIONS;
    if (limit > MAX_DECISIONS) {
      callback(grpcError(grpc.status.INVALID_ARGUMENT, `limit is 1 to ${MAX_DECISIONS} (0: 100)`));
      return;
    }
    const log = locator.decisions;
    callback(null, {
      decisions: log.list(limit, call.request.afterSeq ?? 0).map(decisionMessage),
      lastSeq: log.recorded,
      capacity: log.options.capacity,
      bucketSeconds: log.options.bucketMs / 1000,
      buckets: log.counts(Date.now()),
    });
  };
  const watch = { watchers: 0, dropped: 0 };
  /** Open WatchDecisions calls: ended at stop (a shutdown waits for every call to end). */
  const watching = new Set<grpc.ServerWritableStream<WatchDecisionsRequest, unknown>>();
  const watchDecisions = (
    call: grpc.ServerWritableStream<WatchDecisionsRequest, unknown>,
  ): void => {
    const refused =
      mayDrain(call.metadata, 'WatchDecisions') ??
      (watch.watchers >= (opts.maxWatchers ?? 100)
        ? grpcError(grpc.status.RESOURCE_EXHAUSTED, 'too many WatchDecisions callers')
        : undefined);
    if (refused) {
      call.emit('error', refused);
      return;
    }
    watch.watchers++;
    watching.add(call);
    const writer = new EventStreamWriter<unknown>(call, opts.maxWatchBacklog ?? 1000, (n) => ({
      dropped: n,
    }));
    let sent = call.request.afterSeq ?? 0;
    const send = (d: Decision): void => {
      if (d.seq <= sent) return;
      sent = d.seq;
      const before = writer.droppedTotal;
      writer.send({ decision: decisionMessage(d), dropped: 0 });
      watch.dropped += writer.droppedTotal - before;
    };
    // Live ones from now; first those the ring holds after after_seq, oldest first.
    const unsubscribe = locator.decisions.subscribe(send);
    const log = locator.decisions;
    for (const d of log.list(log.options.capacity, sent).reverse()) send(d);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      watch.watchers--;
      watching.delete(call);
      unsubscribe();
    };
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
  };
  server.addService(loaded.fleetmesh.v1.LocatorService.service, {
    locate,
    drain,
    listDecisions,
    watchDecisions,
  });
  const health = new HealthImplementation({ '': 'SERVING', [LOCATOR_SERVICE]: 'SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionDefinition([LOCATOR_PROTO, HEALTH_PROTO])).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`,
      grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    port,
    health,
    watch,
    async stop() {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(LOCATOR_SERVICE, 'NOT_SERVING');
      for (const call of watching) call.end();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
