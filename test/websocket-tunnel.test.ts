import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/** A WebSocket target: echoes messages; "close:<code>" closes with that code; "abort" drops the TCP connection. */
async function startWsTarget(): Promise<{
  server: Server;
  port: number;
  onClose: (code: number) => void;
  close(): Promise<void>;
}> {
  const server = createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 20 });
  server.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith('/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nConnection: close\r\n\r\nno way\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(`hello ${req.url} ${req.headers['x-forwarded-for']}`);
      ws.on('close', (code) => result.onClose(code));
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? '' : data.toString();
        if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'bye');
        else if (text === 'abort') ws.terminate();
        else ws.send(data, { binary: isBinary });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const result = {
    server,
    port: (server.address() as { port: number }).port,
    onClose: (_code: number): void => {},
    close: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return result;
}

describe('WebSocket through the tunnel (the ws client and server)', () => {
  let target: Awaited<ReturnType<typeof startWsTarget>>;
  let tunnel: Tunnel;
  before(async () => {
    target = await startWsTarget();
    tunnel = await startTunnel(`http://127.0.0.1:${target.port}`);
  });
  after(async () => {
    await tunnel.close();
    await target.close();
  });

  const open = async (path = '/chat'): Promise<{ ws: WebSocket; greeting: string }> => {
    // Path routing, so the ws client needs no *.localhost resolution.
    const ws = new WebSocket(`ws://127.0.0.1:${tunnel.port}/${tunnel.service.label}${path}`, {
      maxPayload: 64 << 20,
    });
    const [greeting] = (await once(ws, 'message')) as [Buffer];
    return { ws, greeting: greeting.toString() };
  };

  test("the target's own 101 comes back; the target sees the path and X-Forwarded-For", async () => {
    const { ws, greeting } = await open('/chat?room=1');
    assert.equal(greeting, 'hello /chat?room=1 127.0.0.1');
    ws.close();
    await once(ws, 'close');
  });

  test('text, binary and a 16 MiB message echo back intact', async () => {
    const { ws } = await open();
    ws.send('text message');
    assert.equal(((await once(ws, 'message')) as [Buffer])[0].toString(), 'text message');
    const binary = randomBytes(1000);
    ws.send(binary);
    assert.deepEqual(((await once(ws, 'message')) as [Buffer])[0], binary);
    const big = randomBytes(16 << 20);
    ws.send(big);
    const [echoed] = (await once(ws, 'message')) as [Buffer];
    assert.equal(
      createHash('sha256').update(echoed).digest('hex'),
      createHash('sha256').update(big).digest('hex'),
    );
    ws.close();
    await once(ws, 'close');
  });

  test('ping gets its pong; many messages in flight keep their order', async () => {
    const { ws } = await open();
    ws.ping(Buffer.from('are you there'));
    const [payload] = (await once(ws, 'pong')) as [Buffer];
    assert.equal(payload.toString(), 'are you there');
    const received: string[] = [];
    ws.on('message', (data: Buffer) => received.push(data.toString()));
    for (let i = 0; i < 500; i++) ws.send(`m${i}`);
    while (received.length < 500) await once(ws, 'message');
    assert.deepEqual(
      received,
      Array.from({ length: 500 }, (_, i) => `m${i}`),
    );
    ws.close();
    await once(ws, 'close');
  });

  test('a fragmented message arrives whole', async () => {
    const { ws } = await open();
    ws.send('frag', { fin: false });
    ws.send('ment', { fin: false });
    ws.send('ed', { fin: true });
    assert.equal(((await once(ws, 'message')) as [Buffer])[0].toString(), 'fragmented');
    ws.close();
    await once(ws, 'close');
  });

  test("the visitor's close code reaches the target", async () => {
    const closedWith = new Promise<number>((resolve) => {
      target.onClose = resolve;
    });
    const { ws } = await open();
    ws.close(4002, 'visitor done');
    assert.equal(await closedWith, 4002);
  });

  test('a close code from the target reaches the visitor', async () => {
    const { ws } = await open();
    ws.send('close:4001');
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
    assert.equal(code, 4001);
    assert.equal(reason.toString(), 'bye');
  });

  test('the target dropping the connection reaches the visitor as an abnormal close (1006)', async () => {
    const { ws } = await open();
    ws.send('abort');
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1006);
  });

  test('the visitor vanishing closes the connection at the target', async () => {
    const { ws } = await open();
    const connectionsAtTarget = (): Promise<number> =>
      new Promise((resolve) => target.server.getConnections((_e, n) => resolve(n)));
    assert.ok((await connectionsAtTarget()) > 0);
    ws.terminate();
    await until(async () => (await connectionsAtTarget()) === 0, 'the connection at the target closing');
  });

  test('an upgrade the target refuses comes back as its own response', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${tunnel.port}/${tunnel.service.label}/refuse`);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 403);
    ws.terminate();
  });

  test('bytes sent right behind the upgrade request are kept', async () => {
    const socket = connect(tunnel.port, '127.0.0.1');
    await once(socket, 'connect');
    const key = randomBytes(16).toString('base64');
    // A masked text frame "early" (opcode 1, FIN) sent in the same write as the request head.
    const mask = randomBytes(4);
    const payload = Buffer.from('early');
    const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
    const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
    socket.write(
      Buffer.concat([
        Buffer.from(
          `GET /${tunnel.service.label}/early HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
            `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
        ),
        frame,
      ]),
    );
    let received = Buffer.alloc(0);
    while (
      !received.includes(Buffer.from('early', 'utf8')) ||
      received.indexOf('early') < received.indexOf('hello')
    ) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      received = Buffer.concat([received, chunk]);
    }
    assert.match(received.toString('latin1'), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.ok(received.includes(Buffer.from('early')), 'the early frame was echoed');
    socket.destroy();
  });
});
