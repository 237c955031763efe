// The node-to-node gRPC service (proto/fleetmesh/internal/v1/peer.proto): its definition, the
// JSON form of control-plane arguments (byte arrays and dates survive the trip), and the
// messages as TypeScript sees them. The data plane (Route) carries frameBatch records as bytes.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { projectRoot } from '../devservers/localServers.js';

const PROTO = join(projectRoot, 'proto', 'fleetmesh', 'internal', 'v1', 'peer.proto');

export interface RouteBatch {
  records: Uint8Array;
  consumed: number;
  fromNode: string;
  linkPrefix: string;
  hops: number;
  /** The records' layout, on the first message of a stream (FRAME_BATCH_FORMAT). */
  format?: number;
}

export interface PeerCall {
  method: string;
  argsJson: string;
}

export interface PeerReply {
  resultJson: string;
}

export interface EventsRequest {
  kinds: string[];
  fromNode: string;
}

export interface EventBatch {
  eventsJson: string;
  dropped: number;
}

export type RouteStream = grpc.ClientDuplexStream<RouteBatch, RouteBatch>;
export type RouteServerStream = grpc.ServerDuplexStream<RouteBatch, RouteBatch>;

export interface PeerClient extends grpc.Client {
  route(options?: grpc.CallOptions): RouteStream;
  events(request: EventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<EventBatch>;
  call(
    request: PeerCall,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, reply?: PeerReply) => void,
  ): grpc.ClientUnaryCall;
}

let loaded: grpc.ServiceClientConstructor | undefined;

/** The PeerService client constructor (its `.service` is the server-side definition). */
export function peerService(): grpc.ServiceClientConstructor {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(PROTO, {
    keepCase: false,
    longs: Number,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    fleetmesh: { internal: { v1: { PeerService: grpc.ServiceClientConstructor } } };
  };
  loaded = pkg.fleetmesh.internal.v1.PeerService;
  return loaded;
}

/** A client of one peer's service (insecure: the peer plane runs inside the cluster's network). */
export function peerClient(address: string): PeerClient {
  const Client = peerService();
  return new Client(address, grpc.credentials.createInsecure(), {
    // Batches of frames: far above the 4 MB default would mean a stuck peer, not a big batch.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
  }) as unknown as PeerClient;
}

/** JSON that keeps Uint8Array and Date values (commands carry bytes; views carry dates). */
export function toPeerJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
    const raw = this[key];
    if (raw instanceof Date) return { $date: raw.getTime() };
    if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString('base64') };
    return v;
  });
}

export function fromPeerJson<T>(json: string): T {
  return JSON.parse(json, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      if (typeof o.$date === 'number' && Object.keys(o).length === 1) return new Date(o.$date);
      if (typeof o.$bytes === 'string' && Object.keys(o).length === 1)
        return new Uint8Array(Buffer.from(o.$bytes, 'base64'));
    }
    return v;
  }) as T;
}
