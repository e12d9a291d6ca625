import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';

const blocks = new Map<number, Buffer>();

/**
 * Deterministic bytes for transfer tests: block i is filled with (i mod 251). Blocks of the
 * default size are made once and reused, so the origin is not what limits a benchmark.
 */
export function patternBlock(index: number, size = 64 * 1024): Buffer {
  if (size !== 64 * 1024) return Buffer.alloc(size, index % 251);
  let block = blocks.get(index % 251);
  if (block === undefined) {
    block = Buffer.alloc(size, index % 251);
    blocks.set(index % 251, block);
  }
  return block;
}

export function sha256OfPattern(totalBytes: number, size = 64 * 1024): string {
  const hash = createHash('sha256');
  for (let i = 0, sent = 0; sent < totalBytes; i++, sent += size)
    hash.update(patternBlock(i, size).subarray(0, Math.min(size, totalBytes - sent)));
  return hash.digest('hex');
}

/** Writes `n` bytes of the test pattern (64 KiB blocks, with backpressure), then ends `res`. */
export function sendPattern(res: Writable, n: number): void {
  let i = 0;
  let sent = 0;
  const pump = (): void => {
    while (sent < n) {
      const chunk = patternBlock(i++).subarray(0, Math.min(64 * 1024, n - sent));
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

export interface Origin {
  server: Server;
  url: string;
  port: number;
  /**
   * Resolves when the next request for `pathname` reaches the origin: call it before sending the
   * request, then wait on it instead of sleeping until the request is surely in flight.
   */
  nextRequest(pathname: string): Promise<IncomingMessage>;
  close(): Promise<void>;
}

/**
 * A test origin. Routes: /echo (method, url, headers, body sha256 as JSON), /bytes?n=N (N pattern
 * bytes, backpressure honoured), /upload (sha256 of the body), /sse?n=N&gapMs=G (N events),
 * /trailers (chunked body with a trailer), /slow?ms=M (answers after M ms), anything else: 200 "ok".
 */
export async function startOrigin(): Promise<Origin> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    nextRequest: (pathname) =>
      new Promise((resolve) => {
        const seen = (req: IncomingMessage): void => {
          if (new URL(req.url ?? '/', 'http://x').pathname !== pathname) return;
          server.off('request', seen);
          resolve(req);
        };
        server.on('request', seen);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const n = Number(url.searchParams.get('n') ?? 0);
  switch (url.pathname) {
    case '/echo': {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      req.on('end', () => {
        const body = JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          size,
          sha256: hash.digest('hex'),
          trailers: req.trailers,
        });
        res.writeHead(200, { 'content-type': 'application/json', 'x-echo': 'yes' });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    case '/bytes': {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      sendPattern(res, n);
      return;
    }
    case '/upload': {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      req.on('end', () => res.end(JSON.stringify({ size, sha256: hash.digest('hex') })));
      return;
    }
    case '/sse': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const gap = Number(url.searchParams.get('gapMs') ?? 200);
      let sent = 0;
      const tick = (): void => {
        res.write(`data: event ${sent}\n\n`);
        sent++;
        if (sent >= n) res.end();
        else setTimeout(tick, gap);
      };
      tick();
      return;
    }
    case '/trailers': {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part one\n');
      res.write('part two\n');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    }
    case '/slow': {
      const timer = setTimeout(() => res.end('slow done'), Number(url.searchParams.get('ms') ?? 1000));
      res.once('close', () => clearTimeout(timer));
      return;
    }
    default:
      req.resume();
      res.end('ok');
  }
}
