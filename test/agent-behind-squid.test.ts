import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { cleanUp } from './helpers/cleanup.js';
import { curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho, startWebSocketEcho } from './helpers/echo.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type Squid, startSquid } from './helpers/squid.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

describe('an agent behind a real squid that requires Basic proxy auth and allows CONNECT only to the relay', () => {
  let origin: Origin;
  let echo: EchoServer;
  let wsTarget: EchoServer;
  let relay: Relay;
  let relayPort: number;
  let squid: Squid;
  before(async () => {
    origin = await startOrigin();
    echo = await startTcpEcho();
    wsTarget = await startWebSocketEcho();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    relayPort = Number((relay.addresses[0] as string).split(':').pop());
    squid = await startSquid({ users: { agent: 's3cret', rotating: 'rotated' }, connectPort: relayPort });
  });
  after(() =>
    cleanUp(
      () => relay?.close(),
      () => squid?.stop(),
      () => echo?.close(),
      () => wsTarget?.close(),
      () => origin?.close(),
    ),
  );

  for (const scheme of ['tcp', 'ws'] as const) {
    test(`${scheme}:// session through squid: HTTP, WebSocket and preflight TCP tunnels all work`, async () => {
      const agent = createAgent({
        relay: `${scheme}://127.0.0.1:${relayPort}`,
        proxy: `http://agent:s3cret@127.0.0.1:${squid.port}`,
        key: generateAgentKey(),
        services: [
          { target: origin.url },
          { name: 'ws', target: wsTarget.target },
          { name: 'echo', target: echo.target },
        ],
      });
      try {
        const services = await readyWithin(agent);
        const at = (name: string, s = 'http'): string =>
          `${s}://127.0.0.1:${relayPort}/${services.find((x) => x.name === name)?.label}`;
        assert.equal((await curlResponse([`${at('default')}/echo`])).status, 200);

        const ws = new WebSocket(`${at('ws', 'ws')}/`);
        await once(ws, 'open');
        ws.send('through squid');
        assert.equal(((await once(ws, 'message')) as [Buffer])[0].toString(), 'through squid');
        ws.close();

        const socket = await connect(`${at('echo', 'tcp')}?http_preflight=true`);
        socket.write('preflight through squid');
        assert.equal(((await once(socket, 'data')) as [Buffer])[0].toString(), 'preflight through squid');
        socket.destroy();
      } finally {
        await agent.close();
      }
      // The sessions really went through squid as authenticated CONNECT tunnels (logged at their end).
      const tunnelled = new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${relayPort} agent `);
      await until(() => tunnelled.test(squid.accessLog()), 'squid logging the CONNECT tunnels').catch(
        () => undefined,
      );
      assert.match(squid.accessLog(), tunnelled);
    });
  }

  test("a wrong password: an error naming squid's 407, retried with backoff, and success once fixed", async () => {
    const agent = createAgent({
      relay: `ws://127.0.0.1:${relayPort}`,
      proxy: `http://rotating:s3cret@127.0.0.1:${squid.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      connections: 1,
      reconnectInitialMs: 100,
      reconnectMaxMs: 400,
    });
    try {
      const reasons: string[] = [];
      const delays: number[] = [];
      agent.on('disconnected', (event: { reason: string }) => reasons.push(event.reason));
      agent.on('reconnecting', (event: { delayMs: number }) => delays.push(event.delayMs));
      const signal = AbortSignal.timeout(20_000);
      while (reasons.length < 3) await once(agent, 'reconnecting', { signal });
      for (const reason of reasons) {
        assert.equal(
          reason,
          `proxy http://127.0.0.1:${squid.port}: refused CONNECT 127.0.0.1:${relayPort}: HTTP/1.1 407 Proxy Authentication Required`,
        );
      }
      // Full jitter under a doubling cap, never above the configured maximum.
      assert.ok(delays.every((d) => d >= 0 && d <= 400));
      // The proxy's administrator puts the agent's password back: the next retry gets through.
      squid.setPassword('rotating', 's3cret');
      const [service] = await readyWithin(agent);
      assert.equal(
        (await curlResponse([`http://127.0.0.1:${relayPort}/${service?.label}/echo`])).status,
        200,
      );
    } finally {
      await agent.close();
    }
  });

  test('a CONNECT to any other port is refused by squid, and the error quotes its 403', async () => {
    await assert.rejects(
      connect(
        `tcp://127.0.0.1:9?http_preflight=true&proxy=${encodeURIComponent(`http://agent:s3cret@127.0.0.1:${squid.port}`)}`,
      ),
      /refused CONNECT 127\.0\.0\.1:9: HTTP\/1\.1 403 Forbidden/,
    );
  });
});
