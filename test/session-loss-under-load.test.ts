import assert from 'node:assert/strict';
import { get, Agent as HttpAgent } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTcpForwarder } from './helpers/tcp-forwarder.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

interface Outcome {
  started: number;
  status: number;
  error?: string;
}

function fetchStatus(url: string, agent: HttpAgent): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    get(url, { agent }, (res) => {
      res.resume();
      res.once('end', () => resolve({ started, status: res.statusCode ?? 0 }));
      res.once('error', (error) => resolve({ started, status: 0, error: error.message }));
    }).once('error', (error) => resolve({ started, status: 0, error: error.message }));
  });
}

describe('two sessions per agent, one socket cut during a steady request load', () => {
  let origin: Origin;
  let relay: Relay;
  before(async () => {
    origin = await startOrigin();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
  });
  after(async () => {
    await relay.close();
    await origin.close();
  });

  for (const scheme of ['tcp', 'ws'] as const) {
    test(`${scheme}:// sessions: no request fails, not even those in flight on the cut one; the session comes back`, async () => {
      const forwarder = await startTcpForwarder(Number((relay.addresses[0] as string).split(':').pop()));
      const agent = createAgent({
        relay: `${scheme}://127.0.0.1:${forwarder.port}`,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
        connections: 2,
        reconnectInitialMs: 50,
        reconnectMaxMs: 200,
      });
      const visitors = new HttpAgent({ keepAlive: true, maxSockets: 8 });
      let stop = false;
      try {
        const [service] = await readyWithin(agent);
        const tunnel = (): { sessions: number } | undefined =>
          relay.tunnels().find((t) => t.label === service?.label);
        await until(() => tunnel()?.sessions === 2, 'two sessions');
        const base = `http://127.0.0.1:${(relay.addresses[0] as string).split(':').pop()}/${service?.label}`;

        // Eight visitors, each one request after another (quick ones and 50 ms ones, so some are
        // always in flight), for a bounded count and time.
        const outcomes: Outcome[] = [];
        const deadline = Date.now() + 20_000;
        const worker = async (index: number): Promise<void> => {
          for (let i = 0; !stop && i < 2_000 && Date.now() < deadline; i++) {
            const path = (i + index) % 3 === 0 ? '/slow?ms=50' : '/echo';
            outcomes.push(await fetchStatus(`${base}${path}`, visitors));
          }
        };
        const workers = Array.from({ length: 8 }, (_, index) => worker(index));

        // Load under way before the cut: wait for the requests themselves, not for a clock.
        await until(() => outcomes.length > 20, 'load before the cut', 20_000);
        let registeredAfterCut = 0;
        const onSession = (): void => {
          registeredAfterCut++;
        };
        relay.on('session', onSession);
        assert.ok(forwarder.cutOne(), 'one agent connection cut');
        const cutAt = Date.now();
        await until(
          () => registeredAfterCut > 0 && tunnel()?.sessions === 2 && forwarder.open === 2,
          'the session to come back',
        );
        relay.off('session', onSession);
        const afterComeback = outcomes.length;
        await until(() => outcomes.length > afterComeback + 20, 'load after the session came back', 20_000);
        stop = true;
        await Promise.all(workers);

        const failed = outcomes.filter((o) => o.status !== 200);
        assert.deepEqual(failed, [], 'every request succeeded');
        assert.ok(outcomes.filter((o) => o.started < cutAt).length > 20, 'load before the cut');
        assert.ok(outcomes.filter((o) => o.started > cutAt).length > 20, 'load after the cut');
      } finally {
        stop = true;
        visitors.destroy();
        await agent.close();
        await forwarder.close();
      }
    });
  }
});
