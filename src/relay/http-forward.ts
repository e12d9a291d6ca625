import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { PosternError } from '../errors.js';
import { endToEndHeaders } from '../http/headers.js';
import { IDEMPOTENT_METHODS } from '../http/methods.js';
import { MuxError } from '../mux/frames.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { hostName } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { forwardBody } from '../stream/forward-body.js';
import type { StreamPeer } from './cluster/node-links.js';
import { scopeSetCookies } from './cookie-scope.js';
import type { ForwardContext } from './forward-context.js';
import { keepUnderPrefix } from './path-prefix.js';
import type { Tunnel } from './registry.js';
import { forbiddenTrailer, responseFramingProblem } from './response-framing.js';
import {
  admitStream,
  admitStreamNow,
  findSession,
  streamHeaders,
  visitorAddressOf,
} from './stream-admission.js';
import { sendVisitorError } from './visitor-error.js';

/** Forwards one visitor request to the tunnel `label` as one stream of its agent's session. */
export async function forwardHttpRequest(
  ctx: ForwardContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: { label: string; path: string; prefix: string },
): Promise<void> {
  const request = {
    declaredBodyBytes: Number(req.headers['content-length'] ?? 0),
    upgrade: undefined,
    visitorAddress: visitorAddressOf(ctx, req),
    headers: req.headers,
  };
  const admission = admitStreamNow(ctx, route, res, request) ?? (await admitStream(ctx, route, res, request));
  if (!admission.ok) {
    if (admission.error !== undefined)
      sendVisitorError(res, admission.error, admission.message, admission.headers);
    return;
  }
  const { tunnel, session } = admission;
  // The credentials the relay checked are its own business; the target never sees them.
  for (const name of admission.consumed) delete req.headers[name];
  openAgentStream({ ctx, req, res, route, tunnel, attempt: 0 }, session);
}

/** A request is sent again at most this often, on another session. */
const MAX_SESSION_RETRIES = 1;

/**
 * Whether a request that got no answer may go out again on another session: only without a body
 * (the body was streamed on, not kept), and only when it is known not to have been processed (the
 * agent refused the stream, as a session does for streams past its GOAWAY) or when it is idempotent and
 * its session broke under it (a cut connection, not an answer from the agent).
 */
function mayResend(method: string, hasBody: boolean, stream: MuxStream, session: StreamPeer): boolean {
  if (hasBody) return false;
  if (stream.rstCode === MuxError.refusedStream) return true;
  return session.broken && IDEMPOTENT_METHODS.has(method);
}

/** One admitted visitor request on its way to its tunnel's agent. */
interface AdmittedRequest {
  ctx: ForwardContext;
  req: IncomingMessage;
  res: ServerResponse;
  route: { label: string; path: string; prefix: string };
  tunnel: Tunnel;
  /** 0, or the number of times it was sent before on a session that broke under it. */
  attempt: number;
}

function openAgentStream(admitted: AdmittedRequest, session: StreamPeer): void {
  const { ctx, req, res, route, tunnel, attempt } = admitted;
  const { options } = ctx;
  const headers = streamHeaders(ctx, req, route, tunnel);
  if (
    String(req.headers.te ?? '')
      .toLowerCase()
      .includes('trailers')
  )
    headers.te = 'trailers';
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';

  let stream: MuxStream;
  try {
    stream = session.openStream(headers, { endStream: !hasBody });
  } catch (error) {
    sendVisitorError(res, 'agent_error', `could not open a stream to the agent: ${(error as Error).message}`);
    return;
  }

  const streamClosed = ctx.metrics.streamOpened('http');
  const timer = setTimeout(() => {
    sendVisitorError(
      res,
      'response_timeout',
      `the agent sent no response within ${options.responseTimeoutMs} ms`,
    );
    resetStream(stream, 'response timeout');
  }, options.responseTimeoutMs);

  if (hasBody) {
    const limit = options.maxRequestBodyBytes;
    const onTooLarge = (): void => {
      clearTimeout(timer);
      sendVisitorError(res, 'body_too_large', `request body over the limit of ${limit} bytes`, {
        connection: 'close',
      });
    };
    if (limit > 0) {
      const limiter = byteLimit(limit, onTooLarge);
      forwardBody(req, limiter);
      forwardBody(limiter, stream);
    } else {
      forwardBody(req, stream);
    }
  }
  // Listeners only where they can fire: an agent answers 100 only to a request that expects it,
  // and sends trailers only after a head that announced them (Trailer).
  if (req.headers.expect !== undefined) {
    stream.on('continue', () => {
      if (!res.headersSent) res.writeContinue();
    });
  }
  stream.once('response', (responseHeaders: IncomingMuxHeaders) => {
    clearTimeout(timer);
    if (res.headersSent || res.destroyed) return;
    const status = Number(responseHeaders[':status']);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      resetStream(stream, 'invalid status');
      sendVisitorError(
        res,
        'agent_error',
        `the agent sent an invalid status (${String(responseHeaders[':status'])})`,
      );
      return;
    }
    const framing = responseFramingProblem(status, responseHeaders);
    if (framing !== undefined) {
      resetStream(stream, 'invalid response framing');
      sendVisitorError(res, 'agent_error', `the agent sent an invalid response head (${framing})`);
      return;
    }
    const outgoing = endToEndHeaders(responseHeaders);
    if (outgoing['set-cookie'] !== undefined) scopeCookies(ctx, req, route, outgoing);
    if (route.prefix !== '') keepUnderPrefix(outgoing, route.prefix, req.headers.host);
    try {
      res.writeHead(status, outgoing);
    } catch (error) {
      resetStream(stream, 'invalid response head');
      sendVisitorError(
        res,
        'agent_error',
        `the agent sent an invalid response head (${(error as Error).message})`,
      );
      return;
    }
    if (responseHeaders.trailer !== undefined) {
      stream.on('trailers', (trailers: IncomingMuxHeaders) => {
        // Too late for a 502: a trailer that would reframe the message cuts it instead.
        if (forbiddenTrailer(trailers) !== undefined) {
          resetStream(stream, 'invalid trailers');
          res.destroy();
          return;
        }
        try {
          res.addTrailers(endToEndHeaders(trailers) as Record<string, string>);
        } catch {
          // Trailers a visitor's HTTP/1.1 cannot carry are dropped, the body is still whole.
        }
      });
    }
    // A stream reset mid-body destroys the visitor's connection, so a cut transfer is seen as
    // cut, never as a clean end. Only a visitor whose connection filled up can stall: watched from
    // then on, most responses (small ones) never are (docs/benchmarks.md).
    forwardBody(stream, res, undefined, () => ctx.stalls.watch(res, 'the visitor'));
  });
  stream.on('close', () => {
    streamClosed();
    clearTimeout(timer);
    if (res.headersSent || res.destroyed) return;
    if (attempt < MAX_SESSION_RETRIES && mayResend(req.method ?? 'GET', hasBody, stream, session)) {
      resendOnAnotherSession({ ...admitted, attempt: attempt + 1 }).catch((error: Error) =>
        sendVisitorError(res, 'agent_error', `internal error while resending: ${error.message}`),
      );
      return;
    }
    const code = stream.rstCode ?? 0;
    sendVisitorError(res, 'agent_error', `the agent closed the stream before answering (code ${code})`);
  });
  stream.on('error', () => {});
  res.on('close', () => {
    // Only a response cut short is reset: a finished stream is already gone on both ends.
    if (!res.writableFinished) resetStream(stream, 'visitor went away');
  });
}

/** Makes cookies that would reach other tunnels host-only (cookie-scope.ts). */
export function scopeCookies(
  ctx: ForwardContext,
  req: IncomingMessage,
  route: { label: string },
  headers: OutgoingHttpHeaders,
): void {
  const host = hostName(req.headers.host ?? '');
  const scoped = scopeSetCookies(
    headers['set-cookie'] as string | string[],
    host.startsWith(`${route.label}.`) ? host : undefined,
  );
  headers['set-cookie'] = scoped.values;
  if (scoped.rescoped > 0)
    ctx.options.logger.debug(
      {
        tunnel: route.label,
        cookies: scoped.rescoped,
      },
      'cookie Domain removed: it reached other tunnels',
    );
}

async function resendOnAnotherSession(admitted: AdmittedRequest): Promise<void> {
  const { ctx, res, route, tunnel } = admitted;
  const session = await findSession(ctx, tunnel, res);
  if (res.destroyed || res.headersSent) return;
  if (session === undefined) {
    sendVisitorError(
      res,
      'tunnel_offline',
      `the agent of ${route.label} lost its connection; try again shortly`,
      {
        'retry-after': '2',
      },
    );
    return;
  }
  openAgentStream(admitted, session);
}

/** Passes bytes through until `limit`; past it calls `onExceeded` first, then fails the body. */
function byteLimit(limit: number, onExceeded: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) {
        onExceeded();
        callback(new PosternError('body_too_large', 'request body too large'));
        return;
      }
      callback(null, chunk);
    },
  });
}
