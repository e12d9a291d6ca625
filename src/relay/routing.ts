import { LABEL_LENGTH } from '../keys/label.js';
import { hostName } from '../session/protocol.js';

const LABEL = new RegExp(`^[a-z2-7]{${LABEL_LENGTH}}$`);

export type Route =
  | { kind: 'tunnel'; label: string; path: string; prefix: string }
  | { kind: 'relay'; path: string }
  | { kind: 'invalid'; reason: string };

/**
 * Picks the tunnel for a visitor request: `Host: <label>.<domain>` first, else the first path
 * segment (`/<label>/…`, for setups without wildcard DNS), whose prefix is then removed.
 */
export function routeRequest(hostHeader: string | undefined, url: string, domain: string): Route {
  if (!url.startsWith('/')) return { kind: 'invalid', reason: 'request target must be a path' };
  const host = hostHeader === undefined ? '' : hostName(hostHeader);
  if (host.endsWith(`.${domain}`)) {
    const sub = host.slice(0, -(domain.length + 1));
    if (LABEL.test(sub)) return { kind: 'tunnel', label: sub, path: url, prefix: '' };
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
