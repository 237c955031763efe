// The actor runtime: small and boring on purpose (names after Proto.Actor and Akka sharding).
// Each actor has a bounded mailbox and handles one message at a time (a turn may be async; the
// next waits for it). An actor is activated by its first message (its state loaded first; a
// failed load is retried with backoff while messages wait, never skipped),
// passivated after a quiet period (its state saved first), and its timers die with it.
// Time comes from a Scheduler so tests can drive it.

export interface Scheduler {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** What an actor sees of the runtime during a turn. */
export interface ActorContext<M> {
  readonly id: string;
  readonly scheduler: Scheduler;
  /** Sends a message to itself after `ms` under `key`; a new timer under the same key replaces it. */
  startTimer(key: string, ms: number, msg: M): void;
  cancelTimer(key: string): void;
  /** Asks to be passivated once the current turn ends. */
  passivate(): void;
}

export interface Actor<M> {
  /** Loads state before the first message. */
  activate?(ctx: ActorContext<M>): Promise<void> | void;
  receive(msg: M, ctx: ActorContext<M>): Promise<void> | void;
  /** Saves state before the actor is dropped from memory. */
  passivate?(ctx: ActorContext<M>): Promise<void> | void;
  /** False while it must stay in memory although idle (e.g. it holds a live connection). */
  canPassivate?(): boolean;
}

export interface ActorSystemOptions<M> {
  create(id: string): Actor<M>;
  /** Messages an actor may have waiting; `tell` refuses beyond it. */
  mailboxLimit?: number;
  /** Passivate an actor after this long without a message; 0 never. */
  idleMs?: number;
  scheduler?: Scheduler;
  /**
   * A turn, activation or passivation threw: counted and reported. After a failed turn or
   * passivation the actor goes on; after a failed activation it takes no message until an
   * activation succeeds (retried after `activateRetryMs`, doubling up to 32×).
   */
  onError?(id: string, phase: 'activate' | 'receive' | 'passivate', err: unknown): void;
  /** First delay before a failed activation is tried again (ms); default 100. */
  activateRetryMs?: number;
}

export interface ActorSystemStats {
  active: number;
  activations: number;
  passivations: number;
  messages: number;
  refused: number;
  errors: number;
  /** Messages waiting in mailboxes now (every actor's). */
  queued: number;
}

type State = 'activating' | 'active' | 'passivating';

class Cell<M> implements ActorContext<M> {
  readonly mailbox: M[] = [];
  state: State = 'activating';
  running = false;
  lastMessageAt: number;
  idleTimer: unknown;
  passivateRequested = false;
  /** Passivate once the mailbox is empty (handed to another owner); resolved when gone. */
  leaving: (() => void)[] | undefined;
  /** Failed activations in a row. */
  activateFailures = 0;
  retryTimer: unknown;
  readonly timers = new Map<string, unknown>();

  constructor(
    readonly id: string,
    readonly actor: Actor<M>,
    private readonly system: ActorSystem<M>,
  ) {
    this.lastMessageAt = system.scheduler.now();
  }

  get scheduler(): Scheduler {
    return this.system.scheduler;
  }

  startTimer(key: string, ms: number, msg: M): void {
    this.cancelTimer(key);
    this.timers.set(
      key,
      this.scheduler.setTimeout(() => {
        this.timers.delete(key);
        this.system.deliver(this, msg, true);
      }, ms),
    );
  }

  cancelTimer(key: string): void {
    const h = this.timers.get(key);
    if (h !== undefined) {
      this.scheduler.clearTimeout(h);
      this.timers.delete(key);
    }
  }

  passivate(): void {
    this.passivateRequested = true;
  }
}

export class ActorSystem<M> {
  readonly scheduler: Scheduler;
  readonly stats: ActorSystemStats = {
    active: 0,
    activations: 0,
    passivations: 0,
    messages: 0,
    refused: 0,
    errors: 0,
    queued: 0,
  };
  private readonly cells = new Map<string, Cell<M>>();
  private readonly mailboxLimit: number;
  private readonly idleMs: number;
  private readonly idleWaiters = new Set<() => void>();

  constructor(private readonly options: ActorSystemOptions<M>) {
    this.scheduler = options.scheduler ?? realScheduler;
    this.mailboxLimit = options.mailboxLimit ?? 1000;
    this.idleMs = options.idleMs ?? 0;
  }

  /** Queues a message; false (and nothing queued) when the actor's mailbox is full. */
  tell(id: string, msg: M): boolean {
    let cell = this.cells.get(id);
    if (cell === undefined) {
      cell = new Cell(id, this.options.create(id), this);
      this.cells.set(id, cell);
      this.stats.active++;
      this.stats.activations++;
    }
    return this.deliver(cell, msg, false);
  }

  /** True when `tell` would refuse. */
  isFull(id: string): boolean {
    const cell = this.cells.get(id);
    return cell !== undefined && cell.mailbox.length >= this.mailboxLimit;
  }

  /** The actor itself while it is in memory (for read-only inspection between turns). */
  actorOf(id: string): Actor<M> | undefined {
    return this.cells.get(id)?.actor;
  }

  has(id: string): boolean {
    return this.cells.has(id);
  }

  get size(): number {
    return this.cells.size;
  }

  ids(): IterableIterator<string> {
    return this.cells.keys();
  }

  /** @internal */
  deliver(cell: Cell<M>, msg: M, fromTimer: boolean): boolean {
    // Timer messages are the actor's own and are never refused (a lost save timer would mean no
    // save); they stay bounded: one per timer key, re-armed only by a turn.
    if (!fromTimer && cell.mailbox.length >= this.mailboxLimit) {
      this.stats.refused++;
      return false;
    }
    cell.mailbox.push(msg);
    this.stats.queued++;
    cell.lastMessageAt = this.scheduler.now();
    this.schedule(cell);
    return true;
  }

  private schedule(cell: Cell<M>): void {
    // While a failed activation waits for its retry, new messages only queue.
    if (cell.running || cell.retryTimer !== undefined) return;
    cell.running = true;
    void this.run(cell);
  }

  private async run(cell: Cell<M>): Promise<void> {
    try {
      if (cell.state === 'activating') {
        try {
          await cell.actor.activate?.(cell);
        } catch (err) {
          // Carrying on from empty state would let the next write replace the stored record:
          // the messages wait (the mailbox limit pushes back on senders) and activation is retried.
          this.error(cell.id, 'activate', err);
          cell.activateFailures++;
          this.retryActivation(cell);
          return;
        }
        cell.activateFailures = 0;
        cell.state = 'active';
      }
      while (cell.mailbox.length > 0) {
        const msg = cell.mailbox.shift() as M;
        this.stats.queued--;
        this.stats.messages++;
        try {
          await cell.actor.receive(msg, cell);
        } catch (err) {
          this.error(cell.id, 'receive', err);
        }
        if (cell.passivateRequested) break;
      }
    } finally {
      cell.running = false;
    }
    if (cell.passivateRequested || (cell.leaving && cell.mailbox.length === 0)) {
      await this.passivateCell(cell);
      return;
    }
    this.armIdle(cell);
    this.notifyIdle();
  }

  private retryActivation(cell: Cell<M>): void {
    const base = this.options.activateRetryMs ?? 100;
    const delay = base * 2 ** Math.min(cell.activateFailures - 1, 5);
    cell.retryTimer = this.scheduler.setTimeout(() => {
      cell.retryTimer = undefined;
      this.schedule(cell);
    }, delay);
  }

  private armIdle(cell: Cell<M>): void {
    if (this.idleMs <= 0) return;
    if (cell.idleTimer !== undefined) this.scheduler.clearTimeout(cell.idleTimer);
    cell.idleTimer = this.scheduler.setTimeout(() => {
      cell.idleTimer = undefined;
      if (cell.running || cell.mailbox.length > 0 || cell.state !== 'active') return;
      if (
        this.scheduler.now() - cell.lastMessageAt < this.idleMs ||
        cell.actor.canPassivate?.() === false
      ) {
        this.armIdle(cell);
        return;
      }
      void this.passivateCell(cell);
    }, this.idleMs);
  }

  private async passivateCell(cell: Cell<M>): Promise<void> {
    // An actor whose state never loaded has nothing of its own to save (saving would write empty state).
    const loaded = cell.state === 'active';
    cell.state = 'passivating';
    cell.running = true; // no turn starts while state is saved
    for (const h of cell.timers.values()) this.scheduler.clearTimeout(h);
    cell.timers.clear();
    if (cell.idleTimer !== undefined) this.scheduler.clearTimeout(cell.idleTimer);
    if (cell.retryTimer !== undefined) this.scheduler.clearTimeout(cell.retryTimer);
    try {
      if (loaded) await cell.actor.passivate?.(cell);
    } catch (err) {
      this.error(cell.id, 'passivate', err);
      if (loaded) {
        // Its state is not saved: it stays in memory, taking messages, and is passivated again
        // when idle again, instead of being dropped with what it holds.
        cell.state = 'active';
        cell.running = false;
        cell.passivateRequested = false;
        for (const done of cell.leaving ?? []) done();
        cell.leaving = undefined;
        this.armIdle(cell);
        if (cell.mailbox.length > 0) this.schedule(cell);
        this.notifyIdle();
        return;
      }
    }
    this.cells.delete(cell.id);
    this.stats.active--;
    this.stats.passivations++;
    for (const done of cell.leaving ?? []) done();
    // Messages that arrived while saving go to a fresh activation, which loads what was saved.
    const late = cell.mailbox.splice(0);
    this.stats.queued -= late.length;
    for (const msg of late) this.tell(cell.id, msg);
    this.notifyIdle();
  }

  private error(id: string, phase: 'activate' | 'receive' | 'passivate', err: unknown): void {
    this.stats.errors++;
    this.options.onError?.(id, phase, err);
  }

  /** Resolves when no actor has a turn running or waiting (for tests and draining). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.isIdle()) {
          this.idleWaiters.delete(check);
          resolve();
        }
      };
      this.idleWaiters.add(check);
    });
  }

  private isIdle(): boolean {
    for (const c of this.cells.values()) if (c.running || c.mailbox.length > 0) return false;
    return true;
  }

  private notifyIdle(): void {
    for (const w of [...this.idleWaiters]) w();
  }

  /**
   * Passivates the actors that match once each has taken what its mailbox holds (their vehicles
   * moved to another owner: what arrived before the move is theirs to answer). Resolves when all
   * are gone, or stayed because their save failed (see passivateCell).
   */
  async passivateWhere(match: (id: string) => boolean): Promise<number> {
    const leaving: Promise<void>[] = [];
    for (const cell of this.cells.values()) {
      if (!match(cell.id)) continue;
      leaving.push(
        new Promise<void>((resolve) => {
          (cell.leaving ??= []).push(resolve);
        }),
      );
      // Idle, or never loaded (its activation waits for a retry): it goes now.
      if (!cell.running && (cell.mailbox.length === 0 || cell.state === 'activating'))
        void this.passivateCell(cell);
    }
    await Promise.all(leaving);
    return leaving.length;
  }

  /** Passivates every actor (saving its state), e.g. before the node stops. */
  async passivateAll(): Promise<void> {
    await this.whenIdle();
    await Promise.all([...this.cells.values()].map((c) => this.passivateCell(c)));
  }
}
