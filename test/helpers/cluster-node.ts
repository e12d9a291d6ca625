import assert from 'node:assert/strict';
import { createRelay, type Relay } from '../../src/relay/relay.js';
import { type CliProcess, startCli } from './processes.js';
import type { Redis } from './redis.js';

export const CLUSTER_SECRET = 'cluster-secret-for-tests-0123456789';

export interface ClusterNode {
  id: string;
  cli: CliProcess;
  port: number;
  /** tcp://127.0.0.1:<port> */
  address: string;
  /** host:port of the admin listener, when asked for. */
  admin: string | undefined;
}

/** A `postern relay` process in cluster mode on `redis`, on an ephemeral loopback port. */
export async function startClusterNode(
  redis: Redis | { url: string },
  id: string,
  options: { secret?: string; admin?: boolean; extra?: string[] } = {},
): Promise<ClusterNode> {
  const cli = startCli(
    [
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--admin',
      options.admin ? '127.0.0.1:0' : 'off',
      '--redis',
      'socketPath' in redis ? redis.socketPath : redis.url,
      '--node-id',
      id,
      '--json',
      ...(options.extra ?? []),
    ],
    { POSTERN_CLUSTER_SECRET: options.secret ?? CLUSTER_SECRET },
  );
  const listening = await cli.nextEvent((e) => e.event === 'listening');
  const address = (listening.listen as string[])[0] as string;
  assert.deepEqual(listening.node, { id, advertise: address });
  return {
    id,
    cli,
    address,
    port: Number(address.split(':').pop()),
    admin: (listening.admin as string | null) ?? undefined,
  };
}

/** In-process relays in cluster mode on `redis`, one per id, each on an ephemeral loopback port. */
export async function startClusterRelays(redis: Redis, ids: string[]): Promise<Relay[]> {
  const relays: Relay[] = [];
  for (const nodeId of ids)
    relays.push(
      await createRelay({
        listen: ['tcp://127.0.0.1:0'],
        redis: redis.socketPath,
        nodeId,
        clusterSecret: CLUSTER_SECRET,
      }),
    );
  return relays;
}
