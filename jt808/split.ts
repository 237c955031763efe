// Outbound sub-packages: a body longer than one frame carries is cut into packages with
// consecutive serials. Terminals answer a split message with the serial of its LAST package
// (go-jt808 issue #13), so that is the serial a reply is matched on.
import { frameFromBody, type FrameHeader } from './codec.js';
import { MAX_BODY_LENGTH } from './header.js';

export interface SplitFrames {
  frames: Uint8Array[];
  /** Serials used, in order. */
  serials: number[];
  /** The serial the terminal's reply will carry. */
  replySerial: number;
}

/**
 * Frames `body` as one message, or as packages of at most `packageBodyBytes` when it does not
 * fit one frame. `header.serial` is the first serial; the next ones follow it (wrapping at 0xFFFF).
 */
export function splitMessage(
  messageId: number,
  body: Uint8Array,
  header: Omit<FrameHeader, 'packageTotal' | 'packageIndex'>,
  packageBodyBytes = MAX_BODY_LENGTH,
): SplitFrames {
  if (packageBodyBytes < 1 || packageBodyBytes > MAX_BODY_LENGTH) {
    throw new RangeError(`package size must be 1..${MAX_BODY_LENGTH}`);
  }
  if (body.length <= packageBodyBytes) {
    return {
      frames: [frameFromBody(messageId, body, header)],
      serials: [header.serial],
      replySerial: header.serial,
    };
  }
  const total = Math.ceil(body.length / packageBodyBytes);
  if (total > 0xffff)
    throw new RangeError(`body of ${body.length} bytes needs more than 65535 packages`);
  const frames: Uint8Array[] = [];
  const serials: number[] = [];
  for (let i = 0; i < total; i++) {
    const serial = (header.serial + i) & 0xffff;
    const part = body.subarray(
      i * packageBodyBytes,
      Math.min(body.length, (i + 1) * packageBodyBytes),
    );
    frames.push(
      frameFromBody(messageId, part, {
        ...header,
        serial,
        packageTotal: total,
        packageIndex: i + 1,
      }),
    );
    serials.push(serial);
  }
  return { frames, serials, replySerial: serials[serials.length - 1] as number };
}
