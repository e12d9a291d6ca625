import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { MuxSession } from '../src/mux/mux-session.js';
import { startKeepalive } from '../src/session/keepalive.js';
import { until } from './helpers/wait.js';

/** A 9-byte session frame header (HTTP/2's layout). */
function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return head;
}

test('keepalive: a peer that keeps sending frames but never answers a PING is closed', async () => {
  // A raw peer: a valid SETTINGS, then a WINDOW_UPDATE every 50 ms, so
  // "nothing heard" never fires; it just never answers PINGs (a hostile or broken agent).
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('data', () => {});
    const settings = Buffer.alloc(8);
    settings.writeUInt32BE(65_535, 0);
    settings.writeUInt32BE(100, 4);
    socket.write(Buffer.concat([frameHeader(8, 4, 0, 0), settings]));
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(1);
    const chatter = setInterval(() => socket.write(Buffer.concat([frameHeader(4, 8, 0, 0), increment])), 50);
    socket.once('close', () => clearInterval(chatter));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = new MuxSession(connect((server.address() as { port: number }).port, '127.0.0.1'), {
    role: 'client',
    streamWindowBytes: 1 << 20,
    connectionWindowBytes: 1 << 20,
    maxConcurrentStreams: 0,
    maxHeaderPairs: 100,
  });
  session.on('error', () => {});
  let dead: string | undefined;
  const stop = startKeepalive(
    session,
    { intervalMs: 100, timeoutMs: 300, unansweredPingMs: 800 },
    (reason) => {
      dead = reason;
    },
  );
  try {
    await until(() => dead !== undefined, 'the keepalive to declare the session dead', 5_000);
    assert.match(dead as string, /^no PING answered for 800 ms while bytes still arrive$/);
  } finally {
    stop();
    session.destroy();
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});
