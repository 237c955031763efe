// Nodes for integration tests: each in its own database on the file's MongoDB-protocol server,
// with a short writer delay so tests do not wait on group commits.
import { startNode, type FleetNode, type NodeOptions } from '../../node/node.js';

let counter = 0;

/** A fresh database name for this process. */
export function testDatabase(prefix: string): string {
  return `fleetmesh_${prefix}_${process.pid}_${counter++}`;
}

export function startTestNode(
  mongodbUri: string,
  database: string,
  opts: Partial<NodeOptions> = {},
): Promise<FleetNode> {
  return startNode({ mongodbUri, database, writer: { maxDelayMs: 5 }, ...opts });
}

/** Runs `fn` against a node of its own (own database), stopped afterwards whatever happens. */
export async function withTestNode(
  mongodbUri: string,
  prefix: string,
  opts: Partial<NodeOptions>,
  fn: (node: FleetNode, database: string) => Promise<void>,
): Promise<void> {
  const database = testDatabase(prefix);
  const node = await startTestNode(mongodbUri, database, opts);
  try {
    await fn(node, database);
  } finally {
    await node.stop();
  }
}
