// The node's gRPC front: fleetmesh.v1.VehicleService (proto/fleetmesh/v1/vehicle.proto) on top
// of the node's operations, the standard health service and server reflection (so grpcurl works
// without the .proto). The vehicle service wants `authorization: Bearer <token>`; health and
// reflection are open (load balancers and tools probe them without credentials).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as HEALTH_PROTO } from 'grpc-health-check';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { VehicleEvent } from '../actors/vehicleEvents.js';
import type { CommandEvent } from '../domain/vehicle.js';
import { isNeverRegistered } from '../actors/vehicleActor.js';
import {
  CommandHistoryReader,
  commandListQuery,
  commandPageSize,
} from '../storage/commandHistory.js';
import { InvalidQuery, pageSize } from '../storage/historyQuery.js';
import { EventStreamWriter } from './eventStreamWriter.js';
import { addHistoryService, HISTORY_PROTO, HISTORY_SERVICE } from './historyService.js';
import { reflectionDefinition } from './grpcReflection.js';
import { vehicleIdOf } from '../jt808/header.js';
import { messageIdOf } from '../jt808/messages.js';
import { VehiclesUnavailable } from '../hosting/workerHost.js';
import { projectRoot } from '../devservers/localServers.js';
import type { FleetNode } from '../node/node.js';
import {
  commandMessage,
  commandStatus,
  eventKinds,
  eventMessage,
  InvalidRequest,
  memberMessage,
  onlineMessage,
  DEFAULT_ONLINE_PAGE,
  MAX_ONLINE_PAGE,
  onlinePage,
  storedCommandStatus,
  vehicleMessage,
  type CommandStatusMessage,
  type StoredCommandEvent,
} from './vehicleServiceMapping.js';

export const VEHICLE_SERVICE = 'fleetmesh.v1.VehicleService';
const PROTO = join(projectRoot, 'proto', 'fleetmesh', 'v1', 'vehicle.proto');
/** The handler recorded when a confirmation names none and its token has no name. */
export const DEFAULT_OPERATOR = 'api';
const MAX_OPERATOR_LENGTH = 64;

export interface GrpcServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Accepted bearer tokens; at least one. */
  tokens: string[];
  /**
   * Names of tokens (token → name): ConfirmAlarms without an operator records the calling
   * token's name as the handler ("api" for a token without one).
   */
  tokenNames?: Record<string, string>;
  /** Events a stream may have waiting before newer ones are dropped (and counted). */
  maxStreamBacklog?: number;
  /** Event streams open at once; more get RESOURCE_EXHAUSTED (default 1000). */
  maxStreams?: number;
  /** Command statuses kept in memory for GetCommand (older ones are read from storage). */
  maxCachedCommands?: number;
}

export interface GrpcServer {
  port: number;
  server: grpc.Server;
  health: HealthImplementation;
  stop(): Promise<void>;
}

type Obj = Record<string, unknown>;
/** How long SendCommand waits for the owner's actor to take a command before asking the owner. */
const TAKE_WAIT_MS = 5_000;
/** How long SendCommand asks the owner for the vehicle then, at most (UNAVAILABLE after). */
const OWNER_ASK_MS = 3_000;
const FINAL_STATES = new Set(['ANSWERED', 'FAILED', 'TIMED_OUT', 'REFUSED']);

/** What `p` gives within `ms`; undefined when it takes longer. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), Math.max(0, ms)))),
  ]).finally(() => clearTimeout(timer));
}

/** A command's status with nothing known of it past its state and time. */
function bareStatus(
  commandId: string,
  vehicleId: string,
  state: CommandStatusMessage['state'],
  at: number,
): CommandStatusMessage {
  return {
    commandId,
    vehicleId,
    state,
    updatedUnixMs: at,
    attempts: 0,
    detail: '',
    replyType: '',
    result: -1,
    replyJson: '',
  };
}
type Unary = grpc.handleUnaryCall<Obj, Obj>;

// What the handlers see: camelCase fields (proto-loader's default, as every TypeScript client
// here uses). Field names never reach the wire, so this is the code's choice alone.
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

export async function startGrpcServer(
  node: FleetNode,
  opts: GrpcServerOptions,
): Promise<GrpcServer> {
  if (opts.tokens.length === 0) throw new Error('the gRPC server needs at least one token');
  const definition = protoLoader.loadSync(PROTO, LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    fleetmesh: { v1: { VehicleService: grpc.ServiceClientConstructor } };
  };
  const service = loaded.fleetmesh.v1.VehicleService.service;
  const tokens = opts.tokens.map((t) => Buffer.from(`Bearer ${t}`));
  const authorized = (md: grpc.Metadata): boolean => {
    const got = md.get('authorization')[0];
    if (typeof got !== 'string') return false;
    const b = Buffer.from(got);
    return tokens.some((t) => t.length === b.length && timingSafeEqual(t, b));
  };
  const named = Object.entries(opts.tokenNames ?? {}).map(([t, name]) => ({
    bearer: Buffer.from(`Bearer ${t}`),
    name,
  }));
  /** The name of the (authorized) token a call carries, when the server knows one. */
  const tokenName = (md: grpc.Metadata): string | undefined => {
    const got = md.get('authorization')[0];
    if (typeof got !== 'string') return undefined;
    const b = Buffer.from(got);
    return named.find((t) => t.bearer.length === b.length && timingSafeEqual(t.bearer, b))?.name;
  };

  // Latest status per command, from the command events (bounded; storage has the rest).
  const maxCached = opts.maxCachedCommands ?? 10_000;
  const statuses = new Map<string, CommandStatusMessage>();
  const remember = (s: CommandStatusMessage): void => {
    statuses.delete(s.commandId);
    statuses.set(s.commandId, s);
    if (statuses.size > maxCached) statuses.delete(statuses.keys().next().value as string);
  };
  // Commands this server sent and whose first event (the owner's actor took them) has not come
  // yet: what they are, and who waits for that event.
  const taking = new Map<string, { kind: string; messageId: number; took: () => void }>();
  const unsubscribeCommands = node.events.subscribe({ kinds: new Set(['command']) }, (e) => {
    if (e.kind !== 'command') return;
    const previous = statuses.get(e.event.commandId);
    const sent = taking.get(e.event.commandId);
    // A settled command's state is final: an event that comes later (another way) is older.
    if (previous && FINAL_STATES.has(previous.state)) {
      if (sent) {
        taking.delete(e.event.commandId);
        previous.createdUnixMs ??= e.event.at;
        sent.took();
      }
      return;
    }
    const s = commandStatus(e.vehicleId, e.event, previous);
    if (sent) {
      // The actor's first event: queued (or refused) when the command was created, the time
      // the command log keeps as createdAt (one clock reading for every call).
      taking.delete(e.event.commandId);
      s.kind = sent.kind;
      s.messageId = sent.messageId;
      s.createdUnixMs = e.event.at;
      remember(s);
      sent.took();
      return;
    }
    remember(s);
  });
  const neverRegistered = (id: string): grpc.ServiceError =>
    grpcError(grpc.status.NOT_FOUND, `vehicle ${id} has never registered`);

  /** Wraps a unary handler: token check, INVALID_ARGUMENT for bad requests, INTERNAL otherwise. */
  const unary =
    (fn: (req: Obj, call: grpc.ServerUnaryCall<Obj, Obj>) => Promise<Obj>): Unary =>
    (call, callback) => {
      if (!authorized(call.metadata)) {
        callback(grpcError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required'));
        return;
      }
      fn(call.request, call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (err instanceof InvalidRequest || err instanceof InvalidQuery)
            callback(grpcError(grpc.status.INVALID_ARGUMENT, err.message));
          else if (err instanceof VehiclesUnavailable)
            callback(grpcError(grpc.status.UNAVAILABLE, err.message));
          else if (isServiceError(err)) callback(err);
          else callback(grpcError(grpc.status.INTERNAL, String(err)));
        },
      );
    };

  const vehicleId = (req: Obj): string => {
    const id = typeof req.vehicleId === 'string' ? req.vehicleId : '';
    if (!/^\d{1,20}$/.test(id)) throw new InvalidRequest('vehicle_id must be 1 to 20 digits');
    return vehicleIdOf(id);
  };

  const commandHistory = new CommandHistoryReader(node.client.db(node.database));
  /** A command's status from the log: its first, latest and highest-attempt entries (bounded). */
  const storedStatus = async (commandId: string): Promise<CommandStatusMessage | undefined> =>
    storedCommandStatus(
      (await commandHistory.commandEntries(commandId)) as unknown as StoredCommandEvent[],
    );
  let streams = 0;
  const handlers: grpc.UntypedServiceImplementation = {
    getVehicle: unary(async (req) => {
      const v = await node.vehicle(vehicleId(req));
      if (!v || !v.registered) throw neverRegistered(v?.vehicleId ?? vehicleId(req));
      return vehicleMessage(v);
    }),
    listOnlineVehicles: unary(async (req) => {
      // Over the limit is refused, as the other list calls do (it was cut to 1000 silently).
      const size = pageSize(req.pageSize, DEFAULT_ONLINE_PAGE, MAX_ONLINE_PAGE);
      const all = await node.online();
      const { page, nextPageToken } = onlinePage(all, size, String(req.pageToken ?? ''));
      return { vehicles: page.map(onlineMessage), nextPageToken, totalOnline: all.length };
    }),
    // The node's view of the membership; a node without membership is in no cluster and
    // answers an empty list (docs/grpc.md).
    listMembers: unary(async () => ({
      members: node.members().map(memberMessage),
      node: node.node,
    })),
    sendCommand: unary(async (req, call) => {
      const started = Date.now();
      const id = vehicleId(req);
      const message = commandMessage(req);
      // One absolute end from the call's start (50 ms before its deadline, to answer in time):
      // every wait below gets what remains of it, not a length measured before the others.
      const deadline = call.getDeadline();
      const end =
        deadline instanceof Date
          ? deadline.getTime() - 50
          : typeof deadline === 'number' && Number.isFinite(deadline)
            ? deadline - 50
            : Infinity;
      const remaining = (until = end): number => until - Date.now();
      // Registered before the command goes: an actor in this process (a node without workers)
      // takes it, and emits its first event, inside host.command.
      const commandId = randomUUID();
      let took!: () => void;
      const taken = new Promise<void>((r) => (took = r));
      taking.set(commandId, { kind: message.type, messageId: messageIdOf(message), took });
      let settled: Promise<CommandEvent>;
      try {
        settled = node.host.command(id, commandId, message);
        settled.catch(() => undefined); // answered before it settles: no unhandled rejection
      } catch (err) {
        taking.delete(commandId);
        throw err;
      }
      const final = settled.then((e) => {
        if (isNeverRegistered(id, e)) return undefined;
        const s = commandStatus(id, e, statuses.get(commandId));
        s.kind ??= message.type;
        s.messageId ??= messageIdOf(message);
        // Refused at once: the event is the actor's first, at the command's creation.
        if (e.state === 'refused') s.createdUnixMs ??= e.at;
        remember(s);
        return s;
      });
      // The answer may go before the command settles; a later failure must not be unhandled
      // (it would stop the process).
      final.catch(() => undefined);
      try {
        // Taken by the vehicle's actor (its first event), settled (refused: its queue is full,
        // or the vehicle never registered), or, after 5 s, asked of the owner.
        const settledFirst = await within(
          Promise.race([taken.then(() => false), settled.then(() => true)]),
          Math.min(TAKE_WAIT_MS, remaining()),
        );
        if (settledFirst === true && isNeverRegistered(id, await settled))
          throw neverRegistered(id);
        if (settledFirst === undefined) {
          // The owner's view, within what remains of the deadline and a few seconds at most
          // (across nodes it may wait for a handoff, then a peer): else UNAVAILABLE, to retry.
          const v = await within(
            node.vehicle(id).then((view) => ({ view })),
            Math.min(OWNER_ASK_MS, remaining()),
          );
          if (v === undefined)
            throw grpcError(
              grpc.status.UNAVAILABLE,
              `vehicle ${id}'s owner did not answer in time; command ${commandId} may be queued: ` +
                'GetCommand tells, or retry',
            );
          if (!v.view?.registered) throw neverRegistered(id);
          if (!statuses.has(commandId)) {
            // Its first event has not reached this node: the owner's view has its creation
            // (else the log's first entry has it).
            const pending = v.view.pendingCommands.find((c) => c.id === commandId);
            const createdAt =
              pending?.createdAt ??
              (await within(
                storedStatus(commandId).then((st) => st?.createdUnixMs),
                Math.min(OWNER_ASK_MS, remaining()),
              ));
            remember({
              ...bareStatus(commandId, id, 'QUEUED', createdAt ?? Date.now()),
              kind: message.type,
              messageId: messageIdOf(message),
              ...(createdAt !== undefined ? { createdUnixMs: createdAt } : {}),
            });
          }
        }
      } finally {
        taking.delete(commandId);
      }
      if (req.wait !== true) {
        const early = await Promise.race([
          final,
          new Promise<undefined>((r) => setImmediate(() => r(undefined))),
        ]);
        return { commandId, status: early ?? statuses.get(commandId) };
      }
      // wait_timeout_ms counts from the call, as the deadline does.
      const waitEnd =
        started +
        (typeof req.waitTimeoutMs === 'number' && req.waitTimeoutMs > 0
          ? req.waitTimeoutMs
          : 60_000);
      const status = await within(final, remaining(Math.min(waitEnd, end)));
      return { commandId, status: status ?? statuses.get(commandId) };
    }),
    confirmAlarms: unary(async (req, call) => {
      const id = vehicleId(req);
      const bits = typeof req.bits === 'number' ? req.bits >>> 0 : 0;
      const given = typeof req.operator === 'string' ? req.operator.trim() : '';
      if ([...given].length > MAX_OPERATOR_LENGTH)
        throw new InvalidRequest(
          `operator is ${[...given].length} characters, at most ${MAX_OPERATOR_LENGTH}`,
        );
      const operator = given !== '' ? given : (tokenName(call.metadata) ?? DEFAULT_OPERATOR);
      // Through the host (the node's facade takes no operator): the same path, to the owner.
      const r = await node.host.confirmAlarms(id, bits, randomUUID(), operator);
      if (r.neverRegistered === true) throw neverRegistered(id);
      return {
        confirmed: r.confirmed.map((a) => ({ bit: a.bit, startUnixMs: a.startTime })),
        commandId: r.commandId ?? '',
      };
    }),
    listCommands: unary(async (req) => {
      const q = commandListQuery(req);
      const page = await commandHistory.page(q, commandPageSize(req.pageSize), req.pageToken);
      return {
        commands: page.commands.map((c) => {
          const s = storedCommandStatus(c.events as unknown as StoredCommandEvent[]);
          const status: CommandStatusMessage = {
            ...(s ??
              bareStatus(c.commandId, c.vehicleId, 'COMMAND_STATE_UNSPECIFIED', c.createdAt)),
            kind: c.kind,
            messageId: c.messageId,
            createdUnixMs: c.createdAt,
          };
          // The log keeps no reply body: this server's memory may still have it.
          const cached = statuses.get(c.commandId);
          // So may its result (the log keeps 0x0001's, not a failed 0x0805's).
          if (cached && cached.state === status.state) {
            status.replyJson = cached.replyJson;
            if (status.result === -1) status.result = cached.result;
          }
          return status as unknown as Obj;
        }),
        nextPageToken: page.nextPageToken,
      };
    }),
    getCommand: unary(async (req) => {
      const commandId = typeof req.commandId === 'string' ? req.commandId : '';
      if (commandId === '') throw new InvalidRequest('command_id is required');
      const s = statuses.get(commandId) ?? (await storedStatus(commandId));
      if (!s) throw grpcError(grpc.status.NOT_FOUND, 'no such command');
      return s as unknown as Obj;
    }),
    streamEvents: (call: grpc.ServerWritableStream<Obj, Obj>) => {
      if (!authorized(call.metadata)) {
        call.emit(
          'error',
          grpcError(grpc.status.UNAUTHENTICATED, 'a valid bearer token is required'),
        );
        return;
      }
      let kinds;
      try {
        kinds = eventKinds(call.request.kinds);
      } catch (err) {
        call.emit('error', grpcError(grpc.status.INVALID_ARGUMENT, String((err as Error).message)));
        return;
      }
      const ids = Array.isArray(call.request.vehicleIds)
        ? new Set(call.request.vehicleIds.map((v) => vehicleIdOf(String(v))))
        : new Set<string>();
      if (streams >= (opts.maxStreams ?? 1000)) {
        call.emit('error', grpcError(grpc.status.RESOURCE_EXHAUSTED, 'too many event streams'));
        return;
      }
      streams++;
      const writer = new EventStreamWriter<Obj>(call, opts.maxStreamBacklog ?? 10_000, (n) => ({
        kind: 'EVENTS_DROPPED',
        atUnixMs: Date.now(),
        dropped: n,
      }));
      const send = (e: VehicleEvent): void => {
        const status = e.kind === 'command' ? statuses.get(e.event.commandId) : undefined;
        const m = eventMessage(e, status);
        if (m) writer.send(m);
      };
      const unsubscribe = node.events.subscribe({ vehicleIds: ids, kinds }, send);
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        streams--;
        unsubscribe();
      };
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
    },
  };

  const server = new grpc.Server();
  server.addService(service, handlers);
  const history = addHistoryService(server, node.client.db(node.database), authorized, {
    vehiclesNow: (shape, filter, limit) => node.inArea(shape, filter, limit),
  });
  const health = new HealthImplementation({
    '': 'SERVING',
    [VEHICLE_SERVICE]: 'SERVING',
    [HISTORY_SERVICE]: 'SERVING',
  });
  health.addToServer(server);
  // Every service served here but reflection itself, as the .proto files are written.
  new ReflectionService(reflectionDefinition([PROTO, HISTORY_PROTO, HEALTH_PROTO])).addToServer(
    server,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`,
      grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    port,
    server,
    health,
    async stop() {
      unsubscribeCommands();
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(VEHICLE_SERVICE, 'NOT_SERVING');
      health.setStatus(HISTORY_SERVICE, 'NOT_SERVING');
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
      await history.stop();
    },
  };
}

function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as Partial<grpc.ServiceError>).code === 'number';
}
