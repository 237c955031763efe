// What docs/locator.md says about the locator's tokens, over real sockets: a locator started
// with tokens (as `npm start` starts its own) wants one on Locate too; one started without
// answers Locate to anyone; health needs none either way.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';
import type { Member } from '../../cluster/memberTable.js';
import { Locator, type MemberSource } from '../../locator/locator.js';
import { LOCATOR_PROTO, startLocatorGrpc, type LocatorGrpc } from '../../locator/locatorGrpc.js';

type Obj = Record<string, unknown>;
type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: Obj) => void,
) => void;

const TOKEN = 'locator-docs-token';
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

const members: MemberSource = {
  members: (): Member[] => [
    {
      node: 'node-a',
      gateway: '127.0.0.1:7001',
      startedAt: 0,
      workers: 1,
      reportedAt: 1,
      load: { terminals: 0, capacity: 1000, zone: 'default' },
    },
  ],
  onChange: () => () => undefined,
};

let locator: Locator;
let withTokens: LocatorGrpc;
let without: LocatorGrpc;
const clients: grpc.Client[] = [];

function client(proto: string, service: string, port: number): grpc.Client {
  let o: unknown = grpc.loadPackageDefinition(protoLoader.loadSync(proto, LOADER));
  for (const part of service.split('.')) o = (o as Record<string, unknown>)[part];
  const c = new (o as grpc.ServiceClientConstructor)(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
  clients.push(c);
  return c;
}

function call(c: grpc.Client, method: string, req: object, token?: string): Promise<Obj> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  const fn = (c as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) =>
    fn.call(c, req, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

before(async () => {
  locator = new Locator({ members });
  withTokens = await startLocatorGrpc(locator, { tokens: [TOKEN], timeLimitMinutes: 60 });
  without = await startLocatorGrpc(locator, { timeLimitMinutes: 60 });
});

after(async () => {
  for (const c of clients) c.close();
  await withTokens?.stop();
  await without?.stop();
  await locator?.close();
});

describe("the locator's tokens, as docs/locator.md says", () => {
  it('with tokens (npm start): Locate without one is UNAUTHENTICATED, with one it answers', async () => {
    const c = client(LOCATOR_PROTO, 'fleetmesh.v1.LocatorService', withTokens.port);
    await assert.rejects(call(c, 'locate', { phone: '013912345678' }), {
      code: grpc.status.UNAUTHENTICATED,
    });
    assert.equal((await call(c, 'locate', { phone: '013912345678' }, TOKEN)).node, 'node-a');
  });

  it('without tokens: Locate answers anyone; ListDecisions is still refused', async () => {
    const c = client(LOCATOR_PROTO, 'fleetmesh.v1.LocatorService', without.port);
    assert.equal((await call(c, 'locate', { phone: '013912345678' })).node, 'node-a');
    await assert.rejects(call(c, 'listDecisions', {}), {
      code: grpc.status.FAILED_PRECONDITION,
    });
  });

  it('health needs no token on either', async () => {
    for (const port of [withTokens.port, without.port]) {
      const h = client(HEALTH_PROTO, 'grpc.health.v1.Health', port);
      assert.equal((await call(h, 'check', { service: '' })).status, 'SERVING');
    }
  });
});
