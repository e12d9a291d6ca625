import type { Duplex } from 'node:stream';
import { PosternError } from '../errors.js';
import { behaveAsFresh } from '../stream/behave-as-fresh.js';

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
export function preflightHandshake(
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
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(
      () =>
        finish(
          new PreflightFailedError(`no complete answer to the preflight within ${request.timeoutMs} ms`),
        ),
      request.timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const finish = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error): void =>
      finish(new PreflightFailedError(`connection failed during the preflight: ${error.message}`));
    const onClose = (): void =>
      finish(
        new PreflightFailedError(
          `the server closed the connection during the preflight (after ${received.length} bytes of its answer)`,
        ),
      );
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (received.length > MAX_REPLY_HEAD_BYTES) {
          finish(
            new PreflightFailedError(
              `the preflight answer has no blank line within ${MAX_REPLY_HEAD_BYTES} bytes`,
            ),
          );
        }
        return;
      }
      const head = received.subarray(0, end).toString('latin1');
      const rest = received.subarray(end + 4);
      const statusLine = head.split('\r\n')[0] ?? '';
      if (!/^HTTP\/1\.[01] \d{3}( |$)/.test(statusLine)) {
        finish(
          new PreflightFailedError(
            `the preflight answer does not start with an HTTP status line: ${JSON.stringify(statusLine.slice(0, 80))}`,
          ),
        );
        return;
      }
      if (/^HTTP\/1\.[01] 101( |$)/.test(statusLine)) {
        cleanup();
        socket.pause();
        if (rest.length > 0) socket.unshift(rest);
        behaveAsFresh(socket);
        resolve(socket);
        return;
      }
      cleanup();
      collectBody(socket, rest).then((body) => {
        socket.destroy();
        reject(new PreflightRefusedError(statusLine, body));
      });
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
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
  });
}
