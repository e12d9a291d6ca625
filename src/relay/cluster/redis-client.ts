import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { OptionError } from '../../errors.js';

export type RedisClient = Redis | Cluster;

/** A Redis command that takes longer than this fails (the caller answers 503 rather than hang). */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * A client for `--redis`: `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), a Unix
 * socket path, `redis-sentinel://[user:password@]host:port[,host:port…]/<master>[/db]` (the master
 * Sentinel names, followed through failovers), or `redis-cluster://[user:password@]host:port[,…]`
 * (Redis Cluster, found from any of the seeds). Commands fail fast while Redis is away instead of
 * queueing, and the client reconnects for ever, at most every 2 s.
 */
export function createRedisClient(url: string, options: { queueWhileOffline: boolean }): RedisClient {
  const common: RedisOptions = {
    enableOfflineQueue: options.queueWhileOffline,
    maxRetriesPerRequest: options.queueWhileOffline ? null : 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (times: number) => Math.min(100 * times, 2_000),
    lazyConnect: true,
    enableAutoPipelining: true,
  };
  const multi = /^redis-(sentinel|cluster):\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/([^/?#]*))?(?:\/(\d+))?$/.exec(
    url,
  );
  if (url.startsWith('redis-sentinel://') || url.startsWith('redis-cluster://')) {
    if (multi === null)
      throw new OptionError(
        `--redis ${url}: expected ${url.split(':')[0]}://[user:password@]host:port[,host:port…]${url.startsWith('redis-sentinel') ? '/<master>' : ''}`,
      );
    const [, kind, auth, hostList, master, db] = multi as unknown as [
      string,
      string,
      string | undefined,
      string,
      string | undefined,
      string | undefined,
    ];
    const hosts = hostList.split(',').map((entry) => {
      const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(entry);
      if (match === null) throw new OptionError(`--redis ${url}: "${entry}" is not host:port`);
      return { host: (match[1] ?? match[2]) as string, port: Number(match[3]) };
    });
    const credentials = credentialsOf(auth);
    if (kind === 'cluster')
      return new Cluster(hosts, {
        enableOfflineQueue: options.queueWhileOffline,
        enableAutoPipelining: true,
        lazyConnect: true,
        clusterRetryStrategy: (times: number) => Math.min(100 * times, 2_000),
        redisOptions: { ...common, ...credentials },
      });
    if (master === undefined || master === '')
      throw new OptionError(`--redis ${url}: name the master, redis-sentinel://host:port/<master>`);
    return new Redis({
      ...common,
      ...credentials,
      sentinels: hosts,
      name: decodeURIComponent(master),
      ...(db === undefined ? {} : { db: Number(db) }),
    });
  }
  if (!url.startsWith('redis://') && !url.startsWith('rediss://') && !url.startsWith('/'))
    throw new OptionError(
      `--redis ${url}: use redis://, rediss://, redis-sentinel://, redis-cluster:// or a Unix socket path`,
    );
  return url.startsWith('/') ? new Redis({ ...common, path: url }) : new Redis(url, common);
}

function credentialsOf(auth: string | undefined): { username?: string; password?: string } {
  if (auth === undefined || auth === '') return {};
  const colon = auth.indexOf(':');
  if (colon < 0) return { password: decodeURIComponent(auth) };
  const username = decodeURIComponent(auth.slice(0, colon));
  return { ...(username === '' ? {} : { username }), password: decodeURIComponent(auth.slice(colon + 1)) };
}
