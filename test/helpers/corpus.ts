// Reads the conformance corpus from ../shared/conformance/jt808 (beside the project, never
// copied into it). FLEETMESH_CONFORMANCE overrides the folder.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../devservers/localServers.js';

export const corpusDir =
  process.env.FLEETMESH_CONFORMANCE ?? join(projectRoot, '..', 'shared', 'conformance', 'jt808');

export function readCorpusJson<T>(file: string): T {
  return JSON.parse(readFileSync(join(corpusDir, file), 'utf8')) as T;
}

/** Lines of hex frames; a line may start with a package number before the hex. */
export function readCorpusFrames(file: string): Uint8Array[] {
  return readFileSync(join(corpusDir, file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => new Uint8Array(Buffer.from(l.split(/\s+/).pop() as string, 'hex')));
}

/** The escaped content between a frame's two delimiters. */
export function content(frame: Uint8Array | string): Uint8Array {
  const b = typeof frame === 'string' ? new Uint8Array(Buffer.from(frame, 'hex')) : frame;
  return b.subarray(1, b.length - 1);
}

export interface Vector {
  id: string;
  hex: string;
  kind: 'valid' | 'invalid' | 'irregular' | 'frame-only';
  expected: Record<string, unknown> & { body?: unknown };
  checked: Record<string, unknown>;
}
