// The locator (issue 12 part 2, seed 002's "terminal-info server"): the JT/T 808 address
// terminals are configured with. A terminal connects, registers (0x0100 → 0x8100) and/or
// authenticates (0x0102 → 0x8001) as the standard says, then gets 0x8105 command word 2
// "connect to the specified server" with the gateway address and TCP port of the node the policy
// chooses (cluster/locatorPolicy.ts) and a connection time limit (so a terminal whose node dies
// comes back here when it ends); once the terminal acknowledges (0x0001), the connection is
// closed. Stateless: the nodes and their load come from etcd, the only memory is the count of its
// own recent assignments, so several locators can run and one can restart at any time.
//
// It grants nothing: authentication codes are checked by the node the terminal goes to (the
// locator has no vehicle store). A terminal that registers here gets a code marked as the
// locator's; its 0x8105 then carries no monitoring-platform code, so the terminal registers on
// the node (which issues the code the node checks). A terminal that authenticates with any other
// code gets that code in its 0x8105 to authenticate with on the node. See docs/locator.md.
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { decodeFrameIn, encodeFrame, headerFor, type RejectReason } from '../jt808/codec.js';
import { FrameSplitter, MAX_LEGAL_FRAME_BYTES } from '../jt808/framing.js';
import { vehicleIdOf, type Edition, type Header } from '../jt808/header.js';
import type { Message } from '../jt808/messages.js';
import { CONNECT_TO_SERVER, formatConnectToServer } from '../jt808/terminalControl.js';
import {
  AssignmentLedger,
  candidatesOf,
  chooseNode,
  zoneOf,
  type Choice,
  type ZoneMap,
} from '../cluster/locatorPolicy.js';
import { splitHostPort, type Member } from '../cluster/memberTable.js';
import {
  DecisionLog,
  reasonOf,
  type DecisionLogOptions,
  type DecisionSource,
} from './decisions.js';

/** Where the locator reads the nodes from: a MemberWatch, or anything that lists members. */
export interface MemberSource {
  members(): Member[];
  onChange(fn: (members: Member[], revision: number) => void): () => void;
}

export interface LocatorOptions {
  members: MemberSource;
  host?: string;
  /** TCP port of the JT/T 808 endpoint; 0 picks a free one. */
  port?: number;
  zones?: ZoneMap;
  /**
   * Minutes the terminal stays on the node before it must come back here (0: for good, which
   * leaves a terminal whose node died with nowhere to go until it is restarted). Default 60.
   */
  timeLimitMinutes?: number;
  /**
   * A terminal that refuses command word 2 (0x0001 result 1 or 3): 'close' (default) counts and
   * closes it; 'parameters' sets its main server (0x8103 ids 0x0013 address, 0x0018 TCP port) to
   * the chosen node, which takes it away from the locator for good (see docs/locator.md).
   */
  unsupported?: 'close' | 'parameters';
  /** Connections at once; past it a new one is refused (closed at once). */
  maxConnections?: number;
  /** Connections at once from one address (carrier NAT: keep it generous). */
  maxPerAddress?: number;
  /** A connection is closed this long after it opened, whatever it did (default 30 s). */
  connectionDeadlineMs?: number;
  /** Rejected or out-of-place frames a connection may send before it is closed. */
  maxBadFrames?: number;
  /** Bytes outside any frame a connection may send before it is closed. */
  maxGarbageBytes?: number;
  /** Bytes written that the terminal has not read; past this it is closed. */
  maxWriteBufferBytes?: number;
  /**
   * false: choose from the last reports alone, without counting our own assignments (only to
   * measure the herd it prevents; `npm run bench -- locator`). Default true.
   */
  antiHerding?: boolean;
  /** Bounds of the decisions kept for operators (`decisions`; locator/decisions.ts). */
  decisions?: Partial<DecisionLogOptions>;
  random?: () => number;
  now?: () => number;
  /** Told where a connection or frame is refused or closed (the points counted in `stats`). */
  log?(cause: LocatorLogCause, fields: Record<string, string | number>): void;
}

export type LocatorLogCause =
  | 'refused-connection'
  | 'deadline'
  | 'closed-for-garbage'
  | 'bad-frame'
  | 'unauthenticated'
  | 'no-node'
  | 'unsupported'
  | 'slow-reader';

export interface LocatorStats {
  connections: number;
  accepted: number;
  /** Refused: too many connections in total or from one address. */
  refusedConnections: number;
  frames: number;
  rejected: Partial<Record<RejectReason, number>>;
  registered: number;
  authenticated: number;
  /** 0x8105 sent. */
  redirects: number;
  /** 0x8105 acknowledged with result 0 (the connection then closed). */
  redirected: number;
  /** Terminals that refused command word 2. */
  unsupported: number;
  /** Of those, moved with 0x8103 (unsupported: 'parameters') and acknowledged. */
  movedByParameters: number;
  /** Frames other than register/authenticate/heartbeat/logout/replies (answered result 1). */
  unauthenticated: number;
  /** Authenticated, but no node to send it to (none live, or all draining). */
  noNode: number;
  closedForGarbage: number;
  closedAtDeadline: number;
  closedSlowReader: number;
  /** Redirects by node. */
  byNode: Map<string, number>;
  /** Choices that found a node of the terminal's zone. */
  inZone: number;
}

/** Codes this locator gives in 0x8100 start with this (a node's never do: they are hex). */
export const LOCATOR_CODE_PREFIX = 'loc-';

/** The code a registering terminal gets: derived from its id, the same from every locator. */
export function locatorAuthCode(vehicleId: string): string {
  return LOCATOR_CODE_PREFIX + createHash('sha256').update(vehicleId).digest('hex').slice(0, 12);
}

interface Connection {
  socket: Socket;
  address: string;
  splitter: FrameSplitter;
  badFrames: number;
  serial: number;
  edition?: Edition;
  vehicleId?: string;
  region?: { province: number; city: number };
  /** 'redirect': 0x8105 sent, waiting for its 0x0001; 'parameters': 0x8103 sent. */
  awaiting?: { kind: 'redirect' | 'parameters'; serial: number; choice: Choice };
  deadline: NodeJS.Timeout;
  closing: boolean;
}

export class Locator {
  readonly stats: LocatorStats = {
    connections: 0,
    accepted: 0,
    refusedConnections: 0,
    frames: 0,
    rejected: {},
    registered: 0,
    authenticated: 0,
    redirects: 0,
    redirected: 0,
    unsupported: 0,
    movedByParameters: 0,
    unauthenticated: 0,
    noNode: 0,
    closedForGarbage: 0,
    closedAtDeadline: 0,
    closedSlowReader: 0,
    byNode: new Map(),
    inZone: 0,
  };
  /** The last decisions and the counts per node over the last minutes (gRPC ListDecisions). */
  readonly decisions: DecisionLog;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly byAddress = new Map<string, number>();
  private readonly ledger = new AssignmentLedger();
  private readonly lastReport = new Map<string, number>();
  private readonly unwatch: () => void;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly options: LocatorOptions) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.decisions = new DecisionLog(options.decisions);
    this.server = createServer((socket) => this.accept(socket));
    // A new report of a node takes in the assignments made before it was sampled: its
    // reportedAt (the node's clock), or its arrival if that clock is ahead of ours. (Arrival
    // alone undercounts when a busy node's report takes long to reach us.)
    const seen = (members: Member[]): void => {
      const at = this.now();
      const names = new Set<string>();
      for (const m of members) {
        names.add(m.node);
        if (this.lastReport.get(m.node) !== m.reportedAt) {
          this.lastReport.set(m.node, m.reportedAt);
          this.ledger.reported(m.node, Math.min(at, m.reportedAt));
        }
      }
      this.ledger.retain(names);
      for (const n of this.lastReport.keys()) if (!names.has(n)) this.lastReport.delete(n);
    };
    seen(options.members.members());
    this.unwatch = options.members.onChange(seen);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /**
   * The node for a vehicle now, counted as an assignment (the gRPC Locate and the 0x8105 path
   * both call this) and recorded in `decisions`. Undefined when no node can take it.
   */
  locate(
    vehicleId: string,
    region?: { province: number; city: number },
    via: { source: DecisionSource; phone?: string } = { source: 'locate' },
  ): (Choice & { zone: string | undefined }) | undefined {
    const now = this.now();
    const zone = zoneOf(vehicleId, region, this.options.zones ?? {});
    const ledger = this.options.antiHerding === false ? new AssignmentLedger() : this.ledger;
    const candidates = candidatesOf(this.options.members.members(), ledger, now);
    const choice = chooseNode(candidates, zone, this.random);
    this.decisions.record({
      atUnixMs: now,
      vehicleId,
      phone: via.phone ?? '',
      source: via.source,
      node: choice?.candidate.node ?? '',
      reason: reasonOf(candidates, zone, choice),
      terminalZone: zone ?? '',
      nodeZone: choice?.candidate.zone ?? '',
      inZone: choice?.inZone ?? false,
      overCapacity: choice?.overCapacity ?? false,
      candidates,
    });
    if (!choice) return undefined;
    this.ledger.assign(choice.candidate.node, now);
    if (choice.inZone) this.stats.inZone++;
    return { ...choice, zone };
  }

  async close(): Promise<void> {
    this.unwatch();
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    if (
      this.connections.size >= (this.options.maxConnections ?? 20_000) ||
      (this.byAddress.get(address) ?? 0) >= (this.options.maxPerAddress ?? 4096)
    ) {
      this.stats.refusedConnections++;
      this.options.log?.('refused-connection', { address });
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn: Connection = {
      socket,
      address,
      splitter: new FrameSplitter(MAX_LEGAL_FRAME_BYTES),
      badFrames: 0,
      serial: 0,
      closing: false,
      // The whole visit is bounded: a terminal that never authenticates, never answers the
      // 0x8105 or just holds the socket open is closed at the deadline.
      deadline: setTimeout(() => {
        this.stats.closedAtDeadline++;
        this.options.log?.('deadline', { address, vehicleId: conn.vehicleId ?? '' });
        socket.destroy();
      }, this.options.connectionDeadlineMs ?? 30_000),
    };
    conn.deadline.unref();
    this.connections.add(conn);
    this.byAddress.set(address, (this.byAddress.get(address) ?? 0) + 1);
    this.stats.connections = this.connections.size;
    this.stats.accepted++;
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      clearTimeout(conn.deadline);
      this.connections.delete(conn);
      const n = (this.byAddress.get(address) ?? 1) - 1;
      if (n > 0) this.byAddress.set(address, n);
      else this.byAddress.delete(address);
      this.stats.connections = this.connections.size;
    });
  }

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.closing) return;
    conn.splitter.pushRanges(chunk, (bytes, from, to) => {
      if (!conn.closing) this.onFrame(conn, bytes, from, to);
    });
    if (
      conn.splitter.stats.garbageBytes > (this.options.maxGarbageBytes ?? 64 * 1024) ||
      conn.badFrames > (this.options.maxBadFrames ?? 16)
    ) {
      this.stats.closedForGarbage++;
      this.options.log?.('closed-for-garbage', {
        address: conn.address,
        garbageBytes: conn.splitter.stats.garbageBytes,
        badFrames: conn.badFrames,
      });
      conn.socket.destroy();
    }
  }

  private onFrame(conn: Connection, bytes: Uint8Array, from: number, to: number): void {
    this.stats.frames++;
    const r = decodeFrameIn(bytes, from, to, conn.edition ? { edition: conn.edition } : {});
    if (!r.ok) {
      this.stats.rejected[r.reason] = (this.stats.rejected[r.reason] ?? 0) + 1;
      this.options.log?.('bad-frame', { address: conn.address, reason: r.reason });
      conn.badFrames++;
      // The standard's answer to a message it cannot read: general response, result 2.
      if (r.header) this.answer(conn, r.header, 2);
      return;
    }
    const header = r.header;
    const m = r.message;
    const vehicleId = vehicleIdOf(header.phone);
    if (conn.vehicleId !== undefined && vehicleId !== conn.vehicleId) {
      conn.badFrames++;
      this.answer(conn, header, 2);
      return;
    }
    if (header.encryption !== 0 || m === null) {
      // Encrypted or sub-packaged: nothing the locator needs comes that way.
      this.answer(conn, header, 3);
      return;
    }
    switch (m.type) {
      case 'Register': {
        conn.vehicleId = vehicleId;
        conn.edition = r.edition;
        conn.region = { province: m.body.province, city: m.body.city };
        this.stats.registered++;
        this.send(conn, header, r.edition, {
          type: 'RegisterReply',
          body: { replySerial: header.serial, result: 0, authCode: locatorAuthCode(vehicleId) },
        });
        return;
      }
      case 'Authenticate': {
        conn.vehicleId = vehicleId;
        conn.edition = r.edition;
        this.stats.authenticated++;
        const code = m.body.authCode;
        const choice = this.locate(vehicleId, conn.region, {
          source: 'jt808',
          phone: header.phone,
        });
        if (!choice) {
          // Nowhere to go: the terminal is told authentication failed and tries again later.
          this.stats.noNode++;
          this.options.log?.('no-node', { vehicleId });
          this.answer(conn, header, 1);
          this.end(conn);
          return;
        }
        this.answer(conn, header, 0);
        this.redirect(conn, header, choice, code.startsWith(LOCATOR_CODE_PREFIX) ? '' : code);
        return;
      }
      case 'TerminalResponse': {
        const a = conn.awaiting;
        if (!a || m.body.replySerial !== a.serial) return; // a reply to nothing we sent
        if (a.kind === 'redirect' && m.body.replyId === 0x8105) {
          if (m.body.result === 0) {
            this.stats.redirected++;
            this.end(conn);
          } else this.refusedCommandWord(conn, header, a.choice);
        } else if (a.kind === 'parameters' && m.body.replyId === 0x8103) {
          if (m.body.result === 0) this.stats.movedByParameters++;
          this.end(conn);
        }
        return;
      }
      case 'Heartbeat':
        this.answer(conn, header, 0);
        return;
      case 'Logout':
        this.answer(conn, header, 0);
        this.end(conn);
        return;
      default:
        // Reports and the rest belong on a node: result 1 ("failed"), never 0, so the terminal
        // keeps them and sends them again there (a 0 here would lose them).
        this.stats.unauthenticated++;
        this.options.log?.('unauthenticated', {
          address: conn.address,
          messageId: header.messageId,
        });
        if (conn.vehicleId === undefined) conn.badFrames++;
        this.answer(conn, header, 1);
    }
  }

  private redirect(conn: Connection, header: Header, choice: Choice, authCode: string): void {
    const { host, port } = splitHostPort(choice.candidate.gateway);
    const serial = this.send(conn, header, conn.edition ?? 2013, {
      type: 'TerminalControl',
      body: {
        command: CONNECT_TO_SERVER,
        parameters: formatConnectToServer({
          connectionControl: 0,
          ...(authCode && !authCode.includes(';') ? { authCode } : {}),
          address: host,
          tcpPort: port,
          timeLimitMinutes: this.options.timeLimitMinutes ?? 60,
        }),
      },
    });
    conn.awaiting = { kind: 'redirect', serial, choice };
    this.stats.redirects++;
    const byNode = this.stats.byNode;
    byNode.set(choice.candidate.node, (byNode.get(choice.candidate.node) ?? 0) + 1);
  }

  /** The terminal answered 0x8105 with a failure: it cannot switch servers this way. */
  private refusedCommandWord(conn: Connection, header: Header, choice: Choice): void {
    this.stats.unsupported++;
    this.options.log?.('unsupported', { vehicleId: conn.vehicleId ?? '' });
    if (this.options.unsupported !== 'parameters') {
      this.end(conn);
      return;
    }
    const { host, port } = splitHostPort(choice.candidate.gateway);
    const serial = this.send(conn, header, conn.edition ?? 2013, {
      type: 'SetParameters',
      body: {
        params: [
          { id: 0x0013, value: host },
          { id: 0x0018, value: port },
        ],
      },
    });
    conn.awaiting = { kind: 'parameters', serial, choice };
  }

  /** Closes once what was written is out. */
  private end(conn: Connection): void {
    conn.closing = true;
    conn.socket.end();
    setTimeout(() => conn.socket.destroy(), 1000).unref();
  }

  private answer(conn: Connection, header: Header, result: number): void {
    const edition: Edition = header.headerEdition === 2019 ? 2019 : (conn.edition ?? 2013);
    this.send(conn, header, edition, {
      type: 'PlatformResponse',
      body: { replySerial: header.serial, replyId: header.messageId, result },
    });
  }

  /** Sends a platform message to the terminal that sent `to`; returns its serial. */
  private send(conn: Connection, to: Header, edition: Edition, message: Message): number {
    const serial = conn.serial;
    conn.serial = (conn.serial + 1) & 0xffff;
    if (conn.socket.destroyed) return serial;
    conn.socket.write(encodeFrame(message, headerFor(to, serial, edition)));
    if (conn.socket.writableLength > (this.options.maxWriteBufferBytes ?? 64 * 1024)) {
      this.stats.closedSlowReader++;
      this.options.log?.('slow-reader', { address: conn.address });
      conn.socket.destroy();
    }
    return serial;
  }
}
