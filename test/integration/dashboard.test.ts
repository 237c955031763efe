// The operator's dashboard in a real browser (Debian's chromium driven by playwright-core)
// against a real node, its gRPC server and real storage, with simulated terminals: log in with
// the node's token and an operator's name, see the vehicles appear, open one, see its track grow
// live, confirm an alarm (and find it handled by that operator in the store, and the 0x8203 at
// the terminal), send commands and see the terminal's answers. Also the HTTP API's refusals: no
// token, bad input; and the cluster page of a node with membership (its own etcd), where a member
// holding no vehicles shows with its load, and the Locator panel of a locator on that etcd,
// showing where terminals it saw were sent.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SimTerminal, trackPoint } from '../../bench/terminal.js';
import { startGrpcServer, type GrpcServer } from '../../api/grpcServer.js';
import { connect } from 'node:net';
import { freePort, startLocalServers, type LocalServers } from '../../devservers/localServers.js';
import type { FleetNode } from '../../node/node.js';
import { startDashboard, type Dashboard } from '../../dashboard/index.js';
import { followLocator } from '../../bench/locatorTerminal.js';
import { startLocatorService, type LocatorService } from '../../locator/locatorService.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { startTestNode, testDatabase } from '../helpers/nodeForTests.js';
import { until } from '../helpers/until.js';

type Obj = Record<string, unknown>;
const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token';
const database = testDatabase('dashboard');
const OURS = '13900000001';
const OPERATOR = '李伟 (night shift)';

let servers: LocalServers;
let node: FleetNode;
let api: GrpcServer;
let dashboard: Dashboard;
let browser: Browser;
let page: Page;
let simulator: ChildProcess | undefined;
let terminal: SimTerminal;
/** Uncaught errors of the page's scripts: none is expected. */
const pageErrors: string[] = [];

/** The simulator's terminals online: resolves on its `ready N` line. */
function simulate(count: number): Promise<void> {
  simulator = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('../../bench/simulate.js', import.meta.url)),
      ...['--port', String(node.port), '--count', String(count), '--interval-ms', '500'],
      ...['--alarm-every', '0', '--blind-every', '0', '--seed', '7'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const sim = simulator;
  return new Promise((resolve, reject) => {
    let out = '';
    sim.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/^ready \d+/m.test(out)) resolve();
    });
    sim.once('exit', (code) => reject(new Error(`the simulator exited with ${code}`)));
  });
}

/** Until the page shows what `cond` looks for (checked every 50 ms), failing after 15 s. */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function http(
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL(path, dashboard.url), init);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

before(async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: run node scripts/setup.mjs --browser-tests`,
  );
  servers = await startMongoForTests();
  node = await startTestNode(servers.mongodbUri, database, { workers: 2 });
  api = await startGrpcServer(node, { tokens: [TOKEN] });
  dashboard = await startDashboard({
    grpcAddress: `127.0.0.1:${api.port}`,
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    nodeName: node.node,
    sampleMs: 500,
  });
  // The dashboard's event stream reaches the workers before any terminal reports.
  await until(() => node.events.wantedKinds().has('position'), 'the dashboard subscribing');
  await node.eventsReady();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

after(async () => {
  simulator?.kill();
  terminal?.close();
  await browser?.close();
  await dashboard?.stop();
  await api?.stop();
  await node?.stop();
  await servers?.stop();
});

describe('dashboard in a real browser (chromium, real node and storage)', () => {
  it('refuses a token the node does not accept, then logs in with the node’s token', async () => {
    await page.goto(dashboard.url);
    await page.fill('input[name=token]', 'not-a-token');
    await page.click('button[type=submit]');
    await page.waitForSelector('.login .error:has-text("does not accept")');
    await page.fill('input[name=token]', TOKEN);
    // The operator's name (optional): recorded on the alarms they handle.
    await page.fill('input[name=operator]', OPERATOR);
    await page.click('button[type=submit]');
    await page.waitForSelector(`header:has-text("${node.node}")`);
    await page.waitForSelector(`header .operator:has-text("${OPERATOR}")`);
    // This dashboard was given no locator: its panel says so.
    await page.waitForSelector(
      '.locator[data-configured="false"]:has-text("No locator configured")',
    );
  });

  it('shows the simulated vehicles as they come online, the member holding them, and searches', async () => {
    terminal = new SimTerminal({ port: node.port, phone: `0${OURS}` });
    await terminal.connect();
    assert.equal(await terminal.register(), 0);
    assert.equal(await terminal.authenticate(), 0);
    await simulate(5);
    for (let i = 0; i < 5; i++) {
      await page.waitForSelector(`.vehicle-row[data-vehicle="1360000000${i}"]`);
    }
    await page.waitForSelector(`.vehicle-row[data-vehicle="${OURS}"]`);
    // The live feed: the simulated terminals' positions as they arrive.
    await page.waitForSelector('.live li.live-position:has-text("13600000")');
    const member = page.locator(`.member[data-node="${node.node}"] td`).nth(1);
    await eventually(async () => Number(await member.textContent()) === 6, 'the member counting 6');
    await page.fill('input[name=search]', '1390');
    await eventually(
      async () => (await page.locator('.vehicle-row').count()) === 1,
      'the search leaving one vehicle',
    );
    assert.equal(await page.locator('.vehicle-row').getAttribute('data-vehicle'), OURS);
  });

  it('opens a vehicle: its track on the plane with a grid scale, growing as it reports', async () => {
    for (let step = 1; step <= 6; step++) {
      // Emergency (bit 0) from the third report on: an alarm the terminal keeps until confirmed.
      assert.equal(await terminal.report(trackPoint(step, { alarm: step >= 3 ? 1 : 0 })), 0);
    }
    await page.click(`.vehicle-row[data-vehicle="${OURS}"] a`);
    await page.waitForSelector(`.vehicle[data-vehicle="${OURS}"]`);
    await page.waitForSelector('.track-source[data-source="store"]');
    const canvas = page.locator('canvas.track');
    assert.equal(await canvas.getAttribute('data-points'), '6');
    assert.ok(Number(await canvas.getAttribute('data-grid-m')) > 0, 'a grid at a round distance');
    // Live: the page follows this vehicle's feed; a new report moves it and extends the track.
    await page.waitForSelector('.live small.ok');
    assert.equal(await terminal.report(trackPoint(7, { alarm: 1 })), 0);
    await page.waitForSelector('canvas.track[data-points="7"]');
    const shown = await page.locator('.position').textContent();
    assert.ok(shown?.startsWith(trackPoint(7).latitude.toFixed(6)), String(shown));
  });

  it('"Handled" confirms the open alarm: handled in the store, 0x8203 to the terminal', async () => {
    terminal.answerCommands(() => trackPoint(8));
    const confirm = terminal.waitFor((f) => f.message?.type === 'AlarmConfirm');
    await page.click('.alarm[data-bit="0"] button');
    await page.waitForSelector(`.notice:has-text("handled: emergency by ${OPERATOR}")`);
    const f = await confirm;
    assert.ok(f.message?.type === 'AlarmConfirm');
    await node.flush();
    const record = await node.client
      .db(database)
      .collection('alarms')
      .findOne({ vehicleId: OURS, bit: 0 });
    assert.equal(record?.handlingStatus, 2);
    // Handled by the operator who logged in (ConfirmAlarmsRequest.operator).
    assert.equal(record?.handledBy, OPERATOR);
  });

  it('sends a location query and a text; the terminal’s answers show in the command history', async () => {
    await page.selectOption('select[name=kind]', 'location');
    await page.click('.commands button[type=submit]');
    const query = page.locator('.command-row', { hasText: 'location query' });
    await query.locator('.answer', { hasText: `at ${trackPoint(8).latitude}` }).waitFor();
    assert.equal(await query.getAttribute('data-state'), 'ANSWERED');
    await page.selectOption('select[name=kind]', 'text');
    await page.fill('input[name=text]', '请注意安全');
    await page.click('.commands button[type=submit]');
    const text = page.locator('.command-row', { hasText: 'text: 请注意安全' });
    await text.locator('.answer', { hasText: 'TerminalResponse result 0' }).waitFor();
    assert.ok((terminal.answered.get('TextMessage') ?? 0) >= 1);
    // The history is the node's command log (ListCommands), refreshed after each command: the
    // kinds come from there, the 0x8203 Handled queued too, newest first.
    await page.waitForSelector('.commands-source[data-source="store"]');
    await page.waitForSelector('.command-row[data-kind="TextMessage"][data-state="ANSWERED"]');
    await eventually(
      async () =>
        (await page
          .locator('.command-row')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-kind')).join(','))) ===
        'TextMessage,LocationQuery,AlarmConfirm',
      'the three commands, newest first, with their kinds from the log',
    );
    assert.equal(
      await page.locator('.command-row[data-kind="TextMessage"] .kind').textContent(),
      'TextMessage 0x8300',
    );
  });

  it('the HTTP API refuses requests without a token and bad input, with a clear error', async () => {
    const none = await http('/api/vehicles');
    assert.equal(none.status, 401);
    const wrong = await http('/api/vehicles', { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.error), /does not accept/);
    const bearer = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const list = await http('/api/vehicles?q=1390', { headers: bearer });
    assert.equal(list.status, 200);
    assert.equal(list.body.matched, 1);
    const badId = await http('/api/vehicles/abc', { headers: bearer });
    assert.equal(badId.status, 400);
    assert.match(String(badId.body.error), /1 to 20 digits/);
    const unknown = await http('/api/vehicles/999', { headers: bearer });
    assert.equal(unknown.status, 404);
    const badCommand = await http(`/api/vehicles/${OURS}/commands`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ kind: 'reboot' }),
    });
    assert.equal(badCommand.status, 400);
    assert.match(String(badCommand.body.error), /kind is 'text' or 'location'/);
    const longName = await http('/api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN, operator: 'x'.repeat(65) }),
    });
    assert.equal(longName.status, 400);
    assert.match(String(longName.body.error), /at most 64 characters/);
    const notJson = await http(`/api/vehicles/${OURS}/confirm`, {
      method: 'POST',
      headers: bearer,
      body: '{',
    });
    assert.equal(notJson.status, 400);
  });

  it('a vehicle’s track comes from the stored history: a dashboard started after the reports shows it', async () => {
    const fresh = await startDashboard({
      grpcAddress: `127.0.0.1:${api.port}`,
      token: TOKEN,
      host: '127.0.0.1',
      port: 0,
    });
    try {
      const res = await fetch(new URL(`/api/vehicles/${OURS}`, fresh.url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { track: { t: number }[]; trackSource: string };
      assert.equal(body.trackSource, 'store');
      // The seven reports and the location query's answer (trackPoint(8)), stored as a point.
      assert.deepEqual(
        body.track.map((p) => p.t),
        [1, 2, 3, 4, 5, 6, 7, 8].map((step) => trackPoint(step).time),
      );
      // Its command history too: this dashboard sent none of them and saw none on its feed, so
      // each says what it is by the log's kind and message id.
      const history = await fetch(new URL(`/api/vehicles/${OURS}/commands`, fresh.url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const page1 = (await history.json()) as {
        source: string;
        nextPageToken: string;
        commands: { what: string; status: Obj }[];
      };
      assert.equal(page1.source, 'store');
      assert.equal(page1.nextPageToken, '');
      assert.deepEqual(
        page1.commands.map((c) => [c.what, c.status.kind, c.status.state, c.status.replyType]),
        [
          ['TextMessage 0x8300', 'TextMessage', 'ANSWERED', 'TerminalResponse'],
          ['LocationQuery 0x8201', 'LocationQuery', 'ANSWERED', 'LocationQueryReply'],
          ['AlarmConfirm 0x8203', 'AlarmConfirm', 'ANSWERED', 'TerminalResponse'],
        ],
      );
    } finally {
      await fresh.stop();
    }
  });

  it('the command history comes in pages of 50 from the node’s log; "Older commands" adds the next', async () => {
    const bearer = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    for (let i = 1; i <= 50; i++) {
      const sent = await http(`/api/vehicles/${OURS}/commands`, {
        method: 'POST',
        headers: bearer,
        body: JSON.stringify({ kind: 'text', text: `note ${i}` }),
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
    }
    await node.flush();
    const first = await http(`/api/vehicles/${OURS}/commands`, { headers: bearer });
    const commands = first.body.commands as { what: string }[];
    assert.equal(commands.length, 50);
    assert.equal(commands[0]!.what, 'text: note 50');
    assert.equal(commands[49]!.what, 'text: note 1');
    const next = String(first.body.nextPageToken);
    assert.notEqual(next, '');
    const second = await http(`/api/vehicles/${OURS}/commands?page=${encodeURIComponent(next)}`, {
      headers: bearer,
    });
    assert.deepEqual(
      (second.body.commands as { status: Obj }[]).map((c) => c.status.kind),
      ['TextMessage', 'LocationQuery', 'AlarmConfirm'],
    );
    assert.equal(second.body.nextPageToken, '');
    // In the browser: the vehicle page shows the newest 50, the button the 3 before them.
    await page.reload();
    await page.waitForSelector(`.vehicle[data-vehicle="${OURS}"]`);
    await eventually(
      async () => (await page.locator('.command-row').count()) === 50,
      'the first page of 50',
    );
    await page.click('button.older');
    await eventually(
      async () => (await page.locator('.command-row').count()) === 53,
      'the older page added',
    );
    assert.equal(await page.locator('button.older').count(), 0);
    assert.equal(
      await page.locator('.command-row').last().getAttribute('data-kind'),
      'AlarmConfirm',
    );
  });

  it('the cluster page lists a member holding no vehicles (ListMembers), with its load report; the Locator panel shows where terminals were sent', async () => {
    // A node with membership (etcd of its own), no vehicles; its dashboard is not told its name,
    // so only ListMembers can name it. A locator on the same etcd, the dashboard told its gRPC.
    const etcd = await startLocalServers({ external: { mongodbUri: servers.mongodbUri } });
    const grpcPort = await freePort();
    let member: FleetNode | undefined;
    let memberApi: GrpcServer | undefined;
    let locator: LocatorService | undefined;
    let board: Dashboard | undefined;
    const roaming: SimTerminal[] = [];
    const socket = { destroy: (): void => undefined };
    const other = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    other.on('pageerror', (err) => pageErrors.push(err.message));
    try {
      member = await startTestNode(servers.mongodbUri, testDatabase('dashboard_member'), {
        node: 'dash-member',
        workers: 1,
        membership: {
          etcdEndpoints: etcd.etcdEndpoints,
          grpc: `127.0.0.1:${grpcPort}`,
          ttlSeconds: 5,
          capacity: 500,
        },
      });
      memberApi = await startGrpcServer(member, { tokens: [TOKEN], port: grpcPort });
      locator = await startLocatorService({
        etcdEndpoints: etcd.etcdEndpoints,
        host: '127.0.0.1',
        port: 0,
        grpcPort: 0,
        grpcTokens: [TOKEN],
      });
      board = await startDashboard({
        grpcAddress: `127.0.0.1:${grpcPort}`,
        token: TOKEN,
        host: '127.0.0.1',
        port: 0,
        sampleMs: 500,
        locatorAddress: `127.0.0.1:${locator.grpc!.port}`,
      });
      const cluster = await fetch(new URL('/api/cluster', board.url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(cluster.status, 200);
      const body = (await cluster.json()) as { membership: string; members: Obj[] };
      assert.equal(body.membership, 'listed');
      assert.equal(body.members.length, 1, JSON.stringify(body.members));
      assert.equal(body.members[0]!.node, 'dash-member');
      assert.equal(body.members[0]!.vehicles, 0);
      assert.equal(body.members[0]!.member, true);
      assert.equal(body.members[0]!.gateway, `127.0.0.1:${member.port}`);

      await other.goto(board.url);
      await other.fill('input[name=token]', TOKEN);
      await other.click('button[type=submit]');
      const row = other.locator('.member[data-node="dash-member"][data-member="true"]');
      await row.waitFor();
      assert.equal(await row.locator('td.vehicles').textContent(), '0');
      assert.equal(await row.locator('td.workers').textContent(), '1');
      // A connection to its gateway (not a terminal yet): its next load report counts it.
      const s = connect(member.port, '127.0.0.1');
      socket.destroy = () => s.destroy();
      await eventually(
        async () => (await row.locator('td.terminals').textContent()) === '1 / 500',
        'the load report counting the connection',
      );

      // Terminals configured with the locator: each is sent to the member (0x8105), follows it
      // and authenticates there; the Locator panel shows every decision and counts them.
      const panel = other.locator('.locator[data-configured="true"]');
      await panel.locator('.none:has-text("no decisions yet")').waitFor();
      const phones = ['013700000101', '013700000102', '013700000103'];
      for (const phone of phones) {
        const visit = await followLocator({ locatorPort: locator.port, phone });
        assert.equal(visit.target.tcpPort, member.port);
        roaming.push(visit.terminal!);
      }
      for (const phone of phones) {
        const decision = panel.locator(`.decision-row[data-vehicle="${phone.slice(1)}"]`);
        await decision.waitFor();
        assert.equal(await decision.getAttribute('data-node'), 'dash-member');
        assert.equal(await decision.locator('.reason').textContent(), 'least loaded');
        assert.match(String(await decision.locator('.loads').textContent()), /^dash-member \d/);
      }
      await other.waitForSelector('.locator[data-last-seq="3"]');
      assert.equal(
        await panel.locator('.load-chart[data-figure="decisions"]').getAttribute('data-nodes'),
        'dash-member',
      );
      const decisions = await fetch(new URL('/api/locator?limit=2', board.url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const answer = (await decisions.json()) as {
        decisions: Obj[];
        buckets: { byNode: Record<string, number> }[];
      };
      assert.deepEqual(
        answer.decisions.map((d) => [d.seq, d.phone, d.node, d.reason]),
        [
          [3, phones[2], 'dash-member', 'DECISION_LEAST_LOADED'],
          [2, phones[1], 'dash-member', 'DECISION_LEAST_LOADED'],
        ],
      );
      assert.equal(
        answer.buckets.reduce((n, b) => n + (b.byNode['dash-member'] ?? 0), 0),
        3,
      );
    } finally {
      socket.destroy();
      for (const t of roaming) t.close();
      await other.close();
      await board?.stop();
      await locator?.stop();
      await memberApi?.stop();
      await member?.stop();
      await etcd.stop();
    }
  });

  it('the page threw no error meanwhile', () => {
    assert.deepEqual(pageErrors, []);
  });
});
