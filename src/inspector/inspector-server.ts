import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReplayRequest } from '../agent/replay.js';
import { hostForUrl } from '../connection-string/index.js';
import { PosternError } from '../errors.js';
import { parseHostPort } from '../http/host-port.js';
import { listenFailure } from '../listen-failure.js';
import type { Capture, CaptureStore } from './capture-store.js';
import { type CaptureFilter, captureDetail, captureSummary, matches } from './capture-view.js';
import { INSPECTOR_CSS, INSPECTOR_HTML, INSPECTOR_JS } from './inspector-page.js';
import { parseReplayEdits, ReplayEditError } from './replay-edits.js';

/** Live pages (Server-Sent Events streams) served at once. */
const MAX_EVENT_CLIENTS = 16;
/** Live updates are sent at most this often, ms (a busy tunnel changes many captures a second). */
const EVENT_FLUSH_MS = 100;
/** Largest request body the API reads (an edited replay with a 1 MiB body as base64 fits). */
const MAX_API_BODY = 4 << 20;
/** Ports tried after the default one when it is taken (ngrok does the same from 4040). */
export const DEFAULT_INSPECT_ADDRESS = '127.0.0.1:4040';
const PORT_SEARCH = 10;

export interface InspectorOptions {
  store: CaptureStore;
  /** Sends a request again (the agent's replay). */
  replay(request: ReplayRequest): Promise<{ id: string | undefined; status: number }>;
  /** host:port; port 0 takes a free one. Default 127.0.0.1:4040. */
  listen?: string;
  /** When the port is taken, try the next ones (for the default address). Default false. */
  searchPorts?: boolean;
  /** What /api/status adds (the agent's services and their URLs). */
  status?: () => Record<string, unknown>;
}

export interface Inspector {
  /** e.g. http://127.0.0.1:4040 */
  url: string;
  close(): Promise<void>;
}

/**
 * The agent's inspector: a page and a JSON API on a local address listing the exchanges the agent
 * forwarded, live, with replay. A browser page on any other site must not be able to read or
 * replay captures: requests must name this address in Host (no DNS rebinding), and changes need
 * `Content-Type: application/json` (which a cross-site form cannot send without a CORS preflight
 * this server never grants) and, when the browser sends one, the page's own Origin.
 */
export async function startInspector(options: InspectorOptions): Promise<Inspector> {
  const { host, port } = parseHostPort(options.listen ?? DEFAULT_INSPECT_ADDRESS);
  const events = new EventFeed(options.store);
  let allowedHosts = new Set<string>();
  const server: Server = createServer((req, res) => {
    route(req, res, options, events, allowedHosts).catch((error: Error) => {
      if (!res.headersSent) sendJson(res, 500, { error: error.message });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const tries = options.searchPorts && port !== 0 ? PORT_SEARCH : 1;
  let bound: AddressInfo | undefined;
  for (let i = 0; i < tries && bound === undefined; i++) {
    try {
      bound = await listen(server, host, port + i);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || i === tries - 1)
        throw new PosternError(
          'POSTERN_INSPECT_LISTEN',
          `the inspector cannot listen on ${hostForUrl(host)}:${port + i}: ${listenFailure(error as NodeJS.ErrnoException, { host, port: port + i })}`,
        );
    }
  }
  const authority = `${hostForUrl(host)}:${(bound as AddressInfo).port}`;
  allowedHosts = loopbackHosts(host, (bound as AddressInfo).port);
  return {
    url: `http://${authority}`,
    close: async () => {
      events.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Host values a request may carry. On a loopback address only the names of that address (so a
 * rebinding DNS name is refused); bound elsewhere (the user's choice), any.
 */
function loopbackHosts(host: string, port: number): Set<string> {
  const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
  if (!loopback) return new Set();
  return new Set([`${hostForUrl(host)}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
}

const SECURITY_HEADERS = {
  // Nothing but the inspector's own script and style; captured data can never run as code.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
};

function send(res: ServerResponse, status: number, body: string | Buffer, contentType: string): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');
}

async function route(
  req: IncomingMessage,
  res: ServerResponse,
  options: InspectorOptions,
  events: EventFeed,
  allowedHosts: Set<string>,
): Promise<void> {
  if (allowedHosts.size > 0 && !allowedHosts.has(String(req.headers.host).toLowerCase())) {
    sendJson(res, 421, { error: `the inspector answers only to ${[...allowedHosts][0]}` });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://inspector');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (method === 'POST' || method === 'DELETE') {
    const refusal = changeRefusal(req);
    if (refusal !== undefined) {
      sendJson(res, 403, { error: refusal });
      return;
    }
  } else if (method !== 'GET' && method !== 'HEAD') {
    sendJson(res, 405, { error: `${method} is not allowed here` });
    return;
  }
  const store = options.store;
  if (method === 'GET' || method === 'HEAD') {
    if (path === '/' || path === '/index.html')
      return send(res, 200, INSPECTOR_HTML, 'text/html; charset=utf-8');
    if (path === '/app.js') return send(res, 200, INSPECTOR_JS, 'text/javascript; charset=utf-8');
    if (path === '/app.css') return send(res, 200, INSPECTOR_CSS, 'text/css; charset=utf-8');
    if (path === '/api/status')
      return sendJson(res, 200, {
        ...(options.status?.() ?? {}),
        captures: store.list().length,
        keptBytes: store.keptBytes,
        limits: store.limits,
      });
    if (path === '/api/requests')
      return sendJson(res, 200, { captures: await listCaptures(store, url.searchParams) });
    if (path === '/api/events') return events.subscribe(req, res);
    const one = /^\/api\/requests\/([0-9]+)(\/body\/(request|response))?$/.exec(path);
    if (one !== null) {
      const capture = store.get(one[1] as string);
      if (capture === undefined)
        return sendJson(res, 404, { error: `no capture ${one[1]} (it may have been dropped)` });
      if (one[3] === undefined) return sendJson(res, 200, await captureDetail(store, capture));
      const body = one[3] === 'request' ? capture.request : capture.response;
      // Raw bytes as a download: never rendered by the browser, whatever they contain.
      res.setHeader('content-disposition', `attachment; filename="capture-${capture.id}-${one[3]}.bin"`);
      return send(res, 200, body.bytes(), 'application/octet-stream');
    }
    return sendJson(res, 404, { error: `nothing at ${path}` });
  }
  if (method === 'DELETE' && path === '/api/requests') {
    store.clear();
    events.reset();
    return sendJson(res, 200, { cleared: true });
  }
  const replay = /^\/api\/requests\/([0-9]+)\/replay$/.exec(path);
  if (method === 'POST' && replay !== null) {
    const capture = store.get(replay[1] as string);
    if (capture === undefined)
      return sendJson(res, 404, { error: `no capture ${replay[1]} (it may have been dropped)` });
    const text = await readBody(req, MAX_API_BODY);
    if (text === undefined)
      return sendJson(res, 413, { error: `a replay request is at most ${MAX_API_BODY} bytes` });
    let request: ReplayRequest;
    try {
      request = parseReplayEdits(capture, text);
    } catch (error) {
      if (error instanceof ReplayEditError) return sendJson(res, error.status, { error: error.message });
      throw error;
    }
    try {
      const result = await options.replay(request);
      return sendJson(res, 200, { id: result.id ?? null, status: result.status, replayOf: capture.id });
    } catch (error) {
      return sendJson(res, 502, { error: (error as Error).message });
    }
  }
  return sendJson(res, 404, { error: `nothing at ${method} ${path}` });
}

/** Why a state-changing request is refused, if it is. */
function changeRefusal(req: IncomingMessage): string | undefined {
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim()
    .toLowerCase();
  if (type !== 'application/json') return 'changes need Content-Type: application/json';
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host}`)
    return `requests from ${origin} may not change anything here`;
  return undefined;
}

/** A search holds the event loop at most this long before it lets other work run, ms. */
const SEARCH_SLICE_MS = 4;

/**
 * The captures that pass the filter, newest first. A search may read hundreds of bodies of up to
 * 1 MiB each: it gives the event loop back every few milliseconds, so the agent's tunnels (and
 * their keepalives) go on meanwhile.
 */
async function listCaptures(
  store: CaptureStore,
  params: URLSearchParams,
): Promise<Record<string, unknown>[]> {
  const filter: CaptureFilter = {
    q: params.get('q') ?? undefined,
    kind: params.get('kind') ?? undefined,
    service: params.get('service') ?? undefined,
    status: params.get('status') ?? undefined,
  };
  const limit = Math.min(Number(params.get('limit') ?? store.limits.entries) || store.limits.entries, 10_000);
  const out: Record<string, unknown>[] = [];
  let slice = performance.now();
  for (const capture of store.list()) {
    if (out.length >= limit) break;
    if (await matches(store, capture, filter)) out.push(captureSummary(capture));
    if (performance.now() - slice > SEARCH_SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
  }
  return out;
}

function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        resolve(undefined);
        req.destroy();
        return;
      }
      parts.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.once('error', reject);
  });
}

/**
 * Server-Sent Events for the live page: changed captures are gathered and sent together every
 * EVENT_FLUSH_MS. A page that reads slowly is not written to until it drained; if it fell more
 * than a store's worth of changes behind, it is told to reload the list instead.
 */
class EventFeed {
  readonly #clients = new Map<ServerResponse, { pending: Set<string>; reset: boolean }>();
  readonly #store: CaptureStore;
  readonly #unsubscribe: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(store: CaptureStore) {
    this.#store = store;
    this.#unsubscribe = store.onChange((capture: Capture) => {
      // With no page open nothing is sent: no flush timer either, three changes a request.
      if (this.#clients.size === 0) return;
      for (const client of this.#clients.values()) {
        if (client.pending.size >= store.limits.entries) client.reset = true;
        else client.pending.add(capture.id);
      }
      this.#timer ??= setTimeout(() => this.#flush(), EVENT_FLUSH_MS);
    });
  }

  subscribe(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= MAX_EVENT_CLIENTS) {
      sendJson(res, 503, { error: `at most ${MAX_EVENT_CLIENTS} live pages at once` });
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
    res.write('retry: 2000\n\n');
    this.#clients.set(res, { pending: new Set(), reset: false });
    req.socket.setTimeout(0);
    res.once('close', () => this.#clients.delete(res));
  }

  reset(): void {
    for (const client of this.#clients.values()) client.reset = true;
    this.#timer ??= setTimeout(() => this.#flush(), EVENT_FLUSH_MS);
  }

  #flush(): void {
    this.#timer = undefined;
    for (const [res, client] of this.#clients) {
      if (res.writableNeedDrain) continue;
      let out = '';
      if (client.reset) out = 'event: reset\ndata: {}\n\n';
      else {
        for (const id of client.pending) {
          const capture = this.#store.get(id);
          if (capture !== undefined)
            out += `event: capture\ndata: ${JSON.stringify(captureSummary(capture))}\n\n`;
        }
      }
      client.pending.clear();
      client.reset = false;
      if (out !== '') res.write(out);
    }
    // Pages that were draining get what gathered meanwhile on a later flush.
    if ([...this.#clients.values()].some((c) => c.pending.size > 0 || c.reset))
      this.#timer ??= setTimeout(() => this.#flush(), EVENT_FLUSH_MS);
  }

  close(): void {
    this.#unsubscribe();
    clearTimeout(this.#timer);
    for (const res of this.#clients.keys()) res.end();
    this.#clients.clear();
  }
}
