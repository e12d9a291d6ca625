import { type ConnectionString, parseConnectionString } from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { AGENT_PATH } from '../session/protocol.js';

/**
 * Turns the relay address a user gives into the one the agent dials: tcp://, tcps:// and unix://
 * with the HTTP Upgrade preflight to <path>/_postern/agent (the path is the relay's base path, if
 * any), http:// and https:// as their tcp/tcps equivalents.
 */
export function agentRelayAddress(text: string): ConnectionString {
  const cs = parseConnectionString(text);
  // A relay under a base path is given as tcp://host:port/tunnel; its agent endpoint is under it.
  const base = cs.path.replace(/\/+$/, '');
  const path = base.endsWith(AGENT_PATH) ? base : `${base}${AGENT_PATH}`;
  switch (cs.transport) {
    case 'http':
    case 'https': {
      const out: ConnectionString = {
        transport: cs.transport === 'http' ? 'tcp' : 'tcps',
        host: cs.host,
        port: cs.port,
        path,
        httpPreflight: true,
      };
      if (cs.ca !== undefined) out.ca = cs.ca;
      if (cs.sni !== undefined) out.sni = cs.sni;
      return out;
    }
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
    default:
      throw new OptionError(
        `relay ${text}: ${cs.transport}:// sessions are not supported yet; use tcp://, tcps:// or unix://`,
      );
  }
}
