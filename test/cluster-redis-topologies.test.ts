import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { type ClusterNode, startClusterNode } from './helpers/cluster-node.js';
import { curlResponse } from './helpers/curl.js';
import { startOrigin } from './helpers/origin.js';
import { type RedisTopology, startRedisCluster, startRedisSentinel } from './helpers/redis-topologies.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/** Two nodes on `topology`, an agent on the first, a visitor on the second. */
async function forwardsThrough(topology: RedisTopology): Promise<void> {
  const origin = await startOrigin();
  const nodes: ClusterNode[] = [];
  try {
    const extra = ['--rate-limit', '1000'];
    nodes.push(
      await startClusterNode(topology, 'a', { extra }),
      await startClusterNode(topology, 'b', { extra }),
    );
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    const agent = createAgent({
      relay: a.address,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const [service] = await readyWithin(agent);
      const url = `http://${service?.label}.localhost:${b.port}/echo`;
      await until(
        async () => (await curlResponse([url])).status === 200,
        'the tunnel through node b',
        10_000,
      );
      const res = await curlResponse([url]);
      assert.equal(JSON.parse(res.body).method, 'GET');
    } finally {
      await agent.close();
    }
    assert.match(a.cli.stderr(), /"msg":"cluster: Redis reachable"/);
  } finally {
    await Promise.all(nodes.map((n) => n.cli.stop()));
    await origin.close();
  }
}

describe('cluster mode on other Redis topologies', () => {
  test('Redis Cluster (three masters): leases, nonces and the rate bucket across slots; a visitor on another node is served', async () => {
    const redis = await startRedisCluster();
    try {
      await forwardsThrough(redis);
    } finally {
      await redis.stop();
    }
  });

  test('Redis Sentinel: nodes find the master through the sentinel', async () => {
    const redis = await startRedisSentinel();
    try {
      await forwardsThrough(redis);
    } finally {
      await redis.stop();
    }
  });

  test('a malformed --redis is one clear line, exit 1', async () => {
    const { startCli } = await import('./helpers/processes.js');
    for (const [url, message] of [
      [
        'http://x:1',
        /--redis http:\/\/x:1: use redis:\/\/, rediss:\/\/, redis-sentinel:\/\/, redis-cluster:\/\/ or a Unix socket path/,
      ],
      ['redis-sentinel://127.0.0.1:1', /name the master/],
      ['redis-cluster://nohostport', /"nohostport" is not host:port/],
    ] as const) {
      const cli = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--admin', 'off', '--redis', url], {
        POSTERN_CLUSTER_SECRET: 'x'.repeat(20),
      });
      assert.equal(await cli.exited, 1, url);
      assert.match(cli.stderr(), message);
      assert.equal(cli.stderr().trim().split('\n').length, 1);
    }
  });
});
