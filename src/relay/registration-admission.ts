import { keyLabelFromX } from '../keys/label.js';
import { registeredLabel, serviceSetup, type VerifiedRegistration } from '../session/registration.js';
import type { AgentSession } from './agent-session.js';
import { type AllowedKeys, checkAllowedKey, type KeyRefusal } from './allowed-keys.js';
import type { ClusterDirectory } from './cluster/directory.js';
import type { TunnelRegistry } from './registry.js';
import { VisitorAccess } from './visitor-access.js';

/**
 * Whether a verified registration may become a session: the allowed-keys list, the per-key
 * session limit, services of the same key live with another setup (here or, in cluster mode, on
 * another node), and the relay's tunnel limit. Registrations admitted but still proving their
 * key count as sessions and tunnels, so a burst of them cannot pass a limit together.
 */
export class RegistrationAdmission {
  /** Undefined: every key is admitted (no allowed-keys file). */
  allowedKeys: AllowedKeys | undefined;
  readonly #limits: { maxSessionsPerKey: number; maxTunnels: number };
  readonly #registry: TunnelRegistry;
  readonly #sessions: ReadonlySet<AgentSession>;
  readonly #directory: () => ClusterDirectory | undefined;
  readonly #servesTls: () => boolean;
  /** Admitted registrations still proving their key, by key label. */
  readonly #pendingByKey = new Map<string, number>();
  /** The tunnel labels those registrations would attach. */
  readonly #pendingLabels = new Map<string, number>();

  constructor(parts: {
    limits: { maxSessionsPerKey: number; maxTunnels: number };
    registry: TunnelRegistry;
    sessions: ReadonlySet<AgentSession>;
    /** The cluster's directory once this node joined one. */
    directory: () => ClusterDirectory | undefined;
    /** Whether the relay has a tcps listener (TLS passthrough needs one). */
    servesTls: () => boolean;
  }) {
    this.#servesTls = parts.servesTls;
    this.#limits = parts.limits;
    this.#registry = parts.registry;
    this.#sessions = parts.sessions;
    this.#directory = parts.directory;
  }

  /** Whether the allowed-keys list (if any) names this public key; checked before anything else. */
  keyListed(keyX: string): boolean {
    return this.allowedKeys === undefined || this.allowedKeys.has(keyLabelFromX(keyX));
  }

  /** The live sessions the current allowed-keys list no longer permits (key gone or names narrowed). */
  *disallowedSessions(): Iterable<AgentSession> {
    const keys = this.allowedKeys;
    if (keys === undefined) return;
    for (const session of this.#sessions) {
      const names = keys.get(session.keyLabel)?.names;
      if (
        !keys.has(session.keyLabel) ||
        (names !== undefined && session.services.some((s) => !names.has(s.name)))
      )
        yield session;
    }
  }

  /** True, or why the registration is refused. */
  admit(registration: VerifiedRegistration): true | KeyRefusal {
    const label = keyLabelFromX(registration.key);
    let open = this.#pendingByKey.get(label) ?? 0;
    for (const session of this.#sessions)
      if (session.keyLabel === label && session.state !== 'closed') open++;
    const verdict = checkAllowedKey(this.allowedKeys, registration, open, this.#limits.maxSessionsPerKey);
    if (verdict !== true) return verdict;
    const unsupported = this.#unsupported(registration);
    if (unsupported !== undefined) return { error: 'service_unsupported', reason: unsupported };
    const conflict = registration.replace ? undefined : this.#localConflict(registration, label);
    if (conflict !== undefined) return { error: 'registration_conflict', reason: conflict };
    const max = this.#limits.maxTunnels;
    const isNew = (tunnel: string): boolean =>
      this.#registry.get(tunnel) === undefined && !this.#pendingLabels.has(tunnel);
    const added = registration.services.filter((s) => isNew(registeredLabel(registration, s.name)));
    let pendingNew = 0;
    for (const tunnel of this.#pendingLabels.keys())
      if (this.#registry.get(tunnel) === undefined) pendingNew++;
    if (max > 0 && added.length > 0 && this.#registry.size + pendingNew + added.length > max)
      return {
        error: 'relay_busy',
        reason: `this relay holds its limit of ${max} tunnels; try another relay or later`,
      };
    return true;
  }

  /** Why a service cannot be served as asked: TLS passthrough needs a tcps listener and no HTTP rules. */
  #unsupported(registration: VerifiedRegistration): string | undefined {
    for (const service of registration.services) {
      if (service.kind !== 'tls') continue;
      if (!this.#servesTls())
        return `service "${service.name}" passes TLS through, and this relay has no tcps:// listener`;
      const rules = registration.access[service.name];
      const plaintext = rules === undefined ? [] : new VisitorAccess(rules).kinds.filter((k) => k !== 'ip');
      if (plaintext.length > 0)
        return `service "${service.name}" passes TLS through: the relay never sees its HTTP, so its ${plaintext.join(', ')} rules cannot apply (IP rules can)`;
    }
    return undefined;
  }

  /** Counts an admitted registration against its key's and the relay's limits until the returned function is called. */
  holdPending(registration: VerifiedRegistration): () => void {
    const key = keyLabelFromX(registration.key);
    // A default service's label is the key's own label: two maps, so the two counts stay apart.
    const held: [Map<string, number>, string][] = [
      [this.#pendingByKey, key],
      ...registration.services.map((s): [Map<string, number>, string] => [
        this.#pendingLabels,
        registeredLabel(registration, s.name),
      ]),
    ];
    for (const [counts, name] of held) counts.set(name, (counts.get(name) ?? 0) + 1);
    let holding = true;
    return () => {
      if (!holding) return;
      holding = false;
      for (const [counts, name] of held) {
        const left = (counts.get(name) ?? 1) - 1;
        if (left === 0) counts.delete(name);
        else counts.set(name, left);
      }
    };
  }

  /**
   * The conflict check across the cluster: a service of the same key live on another node with
   * another setup (from the leases in Redis). Undefined without a cluster, or when Redis cannot say.
   */
  async clusterConflict(registration: VerifiedRegistration): Promise<string | undefined> {
    const directory = this.#directory();
    if (directory === undefined || registration.replace) return undefined;
    const keyLabel = keyLabelFromX(registration.key);
    for (const service of registration.services) {
      let location: Awaited<ReturnType<ClusterDirectory['locate']>>;
      try {
        location = await directory.locate(registeredLabel(registration, service.name));
      } catch {
        continue;
      }
      const setup = serviceSetup(registration, service.name);
      if (location?.setups?.some((other) => other !== setup))
        return `service "${service.name}" of key ${keyLabel} is live on node ${location.nodes[0]?.id} with another target or other access rules; stop that agent, or register with --replace to take the service over`;
    }
    return undefined;
  }

  /**
   * Why `registration` may not join its services' live sessions here, if it may not: a service of
   * the same key live with another target or other access rules. A guarded tunnel must never turn
   * open (or point elsewhere) because a second agent of its key started without the same flags.
   */
  #localConflict(registration: VerifiedRegistration, keyLabel: string): string | undefined {
    for (const service of registration.services) {
      const tunnel = this.#registry.get(registeredLabel(registration, service.name));
      // A subdomain live for another key is the claim check's to refuse (subdomain_taken).
      const live = tunnel?.keyLabel === keyLabel ? tunnel.sessions : [];
      const setup = serviceSetup(registration, service.name);
      const other = live.find((s) => s.state === 'ready' && s.setups.get(service.name) !== setup);
      if (other !== undefined)
        return `service "${service.name}" of key ${keyLabel} is live from ${other.remoteAddress} with another target or other access rules; stop that agent, or register with --replace to take the service over`;
    }
    return undefined;
  }
}
