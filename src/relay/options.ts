import { type Defined, withoutUndefined } from '../defined.js';
import { OptionError } from '../errors.js';
import type { Logger } from '../log.js';
import { sessionWindows } from '../mux/windows.js';
import type { VerifiedRegistration } from '../session/registration.js';
import { DEFAULT_TLS_RELOAD_INTERVAL_MS } from '../transport/tls-files.js';

/** Options of `createRelay()`. Every field is optional; DEFAULT_RELAY_OPTIONS holds the defaults. */
export interface RelayOptions {
  /** Connection strings to listen on (tcp://, tcps://, unix://). Default ['tcp://127.0.0.1:0']. */
  listen?: string[] | undefined;
  /** PEM certificate chain file for tcps:// listeners. */
  tlsCert?: string | undefined;
  /** PEM private key file for tcps:// listeners. */
  tlsKey?: string | undefined;
  /** How often the certificate and key files are checked; a change applies to new connections. Default 2 000 ms. */
  tlsReloadIntervalMs?: number | undefined;
  /**
   * Serve everything under this path (`/tunnel`: agents at /tunnel/_postern/agent, path routing at
   * /tunnel/<label>/…), for a relay behind an ingress on a shared port. Default '' (the root).
   */
  basePath?: string | undefined;
  /** Tunnels are `<label>.<domain>`. Default 'localhost'. */
  domain?: string | undefined;
  /**
   * How visitors reach the relay, used to tell agents their URLs, e.g. 'https://example.com' (then
   * URLs are https://<label>.example.com/). Default: scheme and port of the first listener.
   */
  publicUrl?: string | undefined;
  /** Accepted clock difference of a registration's timestamp, seconds. Default 60. */
  registrationWindowSeconds?: number | undefined;
  /** Registration nonces remembered at most (replay protection). Default 100 000. */
  maxNonces?: number | undefined;
  /** Registrations per minute from one IP address (burst the same). Default 60. */
  registrationsPerMinutePerIp?: number | undefined;
  /**
   * The per-address limits (registrations, password checks) count IPv6 addresses per prefix of this
   * many bits: one host usually holds a whole /64. 1-128. Default 64.
   */
  ipv6PrefixBits?: number | undefined;
  /**
   * Password checks (HTTP Basic on tunnels that require it; each a salted scrypt) per minute from
   * one visitor address, burst the same; 429 access_rate_limited beyond. Credentials that passed
   * are remembered and not counted. 0 = unlimited. Default 30.
   */
  passwordAttemptsPerMinutePerIp?: number | undefined;
  /**
   * Only keys listed in this file may register (docs/security.md#allowed-keys): a label or public
   * key a line, with optional `names=` and `max-sessions=`. Checked for changes like the TLS files;
   * sessions of keys taken out are closed. Default: every key is admitted.
   */
  allowedKeysFile?: string | undefined;
  /** Sessions one key may hold at once (429 beyond), 0 = unlimited. Default 32. */
  maxSessionsPerKey?: number | undefined;
  /**
   * Tunnels this relay holds at most, online or kept for their retention (503 relay_busy for a
   * registration that would add more), 0 = unlimited. Default 10 000.
   */
  maxTunnels?: number | undefined;
  /** Decides whether a verified registration is admitted: true, or a reason to refuse (403). Default: admit all. */
  admit?: ((registration: VerifiedRegistration, remoteAddress: string) => true | string) | undefined;
  /** PING agents this often, ms. Default 10 000. */
  keepaliveIntervalMs?: number | undefined;
  /** Close an agent session whose PING is unanswered this long, ms. Default 10 000 (dead within 20 s). */
  keepaliveTimeoutMs?: number | undefined;
  /** Answer 504 when the agent sends no response head within this time, ms. Default 30 000. */
  responseTimeoutMs?: number | undefined;
  /** A request for a known tunnel without a live session waits this long for the agent to return, ms. Default 5 000. */
  reconnectWaitMs?: number | undefined;
  /**
   * For this long after the relay starts, a request for an unknown label shaped like an agent's
   * (52 base32 letters) waits `reconnectWaitMs` for its agent to register, then gets 503, not 404:
   * after a restart, agents come back over their reconnect backoff (up to 30 s), ms. Default 30 000.
   */
  restartGraceMs?: number | undefined;
  /** Requests waiting for one tunnel's agent at most (and, together, for unknown labels); more get 503 at once. Default 1 000. */
  maxWaitingRequestsPerTunnel?: number | undefined;
  /** A tunnel whose agent is gone answers 503 (not 404) for this long, ms. Default 600 000 (10 min). */
  tunnelRetentionMs?: number | undefined;
  /** Requests per second per tunnel, 0 = unlimited. Default 0. */
  requestsPerSecondPerTunnel?: number | undefined;
  /** Burst of the per-tunnel rate limit. Default 2 × requestsPerSecondPerTunnel. */
  requestBurstPerTunnel?: number | undefined;
  /** Concurrent streams per tunnel; more get 429. Default 1 000. */
  maxConcurrentStreamsPerTunnel?: number | undefined;
  /**
   * Concurrent streams (requests, WebSockets, TCP connections) one visitor address may hold
   * across all tunnels; more get 429. Behind a trusted proxy, the address it forwards. 0 =
   * unlimited. Default 2 048 (twice a tunnel's limit: one address can fill at most two tunnels).
   */
  maxStreamsPerVisitorIp?: number | undefined;
  /** Largest request body in bytes, 0 = unlimited (bodies stream). Default 0. */
  maxRequestBodyBytes?: number | undefined;
  /** Largest visitor request head in bytes (431 beyond). Default 16 384. */
  maxHeaderSize?: number | undefined;
  /** A visitor must send its whole request head within this time, ms (slowloris). Default 20 000. */
  headersTimeoutMs?: number | undefined;
  /** Idle keep-alive visitor connections are closed after this, ms. Default 5 000. */
  keepAliveTimeoutMs?: number | undefined;
  /**
   * A visitor that takes no bytes of a response (or of a WebSocket or TCP stream) for this long
   * while some wait for it is cut, ms; idle streams with nothing to send are kept. 0 = never.
   * Default 60 000 (nginx's send_timeout).
   */
  stallTimeoutMs?: number | undefined;
  /**
   * Stream receive window towards agents, bytes (64 KiB to 1 GiB): how much of one download may be
   * in flight from the agent. Default 1 MiB.
   */
  streamWindowBytes?: number | undefined;
  /** Session receive window for all streams together, bytes. Default: 4 stream windows, at least 32 MiB. */
  connectionWindowBytes?: number | undefined;
  /** On close(), in-flight requests get this long to finish, ms. Default 10 000. */
  drainTimeoutMs?: number | undefined;
  /** Peer addresses whose X-Forwarded-* headers are trusted and extended. Default none. */
  trustedProxies?: string[] | undefined;
  /**
   * host:port of the admin listener (Prometheus /metrics, /healthz, /readyz); keep it private.
   * Default none (the CLI's default is 127.0.0.1:9090).
   */
  admin?: string | undefined;
  /** Bearer token /metrics requires on the admin listener. Default none. */
  adminToken?: string | undefined;
  /** When the admin address cannot be bound, log a warning and run without it (else: fail to start). Default false. */
  adminOptional?: boolean | undefined;
  /**
   * Keep Prometheus metrics (`relay.metrics.registry`, the admin listener's /metrics). Default true;
   * false never loads prom-client (a relay nobody scrapes starts ~40 ms sooner) and takes no `admin`.
   */
  metrics?: boolean | undefined;
  /**
   * Cluster mode (docs/cluster.md): the Redis several relay nodes share, `redis://[user:pass@]host:port[/db]`,
   * `rediss://…` or `redis+unix:///path/redis.sock` … Default none: a single node.
   */
  redis?: string | undefined;
  /** This node's id in the cluster (letters, digits, . _ -). Default: hostname-pid. */
  nodeId?: string | undefined;
  /** Where other nodes reach this one, tcp://host:port. Default: the first tcp:// listener as bound. */
  advertise?: string | undefined;
  /** The secret every node of the cluster shares (at least 16 characters); required with `redis`. */
  clusterSecret?: string | undefined;
  /**
   * Automatic HTTPS (docs/acme.md): the ACME account's contact address. With it, tcps://
   * listeners get their certificates from the CA instead of tlsCert/tlsKey. Default none.
   */
  acmeEmail?: string | undefined;
  /** The CA's ACME directory URL. Default Let's Encrypt production. */
  acmeDirectory?: string | undefined;
  /** PEM CA file that signs the ACME server's own HTTPS certificate (private CAs such as pebble). */
  acmeCaFile?: string | undefined;
  /**
   * An executable run (no shell) as `<hook> set|clear <record> <value>` to publish DNS-01 TXT
   * records: then one wildcard certificate `*.<domain>` plus `<domain>` serves every tunnel.
   */
  acmeDnsHook?: string | undefined;
  /** How names are proven without a DNS hook: 'tls-alpn-01' (on a tcps listener) or 'http-01' (on a tcp one). Default 'tls-alpn-01'. */
  acmeChallenge?: 'tls-alpn-01' | 'http-01' | undefined;
  /** ACME orders at once (more wait, up to 32 names). Default 2. */
  acmeMaxOrders?: number | undefined;
  /** A name whose order failed waits this long before the next, doubling per failure up to a day, ms. Default 300 000. */
  acmeRetryAfterFailureMs?: number | undefined;
  /** How often certificates are checked for renewal (due two thirds into their lifetime), ms. Default 3 600 000. */
  acmeRenewCheckIntervalMs?: number | undefined;
  /**
   * Where the ACME account key and certificates (required with acmeEmail, except in cluster mode:
   * Redis keeps them) and the subdomain claims are kept (files 0600). Without it claims last as long
   * as the process.
   */
  stateDir?: string | undefined;
  /** The clock certificate validity and renewal are judged by, ms since the epoch. Default Date.now. */
  clock?: (() => number) | undefined;
  /**
   * Who may ask for a subdomain of their own (`--subdomain`): 'open' (any key, first come), 'reserved'
   * (only names the allowed-keys file lists for the key as `subdomains=`), 'off'. Default 'open'.
   */
  subdomains?: 'open' | 'reserved' | 'off' | undefined;
  /** A subdomain unused (no live tunnel) this long goes back to whoever asks first, ms. Default 30 days. */
  subdomainKeepMs?: number | undefined;
  /** Where the relay logs. Default: silent. */
  logger?: Logger | undefined;
}

/** Let's Encrypt's production directory, the CA unless acmeDirectory says otherwise. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

type OptionalRelayOption =
  | 'tlsCert'
  | 'tlsKey'
  | 'publicUrl'
  | 'admin'
  | 'adminToken'
  | 'allowedKeysFile'
  | 'redis'
  | 'nodeId'
  | 'advertise'
  | 'clusterSecret'
  | 'acmeEmail'
  | 'acmeCaFile'
  | 'acmeDnsHook'
  | 'stateDir';

export type ResolvedRelayOptions = Defined<Omit<RelayOptions, OptionalRelayOption>> &
  Pick<RelayOptions, OptionalRelayOption>;

export const DEFAULT_RELAY_OPTIONS = {
  listen: ['tcp://127.0.0.1:0'],
  tlsReloadIntervalMs: DEFAULT_TLS_RELOAD_INTERVAL_MS,
  basePath: '',
  domain: 'localhost',
  registrationWindowSeconds: 60,
  maxNonces: 100_000,
  maxSessionsPerKey: 32,
  maxTunnels: 10_000,
  registrationsPerMinutePerIp: 60,
  ipv6PrefixBits: 64,
  passwordAttemptsPerMinutePerIp: 30,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 10_000,
  responseTimeoutMs: 30_000,
  reconnectWaitMs: 5_000,
  restartGraceMs: 30_000,
  maxWaitingRequestsPerTunnel: 1_000,
  tunnelRetentionMs: 600_000,
  requestsPerSecondPerTunnel: 0,
  maxConcurrentStreamsPerTunnel: 1_000,
  maxStreamsPerVisitorIp: 2_048,
  maxRequestBodyBytes: 0,
  maxHeaderSize: 16_384,
  headersTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
  stallTimeoutMs: 60_000,
  streamWindowBytes: 1 << 20,
  drainTimeoutMs: 10_000,
  trustedProxies: [] as string[],
  adminOptional: false,
  metrics: true,
  acmeDirectory: LETS_ENCRYPT_DIRECTORY,
  acmeChallenge: 'tls-alpn-01' as 'tls-alpn-01' | 'http-01',
  acmeMaxOrders: 2,
  acmeRetryAfterFailureMs: 300_000,
  acmeRenewCheckIntervalMs: 3_600_000,
  clock: Date.now as () => number,
  subdomains: 'open' as 'open' | 'reserved' | 'off',
  subdomainKeepMs: 30 * 86_400_000,
} as const;

export function resolveRelayOptions(options: RelayOptions, logger: Logger): ResolvedRelayOptions {
  const merged = {
    ...DEFAULT_RELAY_OPTIONS,
    admit: () => true as const,
    logger,
    ...withoutUndefined(options),
  };
  if (!Number.isInteger(merged.ipv6PrefixBits) || merged.ipv6PrefixBits < 1 || merged.ipv6PrefixBits > 128)
    throw new OptionError(`the IPv6 prefix must be 1 to 128 bits (got ${merged.ipv6PrefixBits})`);
  if (merged.acmeEmail !== undefined) checkAcme(merged);
  if (!merged.metrics && merged.admin !== undefined)
    throw new OptionError('the admin listener serves /metrics: it needs metrics (not metrics: false)');
  const windows = sessionWindows(merged.streamWindowBytes);
  return {
    ...merged,
    listen: [...merged.listen],
    trustedProxies: [...merged.trustedProxies],
    domain: merged.domain.toLowerCase().replace(/\.$/, ''),
    basePath: normalizeBasePath(merged.basePath),
    requestBurstPerTunnel:
      options.requestBurstPerTunnel ?? Math.max(1, 2 * merged.requestsPerSecondPerTunnel),
    connectionWindowBytes: options.connectionWindowBytes ?? windows.session,
  };
}

function checkAcme(options: {
  acmeEmail?: string | undefined;
  tlsCert?: string | undefined;
  stateDir?: string | undefined;
  redis?: string | undefined;
  domain: string;
  listen: readonly string[];
}): void {
  if (!/^[^@\s]+@[^@\s]+$/.test(options.acmeEmail ?? ''))
    throw new OptionError(`--acme-email "${options.acmeEmail}" is not an email address`);
  if (options.tlsCert !== undefined)
    throw new OptionError(
      '--acme-email and --tls-cert are alternatives: certificates come from one or the other',
    );
  // A cluster keeps its ACME state in Redis.
  if (options.stateDir === undefined && options.redis === undefined)
    throw new OptionError('--acme-email needs --state-dir');
  const domain = options.domain.toLowerCase();
  if (domain === 'localhost' || !domain.includes('.') || domain.endsWith('.localhost'))
    throw new OptionError(`--acme-email needs --domain set to a public DNS name (got "${domain}")`);
  if (!options.listen.some((cs) => cs.startsWith('tcps://')))
    throw new OptionError('--acme-email needs a tcps:// listener to serve the certificates on');
}

/** '/tunnel/' → '/tunnel'; '' or '/' → ''. Refuses anything but plain path segments. */
export function normalizeBasePath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(trimmed)) {
    throw new OptionError(`base path "${path}" must be like /tunnel (segments of letters, digits, . _ ~ -)`);
  }
  return trimmed;
}
