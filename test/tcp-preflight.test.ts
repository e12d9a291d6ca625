import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { curlResponse } from './helpers/curl.js';
import { startCli } from './helpers/processes.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

/** A TCP target: echoes, and ends its side when the client ends. With `banner`, speaks first. */
async function startTcpTarget(
  banner?: string,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (banner !== undefined) socket.write(banner);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A preflight by hand: the request head (plus `early` bytes in the same write), then the reply
 * head read up to its blank line exactly; whatever came after it is returned as `rest`.
 */
async function preflight(port: number, host: string, path: string, token: string, early = Buffer.alloc(0)) {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    Buffer.concat([
      Buffer.from(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: ${token}\r\n\r\n`,
      ),
      early,
    ]),
  );
  let received = Buffer.alloc(0);
  while (received.indexOf('\r\n\r\n') < 0) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received = Buffer.concat([received, chunk]);
  }
  socket.pause();
  const end = received.indexOf('\r\n\r\n');
  return { socket, head: received.subarray(0, end).toString('latin1'), rest: received.subarray(end + 4) };
}

async function readAtLeast(socket: Socket, already: Buffer, length: number): Promise<Buffer> {
  let data = already;
  socket.resume();
  while (data.length < length) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    data = Buffer.concat([data, chunk]);
  }
  return data;
}

describe('TCP services through the preflight', () => {
  let echo: Awaited<ReturnType<typeof startTcpTarget>>;
  let banner: Awaited<ReturnType<typeof startTcpTarget>>;
  let tunnel: Tunnel;
  let labels: Record<string, string>;
  before(async () => {
    echo = await startTcpTarget();
    banner = await startTcpTarget('220 smtp.example ready\r\n');
    tunnel = await startTunnel('', {
      agent: {
        services: [
          { name: 'echo', target: `tcp://127.0.0.1:${echo.port}` },
          { name: 'smtp', target: `tcp://127.0.0.1:${banner.port}` },
          { name: 'down', target: 'tcp://127.0.0.1:1' },
        ],
      },
    });
    labels = Object.fromEntries(tunnel.relay.tunnels().map((t) => [t.name, t.label]));
  });
  after(async () => {
    await tunnel.close();
    await echo.close();
    await banner.close();
  });

  const hostOf = (name: string): string => `${labels[name]}.localhost:${tunnel.port}`;

  test('by Host: a short 101 echoing the Upgrade token; early bytes kept; bytes echo both ways', async () => {
    const { socket, head, rest } = await preflight(
      tunnel.port,
      hostOf('echo'),
      '/',
      'tcp',
      Buffer.from('early '),
    );
    assert.equal(head, 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp');
    socket.write('later');
    const data = await readAtLeast(socket, rest, 'early later'.length);
    assert.equal(data.toString(), 'early later');
    socket.destroy();
  });

  test('by path on the bare relay, with the tcps token', async () => {
    const { socket, head, rest } = await preflight(
      tunnel.port,
      `127.0.0.1:${tunnel.port}`,
      `/${labels.echo}`,
      'tcps',
      Buffer.from('x'),
    );
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(head, /\r\nUpgrade: tcps$/);
    assert.equal((await readAtLeast(socket, rest, 1)).toString(), 'x');
    socket.destroy();
  });

  test('a server-speaks-first target: its banner arrives right after the 101', async () => {
    const { socket, head, rest } = await preflight(tunnel.port, hostOf('smtp'), '/', 'tcp');
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.equal((await readAtLeast(socket, rest, 24)).toString(), '220 smtp.example ready\r\n');
    socket.destroy();
  });

  test('20 MiB through and back intact; the client half-closing ends the stream at the target', async () => {
    const { socket, rest } = await preflight(tunnel.port, hostOf('echo'), '/', 'tcp');
    const payload = randomBytes(20 << 20);
    const chunks: Buffer[] = [rest];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    socket.end(payload);
    await once(socket, 'end');
    const echoed = Buffer.concat(chunks);
    assert.equal(echoed.length, payload.length);
    assert.equal(
      createHash('sha256').update(echoed).digest('hex'),
      createHash('sha256').update(payload).digest('hex'),
    );
    socket.destroy();
  });

  test('target down: 502 target_unreachable, never a 101', async () => {
    const { socket, head } = await preflight(tunnel.port, hostOf('down'), '/', 'tcp');
    assert.match(head, /^HTTP\/1\.1 502 /);
    assert.match(head, /postern-error: target_unreachable/i);
    socket.destroy();
  });

  test('a plain HTTP request to a TCP service: 426 upgrade_required', async () => {
    const res = await curlResponse([`http://${hostOf('echo')}/`]);
    assert.equal(res.status, 426);
    assert.equal(res.headers['postern-error'], 'upgrade_required');
    assert.equal(res.headers.upgrade, 'tcp');
  });

  test('a WebSocket to a TCP service is ended at the relay: its binary messages carry the bytes', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${tunnel.port}/${labels.echo}`);
    await once(ws, 'open');
    ws.send(Buffer.from('in a websocket message'));
    const [data, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
    assert.equal(isBinary, true);
    assert.equal(data.toString(), 'in a websocket message');
    ws.close();
    await once(ws, 'close');
  });

  test('postern expose with several targets: one HTTP service and two named TCP services on one agent', async () => {
    const home = mkdtempSync(join(tmpdir(), 'postern-multi-'));
    const cli = startCli(
      [
        'expose',
        'http://127.0.0.1:1',
        `redis=tcp://127.0.0.1:${echo.port}`,
        `smtp=tcp://127.0.0.1:${banner.port}`,
        '--json',
      ],
      {
        XDG_CONFIG_HOME: home,
      },
    );
    try {
      const ready = await cli.nextEvent((e) => e.event === 'ready');
      const services = ready.services as Record<string, string>[];
      assert.deepEqual(
        services.map((s) => [s.name, s.kind]),
        [
          ['default', 'http'],
          ['redis', 'tcp'],
          ['smtp', 'tcp'],
        ],
      );
      assert.equal(new Set(services.map((s) => s.label)).size, 3, 'each service has its own label');
    } finally {
      await cli.stop();
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('postern expose tcp://… --name: the ready line has kind tcp and a connect string', async () => {
    const home = mkdtempSync(join(tmpdir(), 'postern-tcp-cli-'));
    const cli = startCli(['expose', `tcp://127.0.0.1:${echo.port}`, '--name', 'redis', '--json'], {
      XDG_CONFIG_HOME: home,
    });
    try {
      const ready = await cli.nextEvent((e) => e.event === 'ready');
      const [service] = ready.services as Record<string, string>[];
      assert.equal(service?.name, 'redis');
      assert.equal(service?.kind, 'tcp');
      assert.match(service?.connect ?? '', /^tcp:\/\/[a-z2-7]{52}\.localhost:\d+\?http_preflight=true$/);
    } finally {
      await cli.stop();
      rmSync(home, { recursive: true, force: true });
    }
  });
});
