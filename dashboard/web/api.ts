// Calls to the dashboard server. A 401 means the session is gone: the app shows the login form.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, body?: object): Promise<T> {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await res.text();
  let json: unknown = {};
  try {
    json = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, text.slice(0, 200));
  }
  if (!res.ok) {
    const error = (json as { error?: unknown }).error;
    throw new ApiError(res.status, typeof error === 'string' ? error : `HTTP ${res.status}`);
  }
  return json as T;
}

export function time(ms: number): string {
  if (!ms) return '—';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** JT/T 808 alarm flag bits (table 24), by bit. */
export const ALARM_NAMES: Record<number, string> = {
  0: 'emergency',
  1: 'overspeed',
  2: 'fatigue driving',
  3: 'danger warning',
  4: 'GNSS module fault',
  5: 'GNSS antenna cut',
  6: 'GNSS antenna short',
  7: 'power low',
  8: 'power cut',
  9: 'display fault',
  10: 'TTS fault',
  11: 'camera fault',
  12: 'IC card fault',
  13: 'overspeed warning',
  14: 'fatigue warning',
  18: 'driving overtime today',
  19: 'parking overtime',
  20: 'in/out area',
  21: 'in/out route',
  22: 'route time',
  23: 'off route',
  24: 'VSS fault',
  25: 'fuel abnormal',
  26: 'stolen',
  27: 'illegal ignition',
  28: 'illegal displacement',
  29: 'collision',
  30: 'rollover',
  31: 'illegal door opening',
};
