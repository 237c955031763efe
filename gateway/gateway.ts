// The JT/T 808 TCP gateway of one node: framing and decoding per connection, the session rules
// that do not need the vehicle's state (nothing but register/authenticate before
// authentication; the header phone must stay the authenticated one), sub-package reassembly,
// per-connection and global limits, and backpressure from the actors and the database to the
// sockets. Everything that needs the vehicle's state goes to its actor through `deliver`.
import { createServer, type Server, type Socket } from 'node:net';
import type { TerminalLink } from '../actors/vehicleActor.js';
import {
  decodeBody,
  decodeFrameIn,
  encodeBody,
  encodeFrame,
  type RejectReason,
} from '../jt808/codec.js';
import { FrameSplitter, MAX_LEGAL_FRAME_BYTES } from '../jt808/framing.js';
import { vehicleIdOf, type Edition, type Header } from '../jt808/header.js';
import { messageIdOf, type Message } from '../jt808/messages.js';
import { mediaReplyFor, retransmitRequestFor, SubpackageReassembler } from '../jt808/reassembly.js';

/** What the gateway hands to the vehicles' side, for the vehicle the frame's phone names. */
/**
 * `seq` numbers a connection's deliveries in the order they were read (from 1; set by the
 * gateway as it sends them, kept through every hop and retry): the vehicle takes them in that
 * order however they travelled (actors/linkOrder.ts). Absent or 0: not numbered.
 */
export type GatewayDelivery =
  | {
      kind: 'uplink';
      link: TerminalLink;
      linkNumber: number;
      seq?: number;
      header: Header;
      edition: Edition;
      /** Null when the gateway reads headers only (`bodies: 'raw'`): decode `body` then. */
      message: Message | null;
      body: Uint8Array;
      receivedAt: number;
    }
  | {
      kind: 'linkClosed';
      link: TerminalLink;
      linkNumber: number;
      seq?: number;
      reason: string;
      at: number;
    }
  /**
   * A platform message the gateway has to send to an authenticated terminal (0x8001 to a refused
   * frame or a sub-package, 0x8003 / 0x8800 for an expired set): it goes out through the vehicle,
   * numbered by the vehicle's one downlink serial counter.
   */
  | {
      kind: 'platformMessage';
      link: TerminalLink;
      linkNumber: number;
      seq?: number;
      phone: string;
      edition: Edition;
      /** Encoded here: the message crosses threads and nodes as id and body bytes. */
      messageId: number;
      body: Uint8Array;
    };

export interface GatewayOptions {
  node: string;
  /** Link ids are `${linkPrefix}${number}` (default `${node}/`). */
  linkPrefix?: string;
  host?: string;
  port?: number;
  /** Hands a frame to the vehicle's side; false when it cannot take it now (we retry). */
  deliver(vehicleId: string, d: GatewayDelivery): boolean;
  /**
   * 'decode': bodies decoded here (actors on this thread); 'raw': header only, the body is
   * decoded by the worker that owns the vehicle.
   */
  bodies?: 'decode' | 'raw';
  /** True while the database cannot keep up: every socket stops reading. */
  storageFull?(): boolean;
  maxConnections?: number;
  /**
   * Connections not authenticated yet, in total and per remote address (terminals behind a
   * carrier's NAT share one: keep it generous). Past either, a new connection is refused.
   */
  maxPendingConnections?: number;
  maxPendingPerAddress?: number;
  /** A connection that has not authenticated this long after connecting is closed. */
  authDeadlineMs?: number;
  /** Bytes written to a terminal that it has not read yet; past this it is closed. */
  maxWriteBufferBytes?: number;
  /** Frames a connection may hold for a full mailbox; past this it is closed (nothing was acknowledged). */
  maxBacklog?: number;
  idleTimeoutMs?: number;
  /** Rejected frames a connection may send before it is closed. */
  maxBadFrames?: number;
  /** Bytes of garbage (outside any frame) a connection may send before it is closed. */
  maxGarbageBytes?: number;
  lenient?: boolean;
  /**
   * Told where a connection or frame is refused or closed (the points counted in `stats`), with
   * what identifies it; the node's logger rate-limits these per cause.
   */
  log?(cause: GatewayLogCause, fields: Record<string, string | number>): void;
  /** Every frame written to a terminal (metrics read acknowledgements' results from it). */
  onDownlink?(frame: Uint8Array): void;
}

export type GatewayLogCause =
  | 'refused-connection'
  | 'refused-pending'
  | 'auth-deadline'
  | 'slow-reader'
  | 'closed-for-garbage'
  | 'bad-frame'
  | 'unauthenticated'
  | 'phone-mismatch'
  | 'backlog-full';

/** Distinct message ids counted in `framesById`; later ones count under 'other'. */
const MAX_FRAME_IDS = 128;

export interface GatewayStats {
  connections: number;
  accepted: number;
  refusedConnections: number;
  frames: number;
  /** Frames whose header was read, by message id (past MAX_FRAME_IDS ids: 'other'). */
  framesById: Map<number | 'other', number>;
  rejected: Partial<Record<RejectReason, number>>;
  unauthenticated: number;
  phoneMismatch: number;
  closedForGarbage: number;
  idleClosed: number;
  pausedForBackpressure: number;
  /** Connections not authenticated yet. */
  pending: number;
  /** Refused because too many connections were waiting to authenticate (in total or from one address). */
  refusedPending: number;
  /** Closed for not authenticating within authDeadlineMs. */
  authDeadlineClosed: number;
  /** Closed because the terminal did not read what was written to it. */
  closedSlowReader: number;
  /** Closed because its frames waiting for a full mailbox passed maxBacklog. */
  closedBacklogFull: number;
}

interface Connection {
  link: TerminalLink;
  number: number;
  socket: Socket;
  splitter: FrameSplitter;
  vehicleId?: string;
  edition?: Edition;
  badFrames: number;
  /** Messages the actor refused (full mailbox), in order; the socket is paused meanwhile. */
  backlog: { vehicleId: string; msg: GatewayDelivery }[];
  retryTimer?: NodeJS.Timeout;
  serial: number;
  /** The number of the last delivery sent to a vehicle (GatewayDelivery.seq). */
  seq: number;
  address: string;
  /** Until authenticated: closes the connection at the deadline. */
  authTimer?: NodeJS.Timeout;
}

export class Gateway {
  readonly stats: GatewayStats = {
    connections: 0,
    accepted: 0,
    refusedConnections: 0,
    frames: 0,
    framesById: new Map(),
    rejected: {},
    unauthenticated: 0,
    phoneMismatch: 0,
    closedForGarbage: 0,
    idleClosed: 0,
    pausedForBackpressure: 0,
    pending: 0,
    refusedPending: 0,
    authDeadlineClosed: 0,
    closedSlowReader: 0,
    closedBacklogFull: 0,
  };
  private readonly pendingByAddress = new Map<string, number>();
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly byNumber = new Map<number, Connection>();
  private nextLinkNumber = 1;
  private readonly reassembler = new SubpackageReassembler();
  private expiryTimer: NodeJS.Timeout | undefined;
  private storagePaused = false;
  private closed = false;

  constructor(private readonly options: GatewayOptions) {
    this.server = createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    this.expiryTimer = setInterval(() => this.expireSubpackages(), 1000);
    this.expiryTimer.unref();
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /** The link of a live connection by its number (how workers name links). */
  linkByNumber(n: number): TerminalLink | undefined {
    return this.byNumber.get(n)?.link;
  }

  /** Closes the connections of authenticated vehicles that match (e.g. their worker died). */
  closeWhere(match: (vehicleId: string) => boolean, reason: string): number {
    let n = 0;
    for (const c of this.connections)
      if (c.vehicleId !== undefined && match(c.vehicleId)) {
        c.link.close(reason);
        n++;
      }
    return n;
  }

  /**
   * Sends a platform message of the caller's to at most `count` authenticated connections, each
   * through its vehicle (numbered by its one downlink serial counter, as the gateway's own
   * answers are). `messageFor` picks them: it is asked about authenticated connections in turn
   * and returns the message for one, or undefined to pass it over. Returns the links sent to.
   * (Drain: 0x8105 to the terminals a draining node still holds, a few at a time.)
   */
  sendToAuthenticated(
    count: number,
    messageFor: (c: {
      link: TerminalLink;
      vehicleId: string;
      edition: Edition;
    }) => Message | undefined,
  ): TerminalLink[] {
    const sent: TerminalLink[] = [];
    for (const c of this.connections) {
      if (sent.length >= count) break;
      if (c.vehicleId === undefined || c.socket.destroyed) continue;
      const edition = c.edition ?? 2013;
      const message = messageFor({ link: c.link, vehicleId: c.vehicleId, edition });
      if (message === undefined) continue;
      this.platformMessage(
        c,
        c.vehicleId.padStart(edition === 2019 ? 20 : 12, '0'),
        edition,
        message,
      );
      sent.push(c.link);
    }
    return sent;
  }

  /** Storage drained: sockets read again. */
  resume(): void {
    if (!this.storagePaused) return;
    this.storagePaused = false;
    for (const c of this.connections) if (c.backlog.length === 0) c.socket.resume();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    for (const c of this.connections) if (c.retryTimer) clearTimeout(c.retryTimer);
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= (this.options.maxConnections ?? 100_000)) {
      this.stats.refusedConnections++;
      this.options.log?.('refused-connection', { address: socket.remoteAddress ?? '' });
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    if (
      this.stats.pending >= (this.options.maxPendingConnections ?? 20_000) ||
      (this.pendingByAddress.get(address) ?? 0) >= (this.options.maxPendingPerAddress ?? 4096)
    ) {
      this.stats.refusedPending++;
      this.options.log?.('refused-pending', { address });
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const number = this.nextLinkNumber;
    // The upper half of link numbers names links of other nodes' terminals (cluster/peerLinks.ts).
    this.nextLinkNumber = (this.nextLinkNumber % 0x7fffffff) + 1;
    const id = `${this.options.linkPrefix ?? `${this.options.node}/`}${number}`;
    const conn: Connection = {
      number,
      socket,
      splitter: new FrameSplitter(MAX_LEGAL_FRAME_BYTES),
      badFrames: 0,
      backlog: [],
      serial: 0,
      seq: 0,
      address,
      link: {
        id,
        node: this.options.node,
        send: (frame) => {
          if (socket.destroyed) return;
          this.options.onDownlink?.(frame);
          socket.write(frame);
          // A terminal that stops reading would grow this buffer without bound.
          if (socket.writableLength > (this.options.maxWriteBufferBytes ?? 1024 * 1024)) {
            this.stats.closedSlowReader++;
            this.options.log?.('slow-reader', { link: id, address, unread: socket.writableLength });
            socket.destroy();
          }
        },
        close: (reason) => {
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          void reason;
        },
        authenticated: (vehicleId, edition) => {
          if (conn.vehicleId === undefined) this.leavePending(conn);
          conn.vehicleId = vehicleId;
          conn.edition = edition;
        },
      },
    };
    this.stats.pending++;
    this.pendingByAddress.set(address, (this.pendingByAddress.get(address) ?? 0) + 1);
    conn.authTimer = setTimeout(() => {
      this.stats.authDeadlineClosed++;
      this.options.log?.('auth-deadline', { link: id, address });
      socket.destroy();
    }, this.options.authDeadlineMs ?? 30_000);
    this.connections.add(conn);
    this.byNumber.set(number, conn);
    this.stats.connections = this.connections.size;
    this.stats.accepted++;
    socket.setTimeout(this.options.idleTimeoutMs ?? 180_000, () => {
      this.stats.idleClosed++;
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      this.connections.delete(conn);
      this.byNumber.delete(number);
      this.stats.connections = this.connections.size;
      // Frames held for a full mailbox still go (in order), and the closed-link notice after
      // them: the retry timer keeps running until the backlog is empty. (Clearing it here left
      // them, and the notice, undelivered: the actor kept a dead link as online.)
      if (conn.vehicleId === undefined) this.leavePending(conn);
      if (conn.vehicleId) {
        this.reassembler.dropTerminal(conn.vehicleId);
        this.send(conn, conn.vehicleId, {
          kind: 'linkClosed',
          link: conn.link,
          linkNumber: number,
          reason: 'connection closed',
          at: Date.now(),
        });
      }
    });
    if (this.storagePaused) socket.pause();
  }

  /** The connection authenticated or closed: it no longer counts as waiting to authenticate. */
  private leavePending(conn: Connection): void {
    if (conn.authTimer === undefined) return;
    clearTimeout(conn.authTimer);
    conn.authTimer = undefined;
    this.stats.pending--;
    const n = (this.pendingByAddress.get(conn.address) ?? 1) - 1;
    if (n > 0) this.pendingByAddress.set(conn.address, n);
    else this.pendingByAddress.delete(conn.address);
  }

  private onData(conn: Connection, chunk: Buffer): void {
    conn.splitter.pushRanges(chunk, (bytes, from, to) => this.onFrame(conn, bytes, from, to));
    if (
      conn.splitter.stats.garbageBytes > (this.options.maxGarbageBytes ?? 64 * 1024) ||
      conn.badFrames > (this.options.maxBadFrames ?? 50)
    ) {
      this.stats.closedForGarbage++;
      this.options.log?.('closed-for-garbage', {
        link: conn.link.id,
        address: conn.address,
        garbageBytes: conn.splitter.stats.garbageBytes,
        badFrames: conn.badFrames,
      });
      conn.socket.destroy();
      return;
    }
    if (!this.storagePaused && this.options.storageFull?.()) {
      this.storagePaused = true;
      this.stats.pausedForBackpressure++;
      for (const c of this.connections) c.socket.pause();
    }
  }

  private onFrame(conn: Connection, bytes: Uint8Array, from: number, to: number): void {
    this.stats.frames++;
    const receivedAt = Date.now();
    const r = decodeFrameIn(bytes, from, to, {
      lenient: this.options.lenient ?? false,
      skipBody: this.options.bodies === 'raw',
      ...(conn.edition ? { edition: conn.edition } : {}),
    });
    if (!r.ok) {
      this.stats.rejected[r.reason] = (this.stats.rejected[r.reason] ?? 0) + 1;
      this.options.log?.('bad-frame', { link: conn.link.id, reason: r.reason, detail: r.detail });
      conn.badFrames++;
      // The protocol's answer to a message it cannot read: general response, result 2.
      if (r.header) this.answer(conn, r.header, 2);
      return;
    }
    const header = r.header;
    const ids = this.stats.framesById;
    const idKey =
      ids.size < MAX_FRAME_IDS || ids.has(header.messageId) ? header.messageId : 'other';
    ids.set(idKey, (ids.get(idKey) ?? 0) + 1);
    const vehicleId = vehicleIdOf(header.phone);
    const isLogin = header.messageId === 0x0100 || header.messageId === 0x0102;
    if (conn.vehicleId === undefined && !isLogin) {
      // Counts toward the bad-frame limit: a terminal that never authenticates is closed.
      this.stats.unauthenticated++;
      this.options.log?.('unauthenticated', {
        link: conn.link.id,
        messageId: header.messageId,
        phone: header.phone,
      });
      conn.badFrames++;
      this.answer(conn, header, 1);
      return;
    }
    if (conn.vehicleId !== undefined && vehicleId !== conn.vehicleId) {
      this.stats.phoneMismatch++;
      this.options.log?.('phone-mismatch', {
        link: conn.link.id,
        vehicleId: conn.vehicleId,
        phone: header.phone,
      });
      conn.badFrames++;
      this.answer(conn, header, 2);
      return;
    }
    if (header.encryption !== 0) {
      this.answer(conn, header, 3); // encrypted bodies: not supported
      return;
    }
    let message: Message | null = r.message;
    let body = r.body;
    let edition = r.edition;
    if (header.packageTotal !== undefined && header.packageIndex !== undefined) {
      const res = this.reassembler.add(
        {
          phone: vehicleId,
          messageId: header.messageId,
          serial: header.serial,
          packageTotal: header.packageTotal,
          packageIndex: header.packageIndex,
        },
        r.body,
        receivedAt,
      );
      if (res.status !== 'complete') {
        this.answer(conn, header, res.status === 'rejected' ? 2 : 0);
        return;
      }
      body = res.body;
      const decoded = decodeBody(header.messageId, res.body, edition);
      if (!decoded.ok) {
        this.stats.rejected[decoded.reason] = (this.stats.rejected[decoded.reason] ?? 0) + 1;
        this.options.log?.('bad-frame', {
          link: conn.link.id,
          reason: decoded.reason,
          detail: decoded.detail,
        });
        this.answer(conn, header, 2);
        return;
      }
      message = decoded.message;
      edition = decoded.edition;
      // The last package is answered 0x8001 like the others; the 0x8800 comes from the
      // vehicle once the upload is stored.
      if (message.type === 'MediaData') this.answer(conn, header, 0);
    }
    this.send(conn, vehicleId, {
      kind: 'uplink',
      link: conn.link,
      linkNumber: conn.number,
      header,
      edition,
      message,
      body,
      receivedAt,
    });
  }

  /** Delivers in order; a full mailbox pauses the socket until the actor takes it. */
  private send(conn: Connection, vehicleId: string, msg: GatewayDelivery): void {
    msg.seq = ++conn.seq;
    if (conn.backlog.length === 0 && this.options.deliver(vehicleId, msg)) return;
    // A closed link's notice always goes through: the actor must learn the link is gone.
    if (msg.kind !== 'linkClosed' && conn.backlog.length >= (this.options.maxBacklog ?? 4096)) {
      // Nothing in the backlog was acknowledged: the terminal sends it again on a new connection.
      if (!conn.socket.destroyed) {
        this.stats.closedBacklogFull++;
        this.options.log?.('backlog-full', { link: conn.link.id, vehicleId });
        conn.socket.destroy();
      }
      return;
    }
    conn.backlog.push({ vehicleId, msg });
    conn.socket.pause();
    this.stats.pausedForBackpressure++;
    const retry = (): void => {
      conn.retryTimer = undefined;
      while (conn.backlog.length > 0) {
        const next = conn.backlog[0]!;
        if (!this.options.deliver(next.vehicleId, next.msg)) {
          // Stopping: the vehicles are being passivated; what they cannot take now is dropped
          // (none of it was acknowledged).
          if (!this.closed) conn.retryTimer = setTimeout(retry, 5);
          return;
        }
        conn.backlog.shift();
      }
      if (!this.storagePaused && !conn.socket.destroyed) conn.socket.resume();
    };
    if (!conn.retryTimer && !this.closed) conn.retryTimer = setTimeout(retry, 5);
  }

  private answer(conn: Connection, header: Header, result: number): void {
    const edition: Edition = header.headerEdition === 2019 ? 2019 : (conn.edition ?? 2013);
    this.platformMessage(conn, header.phone, edition, {
      type: 'PlatformResponse',
      body: { replySerial: header.serial, replyId: header.messageId, result },
    });
  }

  /**
   * Sends a platform message of the gateway's own: through the vehicle once the connection is
   * authenticated (one serial counter per terminal), else directly with the connection's counter
   * (no vehicle owns the session yet).
   */
  private platformMessage(
    conn: Connection,
    phone: string,
    edition: Edition,
    message: Message,
  ): void {
    if (conn.vehicleId !== undefined) {
      this.send(conn, conn.vehicleId, {
        kind: 'platformMessage',
        link: conn.link,
        linkNumber: conn.number,
        phone,
        edition,
        messageId: messageIdOf(message),
        body: encodeBody(message, edition),
      });
      return;
    }
    const serial = conn.serial;
    conn.serial = (conn.serial + 1) & 0xffff;
    conn.link.send(encodeFrame(message, { phone, serial, edition }));
  }

  private expireSubpackages(): void {
    for (const set of this.reassembler.expire(Date.now())) {
      const conn = [...this.connections].find((c) => c.vehicleId === set.phone);
      if (!conn) continue;
      const edition = conn.edition ?? 2013;
      const msg: Message =
        set.messageId === 0x0801
          ? { type: 'MediaDataReply', body: mediaReplyFor(0, set.missing) }
          : { type: 'RetransmitRequest', body: retransmitRequestFor(set, edition) };
      this.platformMessage(conn, set.phone.padStart(edition === 2019 ? 20 : 12, '0'), edition, msg);
    }
  }
}
