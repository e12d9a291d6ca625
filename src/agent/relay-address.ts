import { type ConnectionString, parseConnectionString } from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { AGENT_PATH } from '../session/protocol.js';

/**
 * Turns the relay address a user gives into the one the agent dials (docs/protocol.md §1):
 * - tcp://, tcps://, unix://: the raw HTTP Upgrade to <path>/_postern/agent, the fast path;
 * - ws://, wss://: a WebSocket to the same path, for networks that let only WebSockets through;
 * - http://, https://: a URL as a browser would take it, so the WebSocket (ws://, wss://), the
 *   transport that gets through the most proxies and CDNs.
 * The path is the relay's base path, if any.
 */
export function agentRelayAddress(text: string): ConnectionString {
  const cs = parseConnectionString(text);
  // A relay under a base path is given as tcp://host:port/tunnel; its agent endpoint is under it.
  const base = cs.path.replace(/\/+$/, '');
  const path = base.endsWith(AGENT_PATH) ? base : `${base}${AGENT_PATH}`;
  switch (cs.transport) {
    case 'http':
    case 'https':
      return { ...cs, transport: cs.transport === 'http' ? 'ws' : 'wss', path };
    case 'ws':
    case 'wss':
      return { ...cs, path };
    case 'tcp':
    case 'tcps':
      if (cs.httpPreflight === false) {
        throw new OptionError(
          `relay ${text}: the agent registers with an HTTP Upgrade, so http_preflight cannot be false`,
        );
      }
      return { ...cs, path, httpPreflight: true };
    case 'unix':
      return { ...cs, path };
  }
}
