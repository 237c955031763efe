// `fleetmesh drain NODE`: marks a node draining in etcd (cluster/drain.ts). Locators stop choosing
// it, and the node sends its terminals to the other nodes with 0x8105 at --rate a second. Waits,
// printing what the node still holds, until it holds none (--no-wait: returns at once);
// --cancel takes the order back.
import { Etcd3 } from 'etcd3';
import {
  cancelDrain,
  checkDrainRate,
  DEFAULT_DRAIN_RATE,
  MAX_DRAIN_RATE,
  orderDrain,
} from '../cluster/drain.js';
import { NODE_NAME } from '../cluster/memberTable.js';
import { MemberWatch } from '../cluster/membership.js';
import { UsageError } from './start.js';

const OPTIONS: readonly { name: string; value: string; help: string }[] = [
  { name: '--etcd-endpoints', value: 'URL[,URL]', help: 'etcd of the cluster (ETCD_ENDPOINTS)' },
  {
    name: '--rate',
    value: 'N',
    help: `terminals sent away per second (${DEFAULT_DRAIN_RATE}; 1 to ${MAX_DRAIN_RATE})`,
  },
  { name: '--no-wait', value: '', help: 'return once the order is in etcd' },
  { name: '--cancel', value: '', help: 'take the order back: the node takes terminals again' },
];

export const drainUsage = 'NODE [--rate N] [--no-wait] [--cancel] [--etcd-endpoints URL[,URL]]';

export function drainOptions(indent = '  '): string {
  const left = OPTIONS.map((o) => `${o.name}${o.value ? ` ${o.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return OPTIONS.map((o, i) => `${indent}${left[i]!.padEnd(width)}${o.help}\n`).join('');
}

interface DrainArgs {
  node: string;
  endpoints: string[];
  rate: number;
  wait: boolean;
  cancel: boolean;
}

export function parseDrainArgs(args: readonly string[]): DrainArgs | 'help' {
  let node: string | undefined;
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') return 'help';
    if (!a.startsWith('-')) {
      if (node !== undefined) throw new UsageError(`one node at a time ('${node}', then '${a}')`);
      node = a;
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const option = OPTIONS.find((o) => o.name === name);
    if (!option) throw new UsageError(`unknown option '${a}'`);
    if (option.value === '') {
      switches.add(name);
      continue;
    }
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    values.set(name, value);
  }
  if (node === undefined) throw new UsageError('name the node to drain');
  if (!NODE_NAME.test(node)) throw new UsageError(`'${node}' is not a node name`);
  const endpoints = (values.get('--etcd-endpoints') ?? process.env.ETCD_ENDPOINTS ?? '')
    .split(',')
    .filter((e) => e !== '');
  if (endpoints.length === 0)
    throw new UsageError('--etcd-endpoints (or ETCD_ENDPOINTS) is required');
  const rawRate = values.get('--rate') ?? String(DEFAULT_DRAIN_RATE);
  let rate: number;
  try {
    rate = checkDrainRate(/^\d+$/.test(rawRate) ? Number(rawRate) : NaN);
  } catch {
    throw new UsageError(
      `--rate takes terminals per second, 1 to ${MAX_DRAIN_RATE}, not '${rawRate}'`,
    );
  }
  if (switches.has('--cancel') && values.has('--rate'))
    throw new UsageError('--cancel takes no --rate');
  return {
    node,
    endpoints,
    rate,
    wait: !switches.has('--no-wait'),
    cancel: switches.has('--cancel'),
  };
}

export async function runDrain(args: readonly string[]): Promise<number> {
  const a = parseDrainArgs(args);
  if (a === 'help') {
    process.stdout.write(`usage: fleetmesh drain ${drainUsage}\n${drainOptions()}`);
    return 0;
  }
  const etcd = new Etcd3({ hosts: a.endpoints, dialTimeout: 5000 });
  try {
    if (a.cancel) {
      const had = await cancelDrain(etcd, a.node);
      process.stdout.write(
        had ? `drain: ${a.node} takes terminals again\n` : `drain: ${a.node} was not draining\n`,
      );
      return 0;
    }
    const watch = await MemberWatch.start(etcd);
    try {
      const known = watch.members().some((m) => m.node === a.node);
      await orderDrain(etcd, a.node, a.rate);
      process.stdout.write(
        `drain: ${a.node} is draining at ${a.rate} terminals/s` +
          (known ? '\n' : ` (not a live member now: it drains when it starts)\n`),
      );
      if (!a.wait || !known) return 0;
      return await untilEmpty(watch, a.node);
    } finally {
      await watch.close();
    }
  } finally {
    etcd.close();
  }
}

/** Prints what the node holds (its load reports) until none, or it left the membership. */
async function untilEmpty(watch: MemberWatch, node: string): Promise<number> {
  let last = '';
  for (;;) {
    const m = watch.members().find((x) => x.node === node);
    if (!m) {
      process.stdout.write(`drain: ${node} left the membership\n`);
      return 0;
    }
    const line = `drain: ${node} holds ${m.load.terminals} terminal(s)${m.load.draining ? '' : ' (not draining yet)'}`;
    if (line !== last) process.stdout.write(`${line}\n`);
    last = line;
    if (m.load.draining && m.load.terminals === 0) {
      process.stdout.write(`drain: ${node} holds no terminals\n`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
