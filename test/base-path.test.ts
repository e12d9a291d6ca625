import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { cleanUp } from './helpers/cleanup.js';
import { curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho } from './helpers/echo.js';
import { type Nginx, startNginx } from './helpers/nginx.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { readyWithin } from './helpers/tunnel.js';

describe('a relay under a base path (--base-path /tunnel)', () => {
  let origin: Origin;
  let relay: Relay;
  let agent: Agent;
  let port: number;
  let label: string;
  before(async () => {
    origin = await startOrigin();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], basePath: '/tunnel/' });
    port = Number((relay.addresses[0] as string).split(':').pop());
    agent = createAgent({
      relay: `tcp://127.0.0.1:${port}/tunnel`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    const [service] = await agent.ready;
    label = service?.label as string;
    assert.match(service?.url ?? '', /^http:\/\/[a-z2-7]{52}\.localhost:\d+\/tunnel\/$/);
  });
  after(() =>
    cleanUp(
      () => agent?.close(),
      () => relay?.close(),
      () => origin?.close(),
    ),
  );

  test('path routing under the base path; the target sees its own path and X-Forwarded-Prefix', async () => {
    const res = await curlResponse([`http://127.0.0.1:${port}/tunnel/${label}/echo?x=1`]);
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body);
    assert.equal(echo.url, '/echo?x=1');
    assert.equal(echo.headers['x-forwarded-prefix'], `/tunnel/${label}`);
  });

  test('Host routing keeps working and strips the base path', async () => {
    const res = await curlResponse([`http://${label}.localhost:${port}/tunnel/echo`]);
    assert.equal(JSON.parse(res.body).url, '/echo');
  });

  test('outside the base path: 404, for requests and upgrades alike', async () => {
    const outside = await curlResponse([`http://127.0.0.1:${port}/${label}/echo`]);
    assert.equal(outside.status, 404);
    assert.match(outside.body, /serves only under \/tunnel\//);
    const agentOutside = createAgent({
      relay: `tcp://127.0.0.1:${port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const [event] = (await new Promise((resolve) =>
        agentOutside.once('disconnected', (e) => resolve([e])),
      )) as [{ reason: string }];
      assert.match(event.reason, /404/);
    } finally {
      await agentOutside.close();
    }
  });

  test('a malformed base path is refused with a clear message', async () => {
    const cli = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--base-path', 'no slash']);
    assert.equal(await cli.exited, 2);
    assert.match(cli.stderr(), /^postern relay: --base-path: "no slash" is not a path like \/tunnel\n$/);
  });
});

describe('a relay under /tunnel/ of an existing site behind real nginx', () => {
  let origin: Origin;
  let echo: EchoServer;
  let relay: Relay;
  let nginx: Nginx;
  before(async () => {
    origin = await startOrigin();
    origin.server.on('upgrade', (req, socket, head) => {
      new WebSocketServer({ noServer: true }).handleUpgrade(req, socket, head, (ws) =>
        ws.on('message', (data) => ws.send(`echo ${data}`)),
      );
    });
    echo = await startTcpEcho();
    relay = await createRelay({
      listen: ['tcp://127.0.0.1:0'],
      basePath: '/tunnel',
      trustedProxies: ['127.0.0.1'],
    });
    const relayPort = Number((relay.addresses[0] as string).split(':').pop());
    nginx = await startNginx(relayPort, relayPort);
  });
  after(() =>
    cleanUp(
      () => nginx?.stop(),
      () => relay?.close(),
      () => echo?.close(),
      () => origin?.close(),
    ),
  );

  for (const scheme of ['tcp', 'ws'] as const) {
    test(`${scheme}:// agent via the sub-path: HTTP, WebSocket and preflight tunnels, the site's own / untouched`, async () => {
      const site = `127.0.0.1:${nginx.subPathPort}`;
      const agent = createAgent({
        relay: `${scheme}://${site}/tunnel`,
        key: generateAgentKey(),
        services: [{ target: origin.url }, { name: 'echo', target: echo.target }],
      });
      try {
        const services = await readyWithin(agent);
        const label = (name: string): string => services.find((s) => s.name === name)?.label as string;
        const res = await curlResponse([`http://${site}/tunnel/${label('default')}/echo?x=1`]);
        assert.equal(res.status, 200);
        const seen = JSON.parse(res.body);
        assert.equal(seen.url, '/echo?x=1');
        assert.equal(seen.headers['x-forwarded-prefix'], `/tunnel/${label('default')}`);
        assert.equal((await curlResponse([`http://${site}/`])).body, 'the existing site\n');

        const ws = new WebSocket(`ws://${site}/tunnel/${label('default')}/ws`);
        await once(ws, 'open');
        ws.send('under a sub-path');
        assert.equal(((await once(ws, 'message')) as [Buffer])[0].toString(), 'echo under a sub-path');
        ws.close();

        const socket = await connect(`tcp://${site}/tunnel/${label('echo')}?http_preflight=true`);
        socket.write('preflight under a sub-path');
        assert.equal(((await once(socket, 'data')) as [Buffer])[0].toString(), 'preflight under a sub-path');
        socket.destroy();
      } finally {
        await agent.close();
      }
    });
  }
});
