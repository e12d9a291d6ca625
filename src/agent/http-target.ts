import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeader,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { statusOf, type WireErrorCode } from '../errors.js';
import { endToEndHeaders } from '../http/headers.js';
import { ResponseError } from '../http/response-parser.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { Header } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { forwardBody } from '../stream/forward-body.js';
import { StallError } from '../stream/stall-watch.js';
import { localhostLookup } from '../transport/localhost-lookup.js';
import { sendPooledRequest, sendTrailersWhenAsked } from './pooled-request.js';
import type { TargetService } from './targets.js';
import { type ExchangeRecord, packOutgoing, packRawHeaders, visitorOf } from './traffic-observer.js';

/**
 * Serves one stream from the relay by sending it to the service's HTTP target, streaming the
 * body both ways. A target that cannot be reached answers 502 `target_unreachable`; a target that
 * fails mid-response resets the stream, so the visitor sees a cut transfer.
 */
export function forwardToHttpTarget(
  stream: MuxStream,
  headers: IncomingMuxHeaders,
  service: TargetService,
  onDone?: (status: number) => void,
): void {
  const method = String(headers[':method'] ?? 'GET');
  const path = String(headers[':path'] ?? '/');
  const outgoing = endToEndHeaders(headers, { dropPostern: true });
  outgoing.host =
    service.hostHeader === 'rewrite'
      ? service.targetAuthority
      : String(headers[':authority'] ?? service.targetAuthority);
  const record = service.observer?.open({
    kind: 'http',
    service: service.name,
    method,
    path,
    headers: packOutgoing(outgoing),
    visitor: visitorOf(headers['x-forwarded-for']),
  });
  let failure: string | undefined;
  let finished = false;
  let req: ClientRequest | undefined;
  stream.on('close', () => {
    // A finished exchange leaves the target connection in the keep-alive pool; only one cut
    // short (the visitor left, the relay reset) is torn down.
    if (!finished) req?.destroy();
    record?.end(failure ?? (stream.rstCode ? `the stream was reset (code ${stream.rstCode})` : undefined));
  });
  const pool = service.targetPool;
  if (pool !== undefined && outgoing.expect === undefined) {
    const send = (body: Buffer | undefined): void => {
      const request = { method, path, host: String(outgoing.host), headers: outgoing };
      sendPooledRequest(stream, pool, body === undefined ? request : { ...request, body }, record, {
        onInvalid: (message) => respondError(stream, message, undefined, record),
        onFailed: (error) => {
          if (error instanceof ResponseError) {
            service.reachability.answered();
            respondError(
              stream,
              `${service.targetText} sent a response the agent cannot pass on: ${error.message}`,
              undefined,
              record,
            );
          } else respondTargetUnreachable(stream, service, error, record);
        },
        onDone: (status, error) => {
          service.reachability.answered();
          finished = error === undefined;
          failure ??= error;
          onDone?.(status);
        },
      });
    };
    if (stream.remoteEnded) {
      send(undefined);
      return;
    }
    const length = smallBodyLength(outgoing['content-length']);
    if (length !== undefined) {
      collectBody(stream, length, record, send);
      return;
    }
  }
  const target = service.target;
  const options = {
    agent: service.pool,
    method,
    path,
    headers: outgoing,
    ...(target.transport === 'unix'
      ? { socketPath: target.socketPath as string }
      : { host: target.host, port: target.port, lookup: localhostLookup }),
  };
  let request: ClientRequest;
  try {
    request = target.transport === 'https' ? httpsRequest(options) : httpRequest(options);
  } catch (error) {
    respondError(stream, `invalid request for the target: ${(error as Error).message}`, undefined, record);
    return;
  }
  req = request;
  request.on('continue', () => {
    if (!stream.headersSent && !stream.destroyed) stream.additionalHeaders({ ':status': 100 });
  });
  request.once('socket', (socket) => {
    // Only connecting is bounded here: an established response may idle as long as it likes (SSE).
    if (!socket.connecting) return;
    const timer = setTimeout(
      () => request.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
      service.connectTimeoutMs,
    );
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  });
  request.once('response', (res: IncomingMessage) =>
    relayResponse(
      stream,
      res,
      (status, error) => {
        service.reachability.answered();
        finished = error === undefined;
        failure ??= error;
        onDone?.(status);
      },
      record,
    ),
  );
  request.once('error', (error: NodeJS.ErrnoException) => {
    if (stream.headersSent) {
      failure ??= `target failed mid-response: ${error.code ?? error.message}`;
      resetStream(stream, failure);
    } else respondTargetUnreachable(stream, service, error, record);
  });
  service.stalls.watch(request, 'the target');
  forwardBody(stream, request);
  if (record !== undefined) stream.on('data', (chunk: Buffer) => record.fromVisitor(chunk));
}

/**
 * A body this size or smaller, declared by Content-Length, is collected before the request goes
 * out, so head and body leave in one write through the pooled client (nginx buffers request bodies
 * by default for the same reason). Larger or chunked bodies are streamed by `http.request`.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

function smallBodyLength(field: OutgoingHttpHeader | undefined): number | undefined {
  if (typeof field !== 'string' && typeof field !== 'number') return undefined;
  const length = Number(field);
  return Number.isInteger(length) && length >= 0 && length <= SMALL_BODY_BYTES ? length : undefined;
}

/**
 * Collects a request body of `length` bytes (at most SMALL_BODY_BYTES) and hands it over once the
 * stream ended. A stream cut short sends nothing: the target never sees part of a request.
 */
function collectBody(
  stream: MuxStream,
  length: number,
  record: ExchangeRecord | undefined,
  onWhole: (body: Buffer) => void,
): void {
  const parts: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    // The relay frames the body by its Content-Length; more is a broken stream, never buffered.
    if (size > length) resetStream(stream, 'the request body ran past its Content-Length');
    else {
      parts.push(chunk);
      record?.fromVisitor(chunk);
    }
  });
  stream.on('end', () => {
    if (size !== length) resetStream(stream, 'the request body ended before its Content-Length');
    else onWhole(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size));
  });
}

function relayResponse(
  stream: MuxStream,
  res: IncomingMessage,
  onDone: (status: number, error?: string) => void,
  record: ExchangeRecord | undefined,
): void {
  if (stream.destroyed) {
    res.destroy();
    return;
  }
  const status = res.statusCode ?? 502;
  const headers = endToEndHeaders(res.headers);
  const hasTrailers = res.headers.trailer !== undefined;
  try {
    stream.respond({ ...headers, ':status': status }, { waitForTrailers: hasTrailers });
  } catch (error) {
    res.destroy();
    respondError(
      stream,
      `the target sent a response the session cannot carry (${(error as Error).message})`,
      undefined,
      record,
    );
    return;
  }
  if (record !== undefined) {
    record.response(status, packRawHeaders(res.rawHeaders));
    res.on('data', (chunk: Buffer) => record.toVisitor(chunk));
  }
  if (hasTrailers) sendTrailersWhenAsked(stream, () => res.trailers);
  forwardBody(res, stream, (error) => {
    if (error) resetStream(stream, `target response failed: ${error.message}`);
    onDone(status, error && `target response failed: ${error.message}`);
  });
}

function respondError(
  stream: MuxStream,
  message: string,
  code: WireErrorCode = 'target_unreachable',
  record?: ExchangeRecord,
): void {
  if (stream.destroyed || stream.headersSent) return;
  const status = statusOf(code);
  const body = `postern: ${message}\n`;
  const headers = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    [Header.error]: code,
  };
  stream.respond({ ':status': status, ...headers });
  stream.end(body);
  record?.response(status, packOutgoing(headers));
  record?.toVisitor(Buffer.from(body));
}

/**
 * 502 `target_unreachable`, naming the target and the error (ECONNREFUSED, a certificate error…);
 * 504 `target_stalled` when the target stopped taking the request body.
 */
export function respondTargetUnreachable(
  stream: MuxStream,
  service: TargetService,
  error: NodeJS.ErrnoException,
  record?: ExchangeRecord,
): void {
  if (error instanceof StallError) {
    respondError(stream, `${service.targetText}: ${error.message}`, 'target_stalled', record);
    return;
  }
  service.reachability.failed(error.code ?? error.message);
  respondError(
    stream,
    `the agent could not reach ${service.targetText} (${error.code ?? error.message})`,
    undefined,
    record,
  );
}
