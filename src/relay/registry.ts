import type { AssignedService, ServiceKind } from '../session/protocol.js';
import type { AgentSession } from './agent-session.js';
import type { StreamPeer } from './cluster/node-links.js';
import { TokenBucket } from './token-bucket.js';
import type { VisitorAccess } from './visitor-access.js';

/** One published service, reachable at its label, served by one or more sessions of one key. */
export interface Tunnel {
  label: string;
  name: string;
  kind: ServiceKind;
  keyLabel: string;
  sessions: AgentSession[];
  activeStreams: number;
  /** Streams admitted since the tunnel was first seen (the dashboard's rate). */
  streamsTotal: number;
  bucket: TokenBucket | undefined;
  /** Who may visit, as the latest registration declared it; undefined = everyone. */
  access: VisitorAccess | undefined;
  /** When the last session went away (for retention), or undefined while online. */
  offlineSince: number | undefined;
  /** Set for a tunnel held by another cluster node: the node its streams go to. */
  remote?: StreamPeer;
  /** For such a tunnel: finds a node to send a stream to again when `remote`'s link broke. */
  relocate?: () => Promise<StreamPeer | undefined>;
  waiters: Set<(session: AgentSession | undefined) => void>;
}

export interface RegistryLimits {
  tunnelRetentionMs: number;
  maxWaitingRequestsPerTunnel: number;
  requestsPerSecondPerTunnel: number;
  requestBurstPerTunnel: number;
}

/**
 * Which sessions serve which labels. A tunnel outlives its sessions for `tunnelRetentionMs`, so
 * visitors of a reconnecting agent get 503 (or wait and succeed) rather than 404.
 */
export class TunnelRegistry {
  readonly #tunnels = new Map<string, Tunnel>();
  readonly #limits: RegistryLimits;
  /** Requests waiting for a label no agent has registered yet, by label. */
  readonly #awaitedLabels = new Map<string, Set<(tunnel: Tunnel | undefined) => void>>();
  #awaitingRequests = 0;

  constructor(limits: RegistryLimits) {
    this.#limits = limits;
  }

  get(label: string): Tunnel | undefined {
    return this.#tunnels.get(label);
  }

  get size(): number {
    return this.#tunnels.size;
  }

  /** Visitor requests waiting for an agent now: of a tunnel whose agent is away, or of a label not registered yet. */
  get waitingRequests(): number {
    let waiting = this.#awaitingRequests;
    for (const tunnel of this.#tunnels.values()) waiting += tunnel.waiters.size;
    return waiting;
  }

  tunnels(): IterableIterator<Tunnel> {
    return this.#tunnels.values();
  }

  attach(session: AgentSession, service: AssignedService, now: number): void {
    let tunnel = this.#tunnels.get(service.label);
    if (tunnel === undefined || tunnel.kind !== service.kind) {
      tunnel = {
        label: service.label,
        name: service.name,
        kind: service.kind,
        keyLabel: session.keyLabel,
        sessions: [],
        activeStreams: 0,
        streamsTotal: 0,
        bucket:
          this.#limits.requestsPerSecondPerTunnel > 0
            ? new TokenBucket(
                this.#limits.requestsPerSecondPerTunnel,
                this.#limits.requestBurstPerTunnel,
                now,
              )
            : undefined,
        access: undefined,
        offlineSince: undefined,
        waiters: tunnel?.waiters ?? new Set(),
      };
      this.#tunnels.set(service.label, tunnel);
    }
    // The newest registration's rules apply: an agent restarted with other rules gets them at once.
    tunnel.access = session.access.get(service.name);
    tunnel.sessions.push(session);
    tunnel.offlineSince = undefined;
    for (const wake of tunnel.waiters) wake(session);
    tunnel.waiters.clear();
    for (const wake of this.#awaitedLabels.get(service.label) ?? []) wake(tunnel);
  }

  /**
   * Waits up to `timeoutMs` for a label that no agent has registered yet (after a relay restart,
   * its agent may be on its way back). Resolves undefined on timeout, when `abort` fires, or at
   * once when as many requests as one tunnel may hold already wait for unknown labels.
   */
  waitForLabel(label: string, timeoutMs: number, abort: AbortSignal): Promise<Tunnel | undefined> {
    if (
      timeoutMs <= 0 ||
      this.#awaitingRequests >= this.#limits.maxWaitingRequestsPerTunnel ||
      abort.aborted
    ) {
      return Promise.resolve(undefined);
    }
    const waiters = this.#awaitedLabels.get(label) ?? new Set();
    this.#awaitedLabels.set(label, waiters);
    this.#awaitingRequests++;
    return new Promise((resolve) => {
      const done = (tunnel: Tunnel | undefined): void => {
        clearTimeout(timer);
        abort.removeEventListener('abort', onAbort);
        waiters.delete(done);
        if (waiters.size === 0) this.#awaitedLabels.delete(label);
        this.#awaitingRequests--;
        resolve(tunnel);
      };
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      abort.addEventListener('abort', onAbort, { once: true });
      waiters.add(done);
    });
  }

  detach(session: AgentSession, now: number): void {
    for (const service of session.services) {
      const tunnel = this.#tunnels.get(service.label);
      if (tunnel === undefined) continue;
      tunnel.sessions = tunnel.sessions.filter((s) => s !== session);
      if (tunnel.sessions.length === 0) tunnel.offlineSince = now;
    }
  }

  /** The usable session with the fewest open streams, if any. */
  pickSession(tunnel: Tunnel): AgentSession | undefined {
    let best: AgentSession | undefined;
    for (const session of tunnel.sessions) {
      if (session.usable && (best === undefined || session.activeStreams < best.activeStreams))
        best = session;
    }
    return best;
  }

  /**
   * Waits up to `timeoutMs` for a session of `tunnel` to (re)appear. Resolves undefined on timeout,
   * when too many requests already wait, or when `abort` fires (the visitor went away).
   */
  waitForSession(tunnel: Tunnel, timeoutMs: number, abort: AbortSignal): Promise<AgentSession | undefined> {
    if (timeoutMs <= 0 || tunnel.waiters.size >= this.#limits.maxWaitingRequestsPerTunnel || abort.aborted) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      const done = (session: AgentSession | undefined): void => {
        clearTimeout(timer);
        abort.removeEventListener('abort', onAbort);
        tunnel.waiters.delete(done);
        resolve(session);
      };
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      abort.addEventListener('abort', onAbort, { once: true });
      tunnel.waiters.add(done);
    });
  }

  /** Forgets tunnels offline for longer than the retention. */
  sweep(now: number): void {
    for (const [label, tunnel] of this.#tunnels) {
      if (
        tunnel.offlineSince !== undefined &&
        now - tunnel.offlineSince > this.#limits.tunnelRetentionMs &&
        tunnel.waiters.size === 0
      ) {
        this.#tunnels.delete(label);
      }
    }
  }

  /** Wakes every waiting request with no session (used on shutdown). */
  releaseWaiters(): void {
    for (const tunnel of this.#tunnels.values()) {
      for (const wake of tunnel.waiters) wake(undefined);
      tunnel.waiters.clear();
    }
    for (const waiters of [...this.#awaitedLabels.values()]) for (const wake of [...waiters]) wake(undefined);
  }
}
