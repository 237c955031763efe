// The peer service's HTTP/2 window (cluster/peerService.ts): grpc-js has no server option for
// it, so peerServer reaches into grpc-js's private fields; this holds that to the grpc-js
// installed. A plain HTTP/2 client on loopback sees the server's stream window in its settings
// and the connection window in the server's WINDOW_UPDATE.
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  PEER_WINDOW_BYTES,
  peerServer,
  peerServerWindow,
  peerService,
} from '../../cluster/peerService.js';
import { until } from '../helpers/until.js';

describe('the peer service HTTP/2 window', () => {
  it('a peer server offers the window on streams and on the connection', async () => {
    const server = peerServer();
    server.addService(peerService().service, {
      route: () => undefined,
      events: () => undefined,
      call: () => undefined,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    assert.equal(peerServerWindow(server), true, 'grpc-js still exposes what the window needs');
    const client = connect(`http://127.0.0.1:${port}`);
    client.on('error', () => undefined); // the server's forced shutdown at the end
    try {
      const settings = await new Promise<{ initialWindowSize?: number }>((resolve) =>
        client.once('remoteSettings', resolve),
      );
      assert.equal(settings.initialWindowSize, PEER_WINDOW_BYTES, 'stream window');
      await until(
        () => (client.state.remoteWindowSize ?? 0) >= PEER_WINDOW_BYTES,
        'the connection window to open',
      );
    } finally {
      await new Promise<void>((resolve) => client.close(() => resolve()));
      server.forceShutdown();
    }
  });
});
