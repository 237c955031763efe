import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandQueue, type Command } from '../../actors/commandQueue.js';
import type { Message } from '../../jt808/messages.js';

const text = (id: string): Command => ({
  id,
  createdAt: 0,
  message: { type: 'TextMessage', body: { flag: 8, text: id } },
});
const ack = (serial: number, replyId: number, result = 0): Message => ({
  type: 'TerminalResponse',
  body: { replySerial: serial, replyId, result },
});

function serials(start = 100): () => number {
  let s = start;
  return () => s++;
}

describe('CommandQueue', () => {
  it('holds commands while offline and sends them in order, one at a time, once online', () => {
    const q = new CommandQueue();
    const next = serials();
    assert.equal(q.enqueue(text('a'), 0).state, 'queued');
    q.enqueue(text('b'), 0);
    assert.equal(q.next(false, 1, next), undefined, 'nothing goes out while offline');
    const first = q.next(true, 2, next);
    assert.equal(first?.command.id, 'a');
    assert.equal(first?.serial, 100);
    assert.equal(q.next(true, 3, next), undefined, 'one in flight at a time');
    const done = q.reply(ack(100, 0x8300), 4);
    assert.deepEqual([done?.commandId, done?.state], ['a', 'answered']);
    assert.equal(q.next(true, 5, next)?.command.id, 'b');
  });

  it('matches the reply by serial and message id; a failure result fails the command', () => {
    const q = new CommandQueue();
    q.enqueue(text('a'), 0);
    q.next(true, 0, serials(7));
    assert.equal(q.reply(ack(8, 0x8300), 1), undefined, 'another serial');
    assert.equal(q.reply(ack(7, 0x8103), 1), undefined, 'another message id');
    assert.equal(q.reply(ack(7, 0x8300, 1), 1)?.state, 'failed');
  });

  it('a specific reply (0x0104 for 0x8104) answers its command', () => {
    const q = new CommandQueue();
    q.enqueue({ id: 'p', createdAt: 0, message: { type: 'QueryAllParameters', body: {} } }, 0);
    q.next(true, 0, serials(40));
    const reply: Message = {
      type: 'ParametersReply',
      body: { replySerial: 40, params: [{ id: 1, value: 30 }] },
    };
    const ev = q.reply(reply, 5);
    assert.equal(ev?.state, 'answered');
    assert.deepEqual(ev?.reply, reply);
  });

  it('resends after T(N+1) = T(N) × (N+1) and times out after the retries', () => {
    const q = new CommandQueue({ timeoutMs: 1000, retries: 2 });
    const next = serials(1);
    q.enqueue(text('a'), 0);
    q.next(true, 0, next);
    assert.deepEqual(q.tick(true, 999, next), {});
    const r1 = q.tick(true, 1000, next);
    assert.deepEqual([r1.resend?.serial, r1.event?.attempt, q.deadline], [2, 2, 1000 + 2000]);
    const r2 = q.tick(true, 3000, next);
    assert.deepEqual([r2.resend?.serial, r2.event?.attempt, q.deadline], [3, 3, 3000 + 3000]);
    assert.equal(
      q.reply(ack(2, 0x8300), 3500),
      undefined,
      'a reply to an old attempt does not match',
    );
    const out = q.tick(true, 6000, next);
    assert.deepEqual([out.event?.state, out.resend], ['timed-out', undefined]);
    assert.equal(q.size, 0);
  });

  it('an unanswered command goes back to the queue when the terminal went offline', () => {
    const q = new CommandQueue({ timeoutMs: 1000 });
    const next = serials(1);
    q.enqueue(text('a'), 0);
    q.enqueue(text('b'), 0);
    q.next(true, 0, next);
    assert.equal(q.tick(false, 1000, next).event?.state, 'queued');
    assert.deepEqual(
      q.pending().map((c) => c.id),
      ['a', 'b'],
    );
    assert.equal(q.next(true, 2000, next)?.command.id, 'a');
  });

  it('refuses commands beyond its limit', () => {
    const q = new CommandQueue({ maxQueued: 2 });
    assert.deepEqual(
      ['a', 'b', 'c'].map((id) => q.enqueue(text(id), 0).state),
      ['queued', 'queued', 'refused'],
    );
  });
});

describe('CommandQueue when the link drops', () => {
  it('puts the in-flight command back at the front at once', () => {
    const q = new CommandQueue();
    const next = serials(1);
    q.enqueue(text('a'), 0);
    q.enqueue(text('b'), 0);
    q.next(true, 0, next);
    assert.equal(q.offline(5)?.state, 'queued');
    assert.equal(q.deadline, undefined);
    const again = q.next(true, 6, next);
    assert.deepEqual([again?.command.id, again?.serial], ['a', 2]);
  });
});
