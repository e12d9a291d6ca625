import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { requireBinary } from './helpers/binaries.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { startOrigin } from './helpers/origin.js';
import { startTunnel } from './helpers/tunnel.js';

const MiB = 1024 * 1024;

async function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

async function roundTrip(socket: Duplex, text: string): Promise<string> {
  socket.write(text);
  let data = '';
  while (data.length < text.length) data += ((await once(socket, 'data')) as [Buffer])[0].toString();
  return data;
}

describe('the client over every relay transport', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let certs: TestCertificates;
  let dir: string;
  before(async () => {
    echo = await startEcho();
    certs = makeCertificates();
    dir = mkdtempSync(join(tmpdir(), 'postern-transports-'));
  });
  after(() => {
    echo.server.close();
    rmSync(certs.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('tcps:// to a TLS relay with a test CA, tcp://[::1] and a unix:// preflight; the agent registers over a unix:// relay listener', async () => {
    const socketPath = join(dir, 'relay.sock');
    const relay = await createRelay({
      listen: ['tcps://127.0.0.1:0', 'tcp://[::1]:0', `unix://localhost:0?path=${socketPath}`],
      tlsCert: certs.cert,
      tlsKey: certs.key,
    });
    const [tlsAddress, v6Address] = relay.addresses as [string, string];
    const agent = createAgent({
      relay: `unix://localhost:0?path=${socketPath}`,
      key: generateAgentKey(),
      services: [{ name: 'echo', target: `tcp://127.0.0.1:${echo.port}` }],
    });
    try {
      const [service] = await agent.ready;
      const label = service?.label as string;
      const viaTls = await connect(
        `tcps://localhost:${tlsAddress.split(':').pop()}/${label}?http_preflight=true&ca=${certs.ca}`,
      );
      assert.equal(await roundTrip(viaTls, 'over tls'), 'over tls');
      viaTls.destroy();
      const viaWss = await connect(`wss://localhost:${tlsAddress.split(':').pop()}/${label}?ca=${certs.ca}`);
      assert.equal(await roundTrip(viaWss, 'over wss'), 'over wss');
      viaWss.destroy();
      const viaV6 = await connect(`tcp://[::1]:${v6Address.split(':').pop()}/${label}?http_preflight=true`);
      assert.equal(await roundTrip(viaV6, 'over ipv6'), 'over ipv6');
      viaV6.destroy();
      // The relay serves preflights on its unix listener; the client dials them too.
      const viaUnix = await connect(`unix://localhost:0/${label}?path=${socketPath}&http_preflight=true`);
      assert.equal(await roundTrip(viaUnix, 'over unix'), 'over unix');
      viaUnix.destroy();
    } finally {
      await agent.close();
      await relay.close();
    }
  });

  test('50 MiB each way through a preflight tunnel: sha256 matches; a slow reader slows the writer', async () => {
    const tunnel = await startTunnel('', {
      agent: { services: [{ name: 'echo', target: `tcp://127.0.0.1:${echo.port}` }] },
    });
    try {
      const label = tunnel.relay.tunnels()[0]?.label as string;
      const socket = await connect(`tcp://${label}.localhost:${tunnel.port}?http_preflight=true`);
      const payload = randomBytes(50 * MiB);
      // Read slowly at first: 1 MiB, then a pause. The writer must be held back (write() returns
      // false) instead of the tunnel buffering 50 MiB.
      let backpressured = false;
      let offset = 0;
      const writeAll = async (): Promise<void> => {
        while (offset < payload.length) {
          const chunk = payload.subarray(offset, offset + 256 * 1024);
          offset += chunk.length;
          if (!socket.write(chunk)) {
            backpressured = true;
            await once(socket, 'drain');
          }
        }
        socket.end();
      };
      const hash = createHash('sha256');
      let received = 0;
      socket.pause();
      const writing = writeAll();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const writtenWhileStalled = offset;
      socket.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
      });
      socket.resume();
      await writing;
      await once(socket, 'end');
      assert.ok(backpressured, 'the writer was held back');
      assert.ok(
        writtenWhileStalled < 40 * MiB,
        `only ${Math.round(writtenWhileStalled / MiB)} MiB went out while nobody read`,
      );
      assert.equal(received, payload.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
      socket.destroy();
    } finally {
      await tunnel.close();
    }
  });
});

describe('WebSocket at scale and with a client nobody here wrote', () => {
  test('1 000 concurrent WebSocket connections through one tunnel, every message checked', async () => {
    const origin = await startOrigin();
    const wss = new WebSocketServer({ noServer: true });
    origin.server.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data) => ws.send(`${data} back`))),
    );
    const tunnel = await startTunnel(origin.url, { relay: { maxConcurrentStreamsPerTunnel: 1_000 } });
    try {
      const clients = await Promise.all(
        Array.from({ length: 1_000 }, async (_, i) => {
          const ws = new WebSocket(`ws://127.0.0.1:${tunnel.port}/${tunnel.service.label}/c${i}`);
          await once(ws, 'open');
          return ws;
        }),
      );
      const answers = await Promise.all(
        clients.map(async (ws, i) => {
          ws.send(`message ${i}`);
          return ((await once(ws, 'message')) as [Buffer])[0].toString();
        }),
      );
      for (const [i, answer] of answers.entries()) assert.equal(answer, `message ${i} back`);
      await Promise.all(
        clients.map(async (ws) => {
          ws.close();
          await once(ws, 'close');
        }),
      );
    } finally {
      await tunnel.close();
      for (const client of wss.clients) client.terminate();
      await origin.close();
    }
  });

  test("Python's websockets library (Debian's python3-websockets) through the tunnel", async () => {
    requireBinary('/usr/bin/python3', 'python3-websockets');
    const origin = await startOrigin();
    const wss = new WebSocketServer({ noServer: true });
    origin.server.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) =>
        ws.on('message', (data) => ws.send(`python said: ${data}`)),
      ),
    );
    const tunnel = await startTunnel(origin.url);
    try {
      const script = [
        'import asyncio, sys, websockets',
        'async def main():',
        '    async with websockets.connect(sys.argv[1]) as ws:',
        '        await ws.send("hello")',
        '        print(await ws.recv())',
        'asyncio.run(main())',
      ].join('\n');
      const { stdout } = await promisify(execFile)(
        '/usr/bin/python3',
        ['-c', script, `ws://127.0.0.1:${tunnel.port}/${tunnel.service.label}/py`],
        { timeout: 30_000 },
      );
      assert.equal(stdout.trim(), 'python said: hello');
    } finally {
      await tunnel.close();
      for (const client of wss.clients) client.terminate();
      await origin.close();
    }
  });
});
