// A whole locator process's parts: the etcd watch of the members (read-only: a locator is no
// member), the JT/T 808 endpoint and the gRPC Locate. What `fleetmesh locator` runs, and what
// `fleetmesh start` can run beside its nodes.
import { Etcd3 } from 'etcd3';
import { cancelDrain, orderDrain } from '../cluster/drain.js';
import type { FleetLog } from '../telemetry/log.js';
import { Locator, type LocatorOptions } from './locator.js';
import type { DecisionLogOptions } from './decisions.js';
import { startLocatorGrpc, type LocatorGrpc } from './locatorGrpc.js';
import type { ZoneMap } from '../cluster/locatorPolicy.js';
import { MemberWatch } from '../cluster/membership.js';

export interface LocatorServiceOptions {
  etcdEndpoints: string[];
  /** The members' prefix in etcd (the nodes' default). */
  prefix?: string;
  host?: string;
  /** JT/T 808 port: where terminals are configured to connect (8808; 0: a free one). */
  port?: number;
  /** gRPC port of LocatorService (0: a free one; undefined: no gRPC server). */
  grpcPort?: number;
  grpcTokens?: string[];
  zones?: ZoneMap;
  timeLimitMinutes?: number;
  unsupported?: LocatorOptions['unsupported'];
  antiHerding?: boolean;
  /** Bounds of the decisions kept for ListDecisions (locator/decisions.ts). */
  decisions?: Partial<DecisionLogOptions>;
  limits?: Pick<
    LocatorOptions,
    | 'maxConnections'
    | 'maxPerAddress'
    | 'connectionDeadlineMs'
    | 'maxBadFrames'
    | 'maxGarbageBytes'
    | 'maxWriteBufferBytes'
  >;
  logger?: FleetLog;
}

export interface LocatorService {
  locator: Locator;
  watch: MemberWatch;
  port: number;
  grpc: LocatorGrpc | undefined;
  stop(): Promise<void>;
}

export async function startLocatorService(o: LocatorServiceOptions): Promise<LocatorService> {
  const etcd = new Etcd3({ hosts: o.etcdEndpoints });
  const logger = o.logger;
  let watch: MemberWatch;
  try {
    watch = await MemberWatch.start(etcd, {
      ...(o.prefix ? { prefix: o.prefix } : {}),
      ...(logger ? { log: (line: string) => logger.warn('locator.membership', {}, line) } : {}),
    });
  } catch (err) {
    etcd.close();
    throw err;
  }
  const timeLimitMinutes = o.timeLimitMinutes ?? 60;
  const locator = new Locator({
    members: watch,
    ...(o.host ? { host: o.host } : {}),
    port: o.port ?? 8808,
    ...(o.zones ? { zones: o.zones } : {}),
    timeLimitMinutes,
    ...(o.unsupported ? { unsupported: o.unsupported } : {}),
    ...(o.antiHerding !== undefined ? { antiHerding: o.antiHerding } : {}),
    ...(o.decisions ? { decisions: o.decisions } : {}),
    ...o.limits,
    ...(logger
      ? {
          log: (cause: string, fields: Record<string, string | number>) =>
            logger.warn(`locator.${cause}`, fields, `locator: ${cause}`),
        }
      : {}),
  });
  let port: number;
  let grpc: LocatorGrpc | undefined;
  try {
    port = await locator.listen();
    if (o.grpcPort !== undefined)
      grpc = await startLocatorGrpc(locator, {
        ...(o.host ? { host: o.host } : {}),
        port: o.grpcPort,
        ...(o.grpcTokens ? { tokens: o.grpcTokens } : {}),
        timeLimitMinutes,
        drain: async (node, order) => {
          if (order === 'cancel') await cancelDrain(etcd, node);
          else await orderDrain(etcd, node, order.rate);
          const m = watch.members().find((x) => x.node === node);
          return {
            node,
            draining: order !== 'cancel',
            rate: order === 'cancel' ? 0 : order.rate,
            member: m !== undefined,
            terminals: m?.load.terminals ?? 0,
          };
        },
      });
  } catch (err) {
    await locator.close();
    await watch.close();
    etcd.close();
    throw err;
  }
  return {
    locator,
    watch,
    port,
    grpc,
    async stop() {
      await grpc?.stop();
      await locator.close();
      await watch.close();
      etcd.close();
    },
  };
}
