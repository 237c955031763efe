// The JSON shape of a decoded frame, for the `fleetmesh decode` CLI and other tools that read
// it (documented in docs/decode-json.md; keep it stable). Bytes become lower-case hex, times
// ISO-8601 UTC strings.
import { toHex } from './bytes.js';
import type { DecodeResult } from './codec.js';
import type { Message } from './messages.js';

function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      out[k] = k === 'time' && typeof x === 'number' ? new Date(x).toISOString() : plain(x);
    }
    return out;
  }
  return v;
}

export function frameJson(r: DecodeResult): Record<string, unknown> {
  if (!r.ok) {
    const out: Record<string, unknown> = { ok: false, reason: r.reason, detail: r.detail };
    if (r.header) out.header = plain(r.header);
    return out;
  }
  const out: Record<string, unknown> = {
    ok: true,
    header: plain(r.header),
    edition: r.edition,
  };
  if (r.message === null) {
    out.type = r.header.packageTotal !== undefined ? 'SubPackage' : 'Encrypted';
    out.body = { raw: toHex(r.body) };
  } else if (r.message.type === 'Raw') {
    out.type = 'Raw';
    out.body = { raw: toHex(r.message.body) };
  } else {
    out.type = r.message.type;
    out.body = plain(r.message.body);
  }
  if (r.warnings.length > 0) out.warnings = r.warnings;
  return out;
}

/** A message body in the same JSON shape as `frameJson`'s `body`. */
export function bodyJson(message: Message): unknown {
  return message.type === 'Raw' ? { raw: toHex(message.body) } : plain(message.body);
}
