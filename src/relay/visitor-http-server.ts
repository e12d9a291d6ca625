import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ResolvedRelayOptions } from './options.js';
import { writeRawError } from './visitor-error.js';

/**
 * The HTTP/1.1 parser every visitor connection is handed to once a listener accepted it (plain or
 * after TLS): head size and head time bounded, bodies streamed for as long as they take, and a
 * malformed head answered with a short error instead of a silent close.
 */
export function createVisitorHttpServer(
  opts: Pick<ResolvedRelayOptions, 'maxHeaderSize' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'>,
  handlers: {
    request(req: IncomingMessage, res: ServerResponse): void;
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  },
): Server {
  const server = createServer({
    maxHeaderSize: opts.maxHeaderSize,
    headersTimeout: opts.headersTimeoutMs,
    // Node checks the head timeout only this often (30 s by default): a slowloris visitor would
    // hold its connection up to that much longer than the timeout says.
    connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(opts.headersTimeoutMs / 4))),
    // Bodies stream for as long as they take; the head timeout above guards against slowloris.
    requestTimeout: 0,
    keepAliveTimeout: opts.keepAliveTimeoutMs,
    noDelay: true,
  });
  // This server never listens itself (our listeners hand it their sockets), but Node starts the
  // connection tracking behind headersTimeout (slowloris) and closeIdleConnections() only on
  // 'listening'. Without it neither works — found by test/attacks.test.ts.
  server.emit('listening');
  server.on('request', handlers.request);
  server.on('checkContinue', handlers.request);
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'HPE_HEADER_OVERFLOW')
      writeRawError(socket, 'request_head_too_large', `request head over ${opts.maxHeaderSize} bytes`);
    else if (error.code === 'ECONNRESET' || !socket.writable) socket.destroy();
    else writeRawError(socket, 'bad_request', `malformed request (${error.code ?? 'parse error'})`);
  });
  return server;
}
