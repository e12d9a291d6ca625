import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { ERROR_CATALOGUE } from '../error-codes.js';
import type { WireErrorCode } from '../errors.js';
import { isCanonicalKeyX, keyLabelFromX } from '../keys/label.js';
import type { Logger } from '../log.js';
import type { NonceCache } from '../session/nonce-cache.js';
import { newChallenge, PROOF_ACCEPTED, PROOF_BYTES, verifyPossession } from '../session/possession-proof.js';
import {
  type AssignedService,
  Header,
  MAX_SESSION_MESSAGE_BYTES,
  SESSION_UPGRADE_TOKEN,
} from '../session/protocol.js';
import {
  registeredLabel,
  serviceSetup,
  type VerifiedRegistration,
  verifyRegistration,
} from '../session/registration.js';
import { readExactly } from '../stream/read-exactly.js';
import { webSocketStream } from '../transport/websocket-stream.js';
import { addressKey } from './address-key.js';
import { AgentSession } from './agent-session.js';
import type { RelayMetrics } from './metrics.js';
import type { ResolvedRelayOptions } from './options.js';
import type { RegistrationAdmission } from './registration-admission.js';
import type { KeyedTokenBuckets } from './token-bucket.js';
import { VisitorAccess } from './visitor-access.js';
import { writeRawError } from './visitor-error.js';

export interface AgentEndpointContext {
  options: ResolvedRelayOptions;
  nonces: NonceCache;
  registrationLimiter: KeyedTokenBuckets;
  log: Logger;
  urlFor(label: string): string;
  pathUrlFor(label: string): string;
  /** Called with each admitted session, already running. */
  onSession(session: AgentSession): void;
  /** From createSessionWebSocketServer(): takes agents that come over a WebSocket. */
  sessionWebSockets: WebSocketServer;
  isClosing(): boolean;
  metrics: RelayMetrics;
  /** Allowed keys, per-key and tunnel limits, conflicts; admitted registrations count until released. */
  admission: RegistrationAdmission;
  /**
   * Cluster mode (undefined otherwise): claims the nonce cluster-wide; false when another node saw
   * it, undefined when the cluster cannot be asked (this node's own cache has decided then).
   */
  clusterNonces(): { claim(nonce: string, ttlMs: number): Promise<boolean | undefined> } | undefined;
  /** Claims the subdomains a registration asks for (subdomains.ts): true, or why not. */
  claimSubdomains(
    registration: VerifiedRegistration,
  ): Promise<true | { error: WireErrorCode; reason: string }>;
}

/**
 * Handles `GET /_postern/agent` with `Upgrade: postern-session/3` or `Upgrade: websocket`
 * (docs/protocol.md §1, "What the relay checks"): every check in order, a status and one-line reason on failure (no upgrade then),
 * else 101 with a challenge, and once the agent proved its key on this connection a session
 * (src/mux) on the raw socket or inside the WebSocket's binary messages.
 */
export function handleAgentUpgrade(
  ctx: AgentEndpointContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const remoteAddress = req.socket.remoteAddress ?? '';
  const now = Date.now();
  const refuse = (error: WireErrorCode, message: string, headers?: Record<string, string>): void => {
    ctx.metrics.registration(error);
    writeRawError(socket, error, message, headers);
  };
  if (ctx.isClosing()) {
    refuse('relay_shutting_down', 'relay is shutting down', { 'retry-after': '1' });
    return;
  }
  const upgradeToken = String(req.headers.upgrade).toLowerCase();
  if (upgradeToken !== SESSION_UPGRADE_TOKEN && upgradeToken !== 'websocket') {
    writeRawError(
      socket,
      'registration_malformed',
      `agent endpoint expects "Upgrade: ${SESSION_UPGRADE_TOKEN}" or "Upgrade: websocket"`,
    );
    return;
  }
  // A key the allowed-keys file does not list is refused before anything shared is spent on it:
  // no limiter bucket, no signature check, no nonce (its public key is no secret, so this says nothing).
  const keyHeader = req.headers[Header.key];
  if (typeof keyHeader === 'string' && isCanonicalKeyX(keyHeader) && !ctx.admission.keyListed(keyHeader)) {
    refuse(
      'registration_not_admitted',
      `key ${keyLabelFromX(keyHeader)} is not in this relay's allowed keys`,
    );
    return;
  }
  const waitMs = ctx.registrationLimiter.take(addressKey(remoteAddress, ctx.options.ipv6PrefixBits), now);
  if (waitMs > 0) {
    refuse('registration_rate_limited', `too many registrations from ${remoteAddress}`, {
      'retry-after': String(Math.ceil(waitMs / 1000)),
    });
    return;
  }
  const verdict = verifyRegistration({
    method: req.method ?? 'GET',
    path: req.url ?? '',
    headers: req.headers,
    now,
    windowSeconds: ctx.options.registrationWindowSeconds,
  });
  if (!verdict.ok) {
    ctx.log.info(
      {
        remoteAddress,
        reason: verdict.reason,
        code: verdict.error,
      },
      'registration refused',
    );
    refuse(verdict.error, verdict.reason);
    return;
  }
  const registration = verdict.registration;
  if (!admissible(ctx, registration, remoteAddress, refuse)) return;
  // Only admitted registrations take a nonce, so nobody else can crowd the cache.
  const nonce = `${registration.key}:${registration.nonce}`;
  if (ctx.nonces.add(nonce, now) === 'seen') {
    refuse('registration_replayed', 'this registration nonce was already used');
    return;
  }
  const clusterNonces = ctx.clusterNonces();
  const asksSubdomains = Object.keys(registration.subdomains).length > 0;
  if (clusterNonces === undefined && !asksSubdomains) {
    admitRegistration(ctx, req, socket, head, registration, upgradeToken);
    return;
  }
  // A registration replayed on another node is caught by the nonce the cluster shares. Meanwhile
  // bytes behind the head wait in the socket's buffer (nothing reads it yet).
  void (async () => {
    if (clusterNonces !== undefined) {
      const claimed = await clusterNonces.claim(nonce, 2 * ctx.options.registrationWindowSeconds * 1000);
      if (socket.destroyed) return;
      if (claimed === false)
        return refuse('registration_replayed', 'this registration nonce was already used');
    }
    // Subdomains first: once they are this key's, what is live under them is this key's too.
    if (asksSubdomains) {
      const claimed = await ctx.claimSubdomains(registration).catch((error: Error) => ({
        error: 'cluster_unavailable' as const,
        reason: `subdomain claims cannot be checked now (${error.message}); try again shortly`,
      }));
      if (socket.destroyed) return;
      if (claimed !== true) {
        ctx.log.info({ remoteAddress, reason: claimed.reason, code: claimed.error }, 'registration refused');
        return refuse(claimed.error, claimed.reason);
      }
    }
    if (clusterNonces !== undefined) {
      const conflict = await ctx.admission.clusterConflict(registration);
      if (socket.destroyed) return;
      if (conflict !== undefined) return refuse('registration_conflict', conflict);
    }
    admitRegistration(ctx, req, socket, head, registration, upgradeToken);
  })();
}

/** The allowed-keys entry, the per-key session limit and the admission policy; false when refused. */
function admissible(
  ctx: AgentEndpointContext,
  registration: VerifiedRegistration,
  remoteAddress: string,
  refuse: (error: WireErrorCode, message: string, headers?: Record<string, string>) => void,
): boolean {
  const keyAdmitted = ctx.admission.admit(registration);
  if (keyAdmitted !== true) {
    refuse(
      keyAdmitted.error,
      keyAdmitted.reason,
      !ERROR_CATALOGUE[keyAdmitted.error].retryable
        ? {}
        : { 'retry-after': keyAdmitted.error === 'relay_busy' ? '60' : '10' },
    );
    return false;
  }
  const admitted = ctx.options.admit(registration, remoteAddress);
  if (admitted !== true) {
    refuse('registration_not_admitted', admitted);
    return false;
  }
  return true;
}

function admitRegistration(
  ctx: AgentEndpointContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  registration: VerifiedRegistration,
  upgradeToken: string,
): void {
  const remoteAddress = req.socket.remoteAddress ?? '';

  const keyLabel = keyLabelFromX(registration.key);
  const access = new Map<string, VisitorAccess>();
  for (const [name, rules] of Object.entries(registration.access)) access.set(name, new VisitorAccess(rules));
  const services: AssignedService[] = registration.services.map((s) => {
    const label = registeredLabel(registration, s.name);
    const url = ctx.urlFor(label);
    // A chosen subdomain is reached by its name only: path routing takes key-derived labels.
    const assigned: AssignedService =
      registration.subdomains[s.name] === undefined
        ? { ...s, label, url, pathUrl: ctx.pathUrlFor(label) }
        : { ...s, label, url };
    if (s.kind === 'tcp') assigned.connect = connectStringFor(url);
    const kinds = access.get(s.name)?.kinds;
    if (kinds !== undefined && kinds.length > 0) assigned.access = [...kinds];
    return assigned;
  });
  const setups = new Map(registration.services.map((s) => [s.name, serviceSetup(registration, s.name)]));
  const facts = { keyLabel, services, remoteAddress, access, setups, replace: registration.replace };
  const challenge = newChallenge();
  const answerHeaders = [
    `${Header.assigned}: ${JSON.stringify(services)}`,
    `${Header.challenge}: ${challenge}`,
  ];
  const release = ctx.admission.holdPending(registration);
  socket.once('close', release);
  const proven = (stream: Duplex): void => {
    awaitPossession(ctx, stream, registration, challenge, remoteAddress).then((ok) => {
      // Counted as a session from here on, or not at all.
      release();
      if (ok) startSession(ctx, stream, facts);
    });
  };
  if (upgradeToken === 'websocket') {
    // ws answers the handshake (or a 400 for a bad one) and takes care of `head` itself.
    answerHeadersFor.set(req, answerHeaders);
    ctx.sessionWebSockets.handleUpgrade(req, socket, head, (ws) => proven(webSocketStream(ws)));
    return;
  }
  // Bytes the agent sent right behind its request head belong to the session: put them back
  // before the session reads the socket, so none is lost. Paused, they wait in the socket's buffer.
  socket.pause();
  if (head.length > 0) socket.unshift(head);
  const response =
    `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SESSION_UPGRADE_TOKEN}\r\n` +
    `${answerHeaders.join('\r\n')}\r\n\r\n`;
  // The proof is awaited once the 101 is written, so a socket that failed meanwhile never gets a
  // session (version 1's http2 binding also aborted the process on a TLS write still in progress).
  socket.write(response, (error) => {
    if (error || socket.destroyed) {
      socket.destroy();
      return;
    }
    proven(socket);
  });
}

/**
 * Reads the agent's proof of possession, the first 64 bytes after the 101, within the head timeout;
 * true (and `PSOK` sent) when it is the registered key's signature of this connection's challenge.
 */
async function awaitPossession(
  ctx: AgentEndpointContext,
  stream: Duplex,
  registration: VerifiedRegistration,
  challenge: string,
  remoteAddress: string,
): Promise<boolean> {
  const unproven = (reason: string): false => {
    ctx.log.info({ remoteAddress, reason }, 'registration not proven');
    ctx.metrics.registration('registration_unproven');
    stream.destroy();
    return false;
  };
  let proof: Buffer;
  try {
    proof = await readExactly(stream, PROOF_BYTES, ctx.options.headersTimeoutMs);
  } catch (error) {
    return unproven((error as Error).message);
  }
  if (!verifyPossession(registration.key, challenge, registration.signature, proof))
    return unproven('wrong proof of possession');
  if (stream.destroyed || ctx.isClosing()) {
    stream.destroy();
    return false;
  }
  stream.write(PROOF_ACCEPTED);
  return true;
}

/** The 101 headers each pending WebSocket registration adds (read by the 'headers' hook below). */
const answerHeadersFor = new WeakMap<IncomingMessage, string[]>();

/**
 * The WebSocket server for agent sessions: binary messages carry the session's frames, bounded in
 * size, uncompressed (the frames are compact already, and deflate would cost CPU on every message).
 */
export function createSessionWebSocketServer(): WebSocketServer {
  const server = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: MAX_SESSION_MESSAGE_BYTES,
  });
  server.on('headers', (headers: string[], req: IncomingMessage) => {
    const extra = answerHeadersFor.get(req);
    if (extra !== undefined) headers.push(...extra);
  });
  return server;
}

function startSession(
  ctx: AgentEndpointContext,
  socket: Duplex,
  facts: {
    keyLabel: string;
    services: AssignedService[];
    remoteAddress: string;
    access: ReadonlyMap<string, VisitorAccess>;
    setups: ReadonlyMap<string, string>;
    replace: boolean;
  },
): void {
  if ('setNoDelay' in socket && typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
  const id = randomUUID();
  const session = new AgentSession({
    id,
    keyLabel: facts.keyLabel,
    services: facts.services,
    access: facts.access,
    setups: facts.setups,
    replace: facts.replace,
    remoteAddress: facts.remoteAddress,
    socket,
    streamWindowBytes: ctx.options.streamWindowBytes,
    connectionWindowBytes: ctx.options.connectionWindowBytes,
    keepalive: { intervalMs: ctx.options.keepaliveIntervalMs, timeoutMs: ctx.options.keepaliveTimeoutMs },
    log: ctx.log.child({ session: id, key: facts.keyLabel }),
  });
  session.log.info(
    {
      remoteAddress: facts.remoteAddress,
      services: facts.services.map((s) => s.name),
    },
    'agent session registered',
  );
  ctx.metrics.registration('ok');
  ctx.onSession(session);
}

/**
 * The connection string a TCP client dials for a service whose public URL is `url`:
 * http://x:8080/ → tcp://x:8080?http_preflight=true, https://x/ → tcps://x:443?http_preflight=true.
 */
export function connectStringFor(url: string): string {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'https:';
  const port = parsed.port !== '' ? parsed.port : tls ? '443' : '80';
  return `${tls ? 'tcps' : 'tcp'}://${parsed.hostname}:${port}?http_preflight=true`;
}
