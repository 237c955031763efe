// The node-to-node gRPC service (proto/fleetmesh/internal/v1/peer.proto): its definition, the
// JSON form of control-plane arguments (byte arrays and dates survive the trip), and the
// messages as TypeScript sees them. The data plane (Route) carries frameBatch records as bytes.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
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

/**
 * HTTP/2 flow-control window of the peer plane, both ways (bytes). HTTP/2's default, 64 KiB,
 * is 4 ms of a stream at 300 000 records/s: every stall of a receiver's event loop stalled the
 * sender, which made the hop's p99 ~20 ms and capped a pair at ~650 000 records/s (`npm run
 * bench -- cluster`). Above what the credit lets a peer have untaken (8 192 records of at most
 * ~1.1 KB), so flow control never throttles below the credit; the credit bounds the memory.
 */
export const PEER_WINDOW_BYTES = 16 * 1024 * 1024;

/** A client of one peer's service (insecure: the peer plane runs inside the cluster's network). */
export function peerClient(address: string): PeerClient {
  const Client = peerService();
  return new Client(address, grpc.credentials.createInsecure(), {
    // Batches of frames: far above the 4 MB default would mean a stuck peer, not a big batch.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // The answers' direction: this side's receive window, stream and connection.
    'grpc-node.flow_control_window': PEER_WINDOW_BYTES,
  }) as unknown as PeerClient;
}

/** What grpc-js keeps privately and the window needs (see peerServer). */
interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, number> };
  http2Servers?: Map<Http2Server, unknown>;
}

/**
 * A server for the peer service with the records' direction's window opened as the client opens
 * its own. grpc-js has a client option for the window but none for its server, so this sets the
 * HTTP/2 settings its server is created with (stream windows) and, once bound, each session's
 * window (connection). Both reach into grpc-js's private fields: `peerServerWindow` (bound
 * servers) says whether they did, and a test holds it to the grpc-js installed.
 */
export function peerServer(): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const internals = server as unknown as GrpcServerInternals;
  if (internals.commonServerOptions)
    internals.commonServerOptions.settings = {
      ...internals.commonServerOptions.settings,
      initialWindowSize: PEER_WINDOW_BYTES,
    };
  return server;
}

/**
 * Once a peerServer is bound: every HTTP/2 session it accepts gets the connection window.
 * Returns false when grpc-js no longer exposes what this needs (the window stays HTTP/2's).
 */
export function peerServerWindow(server: grpc.Server): boolean {
  const internals = server as unknown as GrpcServerInternals;
  const settings = internals.commonServerOptions?.settings;
  if (!internals.http2Servers || settings?.initialWindowSize !== PEER_WINDOW_BYTES) return false;
  for (const h2 of internals.http2Servers.keys())
    h2.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(PEER_WINDOW_BYTES);
      } catch {
        // a session already closing
      }
    });
  return internals.http2Servers.size > 0;
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
