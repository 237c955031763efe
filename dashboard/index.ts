// The operator's web dashboard (docs/dashboard.md): started beside a node by `fleetmesh start`
// (--dashboard-port), or on its own against any node's gRPC address with startDashboard.
import { DEFAULT_DASHBOARD_PORT, startDashboard } from './server.js';

export { DEFAULT_DASHBOARD_PORT, startDashboard } from './server.js';
export type { Dashboard, DashboardOptions } from './server.js';

export interface BesideNodeOptions {
  /** 0: no dashboard. */
  port: number;
  /** The operator named the port: failing to listen on it is an error, not a notice. */
  portGiven: boolean;
  /** Where the node listens (0.0.0.0 and :: are reached on 127.0.0.1). */
  host: string;
  grpcPort: number;
  token: string;
  nodeName: string;
  /** The locator's gRPC port on the same host, whose decisions the Locator panel shows. */
  locatorGrpcPort?: number;
}

/**
 * The dashboard of `fleetmesh start`, and the line to print about it. When the default port is
 * taken (by another program on the machine), the node runs without a dashboard and says so.
 */
export async function startBesideNode(
  o: BesideNodeOptions,
): Promise<{ line: string; stop(): Promise<void> }> {
  const off = { stop: async () => undefined };
  if (o.port === 0) return { ...off, line: 'fleetmesh: dashboard off' };
  const grpcHost = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
  try {
    const d = await startDashboard({
      grpcAddress: `${grpcHost}:${o.grpcPort}`,
      token: o.token,
      host: o.host,
      port: o.port,
      nodeName: o.nodeName,
      ...(o.locatorGrpcPort ? { locatorAddress: `${grpcHost}:${o.locatorGrpcPort}` } : {}),
    });
    return { line: `fleetmesh: dashboard at ${d.url} (log in with a gRPC token)`, stop: d.stop };
  } catch (err) {
    const inUse = (err as { code?: unknown }).code === 'EADDRINUSE';
    if (o.portGiven || !inUse) throw err;
    return {
      ...off,
      line: `fleetmesh: dashboard off: port ${DEFAULT_DASHBOARD_PORT} is taken (--dashboard-port PORT)`,
    };
  }
}
