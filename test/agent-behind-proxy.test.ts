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
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTinyproxy, type Tinyproxy } from './helpers/tinyproxy.js';

describe('an agent behind a real forward proxy (tinyproxy with Basic auth)', () => {
  let origin: Origin;
  let echo: EchoServer;
  let relay: Relay;
  let relayPort: number;
  let proxy: Tinyproxy;
  before(async () => {
    origin = await startOrigin();
    echo = await startTcpEcho();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    relayPort = Number((relay.addresses[0] as string).split(':').pop());
    proxy = await startTinyproxy({ user: 'agent', password: 's3cret', connectPort: relayPort });
  });
  after(() =>
    cleanUp(
      () => relay?.close(),
      () => proxy?.stop(),
      () => echo?.close(),
      () => origin?.close(),
    ),
  );

  test('with the right password: HTTP and preflight TCP tunnels work through the proxy', async () => {
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${relayPort}`,
      proxy: `http://agent:s3cret@127.0.0.1:${proxy.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }, { name: 'echo', target: echo.target }],
    });
    try {
      const services = await agent.ready;
      const web = services.find((s) => s.name === 'default');
      assert.equal((await curlResponse([`${web?.url}echo`])).status, 200);
      const socket = await connect(services.find((s) => s.name === 'echo')?.connect as string);
      socket.write('through the proxy');
      assert.equal(((await once(socket, 'data')) as [Buffer])[0].toString(), 'through the proxy');
      socket.destroy();
    } finally {
      await agent.close();
    }
  });

  test("a wrong password: a clear error quoting the proxy's refusal, retried (not fatal)", async () => {
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${relayPort}`,
      proxy: `http://agent:wrong@127.0.0.1:${proxy.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      reconnectInitialMs: 50,
      reconnectMaxMs: 100,
    });
    try {
      const first = (await once(agent, 'disconnected')) as [{ reason: string }];
      assert.match(
        first[0].reason,
        new RegExp(
          `proxy http://127\\.0\\.0\\.1:${proxy.port}: refused CONNECT 127\\.0\\.0\\.1:${relayPort}: HTTP/1\\.[01] (407 Proxy Authentication Required|401 Unauthorized)`,
        ),
      );
      // tinyproxy answers 401 to wrong credentials (407 only to none); squid answers 407. The
      // error quotes whatever the proxy said.
      await once(agent, 'reconnecting');
      await once(agent, 'disconnected');
    } finally {
      await agent.close();
    }
  });

  test('a CONNECT the proxy does not allow (another port): 403 named', async () => {
    await assert.rejects(
      connect(
        `tcp://127.0.0.1:9?http_preflight=true&proxy=${encodeURIComponent(`http://agent:s3cret@127.0.0.1:${proxy.port}`)}`,
      ),
      /refused CONNECT 127\.0\.0\.1:9: HTTP\/1\.1 403 Access violation/,
    );
  });

  test('proxy choice: explicit first, then HTTPS_PROXY/HTTP_PROXY, NO_PROXY, never the environment for loopback', () => {
    const env = {
      HTTPS_PROXY: 'http://p:3128',
      http_proxy: 'http://q:3128',
      NO_PROXY: 'internal.example, .corp.example',
    };
    assert.equal(chooseProxy('relay.example.com', true, undefined, env), 'http://p:3128');
    assert.equal(chooseProxy('relay.example.com', false, undefined, env), 'http://q:3128');
    assert.equal(chooseProxy('internal.example', true, undefined, env), undefined);
    assert.equal(chooseProxy('a.corp.example', true, undefined, env), undefined);
    assert.equal(chooseProxy('relay.example.com', true, 'http://explicit:1', env), 'http://explicit:1');
    assert.equal(chooseProxy('relay.example.com', true, '', env), undefined);
    assert.equal(chooseProxy('127.0.0.1', true, undefined, env), undefined);
    assert.equal(chooseProxy('x.localhost', true, undefined, env), undefined);
    assert.equal(chooseProxy('relay.example.com', true, undefined, { ...env, NO_PROXY: '*' }), undefined);
  });
});
