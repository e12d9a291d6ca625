import { hostname } from 'node:os';
import {
  type ConnectionString,
  formatConnectionString,
  parseConnectionString,
} from '../../connection-string/index.js';
import { OptionError } from '../../errors.js';
import type { ResolvedRelayOptions } from '../options.js';
import { MIN_CLUSTER_SECRET_LENGTH } from './node-auth.js';
import { NODE_ID } from './node-endpoint.js';

/** Who this node is in the cluster, as far as it can be known before the relay listens. */
export interface ClusterIdentity {
  redis: string;
  id: string;
  secret: string;
  /** The --advertise address; undefined: the first tcps:// (else tcp://) listener once bound. */
  advertise: ConnectionString | undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
const NOT_DIALLABLE = 'give an address other nodes can dial, not a wildcard';

/**
 * Checks the cluster options before anything listens, so a node that could never join fails at
 * once and holds no port: a secret long enough, a node id other nodes can name, and an address
 * they can dial. Undefined without `redis` (one node on its own).
 */
export function clusterIdentity(opts: ResolvedRelayOptions): ClusterIdentity | undefined {
  if (opts.redis === undefined) return undefined;
  const secret = opts.clusterSecret ?? '';
  if (secret.length < MIN_CLUSTER_SECRET_LENGTH)
    throw new OptionError(
      `cluster mode needs a cluster secret of at least ${MIN_CLUSTER_SECRET_LENGTH} characters (--cluster-secret)`,
    );
  const id = opts.nodeId ?? `${hostname()}-${process.pid}`;
  if (!NODE_ID.test(id))
    throw new OptionError(`node id "${id}" must be 1-63 of letters, digits, ".", "_" and "-"`);
  if (opts.advertise !== undefined) {
    const advertise = parseConnectionString(opts.advertise);
    if (advertise.transport !== 'tcp' && advertise.transport !== 'tcps')
      throw new OptionError(`--advertise ${opts.advertise}: other nodes dial tcp:// or tcps:// only`);
    if (WILDCARDS.has(advertise.host))
      throw new OptionError(`--advertise ${opts.advertise}: ${NOT_DIALLABLE}`);
    return { redis: opts.redis, id, secret, advertise };
  }
  const listener = defaultAdvertised(opts.listen.map((text) => parseConnectionString(text)));
  if (listener === undefined)
    throw new OptionError(
      'cluster mode needs --advertise tcp://host:port or tcps://host:port, the address other nodes reach this one at',
    );
  if (WILDCARDS.has(listener.host))
    throw new OptionError(`--advertise: this node listens on ${listener.host}; ${NOT_DIALLABLE}`);
  return { redis: opts.redis, id, secret, advertise: undefined };
}

/**
 * The address other nodes dial, as a connection string holding only what they need to dial and
 * verify this one (transport, address, ca=, sni=, pin=). Links carry visitors' requests,
 * credentials and cookies: over TLS whenever the relay has a tcps:// listener, unless told otherwise.
 */
export function advertisedAddress(
  identity: ClusterIdentity,
  bound: readonly string[],
  /** The name to ask for by SNI when none is given (the relay's domain, whose certificate ACME got). */
  defaultSni?: string,
): string {
  const target = identity.advertise ?? defaultAdvertised(bound.map((text) => parseConnectionString(text)));
  if (target === undefined) throw new OptionError('cluster mode needs a tcp:// or tcps:// listener');
  const sni = target.sni ?? (target.transport === 'tcps' ? defaultSni : undefined);
  return formatConnectionString({
    transport: target.transport,
    host: target.host,
    port: target.port,
    path: '',
    ...(target.ca === undefined ? {} : { ca: target.ca }),
    ...(sni === undefined ? {} : { sni }),
    ...(target.pin === undefined ? {} : { pin: target.pin }),
  });
}

function defaultAdvertised(listeners: ConnectionString[]): ConnectionString | undefined {
  return listeners.find((l) => l.transport === 'tcps') ?? listeners.find((l) => l.transport === 'tcp');
}
