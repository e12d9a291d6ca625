import { isIP, isIPv4, isIPv6 } from 'node:net';
import { ConnectionStringError } from '../errors.js';
import { type ConnectionString, isTls, TRANSPORTS, type Transport } from './types.js';

const DEFAULT_PORTS: Partial<Record<Transport, number>> = { ws: 80, http: 80, wss: 443, https: 443 };
const HOSTNAME = /^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*\.?$/;
const PATH = /^(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%]*)*$/;
const PARAM_NAMES = [
  'http_preflight',
  'path',
  'ca',
  'sni',
  'proxy',
  'pin',
  'tcp_nodelay',
  'tcp_keepalive',
  'tcp_sndbuf',
  'tcp_rcvbuf',
  'bind',
] as const;
type ParamName = (typeof PARAM_NAMES)[number];
const PARAM_TRANSPORTS: Record<ParamName, readonly Transport[]> = {
  http_preflight: ['tcp', 'tcps', 'unix'],
  path: ['unix'],
  ca: ['tcps', 'wss', 'https'],
  sni: ['tcps', 'wss', 'https'],
  proxy: ['tcp', 'tcps', 'ws', 'wss', 'http', 'https'],
  pin: ['tcps', 'wss', 'https'],
  // AMPS transport options: AMPS connection strings carry them.
  tcp_nodelay: ['tcp', 'tcps'],
  tcp_keepalive: ['tcp', 'tcps'],
  tcp_sndbuf: ['tcp', 'tcps'],
  tcp_rcvbuf: ['tcp', 'tcps'],
  bind: ['tcp', 'tcps'],
};
/** A SHA-256 in base64 (44 characters with its one '=') or base64url (43, no padding). */
const PIN = /^sha256\/([A-Za-z0-9+/]{43}=|[A-Za-z0-9_-]{43})$/;

/**
 * Parses `transport://[user[:password]@]host:port[/path][?param=value&…]` (docs/client.md, "Connection strings"). Throws a
 * ConnectionStringError naming what is wrong and at which character.
 */
export function parseConnectionString(input: string): ConnectionString {
  const fail = (position: number, reason: string): never => {
    throw new ConnectionStringError(input, position, reason);
  };
  if (typeof input !== 'string') fail(0, 'not a string');
  const bad = /[\s\u0000-\u001f\u007f#]/.exec(input);
  if (bad) {
    const what = bad[0] === '#' ? '"#" (fragments are not allowed)' : `a space or control character`;
    fail(bad.index, `${what} at character ${bad.index + 1}`);
  }
  const schemeEnd = input.indexOf('://');
  if (schemeEnd <= 0) fail(0, 'missing "transport://" at the start (e.g. tcp://host:port)');
  const scheme = input.slice(0, schemeEnd).toLowerCase();
  if (!(TRANSPORTS as readonly string[]).includes(scheme)) {
    fail(0, `unknown transport "${scheme}" (expected one of ${TRANSPORTS.join(', ')})`);
  }
  const transport = scheme as Transport;

  const authorityStart = schemeEnd + 3;
  let authorityEnd = input.length;
  for (let i = authorityStart; i < input.length; i++) {
    if (input[i] === '/' || input[i] === '?') {
      authorityEnd = i;
      break;
    }
  }
  const authority = input.slice(authorityStart, authorityEnd);
  const at = authority.lastIndexOf('@');
  const result: ConnectionString = { transport, host: '', port: 0, path: '' };
  let hostStart = authorityStart;
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    if (user === '') fail(authorityStart, 'empty user name before "@"');
    result.username = decode(user, authorityStart, 'user name', fail);
    if (colon >= 0)
      result.password = decode(userinfo.slice(colon + 1), authorityStart + colon + 1, 'password', fail);
    hostStart = authorityStart + at + 1;
  }

  const hostPort = input.slice(hostStart, authorityEnd);
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) fail(hostStart, 'IPv6 address opened with "[" but not closed with "]"');
    const literal = hostPort.slice(1, close);
    if (!isIPv6(literal)) fail(hostStart + 1, `"${literal}" is not an IPv6 address`);
    result.host = literal.toLowerCase();
    const rest = hostPort.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) fail(hostStart + close + 1, 'expected ":port" after "]"');
    if (rest !== '') portText = rest.slice(1);
  } else {
    const colon = hostPort.lastIndexOf(':');
    const host = colon >= 0 ? hostPort.slice(0, colon) : hostPort;
    if (host.includes(':'))
      fail(hostStart, 'IPv6 addresses must be written in brackets, e.g. tcp://[::1]:9007');
    if (host === '') fail(hostStart, 'missing host (expected host:port after "://")');
    const lower = host.toLowerCase();
    if (!isIPv4(lower) && !HOSTNAME.test(lower)) fail(hostStart, `"${host}" is not a valid host name`);
    result.host = lower;
    if (colon >= 0) portText = hostPort.slice(colon + 1);
  }
  const portAt = authorityEnd - (portText?.length ?? 0);
  if (portText === undefined) {
    const fallback = DEFAULT_PORTS[transport];
    if (fallback === undefined) {
      const hint = transport === 'unix' ? ' (unix strings use localhost:0 by convention)' : '';
      fail(authorityEnd, `missing port: ${transport} needs host:port${hint}`);
    }
    result.port = fallback as number;
  } else {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      fail(portAt, `port "${portText}" is not a number from 0 to 65535`);
    }
    result.port = Number(portText);
  }

  const queryStart = input.indexOf('?', authorityEnd);
  const pathText = input.slice(authorityEnd, queryStart < 0 ? input.length : queryStart);
  if (!PATH.test(pathText))
    fail(authorityEnd, `path "${pathText}" has characters that must be percent-encoded`);
  result.path = pathText;

  if (queryStart >= 0) parseParams(input, queryStart + 1, result, fail);
  if (transport === 'unix' && result.socketPath === undefined) {
    fail(input.length, `unix connection string needs ?path=<socket file> (got "${input}")`);
  }
  if (result.sni !== undefined && !isTls(transport)) fail(input.length, 'sni= needs a TLS transport');
  return result;
}

function parseParams(
  input: string,
  start: number,
  result: ConnectionString,
  fail: (position: number, reason: string) => never,
): void {
  const seen = new Set<string>();
  let position = start;
  for (const part of input.slice(start).split('&')) {
    const partAt = position;
    position += part.length + 1;
    if (part === '') continue; // AMPS writes "?&name=value"; empty parameters are allowed.
    const eq = part.indexOf('=');
    const name = eq >= 0 ? part.slice(0, eq) : part;
    const raw = eq >= 0 ? part.slice(eq + 1) : '';
    if (!(PARAM_NAMES as readonly string[]).includes(name)) {
      fail(partAt, `unknown parameter "${name}" (known: ${PARAM_NAMES.join(', ')})`);
    }
    const param = name as ParamName;
    if (seen.has(param)) fail(partAt, `parameter "${param}" given twice`);
    seen.add(param);
    if (!PARAM_TRANSPORTS[param].includes(result.transport)) {
      fail(
        partAt,
        `parameter "${param}" does not apply to ${result.transport}:// (only ${PARAM_TRANSPORTS[param].join(', ')})`,
      );
    }
    const value = decode(raw, partAt + name.length + 1, `value of ${param}`, fail);
    const flag = (): boolean => {
      if (value === 'true' || value === '1') return true;
      if (value !== 'false' && value !== '0')
        fail(partAt, `${param} must be true, false, 1 or 0 (got "${value}")`);
      return false;
    };
    const bytes = (): number => {
      if (!/^\d{1,10}$/.test(value)) fail(partAt, `${param} must be a number of bytes (got "${value}")`);
      return Number(value);
    };
    switch (param) {
      case 'http_preflight':
        result.httpPreflight = flag();
        break;
      case 'tcp_nodelay':
        result.tcpNoDelay = flag();
        break;
      case 'tcp_keepalive':
        result.tcpKeepAlive = flag();
        break;
      case 'tcp_sndbuf':
        result.tcpSndbuf = bytes();
        break;
      case 'tcp_rcvbuf':
        result.tcpRcvbuf = bytes();
        break;
      case 'bind': {
        const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+))(?::(\d{1,5}))?$/.exec(value);
        const host = match?.[1] ?? match?.[2] ?? '';
        const port = match?.[3] === undefined ? undefined : Number(match[3]);
        if (match === null || isIP(host) === 0 || (port !== undefined && port > 65535))
          fail(partAt, `bind must be <ip>[:<port>], IPv6 in brackets (got "${value}")`);
        result.bind = port === undefined ? { host } : { host, port };
        break;
      }
      case 'path':
        if (value === '') fail(partAt, 'path= is empty: give the socket file');
        result.socketPath = value;
        break;
      case 'ca':
        if (value === '') fail(partAt, 'ca= is empty: give a PEM file');
        result.ca = value;
        break;
      case 'proxy':
        if (!/^(http|socks5h?):\/\/([^@/?#\s]+@)?[^@/?#\s]+:\d{1,5}\/?$/.test(value)) {
          fail(
            partAt,
            `proxy must be http:// or socks5[h]://[user:password@]host:port (got "${value.replace(/\/\/[^@]*@/, '//…@')}")`,
          );
        }
        result.proxy = value;
        break;
      case 'pin':
        result.pin = value.split(',').map((pin) => {
          if (!PIN.test(pin)) {
            fail(partAt, `pin "${pin}" must be sha256/<base64 of the SHA-256 of the public key (SPKI)>`);
          }
          // One spelling, so pins compare as strings: standard base64 with its padding.
          return `sha256/${Buffer.from(pin.slice(7), 'base64url').toString('base64')}`;
        });
        break;
      case 'sni':
        if (!HOSTNAME.test(value.toLowerCase())) fail(partAt, `sni "${value}" is not a valid host name`);
        result.sni = value.toLowerCase();
        break;
    }
  }
}

function decode(text: string, position: number, what: string, fail: (p: number, r: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(position, `${what} has a malformed percent-escape`);
  }
}
