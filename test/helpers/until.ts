// Waits for a condition the system reaches on its own (an event seen, a lease expired): polls,
// and fails the test naming what never happened.
import assert from 'node:assert/strict';

export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
