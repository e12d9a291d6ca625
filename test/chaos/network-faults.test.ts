import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type Agent, createAgent } from '../../src/agent/agent.js';
import { generateAgentKey } from '../../src/keys/key-file.js';
import { createRelay, type Relay } from '../../src/relay/relay.js';
import { curl, curlResponse } from '../helpers/curl.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type Origin, sha256OfPattern, startOrigin } from '../helpers/origin.js';
import { readyWithin } from '../helpers/tunnel.js';

/** Short keepalive for tests: a dead session must be found within interval + timeout. */
const KEEPALIVE = { keepaliveIntervalMs: 300, keepaliveTimeoutMs: 700 };
const DEAD_WITHIN_MS = KEEPALIVE.keepaliveIntervalMs + KEEPALIVE.keepaliveTimeoutMs;

/** Downloads with real curl into a file; resolves with the SHA-256 of what arrived (curl must succeed). */
async function downloadDigest(url: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-chaos-'));
  try {
    const res = await curl(['-f', '-o', join(dir, 'body'), url]);
    assert.equal(res.exitCode, 0, res.stderr);
    return createHash('sha256')
      .update(readFileSync(join(dir, 'body')))
      .digest('hex');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('chaos: network faults between agent and relay (a fault proxy on the path)', () => {
  let origin: Origin;
  let relay: Relay;
  let relayPort: number;
  before(async () => {
    origin = await startOrigin();
    relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], ...KEEPALIVE });
    relayPort = Number((relay.addresses[0] as string).split(':').pop());
  });
  after(async () => {
    await relay.close();
    await origin.close();
  });

  async function agentThroughFaults(
    scheme: 'tcp' | 'ws',
  ): Promise<{ agent: Agent; faults: FaultProxy; url: string; lost: number[] }> {
    const faults = await startFaultProxy(relayPort);
    const agent = createAgent({
      relay: `${scheme}://127.0.0.1:${faults.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      connections: 1,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      ...KEEPALIVE,
    });
    const lost: number[] = [];
    agent.on('disconnected', () => lost.push(Date.now()));
    const [service] = await readyWithin(agent);
    return { agent, faults, url: `http://127.0.0.1:${relayPort}/${service?.label}`, lost };
  }

  /** Polls the tunnel until a request succeeds; resolves with the time it took. */
  async function recovery(url: string, since: number, boundMs: number): Promise<number> {
    for (;;) {
      const res = await curlResponse(['--max-time', '2', `${url}/echo`]);
      if (res.status === 200) return Date.now() - since;
      if (Date.now() - since > boundMs)
        assert.fail(`no recovery within ${boundMs} ms (last status ${res.status})`);
      await delay(25);
    }
  }

  for (const scheme of ['tcp', 'ws'] as const) {
    for (const [name, fault, direction] of [
      ["the agent's packets vanish (half-open, no FIN)", { kind: 'blackhole' }, 'up'],
      ["the relay's packets vanish", { kind: 'blackhole' }, 'down'],
      ['the path stalls both ways', { kind: 'stall' }, 'both'],
    ] as const) {
      test(`${scheme}://: ${name}: keepalive finds the dead session within its bound and the agent recovers`, async (t) => {
        const { agent, faults, url, lost } = await agentThroughFaults(scheme);
        try {
          assert.equal((await curlResponse([`${url}/echo`])).status, 200);
          const start = Date.now();
          faults.inject(fault, direction);
          const took = await recovery(url, start, DEAD_WITHIN_MS + 3_000);
          assert.ok(
            lost.length > 0 && (lost[0] as number) - start <= DEAD_WITHIN_MS + 250,
            'the agent noticed in time',
          );
          assert.ok(took <= DEAD_WITHIN_MS + 3_000, `recovered in ${took} ms`);
          t.diagnostic(`noticed after ${(lost[0] as number) - start} ms, serving again after ${took} ms`);
        } finally {
          await agent.close();
          await faults.close();
        }
      });
    }

    test(`${scheme}://: a reset path: the agent reconnects at once and nothing hangs`, async (t) => {
      const { agent, faults, url } = await agentThroughFaults(scheme);
      try {
        const start = Date.now();
        faults.resetAll();
        const took = await recovery(url, start, 3_000);
        t.diagnostic(`serving again after ${took} ms`);
      } finally {
        await agent.close();
        await faults.close();
      }
    });

    test(`${scheme}://: 150 ms of delay each way: no false alarm from keepalive, transfers intact`, async () => {
      const { agent, faults, url, lost } = await agentThroughFaults(scheme);
      try {
        faults.injectForAll({ kind: 'delay', delayMs: 150 }, 'both');
        const size = 4 << 20;
        assert.equal(await downloadDigest(`${url}/bytes?n=${size}`), sha256OfPattern(size));
        await delay(DEAD_WITHIN_MS * 2);
        assert.deepEqual(lost, [], 'no session was declared dead');
      } finally {
        await agent.close();
        await faults.close();
      }
    });

    test(`${scheme}://: a throttled uplink (512 KiB/s) under a long download: the session survives, the bytes are whole`, async () => {
      const { agent, faults, url, lost } = await agentThroughFaults(scheme);
      try {
        faults.injectForAll({ kind: 'throttle', bytesPerSecond: 512 << 10 }, 'up');
        const size = 2 << 20;
        assert.equal(await downloadDigest(`${url}/bytes?n=${size}`), sha256OfPattern(size));
        assert.deepEqual(lost, [], 'no session was declared dead while data was flowing');
      } finally {
        await agent.close();
        await faults.close();
      }
    });
  }
});
