// Metrics and logs of a node over real sockets: terminals send a good report, garbage, a frame
// with a bad check code and a report before authenticating; /metrics, scraped over HTTP, counts
// each by what it was, and the log has a JSON line for each refusal.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { createLog } from '../../telemetry/log.js';
import type { LocalServers } from '../../devservers/localServers.js';
import { ackResultOf } from '../../node/metrics.js';
import { encodeFrame } from '../../jt808/codec.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { withTestNode } from '../helpers/nodeForTests.js';

let servers: LocalServers;
before(async () => {
  servers = await startMongoForTests();
});
after(async () => {
  await servers?.stop();
});

function scrape(port: number, path = '/metrics'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** `name{labels}` → value, from the exposition text (labels as written, in order). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** A frame whose check code is wrong (header intact, so the platform answers result 2). */
function badCheckCode(phone: string): Uint8Array {
  const f = encodeFrame({ type: 'Heartbeat', body: {} }, { phone, serial: 7, edition: 2013 });
  // The check code is the byte before the closing 0x7e, or two bytes when it had to be escaped.
  const escaped = f[f.length - 3] === 0x7d;
  const head = f.subarray(0, f.length - (escaped ? 3 : 2));
  const wrong = !escaped && f[f.length - 2] === 0x00 ? 0x01 : 0x00;
  return Uint8Array.from([...head, wrong, 0x7e]);
}

describe('node metrics and logs (real sockets)', () => {
  it('counts connections, frames by id, bad frames by reason, acks by result and ack latency, served at /metrics', async () => {
    const lines: string[] = [];
    const logger = createLog({ level: 'info', destination: { write: (s) => lines.push(s) } });
    await withTestNode(
      servers.mongodbUri,
      'metrics',
      { workers: 1, metrics: { port: 0 }, logger },
      async (node) => {
        const port = node.metrics?.port;
        assert.ok(port, 'metrics served');

        const good = new SimTerminal({ port: node.port, phone: '013900000001' });
        await good.connect();
        assert.equal(await good.register(), 0);
        assert.equal(await good.authenticate(), 0);
        assert.equal(await good.report(trackPoint(1)), 0);

        const early = new SimTerminal({ port: node.port, phone: '013900000002' });
        await early.connect();
        assert.equal(await early.report(trackPoint(1)), 1, 'refused before authentication');

        const noisy = new SimTerminal({ port: node.port, phone: '013900000003' });
        await noisy.connect();
        noisy.writeRaw(Uint8Array.from([0x7e, 0x01, 0x02, 0x03, 0x7e])); // header too short
        const answer = noisy.waitFor((f) => f.message?.type === 'PlatformResponse');
        noisy.writeRaw(badCheckCode('013900000003'));
        const refused = await answer;
        assert.equal(
          refused.message?.type === 'PlatformResponse' && refused.message.body.result,
          2,
        );

        // The ack latency comes from the vehicle's thread as an event: wait for it to arrive.
        let m = new Map<string, number>();
        const deadline = Date.now() + 10_000;
        for (;;) {
          const r = await scrape(port);
          assert.equal(r.status, 200);
          m = samples(r.body);
          if ((m.get('fleetmesh_ack_latency_seconds_count') ?? 0) >= 1) break;
          assert.ok(Date.now() < deadline, `no ack latency observed:\n${r.body}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        const expected: [string, number][] = [
          ['fleetmesh_connections', 3],
          ['fleetmesh_terminals_authenticated', 1],
          ['fleetmesh_connections_pending', 2],
          ['fleetmesh_connections_accepted_total', 3],
          ['fleetmesh_frames_total', 6],
          ['fleetmesh_frames_by_id_total{message_id="0x0100"}', 1],
          ['fleetmesh_frames_by_id_total{message_id="0x0102"}', 1],
          ['fleetmesh_frames_by_id_total{message_id="0x0200"}', 2],
          ['fleetmesh_bad_frames_total{reason="header-too-short"}', 1],
          ['fleetmesh_bad_frames_total{reason="bad-check-code"}', 1],
          ['fleetmesh_bad_frames_total{reason="unauthenticated"}', 1],
          ['fleetmesh_bad_frames_total{reason="phone-mismatch"}', 0],
          // Authentication and the report: 0; the early report: 1; the bad check code: 2.
          ['fleetmesh_acks_total{result="0"}', 2],
          ['fleetmesh_acks_total{result="1"}', 1],
          ['fleetmesh_acks_total{result="2"}', 1],
          ['fleetmesh_ack_latency_seconds_count', 1],
          ['fleetmesh_store_writes_total{collection="positions",outcome="stored"}', 1],
          ['fleetmesh_store_writes_total{collection="positions",outcome="failed"}', 0],
          ['fleetmesh_actors_active', 1],
          ['fleetmesh_worker_restarts_total', 0],
          ['fleetmesh_members', 0],
        ];
        for (const [name, value] of expected) assert.equal(m.get(name), value, name);
        assert.ok(m.has('fleetmesh_persist_lag_seconds{collection="positions"}'));
        assert.ok(m.has('fleetmesh_store_batches_total{collection="positions"}'));
        // Batch sizes cross from the vehicle thread as a histogram: the one report went alone.
        const size = 'fleetmesh_store_batch_size';
        assert.equal(m.get(`${size}_bucket{le="1",collection="positions"}`), 1);
        assert.equal(m.get(`${size}_bucket{le="+Inf",collection="positions"}`), 1);
        assert.equal(m.get(`${size}_sum{collection="positions"}`), 1);
        for (const w of [
          'vehicles',
          'positions',
          'alarms',
          'sessions',
          'commands',
          'driverRecords',
          'drivingBehaviour',
        ]) {
          const batches = m.get(`fleetmesh_store_batches_total{collection="${w}"}`);
          assert.notEqual(batches, undefined, `${w}: its writer is exported`);
          assert.equal(m.get(`${size}_count{collection="${w}"}`), batches, `${w}: every batch`);
        }
        assert.equal((await scrape(port, '/other')).status, 404);

        // A JSON line for each refusal, naming its cause.
        const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        const causes = logged.map((l) => l.cause);
        for (const cause of [
          'gateway.bad-frame.header-too-short',
          'gateway.bad-frame.bad-check-code',
          'gateway.unauthenticated',
        ])
          assert.ok(causes.includes(cause), `logged ${cause}: ${causes.join(', ')}`);
        const bad = logged.find((l) => l.cause === 'gateway.bad-frame.bad-check-code')!;
        assert.equal(bad.level, 40); // warn
        assert.equal(bad.reason, 'bad-check-code');

        good.close();
        early.close();
        noisy.close();
      },
    );
  });

  it('a node without metrics serves none', async () => {
    await withTestNode(servers.mongodbUri, 'metrics', { workers: 0 }, async (node) => {
      assert.equal(node.metrics, undefined);
    });
  });
});

describe('ackResultOf (a 0x8001 read from its encoded frame)', () => {
  it('reads the result of 2013 and 2019 frames, escaped bytes included, and nothing else', () => {
    for (const edition of [2013, 2019] as const) {
      for (const result of [0, 1, 2, 3, 4]) {
        // 0x7e and 0x7d in the reply serial and id are escaped in the frame.
        const frame = encodeFrame(
          { type: 'PlatformResponse', body: { replySerial: 0x7e7d, replyId: 0x0200, result } },
          {
            phone: edition === 2019 ? '13900000000000000001' : '013900000001',
            serial: 0x7d7e,
            edition,
          },
        );
        assert.equal(ackResultOf(frame), result, `${edition} result ${result}`);
      }
    }
    const other = encodeFrame(
      { type: 'Heartbeat', body: {} },
      { phone: '013900000001', serial: 1, edition: 2013 },
    );
    assert.equal(ackResultOf(other), undefined);
  });
});
