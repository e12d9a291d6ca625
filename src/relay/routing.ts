import { hasSeveralHosts } from '../http/headers.js';
import { isSubdomain, LABEL_LENGTH } from '../keys/label.js';
import { AGENT_PATH, hostName } from '../session/protocol.js';
import { NODE_PATH } from './cluster/node-auth.js';

const LABEL = new RegExp(`^[a-z2-7]{${LABEL_LENGTH}}$`);

export type Route =
  | { kind: 'tunnel'; label: string; path: string; prefix: string }
  | { kind: 'relay'; path: string }
  | { kind: 'invalid'; reason: string };

/**
 * Picks the tunnel for a visitor request: `Host: <label>.<domain>` first, else the first path
 * segment (`/<label>/…`, for setups without wildcard DNS), whose prefix is then removed.
 */
function routeRequest(hostHeader: string | undefined, url: string, domain: string): Route {
  if (!url.startsWith('/')) return { kind: 'invalid', reason: 'request target must be a path' };
  const host = hostHeader === undefined ? '' : hostName(hostHeader);
  if (host.endsWith(`.${domain}`)) {
    const sub = host.slice(0, -(domain.length + 1));
    // Key-derived labels, and subdomains services chose (--subdomain); by host only.
    if (LABEL.test(sub) || isSubdomain(sub)) return { kind: 'tunnel', label: sub, path: url, prefix: '' };
    return { kind: 'invalid', reason: `"${sub}" is not a tunnel label` };
  }
  const end = url.slice(1).search(/[/?]/);
  const segment = end < 0 ? url.slice(1) : url.slice(1, end + 1);
  if (!LABEL.test(segment)) return { kind: 'relay', path: url };
  const rest = end < 0 ? '' : url.slice(end + 1);
  return {
    kind: 'tunnel',
    label: segment,
    path: rest.startsWith('/') ? rest : `/${rest}`,
    prefix: `/${segment}`,
  };
}

/** What the relay does with one request, decided from its head alone. */
export type Destination =
  | { kind: 'tunnel'; label: string; path: string; prefix: string }
  /** The agents' session endpoint (an upgrade). */
  | { kind: 'agent-endpoint' }
  /** The other cluster nodes' link endpoint (an upgrade). */
  | { kind: 'node-endpoint' }
  | { kind: 'refused'; error: 'bad_request' | 'tunnel_not_found'; message: string };

/** The parts of a request head that decide where it goes. */
export interface RequestHead {
  url: string;
  /** Node's raw header list (name, value, name, value…): repeated Host headers are seen there. */
  rawHeaders: readonly string[];
  host: string | undefined;
  /** An HTTP Upgrade (WebSocket, the agent's session, a node link, a TCP preflight). */
  upgrade: boolean;
}

/**
 * Where a request goes, as a pure function of its head and the relay's domain and base path (''
 * or '/prefix'): a tunnel (with the prefix to strip, base path included), the agent or node
 * endpoint, or a refusal with the error visitors see.
 */
export function classifyRequest(head: RequestHead, relay: { domain: string; basePath: string }): Destination {
  // Two Host headers could name one tunnel to the relay and another to whatever sits behind it.
  if (hasSeveralHosts(head.rawHeaders))
    return { kind: 'refused', error: 'bad_request', message: 'more than one Host header' };
  const inner = insideBasePath(head.url, relay.basePath);
  if (inner === undefined)
    return {
      kind: 'refused',
      error: 'tunnel_not_found',
      message: `this relay serves only under ${relay.basePath}/`,
    };
  const endpoint = inner.split('?')[0];
  if (endpoint === AGENT_PATH)
    return head.upgrade
      ? { kind: 'agent-endpoint' }
      : {
          kind: 'refused',
          error: 'bad_request',
          message: `${AGENT_PATH} is the agent endpoint; it needs an HTTP Upgrade`,
        };
  if (endpoint === NODE_PATH && head.upgrade) return { kind: 'node-endpoint' };
  const route = routeRequest(head.host, inner, relay.domain);
  if (route.kind === 'invalid') return { kind: 'refused', error: 'tunnel_not_found', message: route.reason };
  if (route.kind === 'relay')
    return {
      kind: 'refused',
      error: 'tunnel_not_found',
      message: `no tunnel named in the Host (<label>.${relay.domain}) or the path (${relay.basePath}/<label>/…)`,
    };
  return { ...route, prefix: `${relay.basePath}${route.prefix}` };
}

/** The request target inside the base path ('/…'), or undefined when it lies outside it. */
function insideBasePath(url: string, basePath: string): string | undefined {
  if (basePath === '') return url;
  if (url === basePath) return '/';
  if (url.startsWith(`${basePath}/`)) return url.slice(basePath.length);
  if (url.startsWith(`${basePath}?`)) return `/${url.slice(basePath.length)}`;
  return undefined;
}
