import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Daemon, freePort, requireBinary, startDaemon } from './binaries.js';
import { until } from './wait.js';

const run = promisify(execFile);

export interface RedisTopology {
  /** The --redis URL nodes use. */
  url: string;
  stop(): Promise<void>;
}

function redisArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
}

/** A Redis Cluster of three masters on loopback, created with `redis-cli --cluster create`. */
export async function startRedisCluster(): Promise<RedisTopology> {
  const server = requireBinary('redis-server', 'redis-server');
  const cli = requireBinary('redis-cli', 'redis-tools');
  const dir = mkdtempSync(join(tmpdir(), 'postern-redis-cluster-'));
  const daemons: Daemon[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      ports.push(port);
      daemons.push(
        await startDaemon(
          server,
          [
            ...redisArgs(port, nodeDir),
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
          port,
        ),
      );
    }
    await run(
      cli,
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      {
        timeout: 30_000,
      },
    );
    await until(
      async () => {
        const infos = await Promise.all(ports.map((p) => run(cli, ['-p', String(p), 'cluster', 'info'])));
        return infos.every(({ stdout }) => stdout.includes('cluster_state:ok'));
      },
      'the Redis Cluster to be ok',
      20_000,
    );
  } catch (error) {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    stop: async () => {
      await Promise.all(daemons.map((d) => d.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis master watched by one Sentinel (quorum 1), both on loopback. */
export async function startRedisSentinel(): Promise<RedisTopology> {
  const server = requireBinary('redis-server', 'redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'postern-redis-sentinel-'));
  const masterPort = await freePort();
  const sentinelPort = await freePort();
  const daemons: Daemon[] = [];
  try {
    daemons.push(await startDaemon(server, redisArgs(masterPort, dir), masterPort));
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor postern-main 127.0.0.1 ${masterPort} 1`,
        'sentinel down-after-milliseconds postern-main 2000',
        '',
      ].join('\n'),
    );
    daemons.push(await startDaemon(server, [config, '--sentinel'], sentinelPort));
  } catch (error) {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `redis-sentinel://127.0.0.1:${sentinelPort}/postern-main`,
    stop: async () => {
      await Promise.all(daemons.map((d) => d.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
