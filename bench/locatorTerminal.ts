// A simulated terminal that starts at the locator and follows its 0x8105 "connect to the
// specified server" as a device does: register or authenticate there, acknowledge the command,
// connect to the address and port it names, and authenticate there with the monitoring-platform
// code the command carries; with none (or refused), register on that server first.
import type { Edition } from '../jt808/header.js';
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
