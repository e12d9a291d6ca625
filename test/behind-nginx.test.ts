import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { requireBinary } from './helpers/binaries.js';
import { curlResponse } from './helpers/curl.js';
import { type Nginx, startNginx } from './helpers/nginx.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type CliProcess, startCli } from './helpers/processes.js';
import { type Redis, startRedis } from './helpers/redis.js';
import { until } from './helpers/wait.js';

const run = promisify(execFile);

describe('behind real nginx: redis-cli through postern connect, HTTP, WebSocket, agent sessions', () => {
  let redis: Redis;
  let origin: Origin;
  let relay: Relay;
  let nginx: Nginx;
  let agent: Agent;
  let labels: Record<string, string>;
  let redisCli: string;
  const cleanups: (() => unknown)[] = [];
  let late: NetServer;
  let halfClosesSeen = 0;

  before(async () => {
    redisCli = requireBinary('redis-cli', 'redis-tools');
    redis = await startRedis();
    origin = await startOrigin();
    origin.server.on('upgrade', (req, socket, head) => {
      new WebSocketServer({ noServer: true }).handleUpgrade(req, socket, head, (ws) =>
        ws.on('message', (data) => ws.send(`echo ${data}`)),
      );
    });
    // A service that answers a moment after its request, as a database or an RPC server does.
    late = createNetServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (request: Buffer) => {
        setTimeout(() => socket.end(`reply to ${request.toString().trim()}\n`), 300);
      });
      socket.on('end', () => {
        halfClosesSeen++;
      });
    });
    late.listen(0, '127.0.0.1');
    await once(late, 'listening');
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], trustedProxies: ['127.0.0.1'] });
    nginx = await startNginx(Number((relay.addresses[0] as string).split(':').pop()));
    // The agent, too, reaches the relay only through nginx.
    agent = createAgent({
      relay: `tcp://127.0.0.1:${nginx.port}`,
      key: generateAgentKey(),
      services: [
        { name: 'redis', target: `unix://localhost:0?path=${redis.socketPath}`, kind: 'tcp' },
        { name: 'web', target: origin.url },
        { name: 'late', target: `tcp://127.0.0.1:${(late.address() as AddressInfo).port}` },
      ],
    });
    const services = await agent.ready;
    labels = Object.fromEntries(services.map((s) => [s.name, s.label]));
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await agent?.close();
    await nginx?.stop();
    await relay?.close();
    late?.close();
    await origin?.close();
    await redis?.stop();
  });

  const preflightTo = (port: number): string => `tcp://${labels.redis}.localhost:${port}?http_preflight=true`;

  async function connectListener(args: string[]): Promise<number> {
    const cli: CliProcess = startCli(['connect', ...args, '--listen', 'tcp://127.0.0.1:0', '--json']);
    cleanups.push(() => cli.stop());
    const listening = await cli.nextEvent((e) => e.event === 'listening');
    return Number(String(listening.listen).split(':').pop());
  }

  test('redis-cli SET/GET and a 10 MiB value with matching digest', async () => {
    const port = await connectListener([preflightTo(nginx.port)]);
    assert.equal(
      (await run(redisCli, ['-p', String(port), 'SET', 'greeting', 'hello through nginx'])).stdout.trim(),
      'OK',
    );
    assert.equal(
      (await run(redisCli, ['-p', String(port), 'GET', 'greeting'])).stdout.trim(),
      'hello through nginx',
    );
    const dir = mkdtempSync(join(tmpdir(), 'postern-redis-value-'));
    try {
      const value = randomBytes(5 << 20).toString('hex'); // 10 MiB of text
      writeFileSync(join(dir, 'value'), value);
      const set = spawn('sh', ['-c', `${redisCli} -p ${port} -x SET big < ${join(dir, 'value')}`]);
      const [setCode] = (await once(set, 'exit')) as [number];
      assert.equal(setCode, 0);
      const { stdout } = await run(redisCli, ['-p', String(port), '--raw', 'GET', 'big'], {
        maxBuffer: 64 << 20,
      });
      const got = stdout.replace(/\n$/, '');
      assert.equal(
        createHash('sha256').update(got).digest('hex'),
        createHash('sha256').update(value).digest('hex'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('postern connect on stdin/stdout keeps the reply when stdin ends first (nginx drops a half-closed upgrade)', async () => {
    const url = `tcp://127.0.0.1:${nginx.port}/${labels.late}?http_preflight=true`;
    const ask = async (extra: string[]): Promise<{ code: number | null; stdout: string }> => {
      const cli = startCli(['connect', url, ...extra]);
      let stdout = '';
      cli.child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      cli.child.stdin.end('ping\n');
      return { code: await cli.exited, stdout };
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask([]), { code: 0, stdout: 'reply to ping\n' });
    // --half-close passes the end of stdin on (the old behaviour): the server sees a FIN.
    const before = halfClosesSeen;
    assert.equal((await ask(['--half-close'])).code, 0);
    await until(() => halfClosesSeen === before + 1, 'the server to see the end of the input');
  });

  test('SUBSCRIBE receives what PUBLISH sends (the server pushes)', async () => {
    const port = await connectListener([preflightTo(nginx.port)]);
    const subscriber = spawn(redisCli, ['-p', String(port), 'SUBSCRIBE', 'news']);
    cleanups.push(() => subscriber.kill());
    let output = '';
    subscriber.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    while (!output.includes('subscribe')) await once(subscriber.stdout, 'data');
    assert.equal(
      (await run(redisCli, ['-p', String(port), 'PUBLISH', 'news', 'pushed by the server'])).stdout.trim(),
      '1',
    );
    while (!output.includes('pushed by the server')) await once(subscriber.stdout, 'data');
    subscriber.kill();
  });

  test("nginx's token check: 403 without the header (a clear error), works with it in either form", async () => {
    const refused = startCli(['connect', preflightTo(nginx.tokenPort)]);
    refused.child.stdin.end();
    assert.equal(await refused.exited, 1);
    assert.match(refused.stderr(), /^postern connect: preflight refused: HTTP\/1\.1 403 Forbidden — <html>/);
    for (const header of [`X-Proxy-Token: ${nginx.token}`, `X-Proxy-Token=${nginx.token}`]) {
      const port = await connectListener([preflightTo(nginx.tokenPort), '--header', header]);
      assert.equal((await run(redisCli, ['-p', String(port), 'PING'])).stdout.trim(), 'PONG');
    }
  });

  for (const scheme of ['tcp', 'ws'] as const) {
    test(`${scheme}:// sessions through nginx: the agent sends the token header nginx requires (both forms); without it the 403 is retried, not fatal`, async () => {
      for (const header of [`X-Proxy-Token: ${nginx.token}`, ['X-Proxy-Token', nginx.token] as const]) {
        const withToken = createAgent({
          relay: `${scheme}://127.0.0.1:${nginx.tokenPort}`,
          key: generateAgentKey(),
          services: [{ target: origin.url }],
          headers: [header],
        });
        const [service] = await withToken.ready;
        assert.equal(
          (await curlResponse([`http://${service?.label}.localhost:${nginx.port}/echo`])).status,
          200,
        );
        await withToken.close();
      }
      const without = createAgent({
        relay: `${scheme}://127.0.0.1:${nginx.tokenPort}`,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
        reconnectInitialMs: 50,
        reconnectMaxMs: 100,
      });
      let fatal: unknown;
      without.on('fatal', (error) => {
        fatal = error;
      });
      try {
        const [event] = (await once(without, 'disconnected')) as [{ reason: string }];
        assert.match(
          event.reason,
          /^answered 403 Forbidden to the agent's upgrade, without a Postern-Error header: not a Postern relay/,
        );
        await once(without, 'reconnecting');
        await once(without, 'disconnected');
        assert.equal(fatal, undefined, 'a proxy in front of the relay may be fixed later: keep trying');
      } finally {
        await without.close();
      }
    });
  }

  test('HTTP and WebSocket visitors through the same nginx port', async () => {
    const res = await curlResponse([`http://${labels.web}.localhost:${nginx.port}/echo`]);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).headers['x-forwarded-for'], '127.0.0.1, 127.0.0.1');
    const ws = new WebSocket(`ws://127.0.0.1:${nginx.port}/${labels.web}/ws`);
    await once(ws, 'open');
    ws.send('via nginx');
    assert.equal(((await once(ws, 'message')) as [Buffer])[0].toString(), 'echo via nginx');
    ws.close();
  });
});
