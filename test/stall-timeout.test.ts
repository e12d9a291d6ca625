import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { connect } from '../src/transport/connect.js';
import { curl } from './helpers/curl.js';
import { type EchoServer, startTcpEcho, startWebSocketEcho } from './helpers/echo.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

const STALL_MS = 400;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

interface Firehose {
  port: number;
  /** Resolves with how long the latest connection lived once it closes. */
  nextClose(): Promise<number>;
  close(): Promise<void>;
}

/** A TCP service that sends to every connection as fast as it is read, for ever. */
async function startTcpFirehose(): Promise<Firehose> {
  const closes: ((ms: number) => void)[] = [];
  const server: Server = createServer((socket: Socket) => {
    const opened = Date.now();
    socket.on('error', () => {});
    const pump = (): void => {
      while (socket.writable && socket.write(CHUNK));
    };
    socket.on('drain', pump);
    pump();
    socket.once('close', () => closes.shift()?.(Date.now() - opened));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    nextClose: () => new Promise((resolve) => closes.push(resolve)),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A WebSocket service that sends binary messages to every client as fast as they are taken. */
async function startWebSocketFirehose(): Promise<Firehose> {
  const closes: ((ms: number) => void)[] = [];
  const http = createHttpServer();
  new WebSocketServer({ server: http }).on('connection', (ws) => {
    const opened = Date.now();
    const pump = (): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(CHUNK, () => setImmediate(pump));
    };
    pump();
    ws.once('close', () => closes.shift()?.(Date.now() - opened));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as { port: number }).port,
    nextClose: () => new Promise((resolve) => closes.push(resolve)),
    close: () =>
      new Promise((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

describe('stall timeout: a reader that stops taking bytes is cut, an idle stream is kept', () => {
  let tcpFirehose: Firehose;
  let wsFirehose: Firehose;
  let tcpEcho: EchoServer;
  let wsEcho: EchoServer;
  let tunnel: Tunnel;
  let connectStrings: Map<string, string>;

  before(async () => {
    [tcpFirehose, wsFirehose, tcpEcho, wsEcho] = await Promise.all([
      startTcpFirehose(),
      startWebSocketFirehose(),
      startTcpEcho(),
      startWebSocketEcho(),
    ]);
    tunnel = await startTunnel(wsEcho.target, {
      relay: { stallTimeoutMs: STALL_MS },
      agent: {
        services: [
          { name: 'ws-fire', target: `http://127.0.0.1:${wsFirehose.port}` },
          { name: 'ws-echo', target: wsEcho.target },
          { name: 'tcp-fire', target: `tcp://127.0.0.1:${tcpFirehose.port}` },
          { name: 'tcp-echo', target: tcpEcho.target },
        ],
      },
    });
    const services = await tunnel.agent.ready;
    connectStrings = new Map(
      services.map((s) => [s.name, s.connect ?? `ws://127.0.0.1:${tunnel.port}/${s.label}/`]),
    );
  });
  after(async () => {
    await tunnel?.close();
    await Promise.all([tcpFirehose?.close(), wsFirehose?.close(), tcpEcho?.close(), wsEcho?.close()]);
  });

  test('TCP through the preflight: a visitor that stops reading is cut after the timeout; an idle one stays', async () => {
    const idle = await connect(connectStrings.get('tcp-echo') as string);
    const closed = tcpFirehose.nextClose();
    const stalled = await connect(connectStrings.get('tcp-fire') as string);
    stalled.on('error', () => {});
    await once(stalled, 'data');
    stalled.pause();
    const lived = await closed;
    assert.ok(lived >= STALL_MS, `the target's connection lived ${lived} ms`);
    assert.ok(lived < STALL_MS * 1.25 + 2_000, `cut within the bound, after ${lived} ms`);

    await delay(STALL_MS * 3);
    idle.write('still here');
    const [echoed] = (await once(idle, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'still here');
    idle.destroy();
    stalled.destroy();
  });

  test('WebSocket: a visitor that stops reading is cut after the timeout; an idle one stays', async () => {
    const label = (name: string): string => connectStrings.get(name) as string;
    const idle = new WebSocket(label('ws-echo'));
    await once(idle, 'open');
    const closed = wsFirehose.nextClose();
    const stalled = new WebSocket(label('ws-fire'));
    stalled.on('error', () => {});
    await once(stalled, 'message');
    stalled.pause();
    const lived = await closed;
    assert.ok(lived >= STALL_MS, `the target's WebSocket lived ${lived} ms`);
    assert.ok(lived < STALL_MS * 1.25 + 2_000, `cut within the bound, after ${lived} ms`);

    await delay(STALL_MS * 3);
    idle.send('still here');
    const [echoed] = (await once(idle, 'message')) as [Buffer];
    assert.equal(echoed.toString(), 'still here');
    idle.close();
    stalled.terminate();
  });
});

describe('stall timeout on the agent: a target that stops reading a request body is cut', () => {
  test('the visitor gets 504 target_stalled after the timeout, the target sees its request cut', async () => {
    const target = createHttpServer();
    const request = new Promise<IncomingMessage>((resolve) =>
      target.once('request', (req: IncomingMessage) => {
        // Reads nothing and never answers: the upload stalls at the target.
        req.pause();
        resolve(req);
      }),
    );
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const tunnel = await startTunnel(`http://127.0.0.1:${(target.address() as { port: number }).port}`, {
      agent: { stallTimeoutMs: STALL_MS },
    });
    try {
      const started = Date.now();
      const upload = await curl([
        '-i',
        '--max-time',
        '20',
        '-X',
        'POST',
        '-T',
        '/dev/zero',
        `${tunnel.relayUrl}/${tunnel.service.label}/upload`,
      ]);
      const tookMs = Date.now() - started;
      assert.equal(upload.exitCode, 0, upload.stderr);
      assert.match(upload.stdout, /HTTP\/1.1 504 Gateway Timeout/);
      assert.match(upload.stdout, /postern-error: target_stalled/);
      assert.match(upload.stdout, /took no bytes for 400 ms \(stall timeout\)/);
      assert.ok(tookMs >= STALL_MS, `answered after ${tookMs} ms`);
      // Once it reads again, the target finds the upload cut, not ended.
      const req = await request;
      const outcome = new Promise<string>((resolve) => {
        req.once('end', () => resolve('end'));
        req.once('error', () => resolve('error'));
        req.once('aborted', () => resolve('aborted'));
      });
      req.resume();
      assert.notEqual(await outcome, 'end');
    } finally {
      await tunnel.close();
      target.closeAllConnections();
      await new Promise<void>((resolve) => target.close(() => resolve()));
    }
  });
});
