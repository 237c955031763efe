// The cluster's members as one node sees them: what etcd holds under the members prefix, kept up
// to date from its watch events, with the etcd revision of the last change (ownership decisions
// made from this view can name the revision they come from). Pure code: the etcd side is in
// membership.ts.

import { parseLoadReport, type PublishedLoad } from './loadReport.js';

/**
 * The load a member publishes: `terminals` (connected to its gateway now) from every version,
 * and the fields of a LoadReport (cluster/loadReport.ts) from nodes that report them.
 */
export type MemberLoad = PublishedLoad;

export interface Member {
  node: string;
  /** host:port of its JT/T 808 gateway (what a locator's 0x8105 points terminals at). */
  gateway: string;
  /** host:port of its gRPC server, when it has one. */
  grpc?: string;
  /** host:port of its node-to-node service (cluster/router.ts): how peers reach its vehicles. */
  peer?: string;
  startedAt: number;
  /** Worker threads that host vehicles: its slots in the placement (0: it hosts none). */
  workers: number;
  load: MemberLoad;
  /** When the load was last reported (ms since the epoch, the member's clock). */
  reportedAt: number;
  /**
   * The etcd revision its key was created at: which registration of the node this is (a node
   * that registers again under its name is another incarnation). 0 when not known.
   */
  createRevision?: number;
}

/** A value larger than this under the prefix is not a member's (and is not parsed). */
export const MAX_MEMBER_BYTES = 4096;

/** Worker threads a member may advertise: its slots in the placement. */
export const MAX_WORKERS_PER_NODE = 256;

/** Node names: what fits a key and a log line. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Parses a member's value; undefined for anything that is not one (counted by the table). */
export function parseMember(key: string, value: string): Member | undefined {
  if (value.length > MAX_MEMBER_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Record<string, unknown>;
  const load = m.load as Record<string, unknown> | undefined;
  const ok =
    typeof m.node === 'string' &&
    NODE_NAME.test(m.node) &&
    key.endsWith(`/${m.node}`) &&
    typeof m.gateway === 'string' &&
    (m.grpc === undefined || typeof m.grpc === 'string') &&
    (m.peer === undefined || typeof m.peer === 'string') &&
    typeof m.startedAt === 'number' &&
    (m.workers === undefined ||
      (Number.isInteger(m.workers) &&
        (m.workers as number) >= 0 &&
        (m.workers as number) <= MAX_WORKERS_PER_NODE)) &&
    typeof m.reportedAt === 'number' &&
    typeof load === 'object' &&
    load !== null;
  if (!ok) return undefined;
  const parsedLoad = parseLoadReport(load);
  if (parsedLoad === undefined) return undefined;
  const member: Member = {
    node: m.node as string,
    gateway: m.gateway as string,
    startedAt: m.startedAt as number,
    // A member that does not say (an older version) hosts no vehicles.
    workers: (m.workers as number | undefined) ?? 0,
    load: parsedLoad,
    reportedAt: m.reportedAt as number,
  };
  if (m.grpc !== undefined) member.grpc = m.grpc as string;
  if (m.peer !== undefined) member.peer = m.peer as string;
  return member;
}

export class MemberTable {
  private readonly byKey = new Map<string, Member>();
  /** etcd revision of the last change applied. */
  revision = 0;
  /** Values under the prefix that were not members (ignored). */
  malformed = 0;

  /** A key was put at `revision`; `createRevision`: the key's (etcd's create_revision). */
  put(key: string, value: string, revision: number, createRevision?: number): void {
    const m = parseMember(key, value);
    if (m === undefined) {
      this.malformed++;
      this.byKey.delete(key);
    } else {
      if (createRevision !== undefined && createRevision > 0) m.createRevision = createRevision;
      this.byKey.set(key, m);
    }
    this.revision = Math.max(this.revision, revision);
  }

  /** A key was deleted (left, or its lease expired) at `revision`. */
  delete(key: string, revision: number): void {
    this.byKey.delete(key);
    this.revision = Math.max(this.revision, revision);
  }

  /** Every member, by node name. */
  members(): Member[] {
    return [...this.byKey.values()].sort((a, b) =>
      a.node < b.node ? -1 : a.node > b.node ? 1 : 0,
    );
  }

  get size(): number {
    return this.byKey.size;
  }
}

/** 'host:port' or '[v6]:port' → parts. */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(hostPort.slice(i + 1)) };
}
