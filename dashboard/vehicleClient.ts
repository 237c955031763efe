// The dashboard's only way into the cluster: clients of the public fleetmesh.v1.VehicleService
// (proto/fleetmesh/v1/vehicle.proto) and, for stored tracks, fleetmesh.v1.HistoryService
// (history.proto), over @grpc/grpc-js, with a bearer token per call. The
// message shapes below are the proto's, as proto-loader gives them with the options used here
// (camelCase, int64 as numbers, enums by name, defaults filled in).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// This runs compiled, from dist/dashboard/: the repository's proto/ is two levels up.
const PROTO_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'proto',
  'fleetmesh',
  'v1',
);

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export interface Position {
  timeUnixMs: number;
  receivedUnixMs: number;
  latitude: number;
  longitude: number;
  altitudeM: number;
  speedKmh: number;
  directionDeg: number;
  alarm: number;
  status: number;
}

export interface OpenAlarm {
  bit: number;
  startUnixMs: number;
}

export interface PendingCommand {
  commandId: string;
  type: string;
  createdUnixMs: number;
}

export interface Registration {
  plate: string;
  plateColor: number;
  maker: string;
  model: string;
  terminalId: string;
}

export interface Vehicle {
  vehicleId: string;
  registered: boolean;
  online: boolean;
  edition: number;
  phone: string;
  node: string;
  linkId: string;
  lastSeenUnixMs: number;
  lastPosition: Position | null;
  registration: Registration | null;
  openAlarms: OpenAlarm[];
  pendingCommands: PendingCommand[];
}

export interface OnlineVehicle {
  vehicleId: string;
  node: string;
  linkId: string;
  lastSeenUnixMs: number;
}

export interface OnlinePage {
  vehicles: OnlineVehicle[];
  nextPageToken: string;
  totalOnline: number;
}

/** A member's load as ListMembers gives it: `terminals` always, the rest when it reports them. */
export interface MemberLoad {
  terminals: number;
  authenticated?: number;
  reportsPerSecond?: number;
  elu?: number;
  cpu?: number;
  rssBytes?: number;
  capacity?: number;
  zone?: string;
}

/** A member of the cluster (ListMembers). */
export interface ClusterMember {
  node: string;
  gateway: string;
  /** Empty when the member advertises no gRPC server. */
  grpc: string;
  workers: number;
  startedAtUnixMs: number;
  reportedAtUnixMs: number;
  load: MemberLoad;
  draining: boolean;
}

export type CommandState =
  'COMMAND_STATE_UNSPECIFIED' | 'QUEUED' | 'SENT' | 'ANSWERED' | 'FAILED' | 'TIMED_OUT' | 'REFUSED';

export interface CommandStatus {
  commandId: string;
  vehicleId: string;
  state: CommandState;
  updatedUnixMs: number;
  attempts: number;
  detail: string;
  replyType: string;
  result: number;
  replyJson: string;
  /** The command's message type (TextMessage, …) and id (0x8300 …), when it was queued. */
  kind?: string;
  messageId?: number;
  createdUnixMs?: number;
}

/** A page of ListCommands: a vehicle's commands, newest first. */
export interface CommandsPage {
  commands: CommandStatus[];
  nextPageToken: string;
}

/** The two commands an operator sends from the dashboard. */
export type OperatorCommand = { kind: 'text'; text: string; flag: number } | { kind: 'location' };

/** A point of HistoryService.GetTrack with the fields the dashboard asks for. */
export interface StoredPoint {
  timeUnixMs: number;
  latitude: number;
  longitude: number;
  speedKmh: number;
  blindArea: boolean;
}

export type EventKind = 'POSITION' | 'ALARM' | 'ONLINE' | 'COMMAND' | 'EVENTS_DROPPED';

export interface VehicleEvent {
  kind: EventKind;
  vehicleId: string;
  atUnixMs: number;
  position?: Position | null;
  alarm?: { opened: boolean; bit: number } | null;
  online?: { online: boolean; reason: string } | null;
  command?: CommandStatus | null;
  dropped?: number;
  source: string;
}

type Callback = (err: grpc.ServiceError | null, res?: unknown) => void;
type UnaryMethod = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void;
type StreamMethod = (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>;

/** Wraps VehicleService; every call takes the bearer token it acts with. */
export class VehicleClient {
  private readonly client: grpc.Client;
  private readonly history: grpc.Client;

  constructor(readonly address: string) {
    const def = protoLoader.loadSync(
      [join(PROTO_DIR, 'vehicle.proto'), join(PROTO_DIR, 'history.proto')],
      LOADER_OPTIONS,
    );
    const v1 = (
      grpc.loadPackageDefinition(def) as unknown as {
        fleetmesh: {
          v1: Record<'VehicleService' | 'HistoryService', grpc.ServiceClientConstructor>;
        };
      }
    ).fleetmesh.v1;
    this.client = new v1.VehicleService(address, grpc.credentials.createInsecure());
    // The same channel options and address make grpc-js share one connection between the two.
    this.history = new v1.HistoryService(address, grpc.credentials.createInsecure());
  }

  private unary<T>(
    method: string,
    token: string,
    req: object,
    timeoutMs = 10_000,
    client = this.client,
  ): Promise<T> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) throw new Error(`no gRPC method ${method}`);
    return new Promise((resolve, reject) =>
      fn.call(client, req, bearer(token), { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(withoutSyntheticOneofs(res) as T),
      ),
    );
  }

  /**
   * The stored track in [fromMs, toMs): latitude, longitude and speed, one point per time bucket
   * so that at most `maxPoints` come back in one page whatever the vehicle's report rate.
   */
  async storedTrack(
    token: string,
    vehicleId: string,
    fromMs: number,
    toMs: number,
    maxPoints: number,
  ): Promise<StoredPoint[]> {
    const bucketMs = Math.max(1000, Math.ceil((toMs - fromMs) / maxPoints));
    const page = await this.unary<{ points: StoredPoint[] }>(
      'getTrack',
      token,
      {
        vehicleId,
        fromUnixMs: fromMs,
        toUnixMs: toMs,
        fields: ['latitude', 'longitude', 'speed'],
        downsampling: 'DOWNSAMPLING_TIME_BUCKET',
        bucketMs,
        // A bucket boundary may let one more point in.
        pageSize: maxPoints + 1,
      },
      10_000,
      this.history,
    );
    return page.points;
  }

  getVehicle(token: string, vehicleId: string): Promise<Vehicle> {
    return this.unary('getVehicle', token, { vehicleId });
  }

  listOnline(token: string, pageSize: number, pageToken = ''): Promise<OnlinePage> {
    return this.unary('listOnlineVehicles', token, { pageSize, pageToken });
  }

  /** The members as the node sees them; empty from a node without membership. */
  async listMembers(token: string): Promise<{ members: ClusterMember[]; node: string }> {
    const res = await this.unary<{ members: ClusterMember[]; node: string }>(
      'listMembers',
      token,
      {},
    );
    for (const m of res.members) m.load ??= { terminals: 0 };
    return res;
  }

  getCommand(token: string, commandId: string): Promise<CommandStatus> {
    return this.unary('getCommand', token, { commandId });
  }

  /** A vehicle's commands as the node's command log has them, newest first, one page. */
  listCommands(
    token: string,
    vehicleId: string,
    pageSize: number,
    pageToken = '',
  ): Promise<CommandsPage> {
    return this.unary('listCommands', token, { vehicleId, pageSize, pageToken });
  }

  /** `operator`: who handled them, stored with the records ('' lets the node name the token). */
  confirmAlarms(
    token: string,
    vehicleId: string,
    bits: number,
    operator = '',
  ): Promise<{ confirmed: OpenAlarm[]; commandId: string }> {
    return this.unary('confirmAlarms', token, { vehicleId, bits, operator });
  }

  /** Sends and waits up to `waitMs` for the terminal's answer (the command stays queued after). */
  sendCommand(
    token: string,
    vehicleId: string,
    command: OperatorCommand,
    waitMs: number,
  ): Promise<{ commandId: string; status: CommandStatus }> {
    const body =
      command.kind === 'text'
        ? { textMessage: { flag: command.flag, text: command.text } }
        : { queryPosition: {} };
    return this.unary(
      'sendCommand',
      token,
      { vehicleId, ...body, wait: waitMs > 0, waitTimeoutMs: waitMs },
      waitMs + 5_000,
    );
  }

  streamEvents(token: string, kinds: EventKind[]): grpc.ClientReadableStream<unknown> {
    const fn = (this.client as unknown as Record<string, StreamMethod>)
      .streamEvents as StreamMethod;
    return fn.call(this.client, { vehicleIds: [], kinds }, bearer(token));
  }

  close(): void {
    this.client.close();
    this.history.close();
  }
}

/**
 * A gRPC message as the dashboard passes it on (JSON to browsers): without the keys proto-loader
 * adds for `optional` fields' synthetic oneofs (`_mileageKm: 'mileageKm'`, `_zone: 'zone'`),
 * which are no fields. Removed in place, at every depth; every answer and event goes through it.
 */
export function withoutSyntheticOneofs<T>(message: T): T {
  if (Array.isArray(message)) for (const m of message) withoutSyntheticOneofs(m);
  else if (typeof message === 'object' && message !== null && !ArrayBuffer.isView(message))
    for (const [k, v] of Object.entries(message)) {
      if (k.startsWith('_') && typeof v === 'string')
        delete (message as Record<string, unknown>)[k];
      else withoutSyntheticOneofs(v);
    }
  return message;
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** The gRPC status code of a failed call, if it is one. */
export function grpcCode(err: unknown): grpc.status | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? (code as grpc.status) : undefined;
}

export { grpc };
