import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIPv4, isIPv6 } from 'node:net';
import { OptionError } from '../errors.js';
import { parseHostPort } from '../http/host-port.js';
import { listenFailure } from '../listen-failure.js';
import { hostName } from '../session/protocol.js';
import { DASHBOARD_PAGE } from './dashboard-page.js';
import type { RelayMetrics } from './metrics.js';

export interface AdminServerOptions {
  /** host:port to listen on (port 0: a free one). */
  listen: string;
  /** When set, /metrics needs `Authorization: Bearer <token>`; the health endpoints never do. */
  token: string | undefined;
  metrics: RelayMetrics;
  /** True, or why not (draining, Redis unreachable): /readyz then answers 503 with it, so load balancers stop sending visitors. */
  ready(): true | string;
  /** What /api/status answers (and the dashboard shows). */
  status(): Record<string, unknown>;
}

export interface AdminServer {
  /** The bound address, e.g. '127.0.0.1:9090'. */
  address: string;
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/**
 * DNS rebinding gives a hostile page the admin listener under the attacker's own name; a Host that
 * is an IP address, localhost or the name the listener was given cannot be such a name.
 */
function hostAllowed(hostHeader: string | undefined, listenHost: string): boolean {
  if (hostHeader === undefined) return false;
  const name = hostName(hostHeader);
  if (name.startsWith('[')) return isIPv6(name.slice(1, -1));
  return isIPv4(name) || name === 'localhost' || name === listenHost.toLowerCase();
}

/**
 * The relay's admin listener, meant for a private address: Prometheus `/metrics`, `/healthz` (the
 * process answers) and `/readyz` (it accepts visitors and agents).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { host, port } = parseHostPort(options.listen);
  if (!isLoopback(host) && options.token === undefined)
    throw new OptionError(
      `the admin listener on ${options.listen} is reachable beyond this machine; set --admin-token (or POSTERN_ADMIN_TOKEN), or listen on 127.0.0.1`,
    );
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'GET only\n');
      return;
    }
    // Probes of load balancers and orchestrators name the host as they like; these two reveal nothing.
    if (path !== '/healthz' && path !== '/readyz' && !hostAllowed(req.headers.host, host)) {
      send(res, 421, 'the admin listener answers only to its own address (an IP address or localhost)\n');
      return;
    }
    if (path === '/healthz') {
      send(res, 200, 'ok\n');
      return;
    }
    if (path === '/readyz') {
      const ready = options.ready();
      if (ready === true) send(res, 200, 'ready\n');
      else send(res, 503, `${ready}\n`);
      return;
    }
    if (path === '/' || path === '/dashboard') {
      // The page holds no data of its own: it fetches /api/status, with the token if one is set.
      res.setHeader(
        'content-security-policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
      );
      send(res, 200, DASHBOARD_PAGE, 'text/html; charset=utf-8');
      return;
    }
    const guarded = path === '/metrics' || path === '/api/status';
    if (guarded && options.token !== undefined && !tokenMatches(req.headers.authorization, options.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      send(res, 401, 'admin token required (Authorization: Bearer <token>)\n');
      return;
    }
    if (path === '/api/status') {
      send(res, 200, `${JSON.stringify(options.status())}\n`, 'application/json');
      return;
    }
    if (path === '/metrics') {
      options.metrics.registry.metrics().then(
        (text) => send(res, 200, text, options.metrics.registry.contentType),
        (error: Error) => send(res, 500, `metrics failed: ${error.message}\n`),
      );
      return;
    }
    send(res, 404, 'not found: /, /api/status, /metrics, /healthz, /readyz\n');
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(listenFailure(error, { host, port }))),
    );
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
