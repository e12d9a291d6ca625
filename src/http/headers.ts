import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { IncomingMuxHeaders } from '../mux/header-block.js';

/** Headers that describe one connection (RFC 9110 §7.6.1), never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
  'proxy-authorization',
  'proxy-authenticate',
  'host',
]);

/**
 * Copies end-to-end headers: drops hop-by-hop ones, those named in `Connection` and
 * pseudo-headers (`:status`, …); with `dropPostern`, also Postern's own `postern-*` headers (a visitor must not
 * be able to set them).
 */
export function endToEndHeaders(
  headers: IncomingHttpHeaders | IncomingMuxHeaders,
  options: { dropPostern?: boolean } = {},
): OutgoingHttpHeaders {
  const dropPostern = options.dropPostern ?? false;
  const named = connectionOptions(headers.connection);
  const out: OutgoingHttpHeaders = {};
  // Object.keys, not entries: this runs four times per request (docs/benchmarks.md).
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || name.startsWith(':') || (dropPostern && name.startsWith('postern-'))) continue;
    // A target may name a field `__proto__`; assigned below it would replace `out`'s prototype.
    if (name === '__proto__') continue;
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The header names a Connection header lists, beyond the hop-by-hop ones always dropped; undefined
 * when there are none (the usual `keep-alive` or `close`).
 */
function connectionOptions(connection: string | string[] | number | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  const tokens = String(connection)
    .toLowerCase()
    .split(',')
    .map((token) => token.trim())
    .filter((token) => token !== '' && !HOP_BY_HOP.has(token) && token !== 'close');
  return tokens.length === 0 ? undefined : new Set(tokens);
}

export interface ForwardingFacts {
  /** The visitor's address as the relay's socket sees it. */
  peer: string;
  /** Whether the peer is a configured trusted proxy (then its X-Forwarded-* are extended). */
  peerTrusted: boolean;
  /** 'http' or 'https', as the visitor reached the relay. */
  proto: string;
  host: string;
  /** The path prefix the relay removed (path routing), or ''. */
  prefix: string;
}

/** Adds X-Forwarded-For/-Proto/-Host, Forwarded and X-Forwarded-Prefix (docs/deploy-nginx.md). */
export function addForwardingHeaders(out: OutgoingHttpHeaders, facts: ForwardingFacts): void {
  const prior = facts.peerTrusted ? out['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${facts.peer}` : facts.peer;
  const proto =
    (facts.peerTrusted && typeof out['x-forwarded-proto'] === 'string' && out['x-forwarded-proto']) ||
    facts.proto;
  const host =
    (facts.peerTrusted && typeof out['x-forwarded-host'] === 'string' && out['x-forwarded-host']) ||
    facts.host;
  out['x-forwarded-proto'] = proto;
  out['x-forwarded-host'] = host;
  const forwardedFor = facts.peer.includes(':') ? `"[${facts.peer}]"` : facts.peer;
  const element = `for=${forwardedFor};host="${host.replace(/["\\]/g, '')}";proto=${proto}`;
  const priorForwarded = facts.peerTrusted ? out.forwarded : undefined;
  out.forwarded = priorForwarded ? `${String(priorForwarded)}, ${element}` : element;
  if (facts.prefix !== '') out['x-forwarded-prefix'] = facts.prefix;
  else delete out['x-forwarded-prefix'];
  if (!facts.peerTrusted) delete out['x-real-ip'];
}

/**
 * Whether a request head names its Host more than once: Node keeps the first, a proxy in front may
 * route by another, so such a request is refused (RFC 9112 §3.2: 400).
 */
export function hasSeveralHosts(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
