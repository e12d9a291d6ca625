import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { chooseProxy } from '../src/transport/forward-proxy.js';
import { cleanUp } from './helpers/cleanup.js';
import { curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho } from './helpers/echo.js';
import { type Microsocks, startMicrosocks } from './helpers/microsocks.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { readyWithin } from './helpers/tunnel.js';

describe('an agent behind a real SOCKS5 proxy (microsocks with a password)', () => {
  let origin: Origin;
  let echo: EchoServer;
  let relay: Relay;
  let relayPort: number;
  let socks: Microsocks;
  before(async () => {
    origin = await startOrigin();
    echo = await startTcpEcho();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    relayPort = Number((relay.addresses[0] as string).split(':').pop());
    socks = await startMicrosocks({ user: 'agent', password: 's3cret' });
  });
  after(() =>
    cleanUp(
      () => relay?.close(),
      () => socks?.stop(),
      () => echo?.close(),
      () => origin?.close(),
    ),
  );

  for (const [scheme, proxyScheme] of [
    ['tcp', 'socks5'],
    ['ws', 'socks5h'],
  ] as const) {
    test(`${scheme}:// session through ${proxyScheme}://: HTTP and preflight tunnels work`, async () => {
      const agent = createAgent({
        relay: `${scheme}://localhost:${relayPort}`,
        proxy: `${proxyScheme}://agent:s3cret@127.0.0.1:${socks.port}`,
        key: generateAgentKey(),
        services: [{ target: origin.url }, { name: 'echo', target: echo.target }],
      });
      try {
        const services = await readyWithin(agent);
        const label = (name: string): string => services.find((s) => s.name === name)?.label as string;
        assert.equal(
          (await curlResponse([`http://127.0.0.1:${relayPort}/${label('default')}/echo`])).status,
          200,
        );
        const socket = await connect(`tcp://127.0.0.1:${relayPort}/${label('echo')}?http_preflight=true`);
        socket.write('through socks');
        assert.equal(((await once(socket, 'data')) as [Buffer])[0].toString(), 'through socks');
        socket.destroy();
      } finally {
        await agent.close();
      }
    });
  }

  test('a wrong password: the error names the SOCKS proxy and its refusal, and is retried', async () => {
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${relayPort}`,
      proxy: `socks5://agent:wrong@127.0.0.1:${socks.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      reconnectInitialMs: 50,
      reconnectMaxMs: 100,
    });
    try {
      const signal = AbortSignal.timeout(10_000);
      const [event] = (await once(agent, 'disconnected', { signal })) as [{ reason: string }];
      assert.match(
        event.reason,
        new RegExp(
          `^proxy socks5://127\\.0\\.0\\.1:${socks.port}: refused or failed CONNECT 127\\.0\\.0\\.1:${relayPort}: .*[Aa]uthentication failed`,
        ),
      );
      await once(agent, 'reconnecting', { signal });
      await once(agent, 'disconnected', { signal });
    } finally {
      await agent.close();
    }
  });

  test('ALL_PROXY is the fallback when no protocol-specific proxy is set', () => {
    const env = { ALL_PROXY: 'socks5h://p:1080', HTTPS_PROXY: 'http://h:3128' };
    assert.equal(chooseProxy('relay.example.com', false, undefined, env), 'socks5h://p:1080');
    assert.equal(chooseProxy('relay.example.com', true, undefined, env), 'http://h:3128');
  });
});
