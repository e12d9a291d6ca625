import type { ConnectionString } from './types.js';

/** Serialises a connection string; `parseConnectionString(formatConnectionString(x))` equals `x`. */
export function formatConnectionString(cs: ConnectionString): string {
  let out = `${cs.transport}://`;
  if (cs.username !== undefined) {
    out += encodeURIComponent(cs.username);
    if (cs.password !== undefined) out += `:${encodeURIComponent(cs.password)}`;
    out += '@';
  }
  out += cs.host.includes(':') ? `[${cs.host}]` : cs.host;
  out += `:${cs.port}${cs.path}`;
  const params: string[] = [];
  if (cs.httpPreflight !== undefined) params.push(`http_preflight=${cs.httpPreflight}`);
  if (cs.socketPath !== undefined) params.push(`path=${encodeValue(cs.socketPath)}`);
  if (cs.ca !== undefined) params.push(`ca=${encodeValue(cs.ca)}`);
  if (cs.sni !== undefined) params.push(`sni=${encodeValue(cs.sni)}`);
  if (cs.proxy !== undefined) params.push(`proxy=${encodeURIComponent(cs.proxy)}`);
  if (cs.pin !== undefined) params.push(`pin=${cs.pin.join(',')}`);
  if (cs.tcpNoDelay !== undefined) params.push(`tcp_nodelay=${cs.tcpNoDelay}`);
  if (cs.tcpKeepAlive !== undefined) params.push(`tcp_keepalive=${cs.tcpKeepAlive}`);
  if (cs.tcpSndbuf !== undefined) params.push(`tcp_sndbuf=${cs.tcpSndbuf}`);
  if (cs.tcpRcvbuf !== undefined) params.push(`tcp_rcvbuf=${cs.tcpRcvbuf}`);
  if (cs.bind !== undefined)
    params.push(`bind=${hostForUrl(cs.bind.host)}${cs.bind.port === undefined ? '' : `:${cs.bind.port}`}`);
  if (params.length > 0) out += `?${params.join('&')}`;
  return out;
}

/** Keeps file paths readable (`path=/run/x.sock`) while escaping what would end the value. */
function encodeValue(value: string): string {
  return encodeURIComponent(value).replace(/%2F/g, '/').replace(/%3A/g, ':');
}

/** A host ready to put in a URL or a Host header: IPv6 in brackets. */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
