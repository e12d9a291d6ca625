import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { until } from './helpers/wait.js';

describe('graceful shutdown on SIGTERM', () => {
  let origin: Origin;
  let dir: string;
  before(async () => {
    origin = await startOrigin();
    dir = await mkdtemp(join(tmpdir(), 'postern-drain-'));
  });
  after(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function startPair(
    relayFlags: string[] = [],
    agentFlags: string[] = [],
  ): Promise<{
    relay: ReturnType<typeof startCli>;
    agent: ReturnType<typeof startCli>;
    url: string;
    relayUrl: string;
  }> {
    const relay = startCli([
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--json',
      '--log-level',
      'warn',
      ...relayFlags,
    ]);
    const listening = await relay.nextEvent((e) => e.event === 'listening');
    const address = (listening.listen as string[])[0] as string;
    const agent = startCli(['expose', origin.url, '--relay', address, '--json', ...agentFlags], {
      XDG_CONFIG_HOME: dir,
    });
    const ready = await agent.nextEvent((e) => e.event === 'ready');
    return {
      relay,
      agent,
      url: (ready.services as { url: string }[])[0]?.url as string,
      relayUrl: address.replace('tcp://', 'http://'),
    };
  }

  test('relay: the in-flight request finishes, new connections are refused, exit 0', async () => {
    const { relay, agent, url, relayUrl } = await startPair();
    try {
      const arrived = origin.nextRequest('/slow');
      const inFlight = curlResponse([`${url}slow?ms=1500`]);
      await arrived;
      const exited = relay.stop('SIGTERM');
      await until(
        async () => (await curlResponse(['--max-time', '5', `${relayUrl}/`])).exitCode === 7,
        'connections refused once the relay stopped accepting',
      );
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(res.body, 'slow done');
      assert.equal(await exited, 0);
      await relay.nextEvent((e) => e.event === 'closed').catch(() => undefined);
    } finally {
      await agent.stop();
      await relay.stop();
    }
  });

  test('agent: the in-flight request finishes, then the agent exits 0 and the tunnel goes offline', async () => {
    const { relay, agent, url } = await startPair();
    try {
      const arrived = origin.nextRequest('/slow');
      const inFlight = curlResponse([`${url}slow?ms=1500`]);
      await arrived;
      const exited = agent.stop('SIGTERM');
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(res.body, 'slow done');
      assert.equal(await exited, 0);
    } finally {
      await agent.stop();
      await relay.stop();
    }
  });

  test('relay: GOAWAY reaches the agent; a request outlasting the drain bound is cut, not ended, and the relay exits 0', async (t) => {
    const { relay, agent, url } = await startPair(['--drain-timeout', '800']);
    try {
      const arrived = origin.nextRequest('/slow');
      const inFlight = curlResponse([`${url}slow?ms=5000`]);
      await arrived;
      const stopped = Date.now();
      const exited = relay.stop('SIGTERM');
      const told = await agent.nextEvent((e) => e.event === 'disconnected');
      assert.match(String(told.reason), /GOAWAY/);
      assert.equal(await exited, 0);
      const tookMs = Date.now() - stopped;
      assert.ok(tookMs >= 800 && tookMs < 4_000, `exited after ${tookMs} ms (drain bound 800 ms)`);
      const res = await inFlight;
      assert.notEqual(res.exitCode, 0, 'curl saw the cut request fail');
      assert.notEqual(res.body, 'slow done');
      t.diagnostic(
        `relay exited 0 after ${tookMs} ms; curl exit ${res.exitCode}; agent told: ${told.reason}`,
      );
    } finally {
      await agent.stop();
      await relay.stop();
    }
  });

  test('agent: a request outlasting its drain bound is cut, and the agent exits 0', async (t) => {
    const { relay, agent, url } = await startPair([], ['--drain-timeout', '800']);
    try {
      const arrived = origin.nextRequest('/slow');
      const inFlight = curlResponse([`${url}slow?ms=5000`]);
      await arrived;
      const stopped = Date.now();
      assert.equal(await agent.stop('SIGTERM'), 0);
      const tookMs = Date.now() - stopped;
      assert.ok(tookMs >= 800 && tookMs < 4_000, `exited after ${tookMs} ms (drain bound 800 ms)`);
      const res = await inFlight;
      assert.notEqual(res.body, 'slow done');
      assert.ok(
        res.exitCode !== 0 || res.status >= 500,
        `the visitor saw a failure (curl ${res.exitCode}, ${res.status})`,
      );
      t.diagnostic(`agent exited 0 after ${tookMs} ms; curl exit ${res.exitCode}, status ${res.status}`);
    } finally {
      await agent.stop();
      await relay.stop();
    }
  });
});
