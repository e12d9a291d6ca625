import { isIP, connect as netConnect, type Socket } from 'node:net';
import { ConnectError, OptionError } from '../errors.js';
import { localhostLookup } from './localhost-lookup.js';
import { continueAfterHead, readReplyHead } from './reply-head.js';

/** A proxy's answer to CONNECT may be at most this long (up to its blank line). */
const MAX_PROXY_REPLY_BYTES = 16_384;

/**
 * The forward proxy for reaching `host:port`: the explicit one (`--proxy`, `proxy=`) if given, else
 * HTTPS_PROXY (for TLS) or HTTP_PROXY, then ALL_PROXY, upper or lower case — unless NO_PROXY names the host or
 * the host is this machine (localhost, *.localhost, 127.0.0.0/8, ::1).
 * NO_PROXY: comma-separated names (a leading dot or none both match subdomains), IPs, `*` for all.
 */
export function chooseProxy(
  host: string,
  tls: boolean,
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (explicit !== undefined) return explicit === '' ? undefined : explicit;
  // As Go's net/http does: the environment's proxy is never used for this machine itself.
  const loopback =
    host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host);
  if (loopback) return undefined;
  const fromEnv =
    (tls
      ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy)
      : (env.HTTP_PROXY ?? env.http_proxy)) ??
    env.ALL_PROXY ??
    env.all_proxy;
  if (fromEnv === undefined || fromEnv === '') return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean);
  const name = host.toLowerCase();
  for (const entry of noProxy) {
    const bare = entry.replace(/^\*?\./, '').replace(/:\d+$/, '');
    if (entry === '*' || name === bare || name.endsWith(`.${bare}`)) return undefined;
  }
  return fromEnv;
}

/**
 * Opens a tunnel to `host:port` through a forward proxy: an HTTP proxy with CONNECT (Basic
 * `Proxy-Authorization` from the proxy URL's user info), or a SOCKS5 proxy (user/password
 * authentication from the user info; socks5h:// lets the proxy resolve the name). Resolves with
 * the socket once the tunnel stands; a refusal names the proxy and quotes its answer (e.g. a 407).
 */
export async function connectThroughProxy(
  proxyText: string,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Socket> {
  let proxy: URL;
  try {
    proxy = new URL(proxyText);
  } catch {
    throw new OptionError(`proxy "${proxyText}" is not a URL; use http://[user:password@]host:port`);
  }
  if (proxy.protocol === 'socks5:' || proxy.protocol === 'socks5h:')
    return connectThroughSocks(proxy, host, port, timeoutMs);
  if (proxy.protocol !== 'http:')
    throw new OptionError(
      `proxy ${proxy.host}: use an http://, socks5:// or socks5h:// proxy (got ${proxy.protocol}//)`,
    );
  const where = `proxy http://${proxy.host}`;
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  if (proxy.username !== '') {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    lines.push(`Proxy-Authorization: Basic ${Buffer.from(credentials).toString('base64')}`);
  }
  const socket = netConnect({
    host: proxy.hostname.replace(/^\[|\]$/g, ''),
    port: Number(proxy.port || 80),
    lookup: localhostLookup,
    noDelay: true,
  });
  const fail = (reason: string, cause?: unknown): never => {
    socket.destroy();
    throw new ConnectError(`${where}: ${reason}`, cause);
  };
  socket.once('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
  const reply = await readReplyHead(socket, { maxBytes: MAX_PROXY_REPLY_BYTES, timeoutMs });
  switch (reply.kind) {
    case 'head':
      if (reply.status >= 200 && reply.status < 300) return continueAfterHead(socket, reply);
      return fail(`refused CONNECT ${authority}: ${reply.statusLine}`);
    case 'timeout':
      return fail(`no answer to CONNECT ${authority} within ${timeoutMs} ms`);
    case 'too-long':
      return fail(`its answer to CONNECT has no blank line within ${reply.maxBytes} bytes`);
    case 'closed':
      return fail(`closed the connection before answering CONNECT ${authority}`);
    case 'error':
      return fail(`cannot connect (${reply.error.code ?? reply.error.message})`, reply.error);
    case 'not-http':
      return fail(
        `its answer to CONNECT ${authority} is not HTTP: ${JSON.stringify(reply.statusLine.slice(0, 80))}`,
      );
  }
}

/** SOCKS5 (RFC 1928, user/password RFC 1929) by the `socks` library; socks5:// resolves names here. */
async function connectThroughSocks(
  proxy: URL,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Socket> {
  const where = `proxy ${proxy.protocol}//${proxy.host}`;
  let destination = host;
  if (proxy.protocol === 'socks5:' && isIP(host) === 0) {
    try {
      destination = await new Promise<string>((resolve, reject) =>
        localhostLookup(host, {}, (error, address) =>
          error
            ? reject(error)
            : resolve(typeof address === 'string' ? address : (address[0]?.address ?? '')),
        ),
      );
    } catch (error) {
      throw new ConnectError(
        `cannot resolve ${host} (for ${where}): ${(error as NodeJS.ErrnoException).code}`,
        error,
      );
    }
  }
  // Loaded on first use: most agents and clients never see a SOCKS proxy.
  const { SocksClient } = await import('socks');
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: {
        host: proxy.hostname.replace(/^\[|\]$/g, ''),
        port: Number(proxy.port || 1080),
        type: 5,
        ...(proxy.username === ''
          ? {}
          : { userId: decodeURIComponent(proxy.username), password: decodeURIComponent(proxy.password) }),
      },
      command: 'connect',
      destination: { host: destination, port },
      timeout: timeoutMs,
    });
    socket.setNoDelay(true);
    return socket;
  } catch (error) {
    throw new ConnectError(
      `${where}: refused or failed CONNECT ${host}:${port}: ${(error as Error).message}`,
      error,
    );
  }
}
