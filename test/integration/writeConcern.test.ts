// Every write an acknowledgement waits for asks the server for the durable write concern
// (majority, journaled), even when the connection string says w=1: seen in the commands the
// driver sends to the real server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type CommandStartedEvent } from 'mongodb';
import type { LocalServers } from '../../devservers/localServers.js';
import { trackPoint } from '../../bench/terminal.js';
import { DURABLE_WRITE_CONCERN } from '../../storage/schema.js';
import { positionDocument, VehicleStore } from '../../storage/vehicleStore.js';
import { startMongoForTests } from '../helpers/mongoServer.js';
import { testDatabase } from '../helpers/nodeForTests.js';

describe('write concern of durable writes (real server)', () => {
  let servers: LocalServers;
  before(async () => {
    servers = await startMongoForTests();
  });
  after(async () => {
    await servers?.stop();
  });

  it('positions, vehicle saves, alarms, sessions, commands and media all ask for it', async () => {
    const uri = new URL(servers.mongodbUri);
    uri.searchParams.set('w', '1');
    const client = new MongoClient(uri.toString(), { monitorCommands: true });
    const writes: CommandStartedEvent[] = [];
    client.on('commandStarted', (e) => {
      if (['insert', 'update', 'delete'].includes(e.commandName)) writes.push(e);
    });
    await client.connect();
    const store = new VehicleStore(client.db(testDatabase('wc')), { writer: { maxDelayMs: 1 } });
    try {
      await Promise.all([
        store.insertPosition(positionDocument('v1', trackPoint(1), 'live', Date.now(), 0)),
        store.saveChanges('v1', { set: { authCode: 'c' }, unset: [] }),
        store.logSession({ vehicleId: 'v1', event: 'online', node: 'n', reason: 'r', at: 0 }),
        store.logCommand('v1', { commandId: 'k', state: 'queued', at: 0 }),
        store.media.save({
          vehicleId: 'v1',
          mediaId: 1,
          mediaType: 0,
          format: 0,
          event: 0,
          channel: 1,
          receivedAt: 0,
          data: new Uint8Array([1, 2, 3]),
        }),
      ]);
      const collections = new Set(writes.map((e) => String(e.command[e.commandName])));
      for (const c of ['positions', 'vehicles', 'sessions', 'commands', 'media.files'])
        assert.ok(collections.has(c), `a write to ${c} was seen (${[...collections].join(', ')})`);
      for (const e of writes)
        assert.deepEqual(
          e.command.writeConcern,
          { w: DURABLE_WRITE_CONCERN.w, j: DURABLE_WRITE_CONCERN.journal },
          `${e.commandName} ${String(e.command[e.commandName])}`,
        );
    } finally {
      await store.close();
      await client.close();
    }
  });
});
