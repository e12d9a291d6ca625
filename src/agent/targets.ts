import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import {
  type ConnectionString,
  formatConnectionString,
  hostForUrl,
  parseConnectionString,
} from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { DEFAULT_SERVICE, isSubdomain, SERVICE_NAME } from '../keys/label.js';
import type { AccessRules } from '../session/access.js';
import type { ServiceKind } from '../session/protocol.js';
import type { StallWatch } from '../stream/stall-watch.js';
import type { AddressedServiceOptions } from './options.js';
import { TargetPool } from './target-pool.js';
import type { TrafficObserver } from './traffic-observer.js';
import { accessRulesFor } from './visitor-access.js';

/** A service as the agent runs it: its declared target and the pooled connections to it. */
export interface TargetService {
  name: string;
  kind: ServiceKind;
  target: ConnectionString;
  /** The target as written, for messages. */
  targetText: string;
  hostHeader: 'preserve' | 'rewrite';
  /** Host header for 'rewrite'. */
  targetAuthority: string;
  pool: HttpAgent;
  /** The agent's own keep-alive pool to an http://, https:// or unix:// target, for requests without a body. */
  targetPool: TargetPool | undefined;
  /** For https targets: the name to verify and the CA to trust (also used outside the pool, for upgrades). */
  tlsOptions: TargetTlsOptions;
  connectTimeoutMs: number;
  /** Cuts target connections that stop taking bytes (shared by all services). */
  stalls: StallWatch;
  /** The visitor access rules sent to the relay (hashed), if any. */
  access: AccessRules | undefined;
  /** Told about every exchange (the inspector), if any. */
  observer: TrafficObserver | undefined;
  /** Whether the target answers, as the last exchange found it; changes are reported once. */
  reachability: Reachability;
}

/** A target's state as the agent sees it: down after it could not be reached, up once it answers. */
export class Reachability {
  #down = false;
  readonly #onChange: (reachable: boolean, reason?: string) => void;

  constructor(onChange: (reachable: boolean, reason?: string) => void) {
    this.#onChange = onChange;
  }

  failed(reason: string): void {
    if (this.#down) return;
    this.#down = true;
    this.#onChange(false, reason);
  }

  answered(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#onChange(true);
  }
}

export interface TargetTlsOptions {
  servername?: string;
  ca?: Buffer;
}

/**
 * Validates service options and builds each target's connection pool. A target is fixed here and
 * nothing on a stream can change it: the agent never dials anywhere else (no SSRF).
 */
export function resolveServices(
  services: AddressedServiceOptions[],
  limits: {
    maxIdleTargetSockets: number;
    connectTimeoutMs: number;
    stalls: StallWatch;
    observer: TrafficObserver | undefined;
    /** Told when a service's target stops or starts answering again. */
    onReachability?: (service: string, reachable: boolean, reason?: string) => void;
  },
): TargetService[] {
  if (services.length === 0) throw new OptionError('an agent needs at least one service to expose');
  const seen = new Set<string>();
  return services.map((service) => {
    const { name, kind, target } = checkService(service);
    if (seen.has(name)) throw new OptionError(`service "${name}" is declared twice`);
    seen.add(name);
    const poolOptions = {
      keepAlive: true,
      maxFreeSockets: limits.maxIdleTargetSockets,
      scheduling: 'lifo' as const,
    };
    const tlsOptions: TargetTlsOptions = {};
    if (target.transport === 'https') {
      const servername = target.sni ?? (isIP(target.host) === 0 ? target.host : undefined);
      if (servername !== undefined) tlsOptions.servername = servername;
      if (target.ca !== undefined) tlsOptions.ca = readCa(target.ca, service.target);
    }
    const pool =
      target.transport === 'https'
        ? new HttpsAgent({ ...poolOptions, ...tlsOptions })
        : new HttpAgent(poolOptions);
    const targetAuthority =
      target.transport === 'unix' ? 'localhost' : `${hostForUrl(target.host)}:${target.port}`;
    return {
      name,
      kind,
      target,
      targetText:
        kind === 'tls' ? `tls://${hostForUrl(target.host)}:${target.port}` : formatConnectionString(target),
      hostHeader: service.hostHeader ?? 'preserve',
      targetAuthority,
      pool,
      targetPool:
        kind === 'http'
          ? new TargetPool(target, {
              maxIdle: limits.maxIdleTargetSockets,
              connectTimeoutMs: limits.connectTimeoutMs,
              tls: tlsOptions,
            })
          : undefined,
      tlsOptions,
      connectTimeoutMs: limits.connectTimeoutMs,
      stalls: limits.stalls,
      access: service.access === undefined ? undefined : accessRulesFor(name, service.access),
      observer: limits.observer,
      reachability: new Reachability((reachable, reason) => limits.onReachability?.(name, reachable, reason)),
    };
  });
}

/**
 * Checks one service's name and target without touching the network or the disk: what the agent
 * runs and what `postern config check` reports come from the same rules.
 */
export function checkService(service: AddressedServiceOptions): {
  name: string;
  kind: ServiceKind;
  target: ConnectionString;
} {
  const name = service.name ?? DEFAULT_SERVICE;
  if (!SERVICE_NAME.test(name))
    throw new OptionError(`service name "${name}" must be 1-32 of a-z, 0-9 and "-"`);
  if (service.subdomain !== undefined && !isSubdomain(service.subdomain))
    throw new OptionError(
      `subdomain "${service.subdomain}" of service "${name}" must be one DNS label: 1-63 of a-z, 0-9 and "-", not starting or ending with "-"`,
    );
  // tls://host:port: a TLS server whose bytes pass through the relay untouched (a TCP connection here).
  const passthrough = /^tls:\/\//i.test(service.target);
  const target = parseConnectionString(passthrough ? `tcp://${service.target.slice(6)}` : service.target);
  const kind = service.kind ?? (passthrough ? 'tls' : target.transport === 'tcp' ? 'tcp' : 'http');
  const allowed =
    kind === 'tls'
      ? passthrough
        ? ['tcp']
        : []
      : kind === 'tcp'
        ? ['tcp', 'unix']
        : ['http', 'https', 'unix'];
  if (!allowed.includes(target.transport) || (passthrough && kind !== 'tls')) {
    const hint =
      kind === 'tls'
        ? 'tls://host:port'
        : kind === 'tcp'
          ? 'tcp://host:port or unix://localhost:0?path=…'
          : 'http://, https:// or unix://…?path=';
    throw new OptionError(`target ${service.target} of ${kind} service "${name}": use ${hint}`);
  }
  const plaintextRules = ['basicAuth', 'bearerTokens', 'requireHeaders'] as const;
  if (kind === 'tls' && plaintextRules.some((rule) => service.access?.[rule] !== undefined))
    throw new OptionError(
      `service "${name}" passes TLS through (${service.target}): the relay never sees its HTTP, so only --allow-ip and --deny-ip apply`,
    );
  if (target.path !== '' && target.path !== '/') {
    throw new OptionError(
      `target ${service.target} of service "${name}": a path prefix on the target is not supported; give scheme://host:port`,
    );
  }
  return { name, kind, target };
}

function readCa(path: string, target: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new OptionError(
      `cannot read CA file ${path} of target ${target}: ${(error as NodeJS.ErrnoException).code}`,
    );
  }
}
