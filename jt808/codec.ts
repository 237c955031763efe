// Frame and message decoding/encoding: the one entry point the gateway and the CLI use.
// Every failure is a value with a machine-readable reason; nothing here throws on input.
import { Reader, Truncated, Writer } from './bytes.js';
import { frameBytes, unescapeFrame } from './framing.js';
import {
  parseHeader,
  writeHeader,
  type Edition,
  type Header,
  type HeaderFields,
} from './header.js';
import { BASIC_BLOCK_LENGTH, readLocation } from './location.js';
import { MESSAGES, messageIdOf, messageName, type Message } from './messages.js';
import type { Codec, Context } from './schema.js';

export type RejectReason =
  | 'empty-frame'
  | 'bad-escape'
  | 'header-too-short'
  | 'body-length-mismatch'
  | 'bad-check-code'
  | 'body-truncated'
  | 'body-malformed';

export interface Rejection {
  ok: false;
  reason: RejectReason;
  detail: string;
  header?: Header;
}

const NO_WARNINGS: readonly string[] = Object.freeze([]);

export class DecodedFrame {
  readonly ok = true;
  private bodyView: Uint8Array | undefined;

  constructor(
    readonly header: Header,
    /** Edition the body was read with (2011 vs 2013 is told from the body where layouts differ). */
    readonly edition: Edition,
    /** Null for a sub-package (reassemble first) or an encrypted body. */
    readonly message: Message | null,
    /** Irregularities accepted (lenient check code, version flag mismatches, trailing bytes …). */
    readonly warnings: readonly string[],
    private readonly bytes: Uint8Array,
    private readonly bodyStart: number,
    private readonly bodyEnd: number,
  ) {}

  /** The unescaped body, a view made on first use (copy it to keep it past the next frame). */
  get body(): Uint8Array {
    return (this.bodyView ??= this.bytes.subarray(this.bodyStart, this.bodyEnd));
  }
}

export type DecodeResult = DecodedFrame | Rejection;

export interface DecodeOptions {
  /** Accept a wrong check code, raw 0x7D and body-length mismatches, each with a warning. */
  lenient?: boolean;
  /** The terminal's body edition when known from its session (2011 vs 2013 share headers). */
  edition?: Edition;
  /**
   * Verify the frame and read the header only (`message` null, `body` set): for a gateway that
   * routes by header and leaves the body to the thread that owns the vehicle.
   */
  skipBody?: boolean;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

/** Decodes one frame's escaped content (the bytes between the two 0x7E). */
export function decodeFrame(escaped: Uint8Array, opts?: DecodeOptions): DecodeResult {
  return decodeFrameIn(escaped, 0, escaped.length, opts);
}

/**
 * Decodes the frame whose escaped content is bytes[from, to) (what FrameSplitter.pushRanges
 * gives): no view is made of it.
 */
export function decodeFrameIn(
  bytes: Uint8Array,
  from: number,
  to: number,
  opts?: DecodeOptions,
): DecodeResult {
  const lenient = opts?.lenient ?? false;
  if (to <= from)
    return { ok: false, reason: 'empty-frame', detail: 'nothing between the delimiters' };
  const un = unescapeFrame(bytes, lenient, from, to);
  if (!un.ok) {
    const after = un.byte < 0 ? 'the end of the frame' : `0x${hex2(un.byte)}`;
    return {
      ok: false,
      reason: 'bad-escape',
      detail: `0x7d followed by ${after} at offset ${un.at}`,
    };
  }
  const b = un.bytes;
  const s = un.start;
  const e = un.end;
  if (e - s < 13)
    return {
      ok: false,
      reason: 'header-too-short',
      detail: `${e - s} bytes, a frame needs at least 13`,
    };
  const got = b[e - 1]!;
  const expected = un.xor ^ got;
  const h = parseHeader(b, lenient, s, e);
  if (!h.ok)
    return h.header
      ? { ok: false, reason: h.reason, detail: h.detail, header: h.header }
      : { ok: false, reason: h.reason, detail: h.detail };
  const header = h.header;
  // Warnings are rare: the common frame shares one frozen empty list.
  let warnings: string[] | undefined;
  if (un.rawEscapes > 0) (warnings ??= []).push('raw-0x7d');
  if (expected !== got) {
    const detail = `check code 0x${hex2(got)} in the frame, 0x${hex2(expected)} computed`;
    if (!lenient) return { ok: false, reason: 'bad-check-code', detail, header };
    (warnings ??= []).push('bad-check-code');
  }
  if (h.warnings) (warnings ??= []).push(...h.warnings);
  const start = s + h.headerLength;
  const declaredEnd = start + header.bodyLength;
  const end = declaredEnd < e - 1 ? declaredEnd : e - 1;
  const hinted: Edition =
    header.headerEdition === 2019 ? 2019 : opts?.edition === 2011 ? 2011 : 2013;
  if (header.packageTotal !== undefined || header.encryption !== 0 || opts?.skipBody) {
    if (header.encryption !== 0) (warnings ??= []).push('encrypted-body');
    return new DecodedFrame(header, hinted, null, warnings ?? NO_WARNINGS, b, start, end);
  }
  if (header.messageId === 0x0200 && end - start >= BASIC_BLOCK_LENGTH) {
    // The hot path, without the generic body machinery.
    const message: Message = { type: 'LocationReport', body: readLocation(b, start, end) };
    return new DecodedFrame(header, hinted, message, warnings ?? NO_WARNINGS, b, start, end);
  }
  const decoded = decodeBodyRange(header.messageId, b, start, end, hinted);
  if (!decoded.ok) return { ok: false, reason: decoded.reason, detail: decoded.detail, header };
  if (decoded.unread > 0) (warnings ??= []).push(`unread-body-bytes:${decoded.unread}`);
  return new DecodedFrame(
    header,
    decoded.edition,
    decoded.message,
    warnings ?? NO_WARNINGS,
    b,
    start,
    end,
  );
}

export type BodyResult =
  | { ok: true; message: Message; edition: Edition; unread: number }
  | { ok: false; reason: 'body-truncated' | 'body-malformed'; detail: string };

/** Decodes a (reassembled) body. Unknown ids give a Raw message. */
export function decodeBody(messageId: number, body: Uint8Array, edition: Edition): BodyResult {
  return decodeBodyRange(messageId, body, 0, body.length, edition);
}

function decodeBodyRange(
  messageId: number,
  buf: Uint8Array,
  start: number,
  end: number,
  edition: Edition,
): BodyResult {
  try {
    // The hot path: location reports skip the generic table walk.
    if (messageId === 0x0200) {
      return {
        ok: true,
        message: { type: 'LocationReport', body: readLocation(buf, start, end) },
        edition,
        unread: 0,
      };
    }
    const name = messageName(messageId);
    if (name === undefined)
      return {
        ok: true,
        message: { type: 'Raw', messageId, body: buf.subarray(start, end) },
        edition,
        unread: 0,
      };
    const ctx: Context = { edition };
    const r = new Reader(buf, start, end);
    const decoded = (MESSAGES[name].body as Codec<unknown>).read(r, ctx);
    return {
      ok: true,
      message: { type: name, body: decoded } as Message,
      edition: ctx.edition,
      unread: r.remaining,
    };
  } catch (err) {
    if (err instanceof Truncated)
      return {
        ok: false,
        reason: 'body-truncated',
        detail: `0x${hex4(messageId)} body: ${err.message}`,
      };
    return {
      ok: false,
      reason: 'body-malformed',
      detail: `0x${hex4(messageId)} body: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/** Encodes a message body for an edition. */
export function encodeBody(message: Message, edition: Edition): Uint8Array {
  if (message.type === 'Raw') return message.body;
  const w = new Writer(64);
  (MESSAGES[message.type].body as Codec<unknown>).write(w, message.body, { edition });
  return w.finish();
}

export type FrameHeader = Omit<HeaderFields, 'messageId'>;

/** The header of a platform message to the terminal that sent `to` (same phone and protocol version). */
export function headerFor(to: Header, serial: number, edition: Edition): FrameHeader {
  const h: FrameHeader = { phone: to.phone, serial, edition };
  if (to.protocolVersion !== undefined) h.protocolVersion = to.protocolVersion;
  return h;
}

/** Encodes a whole frame (one package: the body must fit 1023 bytes; see splitMessage). */
export function encodeFrame(message: Message, header: FrameHeader): Uint8Array {
  // One buffer: the header's room first, the body after it, then the header with its length.
  const w = new Writer(64);
  const headerLength =
    (header.edition === 2019 ? 17 : 12) + (header.packageTotal !== undefined ? 4 : 0);
  w.skip(headerLength);
  if (message.type === 'Raw') w.bytes(message.body);
  else
    (MESSAGES[message.type].body as Codec<unknown>).write(w, message.body, {
      edition: header.edition,
    });
  const end = w.pos;
  w.pos = 0;
  writeHeader(w, header, end - headerLength, messageIdOf(message));
  w.pos = end;
  return frameBytes(w.written, end);
}

/** Frames an already encoded body. */
export function frameFromBody(
  messageId: number,
  body: Uint8Array,
  header: FrameHeader,
): Uint8Array {
  const w = new Writer(body.length + 24);
  writeHeader(w, header, body.length, messageId);
  w.bytes(body);
  return frameBytes(w.written, w.pos);
}
