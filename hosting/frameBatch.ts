// The data plane between the gateway thread and the vehicle workers: records packed into one
// ArrayBuffer per batch, which is transferred (not copied) with one postMessage. Crossing a
// thread costs per message, not per byte (ARCHITECTURE.md), so every frame of a turn of the
// event loop goes in one batch. Pure code: no threads here.
import type { TerminalLink } from '../actors/vehicleActor.js';
import type { GatewayDelivery } from '../gateway/gateway.js';
import type { Edition, Header } from '../jt808/header.js';

/**
 * Link numbers from here up name links of terminals connected to other nodes (cluster/peerLinks.ts);
 * the gateway numbers its own below.
 */
export const PROXY_LINK_BASE = 0x8000_0000;

/**
 * The records' layout, told to peers when a stream opens: bump it when a record changes (2: the
 * delivery numbers `seq` and the closed link's id were added).
 */
export const FRAME_BATCH_FORMAT = 2;

/** Gateway → worker. */
export const UPLINK = 1;
export const LINK_CLOSED = 2;
export const PLATFORM_MESSAGE = 3;
/** The id and node of a link whose terminal is connected to another node (before its first use). */
export const LINK_NAME = 4;
/** Worker → gateway. */
export const SEND = 11;
export const CLOSE = 12;
export const AUTHENTICATED = 13;

/**
 * Records towards the vehicles carry `seq`, the gateway's number of the delivery on its
 * connection (1, 2, …; 0: not numbered), so the vehicle takes them in order (actors/linkOrder.ts).
 */
export type BatchRecord =
  | {
      kind: typeof UPLINK;
      link: number;
      seq: number;
      receivedAt: number;
      header: Header;
      edition: Edition;
      body: Uint8Array;
    }
  | {
      kind: typeof LINK_CLOSED;
      link: number;
      seq: number;
      at: number;
      reason: string;
      vehicleId: string;
      /** The link's cluster-wide id: it may be gone from every table when this comes back. */
      linkId: string;
    }
  | {
      kind: typeof PLATFORM_MESSAGE;
      link: number;
      seq: number;
      edition: Edition;
      messageId: number;
      phone: string;
      vehicleId: string;
      body: Uint8Array;
    }
  | { kind: typeof LINK_NAME; link: number; id: string; node: string }
  | { kind: typeof SEND; link: number; frame: Uint8Array }
  | { kind: typeof CLOSE; link: number; reason: string }
  | { kind: typeof AUTHENTICATED; link: number; edition: Edition; vehicleId: string };

const F_2019 = 1;
const F_VERSION_FLAG = 2;
const F_PROTOCOL_VERSION = 4;
const F_PACKAGE = 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Appends records to a growing buffer; `take()` hands the bytes over and starts afresh. */
export class FrameBatchBuilder {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  /** Records in the current batch. */
  count = 0;

  constructor(private readonly initialBytes = 16 * 1024) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  get bytes(): number {
    return this.pos;
  }

  uplink(
    link: number,
    receivedAt: number,
    header: Header,
    edition: Edition,
    body: Uint8Array,
    seq = 0,
  ): void {
    const phone = header.phone;
    this.reserve(37 + phone.length + body.length); // 33 fixed + phone + 4 length + body
    let flags = 0;
    if (header.headerEdition === 2019) flags |= F_2019;
    if (header.versionFlag) flags |= F_VERSION_FLAG;
    if (header.protocolVersion !== undefined) flags |= F_PROTOCOL_VERSION;
    if (header.packageTotal !== undefined) flags |= F_PACKAGE;
    this.u8(UPLINK);
    this.u32(link);
    this.u32(seq);
    this.f64(receivedAt);
    this.u16(header.messageId);
    this.u16(header.serial);
    this.u8(flags);
    this.u16(edition);
    this.u8(header.protocolVersion ?? 0);
    this.u8(header.encryption);
    this.u16(header.packageTotal ?? 0);
    this.u16(header.packageIndex ?? 0);
    this.u16(header.bodyLength);
    this.u8(phone.length);
    for (let i = 0; i < phone.length; i++) this.buf[this.pos++] = phone.charCodeAt(i);
    this.bytesField(body);
    this.count++;
  }

  linkClosed(
    link: number,
    at: number,
    reason: string,
    vehicleId: string,
    seq = 0,
    linkId = '',
  ): void {
    this.u8Reserve(LINK_CLOSED);
    this.u32(link);
    this.u32(seq);
    this.f64(at);
    this.string(reason);
    this.string(vehicleId);
    this.string(linkId);
    this.count++;
  }

  platformMessage(
    link: number,
    edition: Edition,
    messageId: number,
    phone: string,
    vehicleId: string,
    body: Uint8Array,
    seq = 0,
  ): void {
    this.reserve(20 + body.length);
    this.u8(PLATFORM_MESSAGE);
    this.u32(link);
    this.u32(seq);
    this.u16(edition);
    this.u16(messageId);
    this.string(phone);
    this.string(vehicleId);
    this.bytesField(body);
    this.count++;
  }

  linkName(link: number, id: string, node: string): void {
    this.u8Reserve(LINK_NAME);
    this.u32(link);
    this.string(id);
    this.string(node);
    this.count++;
  }

  send(link: number, frame: Uint8Array): void {
    this.reserve(16 + frame.length);
    this.u8(SEND);
    this.u32(link);
    this.bytesField(frame);
    this.count++;
  }

  close(link: number, reason: string): void {
    this.u8Reserve(CLOSE);
    this.u32(link);
    this.string(reason);
    this.count++;
  }

  authenticated(link: number, edition: Edition, vehicleId: string): void {
    this.u8Reserve(AUTHENTICATED);
    this.u32(link);
    this.u16(edition);
    this.string(vehicleId);
    this.count++;
  }

  /** The batch's bytes as a standalone ArrayBuffer (safe to transfer); the builder is emptied. */
  take(): ArrayBuffer {
    const out = this.buf.buffer.slice(0, this.pos) as ArrayBuffer;
    this.pos = 0;
    this.count = 0;
    if (this.buf.length > 4 * this.initialBytes) {
      // A burst grew the buffer: give the memory back.
      this.buf = new Uint8Array(this.initialBytes);
      this.view = new DataView(this.buf.buffer);
    }
    return out;
  }

  private u8Reserve(kind: number): void {
    this.reserve(1024);
    this.u8(kind);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  private u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  private u16(v: number): void {
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  private u32(v: number): void {
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  private f64(v: number): void {
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }

  private bytesField(b: Uint8Array): void {
    this.reserve(4 + b.length); // whatever was reserved before, strings may have used it
    this.u32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  private string(s: string): void {
    const b = encoder.encode(s.length > 256 ? s.slice(0, 256) : s);
    this.reserve(4 + b.length);
    this.bytesField(b);
  }
}

/** Calls `onRecord` for each record of a batch, in order. Views point into `batch`. */
export function readFrameBatch(
  batch: ArrayBuffer | Uint8Array,
  onRecord: (r: BatchRecord) => void,
): void {
  // A view is read in place (a gRPC message's bytes need no copy).
  const buf = batch instanceof Uint8Array ? batch : new Uint8Array(batch);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const u8 = (): number => buf[pos++]!;
  const u16 = (): number => {
    const v = view.getUint16(pos);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    const v = view.getUint32(pos);
    pos += 4;
    return v;
  };
  const f64 = (): number => {
    const v = view.getFloat64(pos);
    pos += 8;
    return v;
  };
  const bytes = (): Uint8Array => {
    const n = u32();
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const string = (): string => decoder.decode(bytes());
  while (pos < buf.length) {
    const kind = u8();
    switch (kind) {
      case UPLINK: {
        const link = u32();
        const seq = u32();
        const receivedAt = f64();
        const messageId = u16();
        const serial = u16();
        const flags = u8();
        const edition = u16() as Edition;
        const protocolVersion = u8();
        const encryption = u8();
        const packageTotal = u16();
        const packageIndex = u16();
        const bodyLength = u16();
        const phoneLength = u8();
        let phone = '';
        for (let i = 0; i < phoneLength; i++) phone += String.fromCharCode(buf[pos++]!);
        const header: Header = {
          messageId,
          bodyLength,
          encryption,
          headerEdition: flags & F_2019 ? 2019 : 2013,
          versionFlag: (flags & F_VERSION_FLAG) !== 0,
          phone,
          serial,
        };
        if (flags & F_PROTOCOL_VERSION) header.protocolVersion = protocolVersion;
        if (flags & F_PACKAGE) {
          header.packageTotal = packageTotal;
          header.packageIndex = packageIndex;
        }
        onRecord({ kind: UPLINK, link, seq, receivedAt, header, edition, body: bytes() });
        break;
      }
      case LINK_CLOSED: {
        const link = u32();
        const seq = u32();
        const at = f64();
        const reason = string();
        const vehicleId = string();
        onRecord({ kind: LINK_CLOSED, link, seq, at, reason, vehicleId, linkId: string() });
        break;
      }
      case PLATFORM_MESSAGE: {
        const link = u32();
        const seq = u32();
        const edition = u16() as Edition;
        const messageId = u16();
        const phone = string();
        const vehicleId = string();
        onRecord({
          kind: PLATFORM_MESSAGE,
          link,
          seq,
          edition,
          messageId,
          phone,
          vehicleId,
          body: bytes(),
        });
        break;
      }
      case LINK_NAME: {
        const link = u32();
        const id = string();
        onRecord({ kind: LINK_NAME, link, id, node: string() });
        break;
      }
      case SEND: {
        const link = u32();
        onRecord({ kind: SEND, link, frame: bytes() });
        break;
      }
      case CLOSE: {
        const link = u32();
        onRecord({ kind: CLOSE, link, reason: string() });
        break;
      }
      case AUTHENTICATED: {
        const link = u32();
        const edition = u16() as Edition;
        onRecord({ kind: AUTHENTICATED, link, edition, vehicleId: string() });
        break;
      }
      default:
        throw new Error(`frame batch: unknown record kind ${kind} at ${pos - 1}`);
    }
  }
}

/**
 * A record from the vehicles' side (a frame to send, a link to close, an authentication) done on
 * the link it names; true when it was one (false for records towards the vehicles' side).
 */
export function applyToLink(
  r: BatchRecord,
  linkByNumber: (n: number) => TerminalLink | undefined,
): boolean {
  if (r.kind !== SEND && r.kind !== CLOSE && r.kind !== AUTHENTICATED) return false;
  const link = linkByNumber(r.link);
  if (!link) return true; // the connection is gone
  if (r.kind === SEND) link.send(r.frame);
  else if (r.kind === CLOSE) link.close(r.reason);
  else link.authenticated(r.vehicleId, r.edition);
  return true;
}

/**
 * A record towards the vehicles' side (uplink, closed link, platform message) as the delivery
 * the gateway would have made, on `link` numbered `linkNumber` where it is delivered next. The
 * body is a copy: a view would keep the whole batch alive while the record waits.
 */
export function deliveryOf(
  r: BatchRecord,
  link: TerminalLink,
  linkNumber: number,
): GatewayDelivery | undefined {
  switch (r.kind) {
    case UPLINK:
      return {
        kind: 'uplink',
        link,
        linkNumber,
        seq: r.seq,
        header: r.header,
        edition: r.edition,
        message: null,
        body: r.body.slice(),
        receivedAt: r.receivedAt,
      };
    case PLATFORM_MESSAGE:
      return {
        kind: 'platformMessage',
        link,
        linkNumber,
        seq: r.seq,
        phone: r.phone,
        edition: r.edition,
        messageId: r.messageId,
        body: r.body.slice(),
      };
    case LINK_CLOSED:
      return { kind: 'linkClosed', link, linkNumber, seq: r.seq, reason: r.reason, at: r.at };
    default:
      return undefined;
  }
}
