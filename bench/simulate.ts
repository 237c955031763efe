// Terminal simulator: N real TCP terminals that register, authenticate, then either stay idle
// (heartbeats only) or report along moving tracks. Prints "ready" once all are online.
//   node dist/bench/simulate.js --port P [--host H] --count N [--idle] [--interval-ms MS]
//                               [--auth-code CODE]  (vehicles provisioned with this code: no registration)
import { SimTerminal, trackPoint } from './terminal.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(flag('--port'));
const host = flag('--host') ?? '127.0.0.1';
const count = Number(flag('--count') ?? 100);
const idle = args.includes('--idle');
const intervalMs = Number(flag('--interval-ms') ?? 10_000);
const authCode = flag('--auth-code');

/**
 * Each terminal keeps its own clock from the moment it is online, as a device does: idle ones
 * send a heartbeat every 60 s (well inside the gateway's 180 s idle timeout), the others report
 * every interval.
 */
function drive(t: SimTerminal): void {
  let step = 0;
  const timer = setInterval(
    () => {
      if (t.closed) {
        clearInterval(timer);
        return;
      }
      if (idle) t.send({ type: 'Heartbeat', body: {} });
      else void t.report(trackPoint(++step)).catch(() => undefined);
    },
    idle ? 60_000 : intervalMs,
  );
}

const terminals: SimTerminal[] = [];
const batch = 200;
for (let i = 0; i < count; i += batch) {
  const group = await Promise.all(
    Array.from({ length: Math.min(batch, count - i) }, async (_, j) => {
      const t = new SimTerminal({
        host,
        port,
        phone: `0136${String(i + j).padStart(8, '0')}`,
        timeoutMs: 60_000,
      });
      await t.connect();
      if (authCode === undefined) await t.register();
      if ((await t.authenticate(authCode)) !== 0)
        throw new Error(`terminal ${t.options.phone} was refused`);
      drive(t);
      return t;
    }),
  );
  terminals.push(...group);
  if (terminals.length % 1000 === 0) process.stderr.write(`simulate: ${terminals.length} online\n`);
}
process.stdout.write(`ready ${terminals.length}\n`);
