import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActorSystem, type Actor, type ActorContext } from '../../actors/runtime.js';
import { FakeScheduler } from '../helpers/fakeScheduler.js';

type Msg = { kind: 'add'; n: number; delayMs?: number } | { kind: 'tick' } | { kind: 'stop' };

/** A counter whose state lives in `store` between activations. */
function counters(store: Map<string, number>, log: string[], scheduler?: FakeScheduler) {
  return (id: string): Actor<Msg> => {
    let total = 0;
    return {
      async activate() {
        total = store.get(id) ?? 0;
        log.push(`activate ${id} ${total}`);
      },
      async receive(msg: Msg, ctx: ActorContext<Msg>) {
        if (msg.kind === 'add') {
          const before = total;
          if (msg.delayMs) await new Promise((r) => setTimeout(r, msg.delayMs));
          total = before + msg.n; // a lost update would show if turns overlapped
          if (msg.n === 99) ctx.startTimer('tick', 1000, { kind: 'tick' });
        } else if (msg.kind === 'tick') {
          log.push(`tick ${id} at ${scheduler?.now()}`);
        } else {
          ctx.passivate();
        }
      },
      async passivate() {
        store.set(id, total);
        log.push(`passivate ${id} ${total}`);
      },
    };
  };
}

describe('ActorSystem', () => {
  it('handles one message at a time, in order, even when turns are async', async () => {
    const store = new Map<string, number>();
    const sys = new ActorSystem<Msg>({ create: counters(store, []) });
    for (let i = 1; i <= 20; i++) assert.ok(sys.tell('v1', { kind: 'add', n: i, delayMs: i % 3 }));
    await sys.whenIdle();
    await sys.passivateAll();
    assert.equal(store.get('v1'), 210);
  });

  it('activates with saved state and passivates after the idle period', async () => {
    const scheduler = new FakeScheduler();
    const store = new Map([['v1', 5]]);
    const log: string[] = [];
    const sys = new ActorSystem<Msg>({ create: counters(store, log), idleMs: 60_000, scheduler });
    sys.tell('v1', { kind: 'add', n: 1 });
    await sys.whenIdle();
    await scheduler.advance(30_000);
    assert.ok(sys.has('v1'), 'still active before the idle period');
    await scheduler.advance(31_000);
    assert.equal(sys.has('v1'), false);
    assert.equal(store.get('v1'), 6);
    sys.tell('v1', { kind: 'add', n: 4 });
    await sys.whenIdle();
    await sys.passivateAll();
    assert.deepEqual(log, ['activate v1 5', 'passivate v1 6', 'activate v1 6', 'passivate v1 10']);
    assert.equal(sys.stats.activations, 2);
  });

  it('an idle actor that says it cannot passivate stays until it can', async () => {
    const scheduler = new FakeScheduler();
    let holdsConnection = true;
    let passivated = 0;
    const sys = new ActorSystem<Msg>({
      scheduler,
      idleMs: 1000,
      create: () => ({
        receive: () => undefined,
        passivate: () => void passivated++,
        canPassivate: () => !holdsConnection,
      }),
    });
    sys.tell('v1', { kind: 'add', n: 1 });
    await sys.whenIdle();
    await scheduler.advance(5000);
    assert.ok(sys.has('v1'), 'kept while it holds its connection');
    holdsConnection = false;
    await scheduler.advance(1000);
    assert.equal(sys.has('v1'), false);
    assert.equal(passivated, 1);
  });

  it("an actor's own timer messages are never refused by a full mailbox, and at most one per key waits", async () => {
    const scheduler = new FakeScheduler();
    let release: () => void = () => undefined;
    const ticks: string[] = [];
    const sys = new ActorSystem<Msg>({
      scheduler,
      mailboxLimit: 2,
      create: () => ({
        async receive(msg: Msg, ctx: ActorContext<Msg>) {
          if (msg.kind === 'add' && msg.n === 1) {
            ctx.startTimer('save', 100, { kind: 'tick' });
            await new Promise<void>((r) => (release = r)); // a slow turn: the mailbox fills
          } else if (msg.kind === 'tick') ticks.push('tick');
        },
      }),
    });
    sys.tell('v1', { kind: 'add', n: 1 });
    await new Promise((r) => setImmediate(r));
    assert.ok(sys.tell('v1', { kind: 'add', n: 2 }));
    assert.ok(sys.tell('v1', { kind: 'add', n: 3 }));
    assert.equal(sys.tell('v1', { kind: 'add', n: 4 }), false, 'the mailbox is full');
    assert.equal(sys.stats.queued, 2, 'two wait');
    await scheduler.advance(1000); // the timer fires into the full mailbox, once
    release();
    await sys.whenIdle();
    assert.deepEqual(ticks, ['tick'], 'the timer message was taken, once');
    assert.equal(sys.stats.queued, 0);
    assert.equal(sys.stats.refused, 1);
  });

  it('an actor whose passivation fails stays in memory with its state, and is passivated when idle again', async () => {
    const scheduler = new FakeScheduler();
    const store = new Map<string, number>();
    let failNext = true;
    const errors: string[] = [];
    const sys = new ActorSystem<Msg>({
      scheduler,
      idleMs: 1000,
      onError: (id, phase) => errors.push(`${id} ${phase}`),
      create: (id) => {
        const actor = counters(store, [])(id);
        const save = actor.passivate!.bind(actor);
        actor.passivate = async (ctx) => {
          if (failNext) {
            failNext = false;
            throw new Error('store refused');
          }
          await save(ctx);
        };
        return actor;
      },
    });
    sys.tell('v1', { kind: 'add', n: 7 });
    await sys.whenIdle();
    await scheduler.advance(1000);
    assert.deepEqual(errors, ['v1 passivate']);
    assert.ok(sys.has('v1'), 'kept: its state was not saved');
    assert.equal(store.get('v1'), undefined);
    sys.tell('v1', { kind: 'add', n: 1 }); // still takes messages, on the state it kept
    await sys.whenIdle();
    await scheduler.advance(1000);
    assert.equal(sys.has('v1'), false);
    assert.equal(store.get('v1'), 8, 'nothing was lost');
  });

  it('a bounded mailbox refuses beyond its limit and counts it', async () => {
    const sys = new ActorSystem<Msg>({ create: counters(new Map(), []), mailboxLimit: 3 });
    // The first message starts a turn (activation is async), so the mailbox holds the rest.
    const accepted = [1, 2, 3, 4, 5, 6].map((n) => sys.tell('v', { kind: 'add', n }));
    assert.deepEqual(accepted, [true, true, true, false, false, false]);
    assert.ok(sys.isFull('v'));
    assert.equal(sys.stats.refused, 3);
    await sys.whenIdle();
    assert.equal(sys.isFull('v'), false);
  });

  it('timers deliver to the actor and die with passivation', async () => {
    const scheduler = new FakeScheduler();
    const log: string[] = [];
    const sys = new ActorSystem<Msg>({ create: counters(new Map(), log, scheduler), scheduler });
    sys.tell('v', { kind: 'add', n: 99 });
    await sys.whenIdle();
    await scheduler.advance(1000);
    assert.deepEqual(
      log.filter((l) => l.startsWith('tick')),
      ['tick v at 1000'],
    );
    sys.tell('v', { kind: 'add', n: 99 }); // restart the timer
    sys.tell('v', { kind: 'stop' });
    await sys.whenIdle();
    await scheduler.advance(5000);
    assert.equal(log.filter((l) => l.startsWith('tick')).length, 1, 'no tick after passivation');
    assert.equal(scheduler.pending, 0);
  });

  it('an actor that throws is counted and keeps going', async () => {
    const errors: string[] = [];
    let seen = 0;
    const sys = new ActorSystem<number>({
      create: () => ({
        receive(n) {
          seen++;
          if (n === 2) throw new Error('bad message');
        },
      }),
      onError: (id, phase, err) => errors.push(`${id} ${phase} ${(err as Error).message}`),
    });
    [1, 2, 3].forEach((n) => sys.tell('v', n));
    await sys.whenIdle();
    assert.equal(seen, 3);
    assert.deepEqual(errors, ['v receive bad message']);
    assert.equal(sys.stats.errors, 1);
  });
});

describe('ActorSystem activation failures', () => {
  it('a failed activation is retried with backoff; no message is handled from empty state', async () => {
    const scheduler = new FakeScheduler();
    const store = new Map<string, number>([['a', 10]]);
    const log: string[] = [];
    let failures = 2;
    const errors: string[] = [];
    const sys = new ActorSystem<Msg>({
      scheduler,
      activateRetryMs: 100,
      onError: (id, phase) => errors.push(`${phase} ${id}`),
      create: (id) => {
        const inner = counters(store, log, scheduler)(id);
        return {
          ...inner,
          async activate(ctx) {
            if (failures > 0) {
              failures--;
              throw new Error('store unavailable');
            }
            await inner.activate?.(ctx);
          },
        };
      },
    });
    sys.tell('a', { kind: 'add', n: 1 });
    await new Promise((r) => setImmediate(r));
    sys.tell('a', { kind: 'add', n: 2 }); // arrives during the backoff: queued, not a new attempt
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(errors, ['activate a']);
    assert.deepEqual(log, []);
    await scheduler.advance(100); // second attempt fails; next in 200 ms
    assert.deepEqual(errors, ['activate a', 'activate a']);
    await scheduler.advance(199);
    assert.deepEqual(log, []);
    await scheduler.advance(1);
    await sys.whenIdle();
    assert.deepEqual(log, ['activate a 10']);
    sys.tell('a', { kind: 'stop' });
    await sys.whenIdle();
    await new Promise((r) => setImmediate(r));
    assert.equal(store.get('a'), 13, 'both messages were applied to the loaded state');
  });

  it('passivateWhere lets the matching actors take what their mailboxes hold, saves them, keeps the rest', async () => {
    const store = new Map<string, number>();
    const log: string[] = [];
    const sys = new ActorSystem<Msg>({ create: counters(store, log) });
    for (let i = 1; i <= 5; i++) sys.tell('moving', { kind: 'add', n: i, delayMs: 2 });
    sys.tell('staying', { kind: 'add', n: 7 });
    sys.tell('idle-moving', { kind: 'add', n: 1 });
    await new Promise((r) => setTimeout(r, 1)); // 'moving' is mid-mailbox now
    const left = await sys.passivateWhere((id) => id.endsWith('moving'));
    assert.equal(left, 2);
    assert.equal(
      store.get('moving'),
      15,
      'every message queued before the move was taken, then saved',
    );
    assert.equal(store.get('idle-moving'), 1);
    assert.equal(sys.has('moving'), false);
    assert.equal(sys.has('idle-moving'), false);
    assert.equal(sys.has('staying'), true);
    assert.equal(store.get('staying'), undefined, 'the others were not saved');
  });
});
