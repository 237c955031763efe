// One fleetmesh node: MongoDB storage, the vehicle actors and the JT/T 808 gateway, wired
// together in this process. (Worker threads and other nodes come next: `deliver` is the seam.)
import { MongoClient } from 'mongodb';
import { randomUUID } from 'node:crypto';
import type { CommandEvent } from '../actors/commandQueue.js';
import { ActorSystem } from '../actors/runtime.js';
import type { Message } from '../jt808/messages.js';
import {
  VehicleActor,
  type VehicleEvents,
  type VehicleMessage,
  type VehiclePolicy,
} from '../actors/vehicleActor.js';
import { ensureIndexes } from '../storage/schema.js';
import { VehicleStore } from '../storage/vehicleStore.js';
import { Gateway, type GatewayOptions } from './gateway.js';

export interface NodeOptions {
  node?: string;
  mongodbUri: string;
  database?: string;
  host?: string;
  /** Gateway port; 0 picks a free one. */
  port?: number;
  policy?: Partial<VehiclePolicy>;
  gateway?: Partial<Omit<GatewayOptions, 'deliver' | 'node'>>;
  mailboxLimit?: number;
  idlePassivateMs?: number;
  events?: VehicleEvents;
  writer?: { maxBatch?: number; maxDelayMs?: number; maxBuffered?: number };
}

export interface FleetNode {
  node: string;
  port: number;
  gateway: Gateway;
  actors: ActorSystem<VehicleMessage>;
  store: VehicleStore;
  client: MongoClient;
  /**
   * Queues a downlink command for a vehicle (sent when its terminal is online, kept across
   * passivation and restarts). `settled` resolves with its final state, or 'refused' when the
   * vehicle's mailbox or queue is full.
   */
  command(vehicleId: string, message: Message): { id: string; settled: Promise<CommandEvent> };
  stop(): Promise<void>;
}

export async function startNode(opts: NodeOptions): Promise<FleetNode> {
  const node = opts.node ?? 'node-1';
  // Short server selection: a database outage shows up as retries in the batch writers
  // (which never drop) instead of 30-second stalls.
  const client = new MongoClient(opts.mongodbUri, {
    serverSelectionTimeoutMS: 2000,
    connectTimeoutMS: 2000,
  });
  await client.connect();
  const db = client.db(opts.database ?? 'fleetmesh');
  await ensureIndexes(db);
  const store = new VehicleStore(db, { writer: opts.writer ?? {} });
  const policy: VehiclePolicy = {
    registration: 'open',
    ackMode: 'durable',
    saveEveryMs: 30_000,
    ...opts.policy,
  };
  const actors = new ActorSystem<VehicleMessage>({
    create: (id) =>
      new VehicleActor(id, { store, policy, ...(opts.events ? { events: opts.events } : {}) }),
    mailboxLimit: opts.mailboxLimit ?? 256,
    idleMs: opts.idlePassivateMs ?? 0,
  });
  const gateway = new Gateway({
    node,
    ...(opts.host ? { host: opts.host } : {}),
    port: opts.port ?? 0,
    ...opts.gateway,
    deliver: (vehicleId, msg) => actors.tell(vehicleId, msg),
    storageFull: () => store.full,
  });
  store.onDrain(() => gateway.resume());
  const port = await gateway.listen();
  return {
    node,
    port,
    gateway,
    actors,
    store,
    client,
    command(vehicleId, message) {
      const id = randomUUID();
      const settled = new Promise<CommandEvent>((resolve) => {
        const accepted = actors.tell(vehicleId, {
          kind: 'command',
          command: { id, message, createdAt: Date.now() },
          settled: resolve,
        });
        if (!accepted)
          resolve({
            commandId: id,
            state: 'refused',
            at: Date.now(),
            detail: 'vehicle mailbox full',
          });
      });
      return { id, settled };
    },
    async stop() {
      await gateway.close();
      // Passivation saves every vehicle's state; then the writers flush what is left.
      await actors.passivateAll();
      await store.close();
      await client.close();
    },
  };
}
