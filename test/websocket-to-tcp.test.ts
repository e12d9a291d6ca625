import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { type EchoServer, startTcpEcho } from './helpers/echo.js';
import { type CliProcess, rssBytes, startRelayProcess } from './helpers/processes.js';
import { until } from './helpers/wait.js';

const STALL_TIMEOUT_MS = 2_000;
const CONNECTIONS = 200;
/** What each attacking connection sends of its never-finished 64 MiB message. */
const SENT_PER_CONNECTION = 4 << 20;

/**
 * A WebSocket visitor to a TCP service is ended at the relay. The relay used to hold each message
 * whole until its last frame (up to 64 MiB a connection, never timed out): 40 connections took it
 * from 0.4 to 2.5 GiB. Now payload bytes go on as they arrive.
 */
describe('WebSocket visitors to a TCP service: messages stream through the relay', () => {
  let relay: CliProcess;
  let port: number;
  let agent: Agent;
  let echo: EchoServer;
  let sink: Server;
  let sunk = 0;
  const labels: Record<string, string> = {};

  before(async () => {
    echo = await startTcpEcho();
    sink = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        sunk += chunk.length;
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    ({ relay, port } = await startRelayProcess([
      '--stall-timeout',
      String(STALL_TIMEOUT_MS),
      '--admin',
      'off',
    ]));
    agent = createAgent({
      relay: `tcp://127.0.0.1:${port}`,
      key: generateAgentKey(),
      services: [
        { name: 'echo', target: echo.target },
        { name: 'sink', target: `tcp://127.0.0.1:${(sink.address() as { port: number }).port}` },
      ],
    });
    for (const service of await agent.ready) labels[service.name] = service.label;
  });
  after(async () => {
    await agent?.close();
    await relay?.stop();
    await echo?.close();
    sink?.close();
  });

  test('a 20 MiB message from a real WebSocket client arrives intact at the service and back', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/${labels.echo}`, { maxPayload: 64 << 20 });
    await once(ws, 'open');
    const message = randomBytes(20 << 20);
    const hash = createHash('sha256');
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        hash.update(data);
        received += data.length;
        if (received >= message.length) resolve();
      });
      ws.once('close', () => reject(new Error(`closed after ${received} bytes`)));
    });
    ws.send(message, { binary: true });
    await done;
    ws.close();
    assert.equal(received, message.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(message).digest('hex'));
  });

  test(`${CONNECTIONS} connections each leaving a 64 MiB message unfinished: relay memory bounded, all cut after the stall timeout`, async () => {
    const pid = relay.child.pid as number;
    const before = await rssBytes(pid);
    const sunkBefore = sunk;
    let peak = before;
    const sampler = setInterval(() => {
      void rssBytes(pid).then((rss) => {
        peak = Math.max(peak, rss);
      });
    }, 100);
    const head = (key: string): string =>
      [
        `GET /${labels.sink}/ HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        `Sec-WebSocket-Key: ${key}`,
        '',
        '',
      ].join('\r\n');
    // A masked binary frame announcing 64 MiB (127 + a 64-bit length), then part of its payload.
    const frameHead = Buffer.alloc(14);
    frameHead[0] = 0x82;
    frameHead[1] = 0x80 | 127;
    frameHead.writeUInt32BE(64 << 20, 6);
    const payload = Buffer.alloc(256 << 10, 0x61);
    const sockets: Socket[] = [];
    try {
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const socket = connect(port, '127.0.0.1');
          sockets.push(socket);
          socket.on('error', () => {});
          await once(socket, 'connect');
          socket.write(head(randomBytes(16).toString('base64')));
          const [answer] = (await once(socket, 'data')) as [Buffer];
          assert.match(answer.toString('latin1'), /^HTTP\/1.1 101 /);
          socket.write(frameHead);
          for (let sent = 0; sent < SENT_PER_CONNECTION; sent += payload.length)
            if (!socket.write(payload)) await once(socket, 'drain');
        }),
      );
      // The bytes went on to the service; none wait whole at the relay.
      await until(
        () => sunk - sunkBefore >= CONNECTIONS * SENT_PER_CONNECTION,
        'every byte to reach the service',
        60_000,
      ).catch(() => {}); // the assertion below says how many did
      const growth = peak - before;
      assert.equal(sunk - sunkBefore, CONNECTIONS * SENT_PER_CONNECTION, 'every byte reached the service');
      assert.ok(growth < 256 << 20, `relay RSS grew by ${Math.round(growth / 2 ** 20)} MiB`);
      // Every unfinished message is cut: bounded with margin for a busy machine.
      await Promise.race([
        Promise.all(sockets.map((s) => (s.closed ? undefined : once(s, 'close')))),
        new Promise((resolve) => setTimeout(resolve, STALL_TIMEOUT_MS * 15)),
      ]);
      const open = sockets.filter((s) => !s.closed).length;
      assert.equal(open, 0, `${open} connections with an unfinished message still open`);
      console.log(
        `# relay RSS +${Math.round(growth / 2 ** 20)} MiB for ${CONNECTIONS} × ${SENT_PER_CONNECTION >> 20} MiB unfinished`,
      );
    } finally {
      clearInterval(sampler);
      for (const s of sockets) s.destroy();
    }
  });
});
