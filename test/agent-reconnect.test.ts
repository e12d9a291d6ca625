import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { startTcpForwarder } from './helpers/tcp-forwarder.js';

/** Fast reconnects for tests; the defaults (0.5 s → 30 s) are in docs/cli.md. */
const FAST = { reconnectInitialMs: 100, reconnectMaxMs: 400 };

describe('agent reconnects and the same hostname comes back', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  test('cut the agent connection: the agent reconnects; requests in the gap wait and succeed or get 503, never hang', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], reconnectWaitMs: 3000 });
    const relayPort = Number((relay.addresses[0] as string).split(':').pop());
    const forwarder = await startTcpForwarder(relayPort);
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${forwarder.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      ...FAST,
    });
    try {
      const [service] = await agent.ready;
      const url = `http://${new URL(service?.url as string).hostname}:${relayPort}/echo`;
      assert.equal((await curlResponse([url])).status, 200);
      const reconnected = new Promise((resolve) => agent.once('connected', resolve));
      forwarder.cutAll();
      const during = await Promise.all(
        Array.from({ length: 5 }, () => curlResponse(['--max-time', '10', url])),
      );
      for (const res of during)
        assert.ok(res.status === 200 || res.status === 503, `status ${res.status} exit ${res.exitCode}`);
      await reconnected;
      const res = await curlResponse([url]);
      assert.equal(res.status, 200);
      assert.equal(relay.tunnels()[0]?.label, service?.label);
    } finally {
      await agent.close();
      await forwarder.close();
      await relay.close();
    }
  });

  test('restart the relay on the same port: the agent registers again under the same label', async () => {
    let relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const address = relay.addresses[0] as string;
    const agent = createAgent({
      relay: address,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      ...FAST,
    });
    try {
      const [service] = await agent.ready;
      assert.equal((await curlResponse([`${service?.url}echo`])).status, 200);
      const disconnected = new Promise((resolve) => agent.once('disconnected', resolve));
      await relay.close();
      await disconnected;
      const reconnected = new Promise<{ services: { label: string; url: string }[] }>((resolve) =>
        agent.once('connected', resolve),
      );
      relay = await createRelay({ listen: [address] });
      const again = await reconnected;
      assert.equal(again.services[0]?.label, service?.label);
      assert.equal(again.services[0]?.url, service?.url);
      assert.equal((await curlResponse([`${service?.url}echo`])).status, 200);
    } finally {
      await agent.close();
      await relay.close();
    }
  });

  test('agent process killed with SIGKILL: visitors get 503 promptly (no half-open hang), then 404-free recovery', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-kill-'));
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], reconnectWaitMs: 500 });
    const keyFile = join(dir, 'agent.key');
    try {
      assert.equal(await startCli(['keygen', '--out', keyFile]).exited, 0);
      const start = (): ReturnType<typeof startCli> =>
        startCli(['expose', origin.url, '--relay', relay.addresses[0] as string, '--key', keyFile, '--json']);
      const agent = start();
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const url = `${(ready.services as { url: string }[])[0]?.url}echo`;
      assert.equal((await curlResponse([url])).status, 200);
      await agent.stop('SIGKILL');
      const started = Date.now();
      const res = await curlResponse(['--max-time', '15', url]);
      assert.equal(res.status, 503, `got ${res.status} after ${Date.now() - started} ms`);
      assert.equal(res.headers['postern-error'], 'tunnel_offline');
      const second = start();
      await second.nextEvent((e) => e.event === 'ready');
      assert.equal((await curlResponse([url])).status, 200);
      await second.stop();
    } finally {
      await relay.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
