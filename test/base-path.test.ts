import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';

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
  after(async () => {
    await agent.close();
    await relay.close();
    await origin.close();
  });

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
    assert.equal(await cli.exited, 1);
    assert.match(cli.stderr(), /^postern relay: base path "no slash" must be like \/tunnel/);
  });
});
