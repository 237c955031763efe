// `fleetmesh decode [--lenient] [--edition 2011|2013|2019] HEX…`: one JSON line per frame.
// Hex comes from the arguments or, without any, one frame (or several) per line on stdin.
// A hex string that starts with 7e is split at its delimiters; otherwise it is taken as one
// frame's content. Exit status 1 when any frame was rejected.
import { createInterface } from 'node:readline';
import { decodeFrame, type DecodeOptions } from '../jt808/codec.js';
import { FrameSplitter } from '../jt808/framing.js';
import { frameJson } from '../jt808/json.js';
import type { Edition } from '../jt808/header.js';

export function decodeHexLine(hex: string, opts: DecodeOptions): Record<string, unknown>[] {
  const clean = hex.replace(/[\s:]/g, '').replace(/^0x/i, '');
  if (clean === '') return [];
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    return [
      {
        ok: false,
        reason: 'not-hex',
        detail: `not an even-length hex string: ${hex.slice(0, 60)}`,
      },
    ];
  }
  const bytes = new Uint8Array(Buffer.from(clean, 'hex'));
  if (bytes[0] !== 0x7e) return [frameJson(decodeFrame(bytes, opts))];
  const out: Record<string, unknown>[] = [];
  const splitter = new FrameSplitter(bytes.length);
  splitter.push(bytes, (frame) => out.push(frameJson(decodeFrame(frame, opts))));
  if (splitter.buffered > 0)
    out.push({
      ok: false,
      reason: 'unterminated-frame',
      detail: `${splitter.buffered} bytes after the last 0x7e`,
    });
  if (out.length === 0)
    out.push({ ok: false, reason: 'no-frame', detail: 'no bytes between 0x7e delimiters' });
  return out;
}

export const decodeUsage = '[--lenient] [--edition 2011|2013|2019] HEX…';

export async function runDecode(args: string[]): Promise<number> {
  const opts: DecodeOptions = {};
  const hexes: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-h' || a === '--help') {
      process.stdout.write(
        `usage: fleetmesh decode ${decodeUsage}\n  one JSON object per frame (docs/decode-json.md); no HEX: one frame per line on stdin\n`,
      );
      return 0;
    } else if (a === '--lenient') opts.lenient = true;
    else if (a === '--edition') {
      const e = Number(args[++i]);
      if (e !== 2011 && e !== 2013 && e !== 2019)
        throw new Error('--edition takes 2011, 2013 or 2019');
      opts.edition = e as Edition;
    } else hexes.push(a);
  }
  let failed = false;
  const emit = (hex: string): void => {
    for (const obj of decodeHexLine(hex, opts)) {
      if (obj.ok !== true) failed = true;
      process.stdout.write(`${JSON.stringify(obj)}\n`);
    }
  };
  if (hexes.length > 0) hexes.forEach(emit);
  else for await (const line of createInterface({ input: process.stdin })) emit(line);
  return failed ? 1 : 0;
}
