// Structured logs: JSON lines (pino) with levels, and at most a few lines per cause in a window,
// so a flood (a terminal sending garbage, a store that is down) cannot drown the log or the disk;
// the next line of a cause after a quiet spell says how many of its lines were left out.
import { pino, type DestinationStream, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a line carries besides its message and cause. */
export type LogFields = Record<string, string | number | boolean | undefined>;

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/** The level from `given`, else FLEETMESH_LOG_LEVEL, else info; an unknown name throws. */
export function logLevelFrom(given?: string, env = process.env.FLEETMESH_LOG_LEVEL): LogLevel {
  const raw = given ?? env ?? 'info';
  if (!isLogLevel(raw)) throw new Error(`log level takes ${LOG_LEVELS.join('|')}, not '${raw}'`);
  return raw;
}

export interface CauseLimiterOptions {
  /** Lines per cause per window (default 10). */
  perWindow?: number;
  windowMs?: number;
  /** Causes tracked at once; past it the oldest is forgotten (default 1024). */
  maxCauses?: number;
  now?: () => number;
}

interface CauseWindow {
  start: number;
  lines: number;
  suppressed: number;
}

/**
 * Per-cause rate limit: `perWindow` lines of one cause per `windowMs`, the rest counted; the
 * first line of a cause's next window carries that count. The table is bounded by `maxCauses`
 * (causes can carry a reason, and a reason comes from outside).
 */
export class CauseLimiter {
  private readonly windows = new Map<string, CauseWindow>();
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly maxCauses: number;
  private readonly now: () => number;
  /** Suppressed lines whose cause was forgotten before its count could be reported. */
  forgotten = 0;

  constructor(opts: CauseLimiterOptions = {}) {
    this.perWindow = opts.perWindow ?? 10;
    this.windowMs = opts.windowMs ?? 10_000;
    this.maxCauses = opts.maxCauses ?? 1024;
    this.now = opts.now ?? Date.now;
  }

  /** Whether a line of `cause` goes out now, and how many of its lines were left out before it. */
  admit(cause: string): { log: false } | { log: true; suppressed: number } {
    const now = this.now();
    let w = this.windows.get(cause);
    if (w === undefined) {
      if (this.windows.size >= this.maxCauses) this.forgetOldest();
      w = { start: now, lines: 0, suppressed: 0 };
      this.windows.set(cause, w);
    } else if (now - w.start >= this.windowMs) {
      const suppressed = w.suppressed;
      w.start = now;
      w.lines = 1;
      w.suppressed = 0;
      return { log: true, suppressed };
    }
    if (w.lines < this.perWindow) {
      w.lines++;
      return { log: true, suppressed: 0 };
    }
    w.suppressed++;
    return { log: false };
  }

  get causes(): number {
    return this.windows.size;
  }

  private forgetOldest(): void {
    const first = this.windows.entries().next();
    if (first.done) return;
    this.forgotten += first.value[1].suppressed;
    this.windows.delete(first.value[0]);
  }
}

/** A logger whose lines each name a cause, rate-limited per cause. */
export class FleetLog {
  constructor(
    readonly logger: Logger,
    private readonly limiter: CauseLimiter = new CauseLimiter(),
  ) {}

  get level(): LogLevel {
    const l = this.logger.level;
    return isLogLevel(l) ? l : 'info';
  }

  error(cause: string, fields: LogFields, msg: string): void {
    this.line('error', cause, fields, msg);
  }

  warn(cause: string, fields: LogFields, msg: string): void {
    this.line('warn', cause, fields, msg);
  }

  info(cause: string, fields: LogFields, msg: string): void {
    this.line('info', cause, fields, msg);
  }

  /** The same limiter (one budget per cause for the thread), more fields on every line. */
  child(bindings: LogFields): FleetLog {
    return new FleetLog(this.logger.child(bindings), this.limiter);
  }

  private line(level: 'error' | 'warn' | 'info', cause: string, fields: LogFields, msg: string) {
    // Below the level: not even counted, so a quiet logger costs one comparison.
    if (!this.logger.isLevelEnabled(level)) return;
    const a = this.limiter.admit(cause);
    if (!a.log) return;
    const out =
      a.suppressed > 0 ? { cause, ...fields, suppressed: a.suppressed } : { cause, ...fields };
    this.logger[level](out, msg);
  }
}

export interface CreateLogOptions {
  level?: LogLevel;
  /** Fields on every line (node, worker). */
  base?: LogFields;
  /** Default: stderr, written synchronously (works the same from worker threads, loses nothing at exit). */
  destination?: DestinationStream;
  limiter?: CauseLimiterOptions;
}

/**
 * JSON lines to stderr by default: stdout carries the status line of `fleetmesh start`. Each
 * thread makes its own (workers get the level in their start data).
 */
export function createLog(opts: CreateLogOptions = {}): FleetLog {
  const logger = pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
  return new FleetLog(logger, new CauseLimiter(opts.limiter));
}

/** An error as a log field: its message, not its stack (lines stay one short JSON object). */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
