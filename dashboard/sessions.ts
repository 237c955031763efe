// Who may use the dashboard: whoever holds a token the node's gRPC service accepts. A token is
// checked by asking the node (a one-vehicle ListOnlineVehicles page), never against a list of
// our own, so the dashboard takes exactly the tokens the node takes. A browser logs in once and
// gets a session cookie (random, HttpOnly, SameSite=Strict) that stands for its token; a script
// may send `Authorization: Bearer <token>` instead. A token the node accepted is asked about
// again after 30 s, so a revoked one stops working within that. Both stores are bounded. A
// session may carry the operator's name given at login (no account: a name the operator types),
// sent as the handler when they confirm alarms.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { grpc, grpcCode, type VehicleClient } from './vehicleClient.js';

export const SESSION_COOKIE = 'fleetmesh_session';

export class NotAuthenticated extends Error {}

interface Session {
  token: string;
  /** The operator's name given at login ('' when none): who handled an alarm. */
  operator: string;
  expiresUnixMs: number;
}

/** An operator's name: what ConfirmAlarmsRequest.operator takes. */
export const MAX_OPERATOR_NAME = 64;

export class Sessions {
  private readonly sessions = new Map<string, Session>();
  /** Bearer tokens the node accepted lately, so a script's every request is not a round trip. */
  private readonly checked = new Map<string, number>();

  constructor(
    private readonly client: VehicleClient,
    private readonly ttlMs = 12 * 3600_000,
    private readonly maxSessions = 1000,
    private readonly checkedForMs = 30_000,
  ) {}

  /** Resolves when the node accepts `token`; NotAuthenticated when it refuses it. */
  async check(token: string): Promise<void> {
    if (token === '') throw new NotAuthenticated('a token is required');
    const until = this.checked.get(token);
    if (until !== undefined && until > Date.now()) return;
    try {
      await this.client.listOnline(token, 1);
    } catch (err) {
      if (grpcCode(err) === grpc.status.UNAUTHENTICATED) {
        throw new NotAuthenticated('the node does not accept this token');
      }
      throw err;
    }
    this.checked.delete(token);
    this.checked.set(token, Date.now() + this.checkedForMs);
    if (this.checked.size > 100) this.checked.delete(this.checked.keys().next().value as string);
  }

  /**
   * Checks `token` with the node and opens a session for it, for the operator named (optional;
   * at most 64 characters, checked by the caller); returns the session id.
   */
  async login(token: string, operator = ''): Promise<string> {
    await this.check(token);
    const id = randomBytes(24).toString('base64url');
    this.sessions.set(id, { token, operator, expiresUnixMs: Date.now() + this.ttlMs });
    // The oldest session goes first when too many are open.
    if (this.sessions.size > this.maxSessions) {
      this.sessions.delete(this.sessions.keys().next().value as string);
    }
    return id;
  }

  logout(req: IncomingMessage): void {
    const id = cookie(req, SESSION_COOKIE);
    if (id !== undefined) this.sessions.delete(id);
  }

  /** The token a request acts with; NotAuthenticated without a valid session or token. */
  async tokenOf(req: IncomingMessage): Promise<string> {
    return (await this.of(req)).token;
  }

  /**
   * The token a request acts with and the operator's name of its session ('' for a bearer
   * token, or a session opened without a name); NotAuthenticated as tokenOf.
   */
  async of(req: IncomingMessage): Promise<{ token: string; operator: string }> {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) throw new NotAuthenticated('the Authorization header must be "Bearer <token>"');
      await this.check(m[1] as string);
      return { token: m[1] as string, operator: '' };
    }
    const id = cookie(req, SESSION_COOKIE);
    const s = id === undefined ? undefined : this.sessions.get(id);
    if (!s || s.expiresUnixMs < Date.now()) {
      if (id !== undefined) this.sessions.delete(id);
      throw new NotAuthenticated('log in with a token first');
    }
    // Checked again (at most every 30 s): a token the node stops accepting ends its sessions,
    // even for pages served from the dashboard's shared snapshot.
    try {
      await this.check(s.token);
    } catch (err) {
      if (err instanceof NotAuthenticated) this.sessions.delete(id as string);
      throw err;
    }
    return { token: s.token, operator: s.operator };
  }
}

export function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
