import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client } from '../src/client/client.js';
import { ConnectionStringError, OptionError } from '../src/errors.js';
import { connect } from '../src/transport/connect.js';
import { PreflightFailedError, PreflightRefusedError } from '../src/transport/preflight-handshake.js';
import { BadHeaderError } from '../src/transport/preflight-headers.js';
import { startCli } from './helpers/processes.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

/** A server that records each request head and answers with `reply(socket)`. */
async function startFakeServer(
  reply: (socket: Socket) => void,
): Promise<{ port: number; heads: string[]; accepted: () => number; close(): Promise<void> }> {
  const heads: string[] = [];
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0 && heads.length < accepted) {
        heads.push(received.slice(0, end));
        reply(socket);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    heads,
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readAtLeast(socket: Duplex, length: number): Promise<string> {
  let data = '';
  socket.resume();
  while (data.length < length) data += ((await once(socket, 'data')) as [Buffer])[0].toString();
  return data;
}

describe('connect() and the preflight handshake', () => {
  test('sends exactly the preflight with both header forms, and keeps bytes that came with the 101', async () => {
    const server = await startFakeServer((socket) =>
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nBANNER'),
    );
    try {
      const socket = await connect(`tcp://127.0.0.1:${server.port}/amps/json?http_preflight=true`, {
        headers: ['Cookie: a=1; b=2', ['Token', 'secret-value']],
      });
      assert.equal(
        server.heads[0],
        `GET /amps/json HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nCookie: a=1; b=2\r\nToken: secret-value`,
      );
      assert.equal(await readAtLeast(socket, 6), 'BANNER');
      socket.destroy();
    } finally {
      await server.close();
    }
  });

  test('the Client object: headers added as lines or pairs, cleared, and sent', async () => {
    const server = await startFakeServer((socket) =>
      socket.write('HTTP/1.1 101 Switching Protocols\r\n\r\n'),
    );
    try {
      const client = new Client().addHttpPreflightHeader('X-One: 1').addHttpPreflightHeader('X-Two', '2');
      (await client.connect(`tcp://127.0.0.1:${server.port}?http_preflight=true`)).destroy();
      client.clearHttpPreflightHeaders().addHttpPreflightHeader('X-Three', '3');
      (
        await client.connect(`tcp://127.0.0.1:${server.port}?http_preflight=true`, { upgradeToken: 'amps' })
      ).destroy();
      assert.match(server.heads[0] ?? '', /\r\nX-One: 1\r\nX-Two: 2$/);
      assert.match(server.heads[1] ?? '', /\r\nUpgrade: amps\r\nX-Three: 3$/);
    } finally {
      await server.close();
    }
  });

  for (const [what, header, message] of [
    [
      'CR/LF in a value',
      ['X-Evil', 'a\r\nInjected: yes'],
      /value of header X-Evil has a character not allowed/,
    ],
    ['a line without a colon', 'NoColonHere', /header line "NoColonHere" is not "Name: value"/],
    ['a name with a space', ['Bad Name', 'x'], /header name "Bad Name" is not a valid HTTP token/],
    ['a reserved header', 'Host: elsewhere', /header Host is set by the preflight itself/],
  ] as const) {
    test(`a bad header (${what}) is refused before anything is sent`, async () => {
      const server = await startFakeServer(() => {});
      try {
        await assert.rejects(
          connect(`tcp://127.0.0.1:${server.port}?http_preflight=true`, { headers: [header] }),
          (error: unknown) => {
            assert.ok(error instanceof BadHeaderError);
            assert.match(error.message, message);
            return true;
          },
        );
        assert.equal(server.accepted(), 0, 'no connection was made');
      } finally {
        await server.close();
      }
    });
  }

  test("a refusal (nginx's 403): an error with the status line and the start of the body", async () => {
    const server = await startFakeServer((socket) =>
      socket.end(
        'HTTP/1.1 403 Forbidden\r\nServer: nginx\r\nContent-Type: text/html\r\n\r\n<html><head><title>403 Forbidden</title></head></html>\r\n',
      ),
    );
    try {
      await assert.rejects(
        connect(`tcp://127.0.0.1:${server.port}/x?http_preflight=true`),
        (error: unknown) => {
          assert.ok(error instanceof PreflightRefusedError);
          assert.equal(error.status, 403);
          assert.equal(
            error.message,
            'preflight refused: HTTP/1.1 403 Forbidden — <html><head><title>403 Forbidden</title></head></html>',
          );
          return true;
        },
      );
    } finally {
      await server.close();
    }
  });

  for (const [what, reply, message] of [
    [
      'no blank line within the limit',
      (s: Socket) => s.write(`HTTP/1.1 101 OK\r\nX: ${'a'.repeat(20_000)}`),
      /no blank line within 16384 bytes/,
    ],
    [
      'the server closes mid-handshake',
      (s: Socket) => s.end('HTTP/1.1 101 Swi'),
      /closed the connection during the preflight \(after 16 bytes of its answer\)/,
    ],
    [
      'not HTTP at all',
      (s: Socket) => s.write('SSH-2.0-OpenSSH_9.2\r\n\r\n'),
      /does not start with an HTTP status line: "SSH-2.0-OpenSSH_9.2"/,
    ],
    ['no answer in time', () => {}, /no complete answer to the preflight within 300 ms/],
  ] as const) {
    test(`${what}: a precise error, no hang`, async () => {
      const server = await startFakeServer(reply);
      try {
        await assert.rejects(
          connect(`tcp://127.0.0.1:${server.port}?http_preflight=true`, { handshakeTimeoutMs: 300 }),
          (error: unknown) => {
            assert.ok(error instanceof PreflightFailedError, String(error));
            assert.match(error.message, message);
            return true;
          },
        );
      } finally {
        await server.close();
      }
    });
  }

  test('bad connection strings and unsupported transports are errors before any connection', async () => {
    await assert.rejects(connect('tcp://nohost'), ConnectionStringError);
    await assert.rejects(connect('http://127.0.0.1:1'), OptionError);
  });
});

describe('connect() and postern connect through a real relay', () => {
  let tunnel: Tunnel;
  let echoPort: number;
  let bannerPort: number;
  const servers: Server[] = [];
  before(async () => {
    for (const banner of [undefined, 'SSH-2.0-Fake_1.0\r\n']) {
      const server = createServer({ allowHalfOpen: true }, (socket) => {
        if (banner) socket.write(banner);
        socket.pipe(socket);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
    }
    echoPort = ((servers[0] as Server).address() as { port: number }).port;
    bannerPort = ((servers[1] as Server).address() as { port: number }).port;
    tunnel = await startTunnel('', {
      // Unknown labels get their 404 at once, not after the wait for agents of a restarted relay.
      relay: { restartGraceMs: 0 },
      agent: {
        services: [
          { name: 'echo', target: `tcp://127.0.0.1:${echoPort}` },
          { name: 'ssh', target: `tcp://127.0.0.1:${bannerPort}` },
        ],
      },
    });
  });
  after(async () => {
    await tunnel.close();
    for (const server of servers) {
      server.close();
    }
  });
  const connectString = (name: string): string => {
    const label = tunnel.relay.tunnels().find((t) => t.name === name)?.label;
    return `tcp://${label}.localhost:${tunnel.port}?http_preflight=true`;
  };

  test('connect() reaches the echo service by its connect string', async () => {
    const socket = await connect(connectString('echo'));
    socket.write('ping');
    assert.equal(await readAtLeast(socket, 4), 'ping');
    socket.destroy();
  });

  test("the socket connect() returns flows as soon as a 'data' listener is added, like a fresh one", async () => {
    const socket = await connect(connectString('echo'));
    socket.write('plain listener');
    // No resume(): a caller that only listens must get the bytes.
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'plain listener');
    socket.destroy();
  });

  test('ws://: a WebSocket whose messages carry the bytes, by path and by Host', async () => {
    const label = tunnel.relay.tunnels().find((t) => t.name === 'echo')?.label as string;
    for (const url of [`ws://127.0.0.1:${tunnel.port}/${label}`, `ws://${label}.localhost:${tunnel.port}/`]) {
      const socket = await connect(url, { headers: ['X-Check: 1'] });
      socket.write('over websocket');
      assert.equal(await readAtLeast(socket, 14), 'over websocket');
      socket.destroy();
    }
  });

  test('ws:// to an unknown tunnel: the refusal with its status line', async () => {
    await assert.rejects(connect(`ws://127.0.0.1:${tunnel.port}/${'a'.repeat(52)}`), (error: unknown) => {
      assert.ok(error instanceof PreflightRefusedError);
      assert.equal(error.status, 404);
      assert.match(
        error.message,
        /^preflight refused: HTTP\/1\.1 404 Not Found — postern: no tunnel named a{52}/,
      );
      return true;
    });
  });

  test('a server-speaks-first service (an SSH-like banner) works through connect()', async () => {
    const socket = await connect(connectString('ssh'));
    assert.equal(await readAtLeast(socket, 18), 'SSH-2.0-Fake_1.0\r\n');
    socket.destroy();
  });

  test('postern connect --listen: each local connection gets its own preflight connection', async () => {
    const cli = startCli([
      'connect',
      connectString('echo'),
      '--listen',
      'tcp://127.0.0.1:0',
      '--json',
      '--header',
      'Token=abc',
    ]);
    try {
      const listening = await cli.nextEvent((e) => e.event === 'listening');
      const port = Number(String(listening.listen).split(':').pop());
      const clients = await Promise.all(
        [1, 2, 3].map(async (i) => {
          const socket = netConnect(port, '127.0.0.1');
          await once(socket, 'connect');
          socket.write(`client ${i}`);
          return { socket, text: await readAtLeast(socket, 8) };
        }),
      );
      clients.forEach(({ socket, text }, i) => {
        assert.equal(text, `client ${i + 1}`);
        socket.destroy();
      });
    } finally {
      await cli.stop();
    }
  });

  test('postern connect without --listen: stdin and stdout are the stream (an SSH ProxyCommand)', async () => {
    const cli = startCli(['connect', connectString('echo')]);
    cli.child.stdin.end('through stdin and back\n');
    const line = await cli.nextEvent((e) => e.event === 'text');
    assert.equal(line.line, 'through stdin and back');
    assert.equal(await cli.exited, 0);
  });

  test('postern connect with a bad header: one clear line, exit 1, nothing sent', async () => {
    const cli = startCli(['connect', connectString('echo'), '--header', 'X-Bad: a\rb']);
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr(), /^postern connect: value of header X-Bad has a character not allowed in HTTP/);
  });
});

describe('AMPS transport options', () => {
  test('bind, tcp_keepalive and tcp_nodelay are applied; socket buffer sizes are named once as ignored', async () => {
    const seen: string[] = [];
    const server = createServer((socket) => {
      seen.push(socket.remoteAddress ?? '');
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      if (warning.code === 'POSTERN_IGNORED_OPTION') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 2; i++) {
        const socket = await connect(
          `tcp://127.0.0.1:${port}?tcp_nodelay=false&tcp_keepalive=true&tcp_sndbuf=65536&tcp_rcvbuf=65536&bind=127.0.0.2`,
        );
        await once(socket, 'close');
      }
      assert.deepEqual(seen, ['127.0.0.2', '127.0.0.2'], 'connected from the bind address');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, [
        "tcp_sndbuf=65536 ignored: Node cannot size a TCP socket's buffers; the kernel's defaults apply",
        "tcp_rcvbuf=65536 ignored: Node cannot size a TCP socket's buffers; the kernel's defaults apply",
      ]);
    } finally {
      process.off('warning', onWarning);
      server.close();
    }
  });
});
