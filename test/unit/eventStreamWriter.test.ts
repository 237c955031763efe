// A slow stream consumer: past the backlog limit events are dropped and counted, never queued,
// and the consumer learns how many it missed before the next event it gets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventStreamWriter } from '../../api/eventStreamWriter.js';

class SlowSink {
  readonly written: string[] = [];
  /** Messages not yet taken by the consumer. */
  writableLength = 0;
  write(m: string): boolean {
    this.written.push(m);
    this.writableLength++;
    return true;
  }
}

describe('EventStreamWriter', () => {
  it('at the backlog limit drops and counts, then reports the count before the next event', () => {
    const sink = new SlowSink();
    const w = new EventStreamWriter(sink, 3, (n) => `dropped ${n}`);
    for (let i = 1; i <= 5; i++) w.send(`e${i}`);
    assert.deepEqual(sink.written, ['e1', 'e2', 'e3']);
    assert.equal(w.droppedTotal, 2);
    sink.writableLength = 0; // the consumer caught up
    w.send('e6');
    w.send('e7');
    assert.deepEqual(sink.written, ['e1', 'e2', 'e3', 'dropped 2', 'e6', 'e7']);
    sink.writableLength = 0;
    w.send('e8'); // nothing dropped since: no second report
    assert.deepEqual(sink.written.slice(-1), ['e8']);
    assert.equal(w.droppedTotal, 2);
  });

  it('never holds more than the limit (+1 drop report) however many events come', () => {
    const sink = new SlowSink();
    const w = new EventStreamWriter(sink, 100, (n) => `dropped ${n}`);
    for (let i = 0; i < 100_000; i++) w.send(`e${i}`);
    assert.equal(sink.written.length, 100);
    assert.equal(w.droppedTotal, 99_900);
  });
});
