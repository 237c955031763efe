// Frame and message decoding/encoding: the one entry point the gateway and the CLI use.
// Every failure is a value with a machine-readable reason; nothing here throws on input.
import { Reader, Truncated, Writer } from './bytes.js';
import { checkCode, frameBytes, unescapeFrame } from './framing.js';
import { parseHeader, writeHeader, type Edition, type Header, type HeaderFields } from './header.js';
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

export interface DecodedFrame {
  ok: true;
  header: Header;
  /** Edition the body was read with (2011 vs 2013 is told from the body where layouts differ). */
  edition: Edition;
  /** The unescaped body (a view: copy it to keep it past the next frame). */
  body: Uint8Array;
  /** Null for a sub-package (reassemble first) or an encrypted body. */
  message: Message | null;
  /** Irregularities accepted (lenient check code, version flag mismatches, trailing bytes …). */
  warnings: string[];
}

export type DecodeResult = DecodedFrame | Rejection;

export interface DecodeOptions {
  /** Accept a wrong check code, raw 0x7D and body-length mismatches, each with a warning. */
  lenient?: boolean;
  /** The terminal's body edition when known from its session (2011 vs 2013 share headers). */
  edition?: Edition;
}

/** Decodes one frame's escaped content (the bytes between the two 0x7E). */
export function decodeFrame(escaped: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  const lenient = opts.lenient ?? false;
  if (escaped.length === 0) return { ok: false, reason: 'empty-frame', detail: 'nothing between the delimiters' };
  const un = unescapeFrame(escaped, lenient);
  if (!un.ok) {
    const after = un.byte < 0 ? 'the end of the frame' : `0x${un.byte.toString(16).padStart(2, '0')}`;
    return { ok: false, reason: 'bad-escape', detail: `0x7d followed by ${after} at offset ${un.at}` };
  }
  const b = un.bytes;
  const warnings: string[] = [];
  if (un.rawEscapes > 0) warnings.push('raw-0x7d');
  if (b.length < 13) {
    return { ok: false, reason: 'header-too-short', detail: `${b.length} bytes, a frame needs at least 13` };
  }
  const h = parseHeader(b, lenient);
  if (!h.ok) return h.header ? { ok: false, reason: h.reason, detail: h.detail, header: h.header } : { ok: false, reason: h.reason, detail: h.detail };
  const expected = checkCode(b, 0, b.length - 1);
  const got = b[b.length - 1]!;
  if (expected !== got) {
    const detail = `check code 0x${hex2(got)} in the frame, 0x${hex2(expected)} computed`;
    if (!lenient) return { ok: false, reason: 'bad-check-code', detail, header: h.header };
    warnings.push('bad-check-code');
  }
  warnings.push(...h.warnings);
  const header = h.header;
  const start = h.headerLength;
  const end = Math.min(b.length - 1, start + header.bodyLength);
  const body = b.subarray(start, end);
  const edition: Edition = header.headerEdition === 2019 ? 2019 : opts.edition === 2011 ? 2011 : 2013;
  if (header.packageTotal !== undefined || header.encryption !== 0) {
    if (header.encryption !== 0) warnings.push('encrypted-body');
    return { ok: true, header, edition, body, message: null, warnings };
  }
  const decoded = decodeBody(header.messageId, body, edition);
  if (!decoded.ok) return { ok: false, reason: decoded.reason, detail: decoded.detail, header };
  if (decoded.unread > 0) warnings.push(`unread-body-bytes:${decoded.unread}`);
  return { ok: true, header, edition: decoded.edition, body, message: decoded.message, warnings };
}

export type BodyResult =
  | { ok: true; message: Message; edition: Edition; unread: number }
  | { ok: false; reason: 'body-truncated' | 'body-malformed'; detail: string };

/** Decodes a (reassembled) body. Unknown ids give a Raw message. */
export function decodeBody(messageId: number, body: Uint8Array, edition: Edition): BodyResult {
  const name = messageName(messageId);
  if (name === undefined) return { ok: true, message: { type: 'Raw', messageId, body }, edition, unread: 0 };
  const ctx: Context = { edition };
  const r = new Reader(body);
  try {
    const codec = MESSAGES[name].body as Codec<unknown>;
    const decoded = codec.read(r, ctx);
    return { ok: true, message: { type: name, body: decoded } as Message, edition: ctx.edition, unread: r.remaining };
  } catch (err) {
    if (err instanceof Truncated) return { ok: false, reason: 'body-truncated', detail: `0x${hex4(messageId)} body: ${err.message}` };
    return { ok: false, reason: 'body-malformed', detail: `0x${hex4(messageId)} body: ${err instanceof Error ? err.message : String(err)}` };
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

/** Encodes a whole frame (one package: the body must fit 1023 bytes; see splitMessage). */
export function encodeFrame(message: Message, header: FrameHeader): Uint8Array {
  return frameFromBody(messageIdOf(message), encodeBody(message, header.edition), header);
}

/** Frames an already encoded body. */
export function frameFromBody(messageId: number, body: Uint8Array, header: FrameHeader): Uint8Array {
  const w = new Writer(body.length + 24);
  writeHeader(w, { ...header, messageId }, body.length);
  w.bytes(body);
  return frameBytes(w.finish());
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');
