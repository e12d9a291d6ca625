import type { Defined } from '../defined.js';
import type { AgentKey } from '../keys/key-file.js';
import type { Logger } from '../log.js';
import type { PreflightHeader } from '../transport/preflight-headers.js';
import type { InProcessHandler } from './in-process-target.js';
import type { TrafficObserver } from './traffic-observer.js';
import type { VisitorAccessOptions } from './visitor-access.js';

export interface ServiceOptions {
  /** Service name, DNS-label friendly; 'default' takes the key's own label. Default 'default'. */
  name?: string | undefined;
  /**
   * Where the agent forwards: http://, https:// or unix://…?path= (HTTP over a Unix socket) for
   * HTTP services; tcp://host:port or unix://…?path= for TCP services; tls://host:port for a TLS
   * server the relay passes visitors' TLS through to (docs/tls-passthrough.md). Or the application
   * itself: an `http.Server` (listening or not) or a request handler (express, a plain function),
   * published without a port of its own (see in-process-target.ts).
   */
  target: string | InProcessHandler;
  /** 'http', 'tcp' or 'tls'. Default: 'tcp' for tcp:// targets, 'tls' for tls://, else 'http'. */
  kind?: 'http' | 'tcp' | 'tls' | undefined;
  /** 'preserve' passes the visitor's Host; 'rewrite' sets it to the target's host:port. Default 'preserve'. */
  hostHeader?: 'preserve' | 'rewrite' | undefined;
  /** Who may visit: Basic users, bearer tokens, required headers, IP allow/deny. Default: everyone. */
  access?: VisitorAccessOptions | undefined;
  /**
   * A name of its own, `<subdomain>.<domain>`, instead of the key-derived label: the relay gives
   * it to the first key that asks and keeps it for that key (docs/security.md#subdomains).
   */
  subdomain?: string | undefined;
}

/** A service whose target is an address (what the CLI and config files give). */
export type AddressedServiceOptions = ServiceOptions & { target: string };

/** Options of `createAgent()`. DEFAULT_AGENT_OPTIONS holds the defaults. */
export interface AgentOptions {
  /**
   * The relay address (see agentRelayAddress: tcp/tcps/unix raw upgrade, ws/wss, http/https as
   * ws/wss), or several addresses of one relay deployment (cluster nodes, or one relay by several
   * routes): session i starts at address i mod n and moves to the next one after each loss.
   */
  relay: string | readonly string[];
  /** The agent's ed25519 identity (loadKeyFile / generateAgentKey). */
  key: AgentKey;
  services: ServiceOptions[];
  /**
   * Forward proxy to the relay, `http://` or `socks5[h]://[user:password@]host:port` ('' for none). Default: the
   * relay address's `proxy=`, else HTTPS_PROXY/HTTP_PROXY unless NO_PROXY (never for loopback).
   */
  proxy?: string | undefined;
  /**
   * Extra headers on the upgrade request to the relay, raw lines (`"Cookie: a=1"`) or [name, value]
   * pairs, for reverse proxies that require a token. Default none.
   */
  headers?: readonly PreflightHeader[] | undefined;
  /** The Host header sent to the relay (and signed). Default: the relay address's host:port. */
  relayHost?: string | undefined;
  /** Sessions kept open at once; losing one loses no tunnel. Default 2, or one per relay address if more. */
  connections?: number | undefined;
  /** First reconnect delay cap, ms (full jitter, doubling). Default 500. */
  reconnectInitialMs?: number | undefined;
  /** Largest reconnect delay cap, ms. Default 30 000. */
  reconnectMaxMs?: number | undefined;
  /** PING the relay this often, ms. Default 10 000. */
  keepaliveIntervalMs?: number | undefined;
  /** A PING unanswered this long closes the session, ms. Default 10 000. */
  keepaliveTimeoutMs?: number | undefined;
  /** Give up connecting to the relay (TCP + TLS) after this, ms. Default 10 000. */
  dialTimeoutMs?: number | undefined;
  /** Give up waiting for the relay's 101 after this, ms. Default 10 000. */
  registrationTimeoutMs?: number | undefined;
  /** Give up connecting to a target after this, ms (then 502). Default 10 000. */
  targetConnectTimeoutMs?: number | undefined;
  /**
   * A target that takes no bytes of a request body (or of a TCP or WebSocket stream) for this long
   * while some wait for it is cut, ms; idle streams are kept. 0 = never. Default 60 000.
   */
  stallTimeoutMs?: number | undefined;
  /** Streams the relay may open at once on one session (announced in the session's SETTINGS). Default 1 000. */
  maxConcurrentStreams?: number | undefined;
  /**
   * Stream receive window, bytes (64 KiB to 1 GiB): how much of one upload may be in flight from
   * the relay. Default 1 MiB.
   */
  streamWindowBytes?: number | undefined;
  /** Session receive window for all streams together, bytes. Default: 4 stream windows, at least 16 MiB. */
  connectionWindowBytes?: number | undefined;
  /** Idle keep-alive connections kept per target. Default 64. */
  maxIdleTargetSockets?: number | undefined;
  /** On close(), open streams get this long to finish, ms. Default 10 000. */
  drainTimeoutMs?: number | undefined;
  /**
   * Take the services over when the relay has them live from another agent of this key with
   * another target or other access rules (those sessions are closed). Without it such a
   * registration is refused with 409 registration_conflict and the agent stops. Default false.
   */
  replace?: boolean | undefined;
  /**
   * `ready` rejects (POSTERN_READY_TIMEOUT, with the last reason) and the agent closes when no relay
   * admitted it within this, ms; 0 = keep trying for ever (the CLI). Default 30 000.
   */
  readyTimeoutMs?: number | undefined;
  /** Aborting it closes the agent; a `ready` still pending rejects with POSTERN_ABORTED. */
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /** Told about every exchange the agent forwards (the inspector's CaptureStore). Default none. */
  observer?: TrafficObserver | undefined;
}

export const DEFAULT_AGENT_OPTIONS = {
  connections: 2,
  reconnectInitialMs: 500,
  reconnectMaxMs: 30_000,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 10_000,
  dialTimeoutMs: 10_000,
  registrationTimeoutMs: 10_000,
  targetConnectTimeoutMs: 10_000,
  stallTimeoutMs: 60_000,
  maxConcurrentStreams: 1_000,
  streamWindowBytes: 1 << 20,
  maxIdleTargetSockets: 64,
  drainTimeoutMs: 10_000,
  replace: false,
  readyTimeoutMs: 30_000,
} as const;

/** Options after defaults; `proxy`, `relayHost` and `headers` stay optional: absent means "the default behaviour". */
export type ResolvedAgentOptions = Defined<
  Omit<AgentOptions, 'proxy' | 'relayHost' | 'headers' | 'observer' | 'signal'>
> &
  Pick<AgentOptions, 'proxy' | 'relayHost' | 'headers' | 'observer' | 'signal'>;
