import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connectThroughProxy } from '../src/transport/forward-proxy.js';
import { continueAfterHead, readReplyHead } from '../src/transport/reply-head.js';

/** The reader is shared by the CONNECT client (forward-proxy.ts) and the preflight client. */
describe('reading a reply head byte-exactly', () => {
  let serverSide: (socket: Socket) => void = () => {};
  const server = createServer((socket) => {
    socket.on('error', () => {});
    serverSide(socket);
  });
  let port = 0;
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** A client socket whose server writes `chunks` one per write, then ends unless `hold`. */
  async function replyWith(chunks: string[], hold = false): Promise<Socket> {
    serverSide = (socket) => {
      (async () => {
        for (const chunk of chunks) {
          socket.write(chunk);
          // Separate reads on the client: the head must be found across them.
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (!hold) socket.end();
      })();
    };
    const socket = netConnect(port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  }

  test('finds the head across reads and keeps every byte after it', async () => {
    const socket = await replyWith([
      'HTTP/1.1 200 Connection es',
      'tablished\r\nVia: x\r\n\r',
      '\nSSH-2.0-',
      'banner',
    ]);
    const head = await readReplyHead(socket, { maxBytes: 1024, timeoutMs: 10_000 });
    assert.equal(head.kind, 'head');
    if (head.kind !== 'head') return;
    assert.equal(head.status, 200);
    assert.equal(head.statusLine, 'HTTP/1.1 200 Connection established');
    const after = continueAfterHead(socket, head);
    let rest = '';
    after.on('data', (chunk: Buffer) => {
      rest += chunk.toString('latin1');
    });
    await once(after, 'end');
    assert.equal(rest, 'SSH-2.0-banner');
    socket.destroy();
  });

  test('holds at most its limit while no blank line comes', async () => {
    const socket = await replyWith(['HTTP/1.1 200 OK\r\n', `X: ${'a'.repeat(2_000)}\r\n`], true);
    assert.deepEqual(await readReplyHead(socket, { maxBytes: 1024, timeoutMs: 10_000 }), {
      kind: 'too-long',
      maxBytes: 1024,
    });
    socket.destroy();
  });

  test('names what came instead of an HTTP status line, a close, or silence', async () => {
    const ssh = await replyWith(['SSH-2.0-OpenSSH_9.2\r\n\r\n'], true);
    assert.deepEqual(await readReplyHead(ssh, { maxBytes: 1024, timeoutMs: 10_000 }), {
      kind: 'not-http',
      statusLine: 'SSH-2.0-OpenSSH_9.2',
    });
    ssh.destroy();
    const cut = await replyWith(['HTTP/1.1 200 OK\r\n']);
    assert.deepEqual(await readReplyHead(cut, { maxBytes: 1024, timeoutMs: 10_000 }), {
      kind: 'closed',
      bytes: 17,
    });
    const silent = await replyWith([], true);
    assert.deepEqual(await readReplyHead(silent, { maxBytes: 1024, timeoutMs: 200 }), { kind: 'timeout' });
    silent.destroy();
  });

  test('a "proxy" that answers CONNECT with something other than HTTP is named as such', async () => {
    serverSide = (socket) => socket.once('data', () => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    await assert.rejects(
      connectThroughProxy(`http://127.0.0.1:${port}`, '127.0.0.1', 9, 10_000),
      new RegExp(
        `^ConnectError: proxy http://127\\.0\\.0\\.1:${port}: its answer to CONNECT 127\\.0\\.0\\.1:9 is not HTTP: "SSH-2\\.0-OpenSSH_9\\.2"$`,
      ),
    );
  });
});
