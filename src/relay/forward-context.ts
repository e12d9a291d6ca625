import type { RenewingMap } from '../renewing-collections.js';
import type { StallWatch } from '../stream/stall-watch.js';
import type { ClusterContext } from './cluster/cluster-context.js';
import type { RelayMetrics } from './metrics.js';
import type { ResolvedRelayOptions } from './options.js';
import type { TunnelRegistry } from './registry.js';
import type { AccessContext } from './visitor-access.js';

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
