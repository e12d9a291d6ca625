import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type Agent, createAgent } from '../../src/agent/agent.js';
import { generateAgentKey } from '../../src/keys/key-file.js';
import { localhostLookup } from '../../src/transport/localhost-lookup.js';
import { artifactDir } from '../helpers/browser.js';
import { type ClusterNode, startClusterNode } from '../helpers/cluster-node.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { type Redis, startRedis } from '../helpers/redis.js';
import { readyWithin } from '../helpers/tunnel.js';
import { until } from '../helpers/wait.js';

interface Probe {
  at: number;
  status: number;
  error: string | undefined;
}

/** One GET on a fresh connection: the status and Postern-Error, or the socket error; 3 s at most. */
function probe(port: number, host: string, path = '/echo'): Promise<Probe> {
  return new Promise((resolve) => {
    const at = Date.now();
    const req = get({ host, port, path, agent: false, lookup: localhostLookup, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          at,
          status: res.statusCode ?? 0,
          error: res.headers['postern-error'] as string | undefined,
        }),
      );
      res.on('error', (error) => resolve({ at, status: 0, error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ at, status: 0, error: error.message }));
  });
}

/** Probes `port` every `everyMs` until stopped (and for at most `maxMs`); resolves with every answer. */
function probeLoop(port: number, host: string, everyMs: number, maxMs = 60_000) {
  const results: Probe[] = [];
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + maxMs;
    while (!stopped && Date.now() < deadline) {
      const started = Date.now();
      results.push(await probe(port, host));
      await delay(Math.max(0, everyMs - (Date.now() - started)));
    }
  })();
  return {
    results,
    stop: async () => {
      stopped = true;
      await done;
      return results;
    },
  };
}

const run = promisify(execFile);
const findings: string[] = [];
/** Notes a measured figure; test-results/cluster/faults.md gets every one so far. */
function record(line: string): void {
  findings.push(line);
  writeFileSync(join(artifactDir('cluster'), 'faults.md'), `${findings.join('\n')}\n`);
}

describe('cluster faults (three relay processes, one redis-server)', () => {
  let redis: Redis;
  let origin: Origin;
  let nodes: ClusterNode[];
  let agent: Agent;
  let label: string;
  const host = () => `${label}.localhost`;

  before(async () => {
    redis = await startRedis();
    origin = await startOrigin();
    nodes = await Promise.all(['a', 'b', 'c'].map((id) => startClusterNode(redis, id, { admin: true })));
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    agent = createAgent({
      relay: [a.address, b.address],
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    label = (await readyWithin(agent))[0]?.label as string;
  });
  after(async () => {
    await agent?.close();
    await Promise.all((nodes ?? []).map((n) => n.cli.stop()));
    await origin?.close();
    await redis?.stop();
  });

  test('SIGKILL the node a visitor was being served through: visitors on another node are served again within 5 s', async () => {
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await until(async () => (await probe(c.port, host())).status === 200, 'the tunnel to answer on node c');
    const loop = probeLoop(c.port, host(), 50);
    await delay(1_000);
    const killedAt = Date.now();
    a.cli.child.kill('SIGKILL');
    await delay(8_000);
    const results = await loop.stop();
    const after = results.filter((r) => r.at >= killedAt);
    const failed = after.filter((r) => r.status !== 200);
    const lastFailure = failed.at(-1);
    const recoveredMs = lastFailure === undefined ? 0 : lastFailure.at - killedAt + 50;
    record(
      `kill -9 of node a: ${after.length} probes on node c after the kill, ${failed.length} failed ` +
        `(${[...new Set(failed.map((f) => `${f.status} ${f.error ?? ''}`.trim()))].join(', ') || 'none'}); ` +
        `served again ${recoveredMs} ms after the kill`,
    );
    assert.ok(recoveredMs < 5_000, `visitors on c served again ${recoveredMs} ms after the kill`);
    assert.ok(
      after.slice(-20).every((r) => r.status === 200),
      'the last second all answered',
    );
    const metrics = await fetch(`http://${c.admin}/metrics`).then((r) => r.text());
    const forwarded = Number(/^postern_forwarded_streams_total\{kind="http"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(forwarded >= results.length - failed.length, `c counted ${forwarded} forwarded streams`);
    // The agent's session on the dead node moved to the next address (b): it has two there.
    await until(
      async () => {
        const status = (await fetch(`http://${(nodes[1] as ClusterNode).admin}/api/status`).then((r) =>
          r.json(),
        )) as {
          tunnels: { label: string; sessions: number }[];
        };
        return status.tunnels.some((t) => t.label === label && t.sessions === 2);
      },
      'both agent sessions on node b',
      10_000,
    );
  });

  test('redis-server stopped under load: local tunnels serve on with no failure, remote ones get 503, all back after a restart', async () => {
    const [, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ready = async (node: ClusterNode) => (await fetch(`http://${node.admin}/readyz`)).status;
    type Status = { cluster: { node: string; redis: string; nodes: { id: string }[] } };
    const status = async () => (await fetch(`http://${c.admin}/api/status`).then((r) => r.json())) as Status;
    const first = await status();
    assert.deepEqual([first.cluster.node, first.cluster.redis], ['c', 'reachable']);
    // b and c are listed (a, killed, until its record expires within 30 s).
    await until(
      async () => {
        const ids = (await status()).cluster.nodes.map((n) => n.id);
        return ids.includes('b') && ids.includes('c');
      },
      'nodes b and c listed',
      15_000,
    );
    assert.equal(await ready(c), 200);
    const local = probeLoop(b.port, host(), 20);
    const remote = probeLoop(c.port, host(), 100);
    await delay(500);
    const killedAt = Date.now();
    await redis.kill();
    await until(async () => (await ready(c)) === 503, '/readyz on c to say 503 without Redis', 5_000);
    await delay(2_000);
    const outageRemote = remote.results.filter((r) => r.at > Date.now() - 1_500);
    const restartedAt = Date.now();
    await redis.restart();
    await until(
      async () => (await probe(c.port, host())).status === 200,
      'the remote tunnel back after the restart',
      15_000,
    );
    const backMs = Date.now() - restartedAt;
    await delay(500);
    const localResults = await local.stop();
    const remoteResults = await remote.stop();
    assert.equal(await ready(c), 200);
    const localFailures = localResults.filter((r) => r.status !== 200);
    record(
      `redis-server killed for ${restartedAt - killedAt} ms: ${localResults.length} local probes on b, ` +
        `${localFailures.length} failed; remote probes on c during the outage: ` +
        `${[...new Set(outageRemote.map((r) => `${r.status} ${r.error ?? ''}`.trim()))].join(', ')}; ` +
        `remote tunnel back ${backMs} ms after redis-server restarted`,
    );
    assert.deepEqual(localFailures, [], 'local tunnels keep serving');
    const outageLines = c.cli
      .stderr()
      .split('\n')
      .filter((line) => line.includes('cluster: Redis unreachable'));
    assert.equal(outageLines.length, 1, 'one log line for the outage, not one per request');
    assert.ok(
      outageRemote.length > 0 &&
        outageRemote.every((r) => r.status === 503 && r.error === 'cluster_unavailable'),
    );
    const unexpected = remoteResults.filter(
      (r) => r.status !== 200 && !(r.status === 503 && r.error === 'cluster_unavailable'),
    );
    assert.deepEqual(unexpected, [], 'remote visitors get 200 or 503 cluster_unavailable, nothing else');
  });

  test('a lease deleted behind the back of the node holding it is written again by the next renewal', async () => {
    const [, b] = nodes as [ClusterNode, ClusterNode];
    const cli = async (...args: string[]) =>
      (await run('redis-cli', ['-s', redis.socketPath, ...args])).stdout.trim();
    assert.equal(await cli('HEXISTS', `postern:tunnel:${label}`, 'b'), '1');
    const local = probeLoop(b.port, host(), 50);
    const deletedAt = Date.now();
    assert.equal(await cli('DEL', `postern:tunnel:${label}`), '1');
    await until(
      async () => (await cli('HEXISTS', `postern:tunnel:${label}`, 'b')) === '1',
      'the lease back',
      12_000,
    );
    const backMs = Date.now() - deletedAt;
    const results = await local.stop();
    record(
      `lease deleted in Redis: written again by node b after ${backMs} ms; ${results.length} probes on b meanwhile, ${results.filter((r) => r.status !== 200).length} failed`,
    );
    assert.ok(
      results.every((r) => r.status === 200),
      'the node holding it never stopped serving',
    );
  });
});

describe('a cluster-wide rate limit', () => {
  test('--rate-limit 60/min with a burst of 5, requests spread over 3 nodes and an agent on two: the limit holds once', async () => {
    const redis = await startRedis();
    const origin = await startOrigin();
    const limit = ['--rate-limit', '60/min', '--rate-burst', '5'];
    const nodes = await Promise.all(
      ['a', 'b', 'c'].map((id) => startClusterNode(redis, id, { extra: limit })),
    );
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    const agent = createAgent({
      relay: [a.address, b.address],
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const label = (await readyWithin(agent))[0]?.label as string;
      await until(
        async () => (await probe((nodes[2] as ClusterNode).port, `${label}.localhost`)).status === 200,
        'the tunnel on c',
      );
      // Let the bucket fill again (1 token a second, 5 at most).
      await delay(5_500);
      const started = Date.now();
      const results: Probe[] = [];
      for (let i = 0; i < 30; i++)
        results.push(await probe((nodes[i % 3] as ClusterNode).port, `${label}.localhost`));
      const seconds = (Date.now() - started) / 1000;
      const allowed = results.filter((r) => r.status === 200).length;
      const limited = results.filter((r) => r.status === 429 && r.error === 'rate_limited').length;
      record(
        `rate limit 60/min, burst 5: ${allowed} of 30 requests over 3 nodes in ${seconds.toFixed(1)} s allowed, ${limited} got 429`,
      );
      assert.equal(allowed + limited, 30);
      assert.ok(allowed >= 5 && allowed <= 5 + Math.ceil(seconds) + 1, `${allowed} allowed in ${seconds} s`);
    } finally {
      await agent.close();
      await Promise.all(nodes.map((n) => n.cli.stop()));
      await origin.close();
      await redis.stop();
    }
  });
});
