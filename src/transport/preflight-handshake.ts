import type { Duplex } from 'node:stream';
import { PosternError } from '../errors.js';
import { continueAfterHead, type ReplyHeadFailure, readReplyHead } from './reply-head.js';

/** The preflight's reply head may be at most this long (up to its blank line). */
export const MAX_REPLY_HEAD_BYTES = 16_384;
/** Of a refusal's body, at most this much is kept for the error message. */
const REFUSAL_BODY_BYTES = 512;
/** How long to wait for a refusal's body after its head, ms. */
const REFUSAL_BODY_WAIT_MS = 200;

/** The server answered the preflight with something other than 101. */
export class PreflightRefusedError extends PosternError {
  readonly status: number;
  readonly statusLine: string;
  readonly body: string;

  constructor(statusLine: string, body: string) {
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const excerpt = body.trim().split('\n')[0]?.slice(0, 200) ?? '';
    super('POSTERN_PREFLIGHT_REFUSED', `preflight refused: ${statusLine}${excerpt ? ` — ${excerpt}` : ''}`, {
      retryable: status >= 500 || status === 429,
    });
    this.name = 'PreflightRefusedError';
    this.status = status;
    this.statusLine = statusLine;
    this.body = body;
  }
}

/** The preflight could not complete: timeout, a malformed or oversized reply, or the connection closed. */
export class PreflightFailedError extends PosternError {
  constructor(message: string) {
    super('POSTERN_PREFLIGHT_FAILED', message, { retryable: true });
    this.name = 'PreflightFailedError';
  }
}

/**
 * Sends `GET <path>` with `Connection: Upgrade` and `Upgrade: <token>` plus `headers`, then reads the
 * reply head exactly, up to its blank line. On 101, bytes that came after the head are put back on
 * the socket, so protocols where the server speaks first lose nothing.
 */
export async function preflightHandshake(
  socket: Duplex,
  request: {
    path: string;
    host: string;
    token: string;
    headers: readonly (readonly [string, string])[];
    timeoutMs: number;
  },
): Promise<Duplex> {
  const lines = [
    `GET ${request.path === '' ? '/' : request.path} HTTP/1.1`,
    `Host: ${request.host}`,
    'Connection: Upgrade',
    `Upgrade: ${request.token}`,
    ...request.headers.map(([name, value]) => `${name}: ${value}`),
  ];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  const reply = await readReplyHead(socket, { maxBytes: MAX_REPLY_HEAD_BYTES, timeoutMs: request.timeoutMs });
  if (reply.kind === 'head' && reply.status === 101) return continueAfterHead(socket, reply);
  if (reply.kind === 'head') {
    const body = await collectBody(socket, reply.rest);
    socket.destroy();
    throw new PreflightRefusedError(reply.statusLine, body);
  }
  socket.destroy();
  throw new PreflightFailedError(failureMessage(reply, request.timeoutMs));
}

function failureMessage(failure: ReplyHeadFailure, timeoutMs: number): string {
  switch (failure.kind) {
    case 'timeout':
      return `no complete answer to the preflight within ${timeoutMs} ms`;
    case 'too-long':
      return `the preflight answer has no blank line within ${failure.maxBytes} bytes`;
    case 'closed':
      return `the server closed the connection during the preflight (after ${failure.bytes} bytes of its answer)`;
    case 'error':
      return `connection failed during the preflight: ${failure.error.message}`;
    case 'not-http':
      return `the preflight answer does not start with an HTTP status line: ${JSON.stringify(failure.statusLine.slice(0, 80))}`;
  }
}

/** The first part of a refusal's body: what arrived with the head, plus a little more if it comes soon. */
function collectBody(socket: Duplex, already: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let body: Buffer = already;
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', done);
      socket.off('close', done);
      socket.off('error', done);
      resolve(body.subarray(0, REFUSAL_BODY_BYTES).toString('utf8'));
    };
    const onData = (chunk: Buffer): void => {
      body = Buffer.concat([body, chunk]);
      if (body.length >= REFUSAL_BODY_BYTES) done();
    };
    const timer = setTimeout(done, REFUSAL_BODY_WAIT_MS);
    if (body.length >= REFUSAL_BODY_BYTES) {
      done();
      return;
    }
    socket.on('data', onData);
    socket.once('end', done);
    socket.once('close', done);
    socket.once('error', done);
    socket.resume();
  });
}
