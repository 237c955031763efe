// Drain (issue 12 part 4): an operator marks a node draining in etcd (`fleetmesh drain NODE`,
// gRPC LocatorService.Drain); the node then says so in its load report, so locators choose it no
// more, and sends the terminals it holds to the other nodes with 0x8105 command word 2, at most
// `rate` a second, until it holds none. The order stays in etcd (no lease) until cancelled: a
// drained node that restarts comes back draining, as a cordoned machine stays cordoned.
import type { Etcd3, Watcher } from 'etcd3';
import type { TerminalLink } from '../actors/vehicleActor.js';
import type { Message } from '../jt808/messages.js';
import { CONNECT_TO_SERVER, formatConnectToServer } from '../jt808/terminalControl.js';
import type { Gateway } from '../gateway/gateway.js';
import { AssignmentLedger, candidatesOf, chooseNode } from './locatorPolicy.js';
import { splitHostPort, type Member } from './memberTable.js';

export const DRAIN_PREFIX = 'fleetmesh/drain/';
/** Terminals sent away per second when the order names no rate. */
export const DEFAULT_DRAIN_RATE = 50;
/** The most an order may ask: each one is a reconnection and an authentication elsewhere. */
export const MAX_DRAIN_RATE = 10_000;

export interface DrainOrder {
  /** Terminals sent away per second, 1..MAX_DRAIN_RATE. */
  rate: number;
  /** When it was given (ms since the epoch). */
  at: number;
}

export function drainKey(node: string): string {
  return `${DRAIN_PREFIX}${node}`;
}

/** A drain rate from an operator: a whole number 1..MAX_DRAIN_RATE; RangeError otherwise. */
export function checkDrainRate(rate: number): number {
  if (!Number.isInteger(rate) || rate < 1 || rate > MAX_DRAIN_RATE)
    throw new RangeError(`the drain rate is terminals per second, 1 to ${MAX_DRAIN_RATE}`);
  return rate;
}

/** Undefined for anything that is not an order (the node then ignores it and says so). */
export function parseDrainOrder(value: string): DrainOrder | undefined {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.rate !== 'number' || typeof o.at !== 'number') return undefined;
  if (!Number.isInteger(o.rate) || o.rate < 1 || o.rate > MAX_DRAIN_RATE) return undefined;
  return { rate: o.rate, at: o.at };
}

/** Marks `node` draining at `rate` terminals a second (replaces an earlier order). */
export async function orderDrain(etcd: Etcd3, node: string, rate: number): Promise<DrainOrder> {
  const order: DrainOrder = { rate: checkDrainRate(rate), at: Date.now() };
  await etcd.put(drainKey(node)).value(JSON.stringify(order));
  return order;
}

/** Takes the order back: the node serves terminals again. True when there was one. */
export async function cancelDrain(etcd: Etcd3, node: string): Promise<boolean> {
  const r = await etcd.delete().key(drainKey(node)).exec();
  return Number(r.deleted) > 0;
}

/**
 * Follows the drain order of `node`: `fn` gets the current one at once (undefined: none) and
 * every change after. Returns the watch's stop.
 */
export async function watchDrainOrder(
  etcd: Etcd3,
  node: string,
  fn: (order: DrainOrder | undefined, malformed: boolean) => void,
): Promise<() => Promise<void>> {
  const key = drainKey(node);
  const read = (value: string | null): void => {
    const order = value === null ? undefined : parseDrainOrder(value);
    fn(order, value !== null && order === undefined);
  };
  const current = await etcd.get(key).exec();
  const kv = current.kvs[0];
  read(kv ? kv.value.toString() : null);
  const watcher: Watcher = await etcd
    .watch()
    .key(key)
    .startRevision(String(Number(current.header.revision) + 1))
    .create();
  watcher.on('put', (kv) => read(kv.value.toString()));
  watcher.on('delete', () => read(null));
  watcher.on('error', () => undefined); // the client resumes the watch by itself
  return async () => {
    watcher.removeAllListeners();
    await watcher.cancel().catch(() => undefined);
  };
}

export interface NodeDrainOptions {
  node: string;
  gateway: Pick<Gateway, 'sendToAuthenticated' | 'linkByNumber'>;
  /** The cluster's members now (this node's view). */
  members(): Member[];
  /** The 0x8105's time limit: minutes before the terminal goes back to its configured server. */
  timeLimitMinutes?: number;
  /**
   * A terminal still connected this long after its 0x8105 (it ignored or refused it) is closed:
   * it reconnects to the server it is configured with (the locator, which avoids this node).
   */
  closeAfterMs?: number;
  /** How often the budget is spent (default 100 ms). */
  tickMs?: number;
  /** Lines for operators: `info` for routine ones (an order taken), else warnings. */
  log?: (line: string, level?: 'info' | 'warn') => void;
  now?: () => number;
  random?: () => number;
}

export interface DrainStats {
  /** 0x8105 sent. */
  told: number;
  /** Closed for still being here `closeAfterMs` after their 0x8105. */
  closedLate: number;
  /** Ticks that had terminals to send and no node to send them to. */
  noTarget: number;
  /** The last sends, as [ms since the epoch, terminals told] per tick (at most 600). */
  recent: [number, number][];
}

const MAX_RECENT = 600;
/** Links told and not gone yet that are remembered (to close late ones): bounded. */
const MAX_TOLD = 200_000;

/**
 * The node's half of a drain: while an order stands, every tick sends 0x8105 to as many of the
 * terminals it holds as the rate allows (a token bucket that never holds more than one tick's
 * worth, so a pause is not followed by a burst), each to the node the locator's policy would
 * choose (this one and draining ones excluded, its own assignments counted as a locator counts
 * its own). Terminals already told are not told again; those still here `closeAfterMs` later are
 * closed.
 */
export class NodeDrain {
  readonly stats: DrainStats = { told: 0, closedLate: 0, noTarget: 0, recent: [] };
  private order: DrainOrder | undefined;
  private timer: NodeJS.Timeout | undefined;
  private tokens = 0;
  private lastTick = 0;
  private readonly told = new Map<string, { link: TerminalLink; at: number }>();
  private readonly ledger = new AssignmentLedger();
  private readonly now: () => number;
  private readonly random: () => number;
  private warnedNoTarget = false;

  constructor(private readonly o: NodeDrainOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  get draining(): boolean {
    return this.order !== undefined;
  }

  get rate(): number | undefined {
    return this.order?.rate;
  }

  /** A new order (or its cancellation, undefined). */
  set(order: DrainOrder | undefined): void {
    const was = this.order;
    this.order = order;
    if (order && !this.timer) {
      this.tokens = 0;
      this.lastTick = this.now();
      this.timer = setInterval(() => this.tick(), this.o.tickMs ?? 100);
      this.timer.unref();
      this.o.log?.(`drain: ${this.o.node} drains at ${order.rate} terminals/s`, 'info');
    } else if (!order && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.told.clear();
      if (was)
        this.o.log?.(`drain: ${this.o.node} takes terminals again (order cancelled)`, 'info');
    }
  }

  stop(): void {
    this.set(undefined);
  }

  /** One round: close the late ones, then tell as many as the budget allows. Public for tests. */
  tick(): void {
    const order = this.order;
    if (!order) return;
    const now = this.now();
    const tickMs = this.o.tickMs ?? 100;
    // One tick's worth at most (at least one terminal), so rates under 10/s still move.
    const cap = Math.max(1, (order.rate * tickMs) / 1000);
    this.tokens = Math.min(
      cap,
      this.tokens + (order.rate * Math.max(0, now - this.lastTick)) / 1000,
    );
    this.lastTick = now;
    this.closeLate(now);
    const budget = Math.floor(this.tokens);
    if (budget < 1) return;
    const members = this.o.members();
    for (const m of members) this.ledger.reported(m.node, Math.min(now, m.reportedAt));
    const others = members.filter((m) => m.node !== this.o.node);
    let noTarget = false;
    const sent = this.o.gateway.sendToAuthenticated(budget, ({ link }) => {
      if (this.told.has(link.id) || noTarget) return undefined;
      const choice = chooseNode(candidatesOf(others, this.ledger, now), undefined, this.random);
      if (!choice) {
        noTarget = true;
        return undefined;
      }
      this.ledger.assign(choice.candidate.node, now);
      return connectTo(choice.candidate.gateway, this.o.timeLimitMinutes ?? 60);
    });
    if (noTarget) {
      this.stats.noTarget++;
      if (!this.warnedNoTarget)
        this.o.log?.(`drain: no other node can take terminals of ${this.o.node}; waiting`);
      this.warnedNoTarget = true;
    } else this.warnedNoTarget = false;
    if (sent.length === 0) return;
    this.tokens -= sent.length;
    this.stats.told += sent.length;
    this.stats.recent.push([now, sent.length]);
    if (this.stats.recent.length > MAX_RECENT) this.stats.recent.shift();
    for (const link of sent) {
      if (this.told.size >= MAX_TOLD) break; // past it, a late one is not closed: it was told
      this.told.set(link.id, { link, at: now });
    }
  }

  private closeLate(now: number): void {
    const after = this.o.closeAfterMs ?? 30_000;
    for (const [id, t] of this.told) {
      if (now - t.at < after) break; // in the order they were told
      this.told.delete(id);
      // Link ids end in the gateway's link number: is it still this connection?
      const live = this.o.gateway.linkByNumber(Number(id.slice(id.lastIndexOf('/') + 1)));
      if (live !== t.link) continue; // it left, as told
      t.link.close('drain: still here after 0x8105');
      this.stats.closedLate++;
    }
  }
}

/** 0x8105 command word 2 to a node's gateway, without a monitoring-platform code. */
function connectTo(gateway: string, timeLimitMinutes: number): Message {
  const { host, port } = splitHostPort(gateway);
  return {
    type: 'TerminalControl',
    body: {
      command: CONNECT_TO_SERVER,
      // No code: the vehicle's code lives with its actor, wherever that runs; the terminal
      // registers on its new node and is given its stored code back.
      parameters: formatConnectToServer({
        connectionControl: 0,
        address: host,
        tcpPort: port,
        timeLimitMinutes,
      }),
    },
  };
}
