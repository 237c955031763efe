// Terminal simulator: N real TCP terminals that register, authenticate, then either stay idle
// (heartbeats only) or drive: report along moving tracks every interval, raise an alarm now and
// then (overspeed, bit 1, for a few reports), lose coverage now and then and re-upload the
// blind-area backlog with 0x0704 when back, and answer the platform's commands. Every
// acknowledgement's latency goes into an hdr histogram; the summary (on --seconds, SIGINT or
// SIGTERM) says how many reports and points were acknowledged, to compare with what is stored.
//   node dist/bench/simulate.js --port P [--host H] --count N [--idle] [--interval-ms MS]
//     [--auth-code CODE]   vehicles provisioned with this code: no registration
//     [--codes FILE]       with registration: write each phone's code here once all are online;
//                          without (--no-register): authenticate with the codes read from it
//     [--no-register]      authenticate only (with --auth-code or --codes)
//     [--concurrency N]    terminals coming online at once (default 200)
//     [--heartbeat-ms MS]  idle terminals' heartbeat interval (default 60 000)
//     [--brief]            each terminal reports once and disconnects (vehicles that come and go)
//     [--first K]          phones 0136xxxxxxxx numbered from K (default 0)
//     [--alarm-every N]    one alarm episode per N reports on average (default 50; 0 none)
//     [--blind-every N]    one coverage loss per N intervals on average (default 200; 0 none)
//     [--blind-for N]      a coverage loss lasts N intervals (default: 5 to 14 at random)
//     [--driver-every N]   one driver change (0x0702 card removed, another inserted) per N
//                          intervals on average (default 360; 0 none); every driving terminal
//                          reports its driver's card inserted once online
//   A 0x8801 is answered as a device does: 0x0805 naming a media id per photo asked for (at most
//   8), then each photo (a 2–6 KB JPEG-like image) uploaded with 0x0801 in sub-packages.
//     [--seconds S]        stop after S seconds online and print the summary
//     [--seed S]           random choices are reproducible
//     [--locator]          --port is a locator's: each terminal starts there, follows its 0x8105
//                          to a node, follows later ones too (a draining node's), and goes back
//                          to the locator when a node closes it (bench/locatorTerminal.ts)
import { readFileSync, writeFileSync } from 'node:fs';
import hdr from 'hdr-histogram-js';
import type { Edition } from '../jt808/header.js';
import type { LocationReport } from '../jt808/location.js';
import type { Message } from '../jt808/messages.js';
import { RoamingTerminal } from './locatorTerminal.js';
import { driverCardMessage, SimTerminal, trackPoint } from './terminal.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(flag('--port'));
const host = flag('--host') ?? '127.0.0.1';
const count = Number(flag('--count') ?? 100);
const first = Number(flag('--first') ?? 0);
const idle = args.includes('--idle');
const intervalMs = Number(flag('--interval-ms') ?? 10_000);
const heartbeatMs = Number(flag('--heartbeat-ms') ?? 60_000);
const authCode = flag('--auth-code');
const codesFile = flag('--codes');
const register = authCode === undefined && !args.includes('--no-register');
const concurrency = Number(flag('--concurrency') ?? 200);
const brief = args.includes('--brief');
const viaLocator = args.includes('--locator');
if (viaLocator && !register) {
  process.stderr.write(
    'simulate: --locator registers at the locator: no --auth-code or --no-register\n',
  );
  process.exit(2);
}
const knownCodes: Record<string, string> =
  !register && codesFile !== undefined
    ? (JSON.parse(readFileSync(codesFile, 'utf8')) as Record<string, string>)
    : {};
const alarmEvery = Number(flag('--alarm-every') ?? 50);
const blindEvery = Number(flag('--blind-every') ?? 200);
const blindFor = flag('--blind-for') !== undefined ? Number(flag('--blind-for')) : undefined;
const driverEvery = Number(flag('--driver-every') ?? 360);
const seconds = flag('--seconds');
// A 0x8801 gets its photos uploaded (0x0801), as a device answers it.
SimTerminal.uploadsPhotos = true;
let seed = Number(flag('--seed') ?? 1) >>> 0;

/** mulberry32: small, seedable. */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const acks = hdr.build({
  lowestDiscernibleValue: 1,
  highestTrackableValue: 3_600_000,
  numberOfSignificantValueDigits: 3,
});
const totals = {
  reportsSent: 0,
  reportsAcked: 0,
  reportsFailed: 0,
  pointsAcked: 0,
  blindAreaBatches: 0,
  alarmEpisodes: 0,
  /** 0x0702 sent (cards inserted and removed), and those answered result 0. */
  driverCards: 0,
  driverCardsAcked: 0,
};

/** Sends a driver's card inserted or removed (0x0702) and counts its answer. */
function driverCard(t: Driven, inserted: boolean, driver: number): void {
  totals.driverCards++;
  t.request(driverCardMessage(inserted, driver, t.edition ?? 2013)).then(
    (result) => {
      if (result === 0) totals.driverCardsAcked++;
    },
    () => undefined,
  );
}

/** Sends and records the acknowledgement (µs) of one 0x0200 or 0x0704 carrying `points`. */
function track(send: () => Promise<number>, points: number): void {
  const t0 = performance.now();
  totals.reportsSent++;
  send().then(
    (result) => {
      acks.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      if (result === 0) {
        totals.reportsAcked++;
        totals.pointsAcked += points;
      } else totals.reportsFailed++;
    },
    () => totals.reportsFailed++,
  );
}

const BLIND_BATCH = 15; // items per 0x0704: stays inside one frame's 1023-byte body

/**
 * Each terminal keeps its own clock from the moment it is online, as a device does: idle ones
 * send a heartbeat every 60 s by default (well inside the gateway's 180 s idle timeout), the others report
 * every interval.
 */
/** What driving needs of a terminal: a direct one, or one that follows the locator. */
interface Driven {
  closed: boolean;
  send(message: Message): unknown;
  report(loc: LocationReport): Promise<number>;
  request(message: Message): Promise<number>;
  answerCommands(where: () => LocationReport): void;
  readonly edition?: Edition;
}

function drive(t: Driven, index: number): void {
  let step = 0;
  let alarmLeft = 0;
  let blindLeft = 0;
  const backlog: LocationReport[] = [];
  const lat = 22.5 + (index % 100) / 100;
  const lon = 113.9 + Math.floor(index / 100) / 1000;
  const point = (): LocationReport =>
    trackPoint(step, {
      lat,
      lon,
      alarm: alarmLeft > 0 ? 0b10 : 0,
      start: Date.now() - step * 10_000,
    });
  t.answerCommands(point);
  // The driver's card, read as the terminal comes online; another driver now and then.
  let driver = index * 1000;
  if (!idle) driverCard(t, true, driver);
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    if (t.closed) {
      clearInterval(timer);
      return;
    }
    if (idle) {
      t.send({ type: 'Heartbeat', body: {} });
      return;
    }
    step++;
    if (driverEvery > 0 && random() < 1 / driverEvery) {
      driverCard(t, false, driver);
      driverCard(t, true, ++driver);
    }
    if (alarmLeft > 0) alarmLeft--;
    else if (alarmEvery > 0 && random() < 1 / alarmEvery) {
      alarmLeft = 3;
      totals.alarmEpisodes++;
    }
    if (blindLeft === 0 && blindEvery > 0 && random() < 1 / blindEvery)
      blindLeft = blindFor ?? 5 + Math.floor(random() * 10);
    const p = point();
    if (blindLeft > 0) {
      backlog.push(p);
      blindLeft--;
      if (blindLeft > 0) return;
      // Back in coverage: the backlog goes up as blind-area batches.
      while (backlog.length > 0) {
        const items = backlog.splice(0, BLIND_BATCH);
        totals.blindAreaBatches++;
        track(
          () => t.request({ type: 'LocationBatch', body: { batchType: 1, items } }),
          items.length,
        );
      }
      return;
    }
    track(() => t.report(p), 1);
  };
  // Each terminal's clock starts at a random moment of the interval, as devices switched on at
  // different times: reports spread over the interval instead of coming in one burst per interval
  // (the terminals come online together).
  const every = idle ? heartbeatMs : intervalMs;
  setTimeout(
    () => {
      if (t.closed) return;
      timer = setInterval(tick, every);
    },
    Math.floor(random() * every),
  );
}

function summary(): string {
  const answered: Record<string, number> = {};
  for (const t of terminals) for (const [k, v] of t.answered) answered[k] = (answered[k] ?? 0) + v;
  return JSON.stringify({
    terminals: terminals.length,
    online: terminals.filter((t) => !t.closed).length,
    ...totals,
    commandsAnswered: answered,
    mediaUploaded: terminals.reduce(
      (n, t) => n + (t instanceof SimTerminal ? t.mediaUploaded : 0),
      0,
    ),
    mediaFailed: terminals.reduce((n, t) => n + (t instanceof SimTerminal ? t.mediaFailed : 0), 0),
    ackMs: {
      p50: acks.getValueAtPercentile(50) / 1000,
      p99: acks.getValueAtPercentile(99) / 1000,
      p999: acks.getValueAtPercentile(99.9) / 1000,
      max: acks.maxValue / 1000,
    },
  });
}

function finish(): void {
  process.stdout.write(`summary ${summary()}\n`);
  for (const t of terminals) t.close();
  process.exit(0);
}
process.once('SIGINT', finish);
process.once('SIGTERM', finish);

const terminals: (SimTerminal | RoamingTerminal)[] = [];
const onlineStarted = performance.now();
for (let i = 0; i < count; i += concurrency) {
  const group = await Promise.all(
    Array.from({ length: Math.min(concurrency, count - i) }, async (_, j) => {
      if (viaLocator) {
        const phone = `0136${String(first + i + j).padStart(8, '0')}`;
        const r = new RoamingTerminal({ host, locatorPort: port, phone, timeoutMs: 60_000 });
        await r.start();
        if (brief) {
          await r.report(trackPoint(0));
          r.close();
        } else drive(r, i + j);
        return r;
      }
      const t = new SimTerminal({
        host,
        port,
        phone: `0136${String(first + i + j).padStart(8, '0')}`,
        timeoutMs: 60_000,
      });
      await t.connect();
      if (register && (await t.register()) !== 0)
        throw new Error(`terminal ${t.options.phone} was refused registration`);
      const code = authCode ?? (register ? t.authCode : knownCodes[t.options.phone]);
      if ((await t.authenticate(code)) !== 0)
        throw new Error(`terminal ${t.options.phone} was refused`);
      if (brief) {
        // Comes and goes: one report, then the connection closes.
        await t.report(trackPoint(0));
        t.close();
        return t;
      }
      drive(t, i + j);
      return t;
    }),
  );
  terminals.push(...group);
  if (terminals.length % 1000 === 0) process.stderr.write(`simulate: ${terminals.length} online\n`);
}
const onlineMs = performance.now() - onlineStarted;
if (register && codesFile !== undefined)
  writeFileSync(
    codesFile,
    JSON.stringify(Object.fromEntries(terminals.map((t) => [t.options.phone, t.authCode]))),
  );
// "ready N MS": N online, the last after MS from the first connection.
process.stdout.write(`ready ${terminals.length} ${Math.round(onlineMs)}\n`);
if (seconds !== undefined) setTimeout(finish, Number(seconds) * 1000);
