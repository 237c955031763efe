// Bounded fuzzing (the long run is `npm run fuzz`): no exception escapes the framer, the
// decoder or the reassembler, every rejection names a reason, and memory stays within limits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz } from '../helpers/fuzz.js';
import { readCorpusJson, type Vector } from '../helpers/corpus.js';

const seeds = readCorpusJson<Vector[]>('vectors.json').map(
  (v) => new Uint8Array(Buffer.from(v.hex, 'hex')),
);

describe('codec fuzzing (bounded)', () => {
  it('20 000 mutated and random inputs: no throw, bounded buffers, reasons given', () => {
    const stats = fuzz(seeds, 20_000, 0xc0ffee);
    assert.ok(stats.frames > 15_000, `${stats.frames} frames`);
    assert.ok(stats.accepted > 1000, 'mutations still reach the body decoders');
    const reasons = Object.keys(stats.rejected);
    assert.ok(reasons.length >= 4, `rejections of several kinds: ${reasons.join(', ')}`);
    assert.ok(stats.maxSplitterBuffered <= 512);
    assert.ok(stats.maxReassemblyBytes <= 64 * 1024);
  });
});
