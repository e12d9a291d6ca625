import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { type ConnectionString, parseConnectionString } from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { LABEL_LENGTH } from '../keys/label.js';
import { type Logger, silentLogger } from '../log.js';
import { RenewingSet } from '../renewing-collections.js';
import { NonceCache } from '../session/nonce-cache.js';
import { hostName } from '../session/protocol.js';
import { ACME_TLS_ALPN, type ClientHello } from '../transport/client-hello.js';
import { type BoundListener, describeListener, listenOn, type TlsRoute } from '../transport/listen.js';
import type { AcmeIssuer } from './acme/acme-issuer.js';
import type { CertificateManager } from './acme/certificate-manager.js';
import type { CertificateStore } from './acme/certificate-store.js';
import { type AdminServer, startAdminServer } from './admin-server.js';
import {
  type AgentEndpointContext,
  createSessionWebSocketServer,
  handleAgentUpgrade,
} from './agent-endpoint.js';
import type { AgentSession } from './agent-session.js';
import { type AllowedKeys, loadAllowedKeys, watchAllowedKeys } from './allowed-keys.js';
import type { ClusterDirectory } from './cluster/directory.js';
import type { NodeEndpoint } from './cluster/node-endpoint.js';
import { advertisedAddress, type ClusterIdentity, clusterIdentity } from './cluster/node-identity.js';
import type { NodeLinks } from './cluster/node-links.js';
import { createForwardContext, type ForwardContext } from './forward-context.js';
import { forwardHttpRequest } from './http-forward.js';
import { RelayMetrics } from './metrics.js';
import { type RelayOptions, type ResolvedRelayOptions, resolveRelayOptions } from './options.js';
import { RegistrationAdmission } from './registration-admission.js';
import { TunnelRegistry } from './registry.js';
import { classifyRequest, type Destination } from './routing.js';
import { FileSubdomainStore, type SubdomainStore } from './subdomain-store.js';
import { claimSubdomains } from './subdomains.js';
import { forwardTlsPassthrough } from './tls-passthrough.js';
import { perAddressPerMinute } from './token-bucket.js';
import { forwardUpgrade } from './upgrade-forward.js';
import { sendVisitorError, writeRawError } from './visitor-error.js';
import { createVisitorHttpServer } from './visitor-http-server.js';

/** How often tunnels past their retention are forgotten, ms. */
const SWEEP_INTERVAL_MS = 30_000;

export interface TunnelInfo {
  label: string;
  name: string;
  kind: string;
  sessions: number;
  activeStreams: number;
  /** Streams (requests, WebSocket and TCP connections) admitted since the tunnel was first seen. */
  streamsTotal: number;
  url: string;
  /** The visitor checks in force ('basic', 'bearer', 'header', 'ip'); empty = open. */
  access: string[];
  /** The agent sessions serving it. */
  agents: { session: string; remoteAddress: string; activeStreams: number }[];
}

/** What a relay tells its embedder, by event name. */
export interface RelayEvents {
  /** An agent session passed registration and proof of possession and now serves its tunnels. */
  session: [session: AgentSession];
  /** That session is gone (GOAWAY finished, connection lost, key revoked, replaced). */
  'session-closed': [session: AgentSession];
}

/** New paths for Relay.reload(); an undefined one means the path in use. */
export interface RelayReloadFiles {
  allowedKeysFile?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

export interface RelayReload {
  /** What was read again, e.g. 'allowed keys (3 from /etc/postern/allowed-keys)'. */
  reloaded: string[];
  failed: { what: string; message: string }[];
}

export interface Relay extends EventEmitter<RelayEvents> {
  /** The listeners as bound, e.g. ['tcp://127.0.0.1:41234']. */
  readonly addresses: string[];
  /** In cluster mode: this node's id and the address other nodes dial. */
  readonly node: { id: string; advertise: string } | undefined;
  /** The admin listener as bound ('127.0.0.1:9090'), if it runs. */
  readonly adminAddress: string | undefined;
  /** The Prometheus metrics the admin listener serves (docs/operations.md). */
  readonly metrics: RelayMetrics;
  readonly domain: string;
  /** The public URL of a tunnel label. */
  urlFor(label: string): string;
  /** The same tunnel by path, for clients that cannot resolve `*.localhost` (see AssignedService.pathUrl). */
  pathUrlFor(label: string): string;
  tunnels(): TunnelInfo[];
  /**
   * Reads the allowed keys and the TLS certificate again now, from new paths when given (SIGHUP);
   * sessions stay. What did not load keeps its old value and is named in `failed`.
   */
  reload(files?: RelayReloadFiles): RelayReload;
  /** GOAWAY to every agent, lets in-flight requests finish (bounded by drainTimeoutMs), then closes everything. */
  close(): Promise<void>;
  /** close(), for `await using relay = await createRelay(…)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** How often live subdomains are marked seen and unused ones forgotten, ms. */
const SUBDOMAIN_SWEEP_MS = 600_000;
const KEY_SHAPED_LABEL = new RegExp(`^[a-z2-7]{${LABEL_LENGTH}}$`);

/** Names that may wait for an ACME order slot; handshakes for more are refused until one ends. */
const ACME_MAX_WAITING_ORDERS = 32;
/** How long a cluster node may hold the right to order one name (an order takes seconds), ms. */
const ACME_ORDER_LEASE_MS = 180_000;

/** Throws the OptionError createRelay() would, before it listens anywhere. */
export function checkRelayOptions(options: RelayOptions): void {
  clusterIdentity(resolveRelayOptions(options, silentLogger));
}

/** Starts a relay on every `listen` address (docs/architecture.md). */
export async function createRelay(options: RelayOptions = {}): Promise<Relay> {
  const opts = resolveRelayOptions(options, options.logger ?? silentLogger);
  const relay = new RelayServer(opts, clusterIdentity(opts));
  try {
    await relay.start();
  } catch (error) {
    await relay.close();
    throw error;
  }
  return relay;
}

class RelayServer extends EventEmitter<RelayEvents> implements Relay {
  readonly #opts: ResolvedRelayOptions;
  readonly #log: Logger;
  readonly #registry: TunnelRegistry;
  readonly #sessions = new Set<AgentSession>();
  readonly #visitorSockets = new RenewingSet<Socket>();
  readonly #listeners: BoundListener[] = [];
  readonly #shutdown = new AbortController();
  readonly #http: Server;
  readonly #forward: ForwardContext;
  readonly #agentEndpoint: AgentEndpointContext;
  readonly metrics: RelayMetrics;
  #admin: AdminServer | undefined;
  readonly #admission: RegistrationAdmission;
  #stopWatchingAllowedKeys = (): void => {};
  #sweepTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #started = false;
  #cluster: { directory: ClusterDirectory; links: NodeLinks; endpoint: NodeEndpoint } | undefined;

  readonly #clusterIdentity: ClusterIdentity | undefined;
  #acme: { issuer: AcmeIssuer; certificates: CertificateManager; store: CertificateStore } | undefined;
  /** Subdomain claims: the state folder's file (or memory), Redis in cluster mode (set in start()). */
  #subdomainStore: SubdomainStore;
  #subdomainTimer: NodeJS.Timeout | undefined;

  constructor(opts: ResolvedRelayOptions, cluster: ClusterIdentity | undefined) {
    super();
    this.#opts = opts;
    this.#clusterIdentity = cluster;
    this.#log = opts.logger;
    this.#registry = new TunnelRegistry(opts);
    this.#subdomainStore = new FileSubdomainStore(opts.stateDir);
    this.#admission = new RegistrationAdmission({
      limits: opts,
      registry: this.#registry,
      sessions: this.#sessions,
      directory: () => this.#cluster?.directory,
      servesTls: () => this.#listeners.some((l) => l.address.transport === 'tcps'),
    });
    this.metrics = new RelayMetrics({
      sessions: () => this.#sessions.size,
      tunnels: () => {
        let online = 0;
        for (const tunnel of this.#registry.tunnels()) if (tunnel.sessions.length > 0) online++;
        return { online, known: this.#registry.size };
      },
      waitingRequests: () => this.#registry.waitingRequests,
      certificates: () => this.#acme?.certificates.certificates() ?? [],
    });
    this.#forward = createForwardContext({
      options: opts,
      registry: this.#registry,
      metrics: this.metrics,
      shutdown: this.#shutdown.signal,
    });
    this.#agentEndpoint = {
      options: opts,
      nonces: new NonceCache({
        maxEntries: opts.maxNonces,
        ttlMs: 2 * opts.registrationWindowSeconds * 1000,
      }),
      registrationLimiter: perAddressPerMinute(opts.registrationsPerMinutePerIp),
      log: this.#log,
      urlFor: (label) => this.urlFor(label),
      pathUrlFor: (label) => this.pathUrlFor(label),
      onSession: (session) => this.#addSession(session),
      sessionWebSockets: createSessionWebSocketServer(),
      isClosing: () => this.#closing !== undefined,
      metrics: this.metrics,
      admission: this.#admission,
      clusterNonces: () => {
        const directory = this.#cluster?.directory;
        return directory && { claim: (nonce, ttlMs) => directory.claimNonce(nonce, ttlMs) };
      },
      claimSubdomains: (registration) =>
        claimSubdomains(
          {
            policy: opts.subdomains,
            keepMs: opts.subdomainKeepMs,
            reserved: new Set(),
            allowedKeys: () => this.#admission.allowedKeys,
            isLive: (label) => this.#isLive(label),
            now: opts.clock,
            store: this.#subdomainStore,
          },
          registration,
        ),
    };
    this.#http = createVisitorHttpServer(opts, {
      request: (req, res) => this.#onRequest(req, res),
      upgrade: (req, socket, head) => this.#onUpgrade(req, socket, head),
    });
  }

  get node(): { id: string; advertise: string } | undefined {
    return this.#cluster?.directory.node;
  }

  get adminAddress(): string | undefined {
    return this.#admin?.address;
  }

  get addresses(): string[] {
    return this.#listeners.map((l) => describeListener(l.address));
  }

  get domain(): string {
    return this.#opts.domain;
  }

  async start(): Promise<void> {
    if (this.#opts.metrics) await this.metrics.load();
    if (this.#opts.acmeEmail !== undefined) this.#acme = await this.#startAcme(this.#opts.acmeEmail);
    const certificates = this.#acme?.certificates;
    for (const text of this.#opts.listen) {
      const listener = await listenOn(
        parseConnectionString(text),
        {
          cert: this.#opts.tlsCert,
          key: this.#opts.tlsKey,
          reloadIntervalMs: this.#opts.tlsReloadIntervalMs,
          handshakeTimeoutMs: this.#opts.headersTimeoutMs,
          router: (hello) => this.#routeTls(hello, certificates),
          routerHasCertificates: certificates !== undefined,
          onRefused: (reason) => this.#log.debug({ reason }, 'TLS connection refused before its handshake'),
          onReload: (error) => {
            if (error)
              this.#log.warn({ error: error.message }, 'new TLS certificate not loaded; the old one stays');
            else this.#log.info({ cert: this.#opts.tlsCert }, 'TLS certificate reloaded');
          },
        },
        (socket) => this.#acceptVisitor(socket),
      );
      this.#listeners.push(listener);
    }
    if (this.#clusterIdentity !== undefined) await this.#joinCluster(this.#clusterIdentity);
    this.#subdomainTimer = setInterval(() => void this.#keepSubdomains(), SUBDOMAIN_SWEEP_MS);
    this.#subdomainTimer.unref();
    if (this.#opts.allowedKeysFile !== undefined) this.#watchAllowedKeys(this.#opts.allowedKeysFile);
    if (this.#opts.admin !== undefined) await this.#startAdmin(this.#opts.admin);
    this.#sweepTimer = setInterval(() => this.#registry.sweep(Date.now()), SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
    this.#started = true;
    this.#forward.startedAt = Date.now();
    this.#log.info({ listen: this.addresses, domain: this.#opts.domain }, 'relay listening');
  }

  /** Automatic HTTPS (docs/acme.md): the certificates of tcps listeners come from an ACME CA. */
  async #startAcme(
    email: string,
  ): Promise<{ issuer: AcmeIssuer; certificates: CertificateManager; store: CertificateStore }> {
    const o = this.#opts;
    const [{ AcmeIssuer }, { CertificateManager }, { FileCertificateStore }] = await Promise.all([
      import('./acme/acme-issuer.js'),
      import('./acme/certificate-manager.js'),
      import('./acme/certificate-store.js'),
    ]);
    const identity = this.#clusterIdentity;
    let store: CertificateStore;
    if (identity === undefined) store = new FileCertificateStore(o.stateDir as string, o.acmeDirectory);
    else {
      // A cluster keeps one account and one set of certificates, in its Redis.
      const { ClusterCertificateStore } = await import('./cluster/cluster-certificate-store.js');
      const shared = new ClusterCertificateStore(identity.redis, o.acmeDirectory);
      await shared.connect();
      store = shared;
    }
    const log = this.#log.child({ acme: o.acmeDirectory });
    const issuer = new AcmeIssuer({
      directoryUrl: o.acmeDirectory,
      email,
      caFile: o.acmeCaFile,
      dnsHook: o.acmeDnsHook,
      store,
      log,
    });
    const certificates = new CertificateManager({
      domain: o.domain,
      issuer,
      store,
      mode: o.acmeDnsHook === undefined ? o.acmeChallenge : 'dns-01',
      isLiveLabel: async (label) =>
        (this.#registry.get(label)?.sessions.length ?? 0) > 0 ||
        (await this.#cluster?.directory.locate(label).catch(() => undefined)) !== undefined,
      maxOrders: o.acmeMaxOrders,
      maxWaitingOrders: ACME_MAX_WAITING_ORDERS,
      retryAfterFailureMs: o.acmeRetryAfterFailureMs,
      orderLeaseMs: ACME_ORDER_LEASE_MS,
      renewCheckIntervalMs: o.acmeRenewCheckIntervalMs,
      now: o.clock,
      log,
      onOrder: (result) => this.metrics.acmeOrder(result),
    });
    certificates.start();
    return { issuer, certificates, store };
  }

  /**
   * Answers an ACME HTTP-01 validation, or sends a plain-HTTP visitor of this relay's names to
   * HTTPS. True when the request was answered here.
   */
  #answerPlainHttp(req: IncomingMessage, res: ServerResponse): boolean {
    const acme = this.#acme;
    if (acme === undefined || (req.socket as TLSSocket).encrypted === true) return false;
    const url = req.url ?? '';
    const token = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]{1,256})$/.exec(url)?.[1];
    if (token !== undefined) {
      acme.issuer.httpChallenge(token).then((answer) => {
        res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' });
        res.end(answer);
      });
      return true;
    }
    const host = hostName(req.headers.host ?? '');
    // Only the relay's own names, spelled as DNS names: `evil.example/x.<domain>` ends like one.
    const ours =
      /^[a-z0-9.-]+$/.test(host) && (host === this.#opts.domain || host.endsWith(`.${this.#opts.domain}`));
    // Agents may dial plain HTTP; their endpoints are never redirected.
    if (!ours || !url.startsWith('/') || url.startsWith(`${this.#opts.basePath}/_postern/`)) return false;
    res.writeHead(308, { location: `https://${host}${this.#urlPort()}${url}`, 'content-length': '0' });
    res.end();
    return true;
  }

  /**
   * Cluster mode (docs/cluster.md): this node's record and tunnel leases in Redis, links
   * to the other nodes for tunnels held there, and the endpoint they dial. A Redis that cannot be
   * reached at start is not fatal: the node serves its own agents and joins when Redis answers.
   */
  async #joinCluster(identity: ClusterIdentity): Promise<void> {
    const { id, secret } = identity;
    const node = {
      id,
      advertise: advertisedAddress(
        identity,
        this.addresses,
        this.#acme === undefined ? undefined : this.#opts.domain,
      ),
    };
    const log = this.#log.child({ node: id });
    // Loaded only in cluster mode: a relay without --redis never loads ioredis.
    const [{ ClusterDirectory }, { NodeLinks }, { NodeEndpoint }] = await Promise.all([
      import('./cluster/directory.js'),
      import('./cluster/node-links.js'),
      import('./cluster/node-endpoint.js'),
    ]);
    const directory = new ClusterDirectory(identity.redis, node, log);
    // One owner per subdomain across the cluster: the claims move to Redis.
    const { ClusterSubdomainStore } = await import('./cluster/cluster-subdomain-store.js');
    const subdomains = new ClusterSubdomainStore(identity.redis);
    await subdomains.connect();
    this.#subdomainStore.close();
    this.#subdomainStore = subdomains;
    const links = new NodeLinks({
      self: node,
      secret,
      basePath: this.#opts.basePath,
      log,
      keepalive: { intervalMs: this.#opts.keepaliveIntervalMs, timeoutMs: this.#opts.keepaliveTimeoutMs },
    });
    const endpoint = new NodeEndpoint(this.#forward, id, secret, log);
    this.#cluster = { directory, links, endpoint };
    // A --replace registration on another node: sessions here that serve the service otherwise go.
    directory.onReplaced = (label, setup) => this.#closeReplaced(label, setup);
    this.#forward.cluster = { directory, links, forwarded: (kind) => this.metrics.forwarded(kind) };
    try {
      await directory.start();
    } catch (error) {
      log.warn(
        {
          error: (error as Error).message,
        },
        'cluster: Redis unreachable at start; serving local tunnels until it answers',
      );
    }
    log.info({ advertise: node.advertise }, 'cluster node joined');
  }

  #watchAllowedKeys(path: string): void {
    this.#applyAllowedKeys(path, loadAllowedKeys(path));
    this.#stopWatchingAllowedKeys();
    this.#stopWatchingAllowedKeys = watchAllowedKeys(
      path,
      this.#opts.tlsReloadIntervalMs,
      (keys) => {
        this.#applyAllowedKeys(path, keys);
        this.#log.info({ file: path, keys: keys.size }, 'allowed keys reloaded');
      },
      (error) =>
        this.#log.warn({ error: error.message }, 'allowed-keys file not reloaded; the old list stays'),
    );
  }

  #applyAllowedKeys(path: string, keys: AllowedKeys): void {
    this.#admission.allowedKeys = keys;
    // A key taken out (or narrowed) loses the sessions it may no longer hold.
    for (const session of this.#admission.disallowedSessions()) {
      session.log.info({ file: path }, 'key no longer allowed; closing its session');
      session.close();
    }
  }

  /**
   * A relay started without an allowed-keys file takes one here (and closes the sessions of keys
   * it does not list); open connections keep the certificate they shook hands with.
   */
  reload(files: RelayReloadFiles = {}): RelayReload {
    const reloaded: string[] = [];
    const failed: { what: string; message: string }[] = [];
    const allowedKeysFile = files.allowedKeysFile ?? this.#opts.allowedKeysFile;
    if (allowedKeysFile !== undefined) {
      try {
        this.#watchAllowedKeys(allowedKeysFile);
        this.#opts.allowedKeysFile = allowedKeysFile;
        reloaded.push(`allowed keys (${this.#admission.allowedKeys?.size ?? 0} from ${allowedKeysFile})`);
      } catch (error) {
        failed.push({ what: 'allowed keys', message: (error as Error).message });
      }
    }
    const cert = files.tlsCert ?? this.#opts.tlsCert;
    const key = files.tlsKey ?? this.#opts.tlsKey;
    const tlsListeners = this.#listeners.filter((l) => l.reloadTls !== undefined);
    if (tlsListeners.length > 0 && cert !== undefined && key !== undefined) {
      try {
        for (const listener of tlsListeners) listener.reloadTls?.({ cert, key });
        this.#opts.tlsCert = cert;
        this.#opts.tlsKey = key;
        reloaded.push(`TLS certificate (${cert})`);
      } catch (error) {
        failed.push({ what: 'TLS certificate', message: (error as Error).message });
      }
    }
    this.#log.info({ reloaded, failed }, 'reloaded');
    return { reloaded, failed };
  }

  async #startAdmin(listen: string): Promise<void> {
    try {
      this.#admin = await startAdminServer({
        listen,
        token: this.#opts.adminToken,
        metrics: this.metrics,
        // In cluster mode a node that cannot reach Redis cannot serve tunnels held elsewhere.
        ready: () => {
          if (!this.#started || this.#closing !== undefined) return 'draining';
          if (this.#cluster !== undefined && !this.#cluster.directory.reachable) return 'redis unreachable';
          return true;
        },
        status: () => ({
          listen: this.addresses,
          domain: this.#opts.domain,
          startedAt: new Date(this.#forward.startedAt).toISOString(),
          draining: this.#closing !== undefined,
          sessions: this.#sessions.size,
          ...(this.#cluster === undefined
            ? {}
            : {
                cluster: {
                  node: this.#cluster.directory.node.id,
                  advertise: this.#cluster.directory.node.advertise,
                  redis: this.#cluster.directory.reachable ? 'reachable' : 'unreachable',
                  nodes: this.#cluster.directory.knownNodes,
                },
              }),
          tunnels: this.tunnels(),
        }),
      });
    } catch (error) {
      if (error instanceof OptionError) throw error;
      if (!this.#opts.adminOptional)
        throw new OptionError(`admin listener ${listen}: ${(error as Error).message}`);
      this.#log.warn({ listen, error: (error as Error).message }, 'admin listener not started');
    }
  }

  /** The listener URLs name: the first tcps one when the relay serves HTTPS, else the first. */
  #urlListener(): ConnectionString | undefined {
    return (this.#listeners.find((l) => l.address.transport === 'tcps') ?? this.#listeners[0])?.address;
  }

  /** ':8080' for the URLs' listener, or '' where a URL leaves the port out (unix, 80, 443). */
  #urlPort(): string {
    const first = this.#urlListener();
    if (first === undefined || first.transport === 'unix') return '';
    const usual = first.transport === 'tcps' ? 443 : 80;
    return first.port === usual ? '' : `:${first.port}`;
  }

  urlFor(label: string): string {
    if (this.#opts.publicUrl !== undefined) {
      const base = new URL(this.#opts.publicUrl);
      return `${base.protocol}//${label}.${base.host}${this.#opts.basePath}/`;
    }
    const scheme = this.#urlListener()?.transport === 'tcps' ? 'https' : 'http';
    const port = this.#urlPort();
    return `${scheme}://${label}.${this.#opts.domain}${port}${this.#opts.basePath}/`;
  }

  /**
   * The same tunnel by path (`http://127.0.0.1:8080/<label>/`): usable where `*.localhost` does
   * not resolve (Node's fetch, ws, Python on glibc) and without wildcard DNS.
   */
  pathUrlFor(label: string): string {
    if (this.#opts.publicUrl !== undefined) {
      const base = new URL(this.#opts.publicUrl);
      return `${base.protocol}//${base.host}${this.#opts.basePath}/${label}/`;
    }
    const first = this.#urlListener();
    const scheme = first?.transport === 'tcps' ? 'https' : 'http';
    const port = this.#urlPort();
    const bound = first === undefined || first.transport === 'unix' ? 'localhost' : first.host;
    // A local relay is reached at the address it listens on; a named one by its domain.
    const host =
      this.#opts.domain !== 'localhost'
        ? this.#opts.domain
        : ['0.0.0.0', '::', ''].includes(bound)
          ? '127.0.0.1'
          : bound.includes(':')
            ? `[${bound}]`
            : bound;
    return `${scheme}://${host}${port}${this.#opts.basePath}/${label}/`;
  }

  tunnels(): TunnelInfo[] {
    return [...this.#registry.tunnels()].map((t) => ({
      label: t.label,
      name: t.name,
      kind: t.kind,
      sessions: t.sessions.length,
      activeStreams: t.activeStreams,
      streamsTotal: t.streamsTotal,
      url: this.urlFor(t.label),
      access: [...(t.access?.kinds ?? [])],
      agents: t.sessions.map((s) => ({
        session: s.id,
        remoteAddress: s.remoteAddress,
        activeStreams: s.activeStreams,
      })),
    }));
  }

  /**
   * A tcps connection by its ClientHello: a `tls` tunnel's name passes through untouched, anything
   * else is terminated here (ACME's certificate for the name, or the files').
   */
  async #routeTls(
    hello: ClientHello,
    certificates: CertificateManager | undefined,
  ): Promise<TlsRoute | undefined> {
    const name = hello.serverName ?? '';
    const label = name.endsWith(`.${this.#opts.domain}`) ? name.slice(0, -this.#opts.domain.length - 1) : '';
    if (
      label !== '' &&
      !label.includes('.') &&
      !hello.alpn.includes(ACME_TLS_ALPN) &&
      (await this.#isTlsTunnel(label))
    )
      return {
        passthrough: (socket, bytes) => {
          if (!this.#trackVisitor(socket)) return;
          void forwardTlsPassthrough(this.#forward, socket, bytes, { label, serverName: name }, (reason) =>
            this.#log.debug({ label, reason }, 'TLS passthrough refused'),
          );
        },
      };
    return certificates?.route(hello);
  }

  async #isTlsTunnel(label: string): Promise<boolean> {
    const local = this.#registry.get(label);
    if (local !== undefined) return local.kind === 'tls';
    const directory = this.#cluster?.directory;
    if (directory === undefined) return false;
    return (await directory.locate(label).catch(() => undefined))?.kind === 'tls';
  }

  /** Whether a tunnel is served now, here or (cluster mode) on another node. */
  async #isLive(label: string): Promise<boolean> {
    if ((this.#registry.get(label)?.sessions.length ?? 0) > 0) return true;
    return (await this.#cluster?.directory.locate(label).catch(() => undefined)) !== undefined;
  }

  /** Live subdomains keep their names; names unused past --subdomain-keep are forgotten. */
  async #keepSubdomains(): Promise<void> {
    const now = this.#opts.clock();
    const live = [...this.#registry.tunnels()]
      .filter((t) => t.sessions.length > 0 && !KEY_SHAPED_LABEL.test(t.label))
      .map((t) => t.label);
    try {
      await this.#subdomainStore.touch(live, now);
      await this.#subdomainStore.sweep(now - this.#opts.subdomainKeepMs, (label) => live.includes(label));
    } catch (error) {
      this.#log.warn({ error: (error as Error).message }, 'subdomain claims not kept up to date');
    }
  }

  /** Counts a visitor connection until it closes (drain, metrics); false when the relay is closing. */
  #trackVisitor(socket: Socket): boolean {
    if (this.#closing !== undefined) {
      socket.destroy();
      return false;
    }
    this.#visitorSockets.add(socket);
    socket.once('close', () => {
      this.#visitorSockets.delete(socket);
      this.metrics.visitorClosed(socket.bytesRead, socket.bytesWritten);
      this.#gone();
    });
    return true;
  }

  #acceptVisitor(socket: Socket): void {
    if (!this.#trackVisitor(socket)) return;
    // Node's head timeout starts with the first byte; a connection that never sends one would be
    // held for ever (found by test/attacks.test.ts). Bytes read are counted, not listened for: the
    // HTTP parser reads the socket's handle directly.
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, this.#opts.headersTimeoutMs);
    silent.unref();
    socket.once('close', () => clearTimeout(silent));
    this.#http.emit('connection', socket);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    if (this.#acme !== undefined && this.#answerPlainHttp(req, res)) return;
    res.on('close', () => {
      this.metrics.response(
        res.writableFinished ? res.statusCode : 'cut',
        (performance.now() - started) / 1000,
      );
      // While draining, a keep-alive connection goes as soon as its response is done.
      if (this.#closing !== undefined) this.#http.closeIdleConnections();
    });
    const route = this.#classify(req, false);
    if (route.kind !== 'tunnel') {
      sendVisitorError(
        res,
        route.kind === 'refused' ? route.error : 'bad_request',
        route.kind === 'refused' ? route.message : 'this endpoint needs an HTTP Upgrade',
        route.kind === 'refused' && route.error === 'bad_request' ? { connection: 'close' } : undefined,
      );
      return;
    }
    forwardHttpRequest(this.#forward, req, res, route).catch((error: Error) => {
      this.#log.error({ error: error.message }, 'request forwarding failed');
      sendVisitorError(res, 'agent_error', 'internal error while forwarding');
    });
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const route = this.#classify(req, true);
    if (route.kind === 'refused') {
      writeRawError(socket, route.error, route.message);
      return;
    }
    if (route.kind === 'node-endpoint') {
      if (this.#cluster === undefined || this.#closing !== undefined)
        writeRawError(socket, 'node_refused', 'this relay is not a cluster node (or is shutting down)');
      else this.#cluster.endpoint.handleUpgrade(req, socket, head);
      return;
    }
    if (route.kind === 'agent-endpoint') {
      handleAgentUpgrade(this.#agentEndpoint, req, socket, head);
      return;
    }
    forwardUpgrade(this.#forward, req, socket, head, route).catch((error: Error) => {
      this.#log.error({ error: error.message }, 'upgrade forwarding failed');
      socket.destroy();
    });
  }

  #classify(req: IncomingMessage, upgrade: boolean): Destination {
    return classifyRequest(
      { url: req.url ?? '', rawHeaders: req.rawHeaders, host: req.headers.host, upgrade },
      this.#opts,
    );
  }

  /** A --replace registration took `label` over: sessions that serve it otherwise close (GOAWAY, drain). */
  #closeReplaced(label: string, setup: string): void {
    for (const session of this.#sessions)
      for (const service of session.services)
        if (service.label === label && session.setups.get(service.name) !== setup) {
          session.log.info('session replaced by a registration with --replace');
          session.close();
        }
  }

  #addSession(session: AgentSession): void {
    if (session.replace)
      for (const service of session.services)
        this.#closeReplaced(service.label, session.setups.get(service.name) ?? '');
    this.#sessions.add(session);
    for (const service of session.services) {
      this.#registry.attach(session, service, Date.now());
      const setup = session.setups.get(service.name) ?? '';
      this.#cluster?.directory.hold(service.label, service.kind, service.name, setup);
      if (session.replace) this.#cluster?.directory.announceReplaced(service.label, setup);
    }
    session.on('state', (state) => {
      if (state === 'draining' || state === 'closed') {
        this.#registry.detach(session, Date.now());
        for (const service of session.services)
          if (this.#registry.get(service.label)?.sessions.length === 0) {
            this.#cluster?.directory.release(service.label);
            // A subdomain's unused time starts when its last session goes.
            if (!KEY_SHAPED_LABEL.test(service.label))
              void this.#subdomainStore.touch([service.label], this.#opts.clock()).catch(() => {});
          }
      }
      if (state === 'closed') {
        this.#sessions.delete(session);
        session.log.info('agent session closed');
        this.emit('session-closed', session);
        this.#gone();
      }
    });
    this.emit('session', session);
  }

  /** Resolves once no agent session and no visitor connection is left (close() waits on it). */
  #allGone(): Promise<void> {
    if (this.#sessions.size === 0 && this.#visitorSockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onAllGone.push(resolve));
  }

  readonly #onAllGone: (() => void)[] = [];

  /** Called whenever a session or a visitor connection goes. */
  #gone(): void {
    if (this.#sessions.size > 0 || this.#visitorSockets.size > 0) return;
    for (const resolve of this.#onAllGone.splice(0)) resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#shutdown.abort();
    clearInterval(this.#sweepTimer);
    this.#acme?.certificates.close();
    this.#acme?.store.close();
    clearInterval(this.#subdomainTimer);
    this.#forward.stalls.close();
    this.#stopWatchingAllowedKeys();
    this.#registry.releaseWaiters();
    // net.Server.close() resolves only once every accepted connection is gone (agent sessions
    // among them), so stop accepting now and await it after the drain below.
    const listenersClosed = Promise.all(this.#listeners.map((l) => l.close()));
    for (const session of this.#sessions) session.close();
    this.#cluster?.endpoint.close();
    // Keep-alive connections between requests go now; the others as their responses end (#onRequest).
    this.#http.closeIdleConnections();
    const drainTimer = new AbortController();
    await Promise.race([
      this.#allGone(),
      delay(this.#opts.drainTimeoutMs, undefined, { signal: drainTimer.signal }).catch(() => {}),
    ]);
    drainTimer.abort();
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#visitorSockets) socket.destroy();
    for (const listener of this.#listeners) listener.destroyConnections();
    await this.#allGone();
    await listenersClosed;
    this.#http.close(); // stops the connection-tracking timer
    this.#cluster?.links.close();
    await this.#cluster?.directory.close();
    this.#subdomainStore.close();
    await this.#admin?.close();
    if (this.#started) this.#log.info('relay closed');
  }
}
