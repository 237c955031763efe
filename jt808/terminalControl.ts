// 0x8105 terminal control, command word 2 "connect to a specified server" (2013 table 18–19,
// 2019 table 19): a ';'-joined STRING of named fields, empty fields left empty; with connection
// control 1 ("back to the original platform") no further fields follow. Used by the locator
// to redirect a terminal to the least-loaded node.

export const CONNECT_TO_SERVER = 2;

export interface ConnectToServer {
  /** 0: switch to the specified platform; 1: switch back to the original one. */
  connectionControl: 0 | 1;
  authCode?: string;
  apn?: string;
  dialUser?: string;
  dialPassword?: string;
  address?: string;
  tcpPort?: number;
  udpPort?: number;
  /** Minutes; non-zero: the terminal returns to its original platform when it ends. */
  timeLimitMinutes?: number;
}

const ORDER = [
  'authCode',
  'apn',
  'dialUser',
  'dialPassword',
  'address',
  'tcpPort',
  'udpPort',
  'timeLimitMinutes',
] as const;

export function formatConnectToServer(c: ConnectToServer): string {
  if (c.connectionControl === 1) return '1';
  for (const f of ['authCode', 'apn', 'dialUser', 'dialPassword', 'address'] as const) {
    if (c[f]?.includes(';')) throw new RangeError(`${f} must not contain ';'`);
  }
  return ['0', ...ORDER.map((k) => (c[k] === undefined ? '' : String(c[k])))].join(';');
}

/** Parses the parameter string of command word 2; undefined when it is not of that shape. */
export function parseConnectToServer(params: string): ConnectToServer | undefined {
  const parts = params.split(';');
  const control = parts[0];
  if (control === '1') return { connectionControl: 1 };
  if (control !== '0') return undefined;
  const out: ConnectToServer = { connectionControl: 0 };
  const num = (s: string | undefined): number | undefined =>
    s && /^\d+$/.test(s) ? Number(s) : undefined;
  const text = (s: string | undefined): string | undefined => (s ? s : undefined);
  const set = <K extends keyof ConnectToServer>(k: K, v: ConnectToServer[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('authCode', text(parts[1]));
  set('apn', text(parts[2]));
  set('dialUser', text(parts[3]));
  set('dialPassword', text(parts[4]));
  set('address', text(parts[5]));
  set('tcpPort', num(parts[6]));
  set('udpPort', num(parts[7]));
  set('timeLimitMinutes', num(parts[8]));
  return out;
}
