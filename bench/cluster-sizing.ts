// `npm run bench:cluster [-- --tunnels 1000 --streams 1000]`: what one cluster node and Redis hold
// per tunnel and per open stream, measured, and the arithmetic for a million tunnels
// (docs/cluster.md). One relay node in a process of its own (its memory after a full GC), agents
// and visitors in this one, a real redis-server on a Unix socket. Everything stops by itself.
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { get, Agent as HttpAgent } from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis as RedisClient } from 'ioredis';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { localhostLookup } from '../src/transport/localhost-lookup.js';
import { startOrigin } from '../test/helpers/origin.js';
import { startRedis } from '../test/helpers/redis.js';

const { values } = parseArgs({ options: { tunnels: { type: 'string' }, streams: { type: 'string' } } });
const tunnels = Number(values.tunnels ?? 1000);
const streams = Number(values.streams ?? 1000);
const here = dirname(fileURLToPath(import.meta.url));

interface Stats {
  rss: number;
  heapUsed: number;
  external: number;
}

function stats(child: ChildProcess): Promise<Stats> {
  return new Promise((resolve) => {
    child.once('message', (message: { stats: Stats }) => resolve(message.stats));
    child.send('stats');
  });
}

async function redisMemory(redis: RedisClient): Promise<{ bytes: number; keys: number }> {
  const info = await redis.info('memory');
  return {
    bytes: Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0),
    keys: await redis.dbsize(),
  };
}

const redisServer = await startRedis();
const redis = new RedisClient(redisServer.socketPath);
const node = fork(join(here, 'soak-node.js'), ['cluster-relay', redisServer.socketPath], {
  execArgv: ['--expose-gc'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const [{ ready: relayAddress }] = (await once(node, 'message')) as [{ ready: string }];
const port = Number(relayAddress.split(':').pop());
const origin = await startOrigin();
const agents: Agent[] = [];
try {
  await delay(500);
  const before = await stats(node);
  const redisBefore = await redisMemory(redis);
  process.stderr.write(`cluster sizing: ${tunnels} agents, one tunnel and one session each\n`);
  for (let i = 0; i < tunnels; i += 100) {
    const batch = Array.from({ length: Math.min(100, tunnels - i) }, () =>
      createAgent({
        relay: relayAddress,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
        connections: 1,
      }),
    );
    agents.push(...batch);
    await Promise.all(batch.map((agent) => agent.ready));
  }
  await delay(1_000);
  const withTunnels = await stats(node);
  const redisWithTunnels = await redisMemory(redis);

  process.stderr.write(`cluster sizing: ${streams} HTTP requests held open on one tunnel\n`);
  const label = (await (agents[0] as Agent).ready)[0]?.label as string;
  const visitors = new HttpAgent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const held = Array.from(
    { length: streams },
    () =>
      new Promise<void>((resolve) => {
        const req = get(
          {
            host: `${label}.localhost`,
            port,
            path: '/slow?ms=15000',
            agent: visitors,
            lookup: localhostLookup,
          },
          (res) => {
            res.resume();
            res.on('end', resolve);
            res.on('error', () => resolve());
          },
        );
        req.on('error', () => resolve());
      }),
  );
  await delay(4_000);
  const withStreams = await stats(node);
  visitors.destroy();
  await Promise.all(held);

  const per = (a: number, b: number, n: number): string => `${((b - a) / n / 1024).toFixed(1)} KiB`;
  const perTunnelRss = (withTunnels.rss - before.rss) / tunnels;
  const perTunnelHeap = (withTunnels.heapUsed - before.heapUsed) / tunnels;
  const redisPerTunnel = (redisWithTunnels.bytes - redisBefore.bytes) / tunnels;
  const keysPerTunnel = (redisWithTunnels.keys - redisBefore.keys) / tunnels;
  const lines = [
    '| measured on one node | per tunnel (1 agent session) | per open stream (HTTP request in flight) |',
    '|---|---:|---:|',
    `| relay RSS | ${per(before.rss, withTunnels.rss, tunnels)} | ${per(withTunnels.rss, withStreams.rss, streams)} |`,
    `| relay JS heap (after GC) | ${per(before.heapUsed, withTunnels.heapUsed, tunnels)} | ${per(withTunnels.heapUsed, withStreams.heapUsed, streams)} |`,
    `| relay external (buffers) | ${per(before.external, withTunnels.external, tunnels)} | ${per(withTunnels.external, withStreams.external, streams)} |`,
    `| Redis used_memory | ${(redisPerTunnel).toFixed(0)} B | 0 |`,
    `| Redis keys | ${keysPerTunnel.toFixed(2)} | 0 |`,
    '',
    `A million tunnels: ${((perTunnelRss * 1e6) / 2 ** 30).toFixed(1)} GiB of relay RSS in all ` +
      `(${((perTunnelRss * 1e6) / 2 ** 30 / 10).toFixed(1)} GiB a node over 10 nodes; heap alone ${((perTunnelHeap * 1e6) / 2 ** 30).toFixed(1)} GiB), ` +
      `Redis ${((redisPerTunnel * 1e6) / 2 ** 30).toFixed(2)} GiB and ${(keysPerTunnel * 1e6).toLocaleString('en')} keys ` +
      '(registration nonces included: they expire 2 minutes after each registration).',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await Promise.all(agents.map((agent) => agent.close()));
  node.kill('SIGTERM');
  await once(node, 'exit');
  redis.disconnect();
  await origin.close();
  await redisServer.stop();
}
