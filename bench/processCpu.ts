// CPU time of whole process trees from /proc (Linux): a server and every process it forked
// (PostgreSQL's backends), counting children that have exited. For the benches' "store CPU".
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
    };
  } catch {
    return undefined; // gone between listing and reading
  }
}

/** CPU milliseconds used so far by these processes and all their descendants. */
export function treeCpuMs(roots: readonly number[]): number {
  const all = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readStat(Number(d)))
    .filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  let ticks = 0;
  const visit = (s: ProcStat | undefined): void => {
    if (!s) return;
    ticks += s.ticks;
    for (const c of children.get(s.pid) ?? []) visit(c);
  };
  const byPid = new Map(all.map((s) => [s.pid, s]));
  for (const pid of roots) visit(byPid.get(pid));
  return (ticks * 1000) / TICKS_PER_SECOND;
}
