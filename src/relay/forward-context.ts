import { BlockList, isIPv6 } from 'node:net';
import { RenewingMap } from '../renewing-collections.js';
import { StallWatch } from '../stream/stall-watch.js';
import type { ClusterContext } from './cluster/cluster-context.js';
import type { RelayMetrics } from './metrics.js';
import type { ResolvedRelayOptions } from './options.js';
import { PasswordCheck } from './password-check.js';
import type { TunnelRegistry } from './registry.js';
import { perAddressPerMinute } from './token-bucket.js';
import type { AccessContext } from './visitor-access.js';

/** Password checks that may wait for one of the two running (beyond: 503 relay_busy). */
const MAX_QUEUED_PASSWORD_CHECKS = 256;

/** What forwarding a visitor's request or connection needs from the relay, shared by every path. */
export interface ForwardContext {
  options: ResolvedRelayOptions;
  registry: TunnelRegistry;
  isTrustedProxy(address: string): boolean;
  /** Aborted when the relay shuts down; waiting requests give up. */
  shutdown: AbortSignal;
  /** When the relay started listening (Date.now()), for the restart grace. */
  startedAt: number;
  metrics: RelayMetrics;
  /** Open streams by visitor address (only addresses with some open). */
  streamsByVisitor: RenewingMap<string, number>;
  /** Cuts visitors that stop taking bytes. */
  stalls: StallWatch;
  /** Shared by every tunnel's visitor access checks. */
  access: AccessContext;
  /** Set in cluster mode: where tunnels held by other nodes are found and reached. */
  cluster: ClusterContext | undefined;
}

export function createForwardContext(parts: {
  options: ResolvedRelayOptions;
  registry: TunnelRegistry;
  metrics: RelayMetrics;
  shutdown: AbortSignal;
}): ForwardContext {
  const { options } = parts;
  const trusted = new BlockList();
  const family = (address: string): 'ipv4' | 'ipv6' => (isIPv6(address) ? 'ipv6' : 'ipv4');
  for (const address of options.trustedProxies) trusted.addAddress(address, family(address));
  return {
    ...parts,
    isTrustedProxy: (address) => options.trustedProxies.length > 0 && trusted.check(address, family(address)),
    startedAt: Date.now(),
    stalls: new StallWatch(options.stallTimeoutMs),
    streamsByVisitor: new RenewingMap(),
    access: {
      ipv6PrefixBits: options.ipv6PrefixBits,
      passwords: new PasswordCheck(MAX_QUEUED_PASSWORD_CHECKS),
      passwordAttempts:
        options.passwordAttemptsPerMinutePerIp > 0
          ? perAddressPerMinute(options.passwordAttemptsPerMinutePerIp)
          : undefined,
    },
    cluster: undefined,
  };
}
