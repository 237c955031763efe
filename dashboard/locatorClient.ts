// The dashboard's client of a locator's public gRPC fleetmesh.v1.LocatorService
// (proto/fleetmesh/v1/locator.proto): ListDecisions, with the browser's bearer token, as any other
// program would call it. Shapes as proto-loader gives them (camelCase, int64 as numbers, enums by
// name, defaults filled in).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { grpc, withoutSyntheticOneofs } from './vehicleClient.js';

// This runs compiled, from dist/dashboard/: the repository's proto/ is two levels up.
const LOCATOR_PROTO = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'proto',
  'fleetmesh',
  'v1',
  'locator.proto',
);

export interface CandidateLoad {
  node: string;
  zone: string;
  capacity: number;
  terminals: number;
  assigned: number;
  draining: boolean;
}

export interface LocatorDecision {
  seq: number;
  atUnixMs: number;
  vehicleId: string;
  phone: string;
  source: string;
  node: string;
  reason: string;
  terminalZone: string;
  nodeZone: string;
  inZone: boolean;
  overCapacity: boolean;
  candidates: CandidateLoad[];
}

export interface DecisionBucket {
  startUnixMs: number;
  byNode: Record<string, number>;
  otherNodes: number;
  noNode: number;
}

export interface DecisionsPage {
  decisions: LocatorDecision[];
  lastSeq: number;
  capacity: number;
  bucketSeconds: number;
  buckets: DecisionBucket[];
}

type Unary = (
  req: object,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => void;

export class LocatorClient {
  private readonly client: grpc.Client;

  constructor(readonly address: string) {
    const def = protoLoader.loadSync(LOCATOR_PROTO, {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const Service = (
      grpc.loadPackageDefinition(def) as unknown as {
        fleetmesh: { v1: { LocatorService: grpc.ServiceClientConstructor } };
      }
    ).fleetmesh.v1.LocatorService;
    this.client = new Service(address, grpc.credentials.createInsecure());
  }

  /** The locator's newest `limit` decisions and its counts per node over the last minutes. */
  listDecisions(token: string, limit: number): Promise<DecisionsPage> {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const fn = (this.client as unknown as { listDecisions: Unary }).listDecisions;
    return new Promise((resolve, reject) =>
      fn.call(this.client, { limit }, md, { deadline: Date.now() + 5_000 }, (err, res) =>
        err ? reject(err) : resolve(withoutSyntheticOneofs(res) as DecisionsPage),
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}
