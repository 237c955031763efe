// A simulated terminal that starts at the locator and follows its 0x8105 "connect to the
// specified server" as a device does: register or authenticate there, acknowledge the command,
// connect to the address and port it names, and authenticate there with the monitoring-platform
// code the command carries; with none (or refused), register on that server first.
import type { Edition } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import type { Message } from '../jt808/messages.js';
import type { ConnectToServer } from '../jt808/terminalControl.js';
import { SimTerminal } from './terminal.js';

export interface Redirect {
  /** The connect-to-server fields of the 0x8105. */
  target: ConnectToServer;
  /** Terminal connected and authenticated on the node (undefined with `stopAtRedirect`). */
  terminal: SimTerminal | undefined;
  /** ms from the first connection to the locator until the 0x8105 arrived. */
  redirectMs: number;
}

export interface FollowOptions {
  host?: string;
  locatorPort: number;
  phone: string;
  edition?: Edition;
  /** Authenticate at the locator with this code instead of registering there. */
  authCode?: string;
  timeoutMs?: number;
  /** Acknowledge the 0x8105 and stop there (the node is not contacted). */
  stopAtRedirect?: boolean;
}

export async function followLocator(o: FollowOptions): Promise<Redirect> {
  const t0 = performance.now();
  const at = new SimTerminal({
    ...(o.host ? { host: o.host } : {}),
    port: o.locatorPort,
    phone: o.phone,
    ...(o.edition ? { edition: o.edition } : {}),
    timeoutMs: o.timeoutMs ?? 10_000,
  });
  await at.connect();
  let control: Extract<Message, { type: 'TerminalControl' }>['body'];
  let serial: number;
  try {
    const command = at.waitFor((f) => f.message?.type === 'TerminalControl');
    command.catch(() => undefined); // awaited below unless registering fails first
    if (o.authCode === undefined) {
      const reg = await at.register();
      if (reg !== 0) throw new Error(`registration at the locator answered ${reg}`);
    }
    const auth = await at.authenticate(o.authCode ?? at.authCode ?? '');
    if (auth !== 0) throw new Error(`authentication at the locator answered ${auth}`);
    const f = await command;
    control = (f.message as Extract<Message, { type: 'TerminalControl' }>).body;
    serial = f.header.serial;
  } catch (err) {
    at.close();
    throw err;
  }
  const redirectMs = performance.now() - t0;
  const target = control.connectToServer;
  if (control.command !== 2 || !target || target.connectionControl !== 0) {
    at.close();
    throw new Error(`not a connect-to-server command: ${control.command} ${control.parameters}`);
  }
  at.send({ type: 'TerminalResponse', body: { replySerial: serial, replyId: 0x8105, result: 0 } });
  // The locator closes once it has the acknowledgement.
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (at.closed) {
        clearInterval(check);
        resolve();
      }
    }, 5);
  });
  if (o.stopAtRedirect) return { target, terminal: undefined, redirectMs };
  const t = new SimTerminal({
    host: target.address ?? '127.0.0.1',
    port: target.tcpPort ?? 0,
    phone: o.phone,
    ...(o.edition ? { edition: o.edition } : {}),
    timeoutMs: o.timeoutMs ?? 10_000,
  });
  await t.connect();
  try {
    return { target, terminal: await onNode(t, target), redirectMs };
  } catch (err) {
    t.close();
    throw err;
  }
}

/** Authenticates on the node with the 0x8105's code, or registers there first. */
async function onNode(t: SimTerminal, target: ConnectToServer): Promise<SimTerminal> {
  let ok = target.authCode !== undefined && (await t.authenticate(target.authCode)) === 0;
  let answer = -1;
  if (!ok) {
    const reg = await t.register();
    if (reg !== 0) throw new Error(`registration at the node answered ${reg}`);
    answer = await t.authenticate();
    ok = answer === 0;
  }
  if (!ok) throw new Error(`authentication at the node answered ${answer}`);
  return t;
}

const isConnectToServer = (f: { message: Message | null }): boolean =>
  f.message?.type === 'TerminalControl' && f.message.body.command === 2;

export interface RoamingOptions {
  host?: string;
  /** The server it is configured with: the locator. */
  locatorPort: number;
  phone: string;
  edition?: Edition;
  timeoutMs?: number;
  /** Visits of the locator tried in a row before it gives up (default 5). */
  maxAttempts?: number;
  /** Told after each 0x8105 followed on a node (a draining node's). */
  onMoved?(target: ConnectToServer): void;
}

/**
 * A terminal configured with the locator's address that behaves as a device does for as long as
 * it runs: it starts at the locator and follows its 0x8105; on a node, it answers commands, and
 * follows any later 0x8105 (a draining node's: acknowledged, then its reports in flight answered
 * or 2 s passed, then it connects to the named server); when a node closes it otherwise, it goes
 * back to the locator. Requests wait while it moves instead of failing.
 */
export class RoamingTerminal {
  /** 0x8105 followed on nodes (the locator's first one not counted). */
  moves = 0;
  /** Visits of the locator after a node closed the connection without a 0x8105. */
  returns = 0;
  /** True once it gave up (the locator or the nodes out of reach `maxAttempts` times). */
  closed = false;
  private readonly answeredBefore = new Map<string, number>();
  private current: SimTerminal | undefined;
  private moving: Promise<void> | undefined;
  private inFlight = 0;
  private stopped = false;
  private where: (() => LocationReport) | undefined;

  constructor(readonly options: RoamingOptions) {}

  /** The node it is on now (host:port), or undefined while it moves. */
  node: string | undefined;

  /** Commands answered over every connection, by message type. */
  get answered(): Map<string, number> {
    const all = new Map(this.answeredBefore);
    for (const [k, v] of this.current?.answered ?? []) all.set(k, (all.get(k) ?? 0) + v);
    return all;
  }

  get authCode(): string | undefined {
    return this.current?.authCode;
  }

  /** Through the locator to a node; rejects when that fails `maxAttempts` times. */
  async start(): Promise<void> {
    this.moving = this.visitLocator();
    await this.moving;
  }

  answerCommands(where: () => LocationReport): void {
    this.where = where;
    this.current?.answerCommands(where);
  }

  /** Sends a request on the node it is on (after its move, if moving); its general response. */
  async request(message: Message): Promise<number> {
    while (this.moving) await this.moving;
    const t = this.current;
    if (!t || this.closed) throw new Error('the terminal gave up');
    this.inFlight++;
    try {
      return await t.request(message);
    } finally {
      this.inFlight--;
    }
  }

  report(loc: LocationReport): Promise<number> {
    return this.request({ type: 'LocationReport', body: loc });
  }

  /** Sends without waiting for an answer (a heartbeat); dropped while it moves. */
  send(message: Message): void {
    if (!this.moving) this.current?.send(message);
  }

  close(): void {
    this.stopped = true;
    this.closed = true;
    this.current?.close();
  }

  private async visitLocator(): Promise<void> {
    const attempts = this.options.maxAttempts ?? 5;
    for (let i = 0; ; i++) {
      if (this.stopped) return;
      try {
        const r = await followLocator({
          ...(this.options.host ? { host: this.options.host } : {}),
          locatorPort: this.options.locatorPort,
          phone: this.options.phone,
          ...(this.options.edition ? { edition: this.options.edition } : {}),
          ...(this.current?.authCode ? { authCode: this.current.authCode } : {}),
          timeoutMs: this.options.timeoutMs ?? 10_000,
        });
        this.settle(r.terminal!, r.target);
        return;
      } catch (err) {
        if (i + 1 >= attempts) {
          this.closed = true;
          throw err;
        }
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** i)));
      }
    }
  }

  /** On a node now: answer, and watch for the next 0x8105 or a close. */
  private settle(t: SimTerminal, target: ConnectToServer): void {
    const previous = this.current;
    if (previous && previous !== t)
      for (const [k, v] of previous.answered)
        this.answeredBefore.set(k, (this.answeredBefore.get(k) ?? 0) + v);
    this.current = t;
    this.node = `${target.address ?? '127.0.0.1'}:${target.tcpPort ?? 0}`;
    this.moving = undefined;
    if (this.where) t.answerCommands(this.where);
    const arm = (): void => {
      t.waitFor(isConnectToServer).then(
        (f) => {
          const c = (f.message as Extract<Message, { type: 'TerminalControl' }>).body;
          // answerCommands acknowledged it already (0x0001 result 0).
          if (c.connectToServer?.connectionControl === 0)
            this.moving = this.move(t, c.connectToServer);
          else arm();
        },
        () => {
          if (t !== this.current || this.stopped) return;
          if (!t.closed) return arm(); // no 0x8105 within the timeout: keep waiting
          // Closed by the node without a 0x8105: back to the server it is configured with.
          this.returns++;
          this.node = undefined;
          this.moving = this.visitLocator().catch(() => undefined);
        },
      );
    };
    arm();
  }

  private async move(from: SimTerminal, target: ConnectToServer): Promise<void> {
    this.node = undefined;
    const deadline = Date.now() + 2000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    from.close();
    const t = new SimTerminal({
      host: target.address ?? '127.0.0.1',
      port: target.tcpPort ?? 0,
      phone: this.options.phone,
      ...(this.options.edition ? { edition: this.options.edition } : {}),
      timeoutMs: this.options.timeoutMs ?? 10_000,
    });
    try {
      await t.connect();
      // No code in the 0x8105 (a node's has none): it registers there, as a device does.
      const on = await onNode(t, target);
      this.moves++;
      this.settle(on, target);
      this.options.onMoved?.(target);
    } catch {
      t.close();
      // The named server did not take it: back to the locator, as a device does.
      this.moving = undefined;
      this.current = from;
      this.returns++;
      await this.visitLocator().catch(() => undefined);
    }
  }
}
