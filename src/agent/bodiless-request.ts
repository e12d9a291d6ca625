import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { endToEndHeaders } from '../http/headers.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { countRead } from '../read-buffer-collector.js';
import { resetStream } from '../session/reset-stream.js';
import type { ExchangeRecord, PackedHeaders } from './traffic-observer.js';

/**
 * Sends a request without a body (GET, HEAD, DELETE…: most of what a tunnel carries) to an http://
 * or unix:// target through undici's pool, and streams the answer back with backpressure: a full
 * stream pauses the target connection until it drains. It costs the agent about half the CPU of
 * `http.request` per request (docs/benchmarks.md). Requests with a body keep `http.request`,
 * which undici cannot replace (`Expect: 100-continue`, the stall watch on the request body), and
 * so do https:// targets: undici takes the TLS server name from each request's Host header, which
 * here is the visitor's, not the target's.
 *
 * `onFailed` answers the visitor when the target fails before its response head (502/504);
 * `onDone` runs once when the response ended, whole or not.
 */
export function sendBodilessRequest(
  stream: MuxStream,
  dispatcher: Dispatcher,
  request: { method: string; path: string; headers: OutgoingHttpHeaders },
  record: ExchangeRecord | undefined,
  callbacks: {
    onFailed: (error: NodeJS.ErrnoException) => void;
    onDone: (status: number, error?: string) => void;
  },
): void {
  let controller: Dispatcher.DispatchController | undefined;
  let status = 0;
  let finished = false;
  let hasTrailers = false;
  stream.on('close', () => {
    // A finished exchange leaves the target connection in the pool; only one cut short is closed.
    if (!finished) controller?.abort(new Error('the stream was closed'));
  });
  stream.on('drain', () => controller?.resume());
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(started) {
      controller = started;
      if (stream.destroyed) started.abort(new Error('the stream was closed'));
    },
    onResponseStart(started, statusCode, headers) {
      // Interim answers (103 Early Hints) are not passed on, as with http.request.
      if (statusCode < 200 || stream.destroyed) return;
      status = statusCode;
      hasTrailers = headers.trailer !== undefined;
      try {
        stream.respond(
          { ...endToEndHeaders(headers), ':status': statusCode },
          { waitForTrailers: hasTrailers },
        );
      } catch (error) {
        started.abort(error as Error);
        return;
      }
      record?.response(statusCode, packRaw(started.rawHeaders));
    },
    onResponseData(started, chunk) {
      countRead(chunk.length);
      if (stream.destroyed) return;
      record?.toVisitor(chunk);
      if (!stream.write(chunk)) started.pause();
    },
    onResponseEnd(_started, trailers) {
      finished = true;
      if (hasTrailers) sendTrailersWhenAsked(stream, trailers);
      stream.end();
      callbacks.onDone(status);
    },
    onResponseError(_started, error) {
      if (finished) return;
      finished = true;
      const failure = error as NodeJS.ErrnoException;
      failure.code = nodeStyleCode(failure);
      if (stream.headersSent) {
        const message = `target failed mid-response: ${failure.code ?? failure.message}`;
        resetStream(stream, message);
        callbacks.onDone(status, message);
      } else if (!stream.destroyed) callbacks.onFailed(failure);
    },
  };
  dispatcher.dispatch(
    {
      method: request.method as Dispatcher.HttpMethod,
      path: request.path,
      // undici turns number values into strings itself (and checks every value); its type only
      // names strings.
      headers: request.headers as Record<string, string | string[] | undefined>,
      // Passed to the target as they come: a visitor's idempotent request is not sent twice.
      idempotent: false,
      blocking: false,
    },
    handler,
  );
}

function sendTrailersWhenAsked(stream: MuxStream, trailers: IncomingHttpHeaders): void {
  stream.once('wantTrailers', () => {
    try {
      stream.sendTrailers(endToEndHeaders(trailers));
    } catch {
      resetStream(stream, 'trailers the session cannot carry');
    }
  });
}

/**
 * undici's raw header list (names and values alternating, as Buffers) packed for the inspector,
 * names as the target wrote them: the lines are laid out in one buffer and decoded once (as latin1,
 * as Node decodes header bytes). Item by item, ten toString() calls cost about twice as much.
 */
function packRaw(raw: Dispatcher.DispatchController['rawHeaders']): PackedHeaders {
  if (!Array.isArray(raw)) return '';
  const items = raw as (Buffer | string)[];
  let length = 2 * items.length;
  for (const item of items) length += item.length;
  const whole = Buffer.allocUnsafe(length);
  let at = 0;
  for (let i = 0; i + 1 < items.length; i += 2) {
    at += put(whole, items[i] as Buffer | string, at);
    at = whole.writeUInt16BE(0x3a20, at); // ': '
    at += put(whole, items[i + 1] as Buffer | string, at);
    at = whole.writeUInt16BE(0x0d0a, at); // CRLF
  }
  return whole.toString('latin1', 0, at);
}

function put(into: Buffer, item: Buffer | string, at: number): number {
  return typeof item === 'string' ? into.write(item, at, 'latin1') : item.copy(into, at);
}

/**
 * The codes Node's own client gives for the same failures, so messages and logs read the same
 * whichever client reached the target.
 */
function nodeStyleCode(error: NodeJS.ErrnoException): string | undefined {
  switch (error.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'ETIMEDOUT';
    case 'UND_ERR_SOCKET':
      return 'ECONNRESET';
    case 'UND_ERR_HEADERS_OVERFLOW':
      return 'HPE_HEADER_OVERFLOW';
    default:
      return error.code;
  }
}
