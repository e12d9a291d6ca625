import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../src/transport/client-hello.js';

/** The first bytes a real TLS client sends to a listener that never answers. */
async function capture(send: (port: number) => () => void): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const stop = send(port);
  const [socket] = (await once(server, 'connection')) as [Socket];
  let data = Buffer.alloc(0);
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    data = Buffer.concat([data, chunk]);
    if (parseClientHello(data) !== 'incomplete') break;
  }
  stop();
  socket.destroy();
  server.close();
  return data;
}

test("Node's and openssl's ClientHellos give their server name and ALPN offers", async () => {
  const node = await capture((port) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'App.Tunnels.Test',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    socket.on('error', () => {});
    return () => socket.destroy();
  });
  assert.deepEqual(parseClientHello(node), { serverName: 'app.tunnels.test', alpn: ['h2', 'http/1.1'] });

  const openssl = await capture((port) => {
    const child = spawn(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'x.tunnels.test', '-alpn', 'acme-tls/1'],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    return () => child.kill('SIGKILL');
  });
  assert.deepEqual(parseClientHello(openssl), { serverName: 'x.tunnels.test', alpn: ['acme-tls/1'] });

  // No SNI (a client dialing an address), and every prefix is 'incomplete', never a wrong answer.
  const bare = await capture((port) => {
    const socket = tlsConnect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    return () => socket.destroy();
  });
  assert.deepEqual(parseClientHello(bare), { serverName: undefined, alpn: [] });
  for (let end = 0; end < node.length; end++)
    assert.equal(parseClientHello(node.subarray(0, end)), 'incomplete');

  // The same hello split over records of 7 bytes each still parses.
  const body = node.subarray(5, 5 + node.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let i = 0; i < body.length; i += 7) {
    const fragment = body.subarray(i, i + 7);
    const header = Buffer.from([0x16, 3, 1, 0, 0]);
    header.writeUInt16BE(fragment.length, 3);
    records.push(header, fragment);
  }
  assert.deepEqual(parseClientHello(Buffer.concat(records)), parseClientHello(node));
});

test('what is not a ClientHello is an error, never a crash or a wait for ever', () => {
  assert.match(String(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n'))), /not a TLS handshake/);
  const huge = Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0x01, 0, 0]);
  assert.match(String(parseClientHello(huge)), /over 16384/);
  assert.ok(MAX_CLIENT_HELLO_BYTES === 16_384);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const result = parseClientHello(Buffer.concat([Buffer.from([0x16, 3, 1]), Buffer.from(bytes)]));
      assert.ok(result === 'incomplete' || result instanceof Error || typeof result === 'object');
    }),
    { numRuns: 2_000 },
  );
});
