// The operator's dashboard: an HTTP server beside a node that reads and acts only through the
// node's public gRPC VehicleService and HistoryService and the locator's LocatorService (as any
// other program would), and serves the front-end bundle built at setup (.fleetmesh/dashboard, by
// dashboard/build.mjs). Pages and their JSON:
//   GET  /api/cluster                 members (ListMembers), vehicles on each, their load over time
//   GET  /api/locator?limit=          the locator's last decisions and counts per node (ListDecisions)
//   GET  /api/vehicles?q=&limit=      online vehicles, searched by id or node
//   GET  /api/vehicles/ID?hours=H     state, open alarms, track of its last H hours, commands
//   GET  /api/vehicles/ID/commands?page=  its command history (ListCommands), a page newest first
//   POST /api/vehicles/ID/confirm     {bits}: ConfirmAlarms (0 = every open alarm), by the operator
//   POST /api/vehicles/ID/commands    {kind:'text',text,flag} | {kind:'location'}: SendCommand
//   GET  /api/events[?vehicle=ID]     server-sent events: position, alarm, online, command
//   POST /api/login {token, operator?}, POST /api/logout, GET /api/session
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetSnapshot } from './fleetSnapshot.js';
import { LocatorClient } from './locatorClient.js';
import { LiveFeed } from './liveFeed.js';
import {
  commandWhat,
  RecentCommands,
  RecentTracks,
  type CommandEntry,
  type TrackLimits,
  type TrackPoint,
} from './recent.js';
import { MAX_OPERATOR_NAME, NotAuthenticated, SESSION_COOKIE, Sessions } from './sessions.js';
import { SseChannel } from './sse.js';
import {
  grpc,
  grpcCode,
  VehicleClient,
  type CommandsPage,
  type OperatorCommand,
} from './vehicleClient.js';

export const DEFAULT_DASHBOARD_PORT = 8080;

export interface DashboardOptions {
  /** The node's gRPC address (host:port). */
  grpcAddress: string;
  /** A token the node accepts: the dashboard's own, for the event stream and load samples. */
  token: string;
  host?: string;
  /** 0 picks a free port (default 8080). */
  port?: number;
  /** The node the dashboard runs beside, shown as a member even with no vehicles. */
  nodeName?: string;
  /**
   * A locator's gRPC address (host:port): its decisions (LocatorService.ListDecisions) show in
   * the Locator panel, read with the browser's token. Without it the panel says none is set.
   */
  locatorAddress?: string;
  /** Events waiting per browser before newer ones are dropped (default 1 000). */
  maxBacklog?: number;
  /** Browsers following the live feed at once (default 100); more get 503. */
  maxBrowsers?: number;
  /** Members' load sampling interval (default 5 000 ms). */
  sampleMs?: number;
  tracks?: Partial<TrackLimits>;
  /** Where the built front-end is (default: .fleetmesh/dashboard, as dashboard/build.mjs writes). */
  publicDir?: string;
}

export interface Dashboard {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** A request the dashboard refuses, with the HTTP status to answer. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const VEHICLE_ID = /^\d{1,20}$/;
const MAX_BODY = 16 * 1024;
const WAIT_FOR_ANSWER_MS = 10_000;
/** Commands a vehicle page gets at once (ListCommands' page). */
const COMMAND_PAGE = 50;
/** Track points a page gets at most (the stored track is downsampled to fit). */
const MAX_TRACK_POINTS = 2000;
const STATIC: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  if (opts.token === '') throw new Error('the dashboard needs a token the node accepts');
  // This runs compiled, from dist/dashboard/: the repository is two levels up.
  const publicDir =
    opts.publicDir ??
    join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.fleetmesh', 'dashboard');
  const client = new VehicleClient(opts.grpcAddress);
  const locator = opts.locatorAddress ? new LocatorClient(opts.locatorAddress) : undefined;
  const sessions = new Sessions(client);
  const tracks = new RecentTracks(opts.tracks);
  const commands = new RecentCommands();
  const fleet = new FleetSnapshot(client, opts.nodeName);
  const feed = new LiveFeed(client, opts.token, tracks, commands);
  const maxBacklog = opts.maxBacklog ?? 1000;
  const maxBrowsers = opts.maxBrowsers ?? 100;
  feed.start();

  const sampleEvery = opts.sampleMs ?? 5000;
  const sampleNow = (): void => void fleet.sample(opts.token).catch(() => undefined);
  sampleNow();
  const sampler = setInterval(sampleNow, sampleEvery);
  const keepAlive = new Set<SseChannel>();
  const pinger = setInterval(() => keepAlive.forEach((c) => c.keepAlive()), 15_000);

  async function api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<unknown> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/api/login' && method === 'POST') {
      const body = await jsonBody(req);
      const token = typeof body.token === 'string' ? body.token.trim() : '';
      const operator = operatorName(body.operator);
      const id = await sessions.login(token, operator);
      res.setHeader(
        'Set-Cookie',
        `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${12 * 3600}`,
      );
      return { node: opts.nodeName ?? '', operator };
    }
    if (path === '/api/logout' && method === 'POST') {
      sessions.logout(req);
      res.setHeader(
        'Set-Cookie',
        `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
      );
      return {};
    }
    const { token, operator } = await sessions.of(req);
    if (path === '/api/session' && method === 'GET') {
      return { node: opts.nodeName ?? '', grpc: opts.grpcAddress, operator };
    }
    if (path === '/api/cluster' && method === 'GET') {
      const [snap, members] = await Promise.all([fleet.online(token), fleet.members(token)]);
      return {
        self: opts.nodeName ?? '',
        takenUnixMs: snap.takenUnixMs,
        totalOnline: snap.totalOnline,
        members: fleet.rows(snap, members),
        membership: members.unimplemented ? 'unimplemented' : 'listed',
        history: fleet.history(),
        sampleMs: sampleEvery,
        liveFeed: { connected: feed.connected, lastError: feed.lastError, browsers: feed.browsers },
      };
    }
    if (path === '/api/locator' && method === 'GET') {
      if (!locator) return { configured: false };
      const limit = intParam(url, 'limit', 50, 1, 1000);
      try {
        return {
          configured: true,
          address: locator.address,
          ...(await locator.listDecisions(token, limit)),
        };
      } catch (err) {
        // The locator's trouble is the panel's, not the page's: the operator stays logged in.
        const code = grpcCode(err);
        const error =
          code === grpc.status.UNAUTHENTICATED
            ? 'the locator does not accept this token'
            : code === grpc.status.UNIMPLEMENTED
              ? 'the locator does not offer ListDecisions (an older version)'
              : `the locator is not answering: ${failure(err)[1]}`;
        return { configured: true, address: locator.address, error };
      }
    }
    if (path === '/api/vehicles' && method === 'GET') {
      const q = (url.searchParams.get('q') ?? '').trim();
      const limit = intParam(url, 'limit', 200, 1, 1000);
      const snap = await fleet.online(token);
      const matched =
        q === ''
          ? snap.vehicles
          : snap.vehicles.filter((v) => v.vehicleId.includes(q) || v.node === q);
      return {
        totalOnline: snap.totalOnline,
        matched: matched.length,
        truncated: snap.truncated,
        vehicles: matched.slice(0, limit),
      };
    }
    const m = /^\/api\/vehicles\/([^/]+)(?:\/(confirm|commands))?$/.exec(path);
    if (m) {
      const vehicleId = decodeURIComponent(m[1] as string);
      if (!VEHICLE_ID.test(vehicleId)) {
        throw new HttpError(400, `a vehicle id is 1 to 20 digits, not '${vehicleId}'`);
      }
      if (m[2] === undefined && method === 'GET') {
        const hours = intParam(url, 'hours', 3, 1, 6);
        const vehicle = await client.getVehicle(token, vehicleId);
        // The last hours of its reports: up to its newest position's time (a terminal's clock
        // may be off, and a parked vehicle's last hours of driving are what an operator wants).
        const seen = tracks.track(vehicleId);
        const toMs =
          Math.max(vehicle.lastPosition?.timeUnixMs ?? 0, seen[seen.length - 1]?.t ?? 0) + 1;
        const fromMs = toMs - hours * 3600_000;
        const [{ points, source }, history] = await Promise.all([
          trackOf(token, vehicleId, fromMs, toMs),
          commandsOf(token, vehicleId),
        ]);
        return {
          vehicle,
          track: points,
          trackHours: hours,
          trackSource: source,
          commands: history.commands,
          commandsNext: history.nextPageToken,
          commandsSource: history.source,
        };
      }
      if (m[2] === 'commands' && method === 'GET') {
        const page = url.searchParams.get('page') ?? '';
        if (page.length > 1024) throw new HttpError(400, 'page is a token from nextPageToken');
        return commandsOf(token, vehicleId, page);
      }
      if (m[2] === 'confirm' && method === 'POST') {
        const body = await jsonBody(req);
        const bits = body.bits ?? 0;
        if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 0 || bits > 0xffffffff) {
          throw new HttpError(400, 'bits is a whole number from 0 (every open alarm) to 2^32-1');
        }
        // The handler stored with the alarms: the session's operator; a script with a bearer
        // token may name one in the body; none: the node names the token's (or "api").
        const handler = operator || operatorName(body.operator);
        return { ...(await client.confirmAlarms(token, vehicleId, bits, handler)), handler };
      }
      if (m[2] === 'commands' && method === 'POST') {
        const command = operatorCommand(await jsonBody(req));
        const what = command.kind === 'text' ? `text: ${command.text}` : 'location query';
        const sentUnixMs = Date.now();
        // Waits a little for the answer so the operator sees it at once; later changes of a
        // slower command reach the page through the live feed.
        const r = await client.sendCommand(token, vehicleId, command, WAIT_FOR_ANSWER_MS);
        commands.sent(vehicleId, { commandId: r.commandId, what, sentUnixMs, status: r.status });
        return { commandId: r.commandId, what, sentUnixMs, status: r.status };
      }
    }
    throw new HttpError(404, `no ${method} ${path}`);
  }

  /**
   * A vehicle's command history, newest first, a page of COMMAND_PAGE: the node's command log
   * (ListCommands), labelled with what the dashboard sent ('text: …'), the answer's body where
   * the feed brought it and the log has none, and on the first page the commands the feed or this
   * dashboard saw that the log has not stored yet. Against a node without ListCommands, what the
   * dashboard remembers (RecentCommands).
   */
  async function commandsOf(
    token: string,
    vehicleId: string,
    pageToken = '',
  ): Promise<{ commands: CommandEntry[]; nextPageToken: string; source: 'store' | 'live feed' }> {
    const recent = commands.of(vehicleId);
    let page: CommandsPage;
    try {
      page = await client.listCommands(token, vehicleId, COMMAND_PAGE, pageToken);
    } catch (err) {
      if (grpcCode(err) !== grpc.status.UNIMPLEMENTED) throw err;
      return { commands: pageToken === '' ? recent : [], nextPageToken: '', source: 'live feed' };
    }
    const seen = new Map(recent.map((e) => [e.commandId, e]));
    const stored: CommandEntry[] = page.commands.map((s) => {
      const known = seen.get(s.commandId);
      const live = known?.status;
      const status =
        s.replyJson === '' && live && live.state === s.state && live.replyJson !== ''
          ? { ...s, replyJson: live.replyJson }
          : s;
      return {
        commandId: s.commandId,
        what: known?.what || commandWhat(s),
        sentUnixMs: s.createdUnixMs || known?.sentUnixMs || s.updatedUnixMs,
        status,
      };
    });
    if (pageToken !== '')
      return { commands: stored, nextPageToken: page.nextPageToken, source: 'store' };
    // Not stored yet (the log is written in batches): newer than the page's oldest, or all of
    // them when the log has none.
    const inPage = new Set(stored.map((e) => e.commandId));
    const oldest =
      page.nextPageToken === '' ? -Infinity : (stored[stored.length - 1]?.sentUnixMs ?? -Infinity);
    const pending = recent.filter((e) => !inPage.has(e.commandId) && e.sentUnixMs >= oldest);
    const merged = [...pending, ...stored].sort((a, b) => b.sentUnixMs - a.sentUnixMs);
    return { commands: merged, nextPageToken: page.nextPageToken, source: 'store' };
  }

  /**
   * The track in [fromMs, toMs): the stored one (HistoryService), with the points the live feed
   * brought since (not stored yet when the page asks), or only those when the node has no
   * history service.
   */
  async function trackOf(
    token: string,
    vehicleId: string,
    fromMs: number,
    toMs: number,
  ): Promise<{ points: TrackPoint[]; source: 'store' | 'live feed' }> {
    const seen = tracks.track(vehicleId, fromMs).filter((p) => p.t < toMs);
    let stored: TrackPoint[];
    try {
      stored = (await client.storedTrack(token, vehicleId, fromMs, toMs, MAX_TRACK_POINTS)).map(
        (p) => ({ t: p.timeUnixMs, lat: p.latitude, lon: p.longitude, speed: p.speedKmh }),
      );
    } catch (err) {
      if (grpcCode(err) !== grpc.status.UNIMPLEMENTED) throw err;
      return { points: seen.slice(-MAX_TRACK_POINTS), source: 'live feed' };
    }
    const last = stored[stored.length - 1]?.t ?? -Infinity;
    return { points: [...stored, ...seen.filter((p) => p.t > last)], source: 'store' };
  }

  async function events(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    await sessions.tokenOf(req);
    const vehicle = url.searchParams.get('vehicle') ?? undefined;
    if (vehicle !== undefined && !VEHICLE_ID.test(vehicle)) {
      throw new HttpError(400, `a vehicle id is 1 to 20 digits, not '${vehicle}'`);
    }
    if (feed.browsers >= maxBrowsers) {
      throw new HttpError(503, `${maxBrowsers} browsers already follow the live feed`);
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.write(': fleetmesh live feed\n\n');
    const channel = new SseChannel(res, maxBacklog);
    const unsubscribe = feed.subscribe(channel, vehicle);
    keepAlive.add(channel);
    channel.send('ready', { vehicle: vehicle ?? null, connected: feed.connected });
    req.once('close', () => {
      keepAlive.delete(channel);
      unsubscribe();
    });
  }

  async function serveStatic(res: ServerResponse, path: string): Promise<void> {
    const name = path === '/' || !/^\/[\w.-]+$/.test(path) ? 'index.html' : path.slice(1);
    const type = STATIC[extname(name)];
    if (!type) throw new HttpError(404, `no ${path}`);
    let body: Buffer;
    try {
      body = await readFile(join(publicDir, name));
    } catch {
      if (name !== 'index.html') throw new HttpError(404, `no ${path}`);
      throw new HttpError(503, 'the dashboard is not built: run npm run build (or npm run setup)');
    }
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
    res.end(body);
  }

  const server: Server = createServer((req, res) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    );
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const handle = async (): Promise<void> => {
      if (url.pathname === '/api/events') return events(req, res, url);
      if (url.pathname.startsWith('/api/')) {
        const result = await api(req, res, url);
        sendJson(res, 200, result);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'GET only');
      return serveStatic(res, url.pathname);
    };
    handle().catch((err: unknown) => {
      const [status, message] = failure(err);
      if (res.headersSent) res.end();
      else sendJson(res, status, { error: message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_DASHBOARD_PORT, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = !opts.host || opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
  return {
    port,
    url: `http://${shownHost}:${port}/`,
    async stop() {
      clearInterval(sampler);
      clearInterval(pinger);
      feed.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      client.close();
      locator?.close();
    },
  };
}

/** The HTTP status and message for a failure: the node's gRPC refusals map to their meaning. */
function failure(err: unknown): [number, string] {
  if (err instanceof HttpError) return [err.status, err.message];
  if (err instanceof NotAuthenticated) return [401, err.message];
  const code = grpcCode(err);
  const details = (err as { details?: unknown }).details;
  const message = typeof details === 'string' && details !== '' ? details : String(err);
  switch (code) {
    case grpc.status.INVALID_ARGUMENT:
      return [400, message];
    case grpc.status.UNAUTHENTICATED:
      return [401, message];
    case grpc.status.NOT_FOUND:
      return [404, message];
    case grpc.status.RESOURCE_EXHAUSTED:
      return [429, message];
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      return [503, `the node is not answering: ${message}`];
    case undefined:
      return [500, message];
    default:
      return [502, message];
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(JSON.stringify(body));
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `a request body is at most ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the request body must be JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(400, `${name} is a whole number from ${min} to ${max}, not '${raw}'`);
  }
  return n;
}

/** An operator's name from a request body: optional, trimmed, at most 64 characters. */
export function operatorName(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new HttpError(400, 'operator is a name (text)');
  const name = v.trim();
  if ([...name].length > MAX_OPERATOR_NAME) {
    throw new HttpError(400, `an operator's name is at most ${MAX_OPERATOR_NAME} characters`);
  }
  return name;
}

/** The operator's command from a form: a text (0x8300) or a location query (0x8201). */
export function operatorCommand(body: Record<string, unknown>): OperatorCommand {
  if (body.kind === 'location') return { kind: 'location' };
  if (body.kind === 'text') {
    const text = typeof body.text === 'string' ? body.text.trim() : '';
    if (text === '') throw new HttpError(400, 'a text message needs some text');
    if (text.length > 400) throw new HttpError(400, 'a text message is at most 400 characters');
    const flag = body.flag ?? 8;
    if (typeof flag !== 'number' || !Number.isInteger(flag) || flag < 0 || flag > 255) {
      throw new HttpError(400, 'flag is a whole number from 0 to 255 (table 38 bits)');
    }
    return { kind: 'text', text, flag };
  }
  throw new HttpError(400, "kind is 'text' or 'location'");
}
