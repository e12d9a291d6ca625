import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { WireErrorCode } from '../errors.js';
import { addForwardingHeaders, endToEndHeaders } from '../http/headers.js';
import { LABEL_LENGTH } from '../keys/label.js';
import { Header, type ServiceKind } from '../session/protocol.js';
import type { ClusterContext } from './cluster/cluster-context.js';
import type { TunnelLocation } from './cluster/directory.js';
import type { StreamPeer } from './cluster/node-links.js';
import type { ForwardContext } from './forward-context.js';
import type { Tunnel } from './registry.js';

/** Retry-After (seconds) sent with 503 for a tunnel whose agent is away. */
const OFFLINE_RETRY_AFTER_S = '2';

export interface Route {
  label: string;
  path: string;
  prefix: string;
}

export type Admission =
  /** `consumed`: request headers the relay's access check used up (not to be forwarded). */
  | { ok: true; tunnel: Tunnel; session: StreamPeer; consumed: readonly string[] }
  | { ok: false; error: WireErrorCode; message: string; headers?: Record<string, string> }
  /** The visitor left while waiting; nothing to answer. */
  | { ok: false; error: undefined };

/**
 * Everything a visitor's request or upgrade must pass before a stream is opened: the tunnel exists
 * and suits the request (a TCP service takes only non-WebSocket upgrades: 426 otherwise), the body
 * limit, the rate limit, the concurrent-stream cap (a slot held until `visitor` emits 'close'), and
 * a session — waiting up to `reconnectWaitMs` for an agent that is away.
 */
export async function admitStream(
  ctx: ForwardContext,
  route: Route,
  visitor: EventEmitter & { destroyed: boolean },
  request: {
    declaredBodyBytes: number;
    upgrade: string | undefined;
    visitorAddress: string;
    headers: IncomingHttpHeaders;
  },
): Promise<Admission> {
  const { registry } = ctx;
  if (ctx.cluster !== undefined && registry.get(route.label) === undefined) {
    const remote = await admitRemote(ctx, ctx.cluster, route, visitor, request);
    if (visitor.destroyed) return { ok: false, error: undefined };
    if (remote !== undefined) return remote;
  }
  const mayBeReturning = mayBeReturningAfterRestart(ctx, route.label);
  const tunnel =
    registry.get(route.label) ?? (mayBeReturning ? await awaitLabel(ctx, route.label, visitor) : undefined);
  if (visitor.destroyed) return { ok: false, error: undefined };
  if (tunnel === undefined && mayBeReturning) {
    return {
      ok: false,
      error: 'tunnel_offline',
      message: `no agent has registered ${route.label} since this relay started; if it exists, it should be back shortly`,
      headers: { 'retry-after': OFFLINE_RETRY_AFTER_S },
    };
  }
  if (tunnel === undefined)
    return { ok: false, error: 'tunnel_not_found', message: `no tunnel named ${route.label} on this relay` };
  const refusal = shapeRefusal(ctx, route.label, tunnel.kind, request);
  if (refusal !== undefined) return refusal;
  // Access comes before every limit: a visitor who may not use the tunnel spends none of its budget.
  let consumed: readonly string[] = [];
  if (tunnel.access !== undefined) {
    const verdict = await tunnel.access.check(request.headers, request.visitorAddress, ctx.access);
    if (visitor.destroyed) return { ok: false, error: undefined };
    if (!verdict.ok) return verdict;
    consumed = verdict.consumed;
  }
  const waitMs = await takeRequestToken(ctx, tunnel);
  if (visitor.destroyed) return { ok: false, error: undefined };
  const limited = refuseOverLimits(ctx, tunnel, visitor, request.visitorAddress, waitMs);
  if (limited !== undefined) return limited;

  const session = await findSession(ctx, tunnel, visitor);
  if (visitor.destroyed) return { ok: false, error: undefined };
  if (session === undefined) {
    return {
      ok: false,
      error: 'tunnel_offline',
      message: `the agent of ${route.label} is not connected; try again shortly`,
      headers: { 'retry-after': OFFLINE_RETRY_AFTER_S },
    };
  }
  return { ok: true, tunnel, session, consumed };
}

/**
 * admitStream for the usual request, decided without waiting: the tunnel is held here with a
 * session at hand, has no access rules to check and no cluster-wide rate limit to ask Redis about.
 * Undefined when any of that does not hold (nothing is counted then): admitStream decides.
 * Its three awaits, each a turn of the microtask queue, were about 5 % of the relay's CPU a
 * small request (docs/benchmarks.md).
 */
export function admitStreamNow(
  ctx: ForwardContext,
  route: Route,
  visitor: EventEmitter & { destroyed: boolean },
  request: { declaredBodyBytes: number; upgrade: string | undefined; visitorAddress: string },
): Admission | undefined {
  // A visitor already gone would never give back the slot held for it ('close' came and went).
  if (visitor.destroyed) return undefined;
  const tunnel = ctx.registry.get(route.label);
  if (tunnel === undefined || tunnel.access !== undefined || tunnel.remote !== undefined) return undefined;
  if (tunnel.bucket !== undefined && ctx.cluster?.directory.reachable) return undefined;
  const session = ctx.registry.pickSession(tunnel);
  if (session === undefined) return undefined;
  const refusal =
    shapeRefusal(ctx, route.label, tunnel.kind, request) ??
    refuseOverLimits(ctx, tunnel, visitor, request.visitorAddress, tunnel.bucket?.take(Date.now()) ?? 0);
  return refusal ?? { ok: true, tunnel, session, consumed: [] };
}

/**
 * The tunnel's rate limit (`waitMs` until its next token, 0 when one was taken), its stream cap and
 * the per-address cap; undefined when the stream may open, with its slots then held.
 */
function refuseOverLimits(
  ctx: ForwardContext,
  tunnel: Tunnel,
  visitor: EventEmitter,
  address: string,
  waitMs: number,
): Admission | undefined {
  if (waitMs > 0) {
    return {
      ok: false,
      error: 'rate_limited',
      message: `tunnel over its limit of ${ctx.options.requestsPerSecondPerTunnel} requests/s`,
      headers: { 'retry-after': String(Math.ceil(waitMs / 1000)) },
    };
  }
  if (tunnel.activeStreams >= ctx.options.maxConcurrentStreamsPerTunnel) {
    return {
      ok: false,
      error: 'too_many_streams',
      message: `tunnel has ${tunnel.activeStreams} streams open (limit ${ctx.options.maxConcurrentStreamsPerTunnel})`,
      headers: { 'retry-after': '1' },
    };
  }
  return holdVisitorSlot(ctx, tunnel, visitor, address);
}

/**
 * The per-address stream cap: refuses when `address` holds `maxStreamsPerVisitorIp` streams, else
 * counts this one (and the tunnel's) until `visitor` closes.
 */
function holdVisitorSlot(
  ctx: ForwardContext,
  tunnel: Tunnel,
  visitor: EventEmitter,
  address: string,
): Admission | undefined {
  const limit = ctx.options.maxStreamsPerVisitorIp;
  const perAddress = ctx.streamsByVisitor.get(address) ?? 0;
  if (limit > 0 && perAddress >= limit) {
    return {
      ok: false,
      error: 'too_many_streams',
      message: `${address} has ${perAddress} streams open (limit ${limit} an address)`,
      headers: { 'retry-after': '1' },
    };
  }
  tunnel.activeStreams++;
  tunnel.streamsTotal++;
  ctx.streamsByVisitor.set(address, perAddress + 1);
  visitor.on('close', () => {
    tunnel.activeStreams--;
    const left = (ctx.streamsByVisitor.get(address) ?? 1) - 1;
    if (left > 0) ctx.streamsByVisitor.set(address, left);
    else ctx.streamsByVisitor.delete(address);
  });
  return undefined;
}

/** A request that does not suit the tunnel: a plain request to a TCP service (426), a body over the limit (413). */
function shapeRefusal(
  ctx: ForwardContext,
  label: string,
  kind: ServiceKind,
  request: { declaredBodyBytes: number; upgrade: string | undefined },
): Admission | undefined {
  if (kind !== 'http' && request.upgrade === undefined) {
    return {
      ok: false,
      error: 'upgrade_required',
      message:
        kind === 'tls'
          ? `${label} passes TLS through to its agent's server: reach it with https:// on the relay's TLS port`
          : `${label} is a TCP service: connect with an HTTP Upgrade (e.g. postern connect, Upgrade: tcp)`,
      headers: { upgrade: 'tcp', connection: 'Upgrade' },
    };
  }
  const limit = ctx.options.maxRequestBodyBytes;
  if (limit > 0 && request.declaredBodyBytes > limit) {
    return {
      ok: false,
      error: 'body_too_large',
      message: `request body over the limit of ${limit} bytes`,
      headers: { connection: 'close' },
    };
  }
  return undefined;
}

/**
 * The tunnel's request rate limit: 0 when a request may go, else ms until one may. In cluster mode
 * the bucket lives in Redis, so the limit holds across nodes (an agent with sessions on two nodes
 * gets the limit once, not twice); while Redis cannot be asked, each node's own bucket applies.
 */
export async function takeRequestToken(ctx: ForwardContext, tunnel: Tunnel): Promise<number> {
  const bucket = tunnel.bucket;
  if (bucket === undefined) return 0;
  if (ctx.cluster?.directory.reachable) {
    try {
      return await ctx.cluster.directory.takeToken(tunnel.label, bucket.ratePerSecond, bucket.burst);
    } catch {
      // Redis went away in between: the local bucket decides.
    }
  }
  return bucket.take(Date.now());
}

/**
 * A tunnel this node does not hold, looked up in the cluster: the node(s) holding it take the
 * stream and apply its access rules and limits themselves. Undefined when no other node holds it
 * (the local rules for unknown or returning tunnels apply then).
 */
async function admitRemote(
  ctx: ForwardContext,
  cluster: ClusterContext,
  route: Route,
  visitor: EventEmitter & { destroyed: boolean },
  request: { declaredBodyBytes: number; upgrade: string | undefined; visitorAddress: string },
): Promise<Admission | undefined> {
  let location: TunnelLocation | undefined;
  try {
    location = await cluster.directory.locate(route.label);
  } catch {
    return {
      ok: false,
      error: 'cluster_unavailable',
      message: `${route.label} is not held by this node and the cluster directory (Redis) cannot be reached; try again shortly`,
      headers: { 'retry-after': OFFLINE_RETRY_AFTER_S },
    };
  }
  if (location === undefined) return undefined;
  const refusal = shapeRefusal(ctx, route.label, location.kind, request);
  if (refusal !== undefined) return refusal;
  const peer = await cluster.links.peer(location, request.visitorAddress);
  if (visitor.destroyed) return { ok: false, error: undefined };
  if (typeof peer === 'string') {
    cluster.directory.forget(route.label);
    return {
      ok: false,
      error: 'cluster_unavailable',
      message: peer,
      headers: { 'retry-after': OFFLINE_RETRY_AFTER_S },
    };
  }
  const tunnel: Tunnel = {
    label: location.label,
    name: location.name,
    kind: location.kind,
    keyLabel: '',
    sessions: [],
    activeStreams: 0,
    streamsTotal: 0,
    bucket: undefined,
    access: undefined,
    offlineSince: undefined,
    waiters: new Set(),
    remote: peer,
    // A request cut with its node link may be sent again (http-forward decides when): to another
    // node holding the tunnel, or to the same one dialed afresh.
    relocate: async () => {
      cluster.directory.forget(route.label);
      const again = await cluster.directory.locate(route.label).catch(() => undefined);
      if (again === undefined) return undefined;
      const next = await cluster.links.peer(again, request.visitorAddress);
      return typeof next === 'string' ? undefined : next;
    },
  };
  const visitorRefusal = holdVisitorSlot(ctx, tunnel, visitor, request.visitorAddress);
  if (visitorRefusal !== undefined) return visitorRefusal;
  cluster.forwarded(location.kind !== 'http' ? 'tcp' : request.upgrade === undefined ? 'http' : 'websocket');
  return { ok: true, tunnel, session: peer, consumed: [] };
}

/**
 * The visitor's address for per-address limits: the socket's peer, or — when the peer is a trusted
 * proxy — the rightmost X-Forwarded-For entry that is not one (the address that proxy saw).
 */
export function visitorAddressOf(ctx: ForwardContext, req: IncomingMessage): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!ctx.isTrustedProxy(peer)) return peer;
  const forwarded = String(req.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (let i = forwarded.length - 1; i >= 0; i--) {
    const address = forwarded[i] as string;
    if (!ctx.isTrustedProxy(address)) return address;
  }
  return peer;
}

/**
 * Whether an unknown label may belong to an agent still on its way back: the relay started less
 * than `restartGraceMs` ago (its agents reconnect with backoff of up to 30 s) and the label has the
 * shape of one (52 base32 letters). Such visitors wait like those of a reconnecting agent, then
 * get 503, not 404.
 */
function mayBeReturningAfterRestart(ctx: ForwardContext, label: string): boolean {
  return Date.now() - ctx.startedAt < ctx.options.restartGraceMs && KEY_SHAPED_LABEL.test(label);
}

const KEY_SHAPED_LABEL = new RegExp(`^[a-z2-7]{${LABEL_LENGTH}}$`);

function awaitLabel(ctx: ForwardContext, label: string, visitor: EventEmitter): Promise<Tunnel | undefined> {
  return untilVisitorLeaves(visitor, (gone) =>
    ctx.registry.waitForLabel(label, ctx.options.reconnectWaitMs, gone),
  );
}

/**
 * Runs a wait that gives up when `visitor` closes (its signal aborts). The relay's close() wakes
 * every waiter itself, so only the visitor's own departure needs a listener.
 */
async function untilVisitorLeaves<T>(
  visitor: EventEmitter,
  wait: (gone: AbortSignal) => Promise<T>,
): Promise<T> {
  const visitorGone = new AbortController();
  const onClose = (): void => visitorGone.abort();
  visitor.once('close', onClose);
  try {
    return await wait(visitorGone.signal);
  } finally {
    visitor.off('close', onClose);
  }
}

/**
 * The least busy usable session of `tunnel`, else the first one to (re)appear within
 * `reconnectWaitMs` (undefined when none does, the visitor leaves, or the relay shuts down).
 */
export async function findSession(
  ctx: ForwardContext,
  tunnel: Tunnel,
  visitor: EventEmitter,
): Promise<StreamPeer | undefined> {
  if (tunnel.remote !== undefined) {
    if (!tunnel.remote.broken) return tunnel.remote;
    const next = await tunnel.relocate?.();
    if (next !== undefined) tunnel.remote = next;
    return next;
  }
  const session = ctx.registry.pickSession(tunnel);
  if (session !== undefined || ctx.shutdown.aborted) return session;
  return untilVisitorLeaves(visitor, (gone) =>
    ctx.registry.waitForSession(tunnel, ctx.options.reconnectWaitMs, gone),
  );
}

/** The stream's request head for a visitor's request: its end-to-end headers, forwarding facts, routing. */
export function streamHeaders(
  ctx: ForwardContext,
  req: IncomingMessage,
  route: Route,
  tunnel: Tunnel,
): OutgoingHttpHeaders {
  const peer = req.socket.remoteAddress ?? '';
  const headers = endToEndHeaders(req.headers, { dropPostern: true });
  addForwardingHeaders(headers, {
    peer,
    peerTrusted: ctx.isTrustedProxy(peer),
    proto: 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http',
    host: req.headers.host ?? '',
    prefix: route.prefix,
  });
  headers[':method'] = req.method ?? 'GET';
  headers[':path'] = route.path;
  headers[':authority'] = req.headers.host ?? route.label;
  headers[Header.service] = tunnel.name;
  return headers;
}
