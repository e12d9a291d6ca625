import { type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import type { Duplex } from 'node:stream';
import { ConnectError, PosternError } from '../errors.js';

/** At most this much of a refusal's body is read, for its reason line. */
const MAX_REFUSAL_BODY = 4096;

export interface UpgradeResult {
  socket: Duplex;
  headers: IncomingHttpHeaders;
}

/** A non-101 answer to an upgrade request; carries the status and the server's one-line reason. */
export class UpgradeRefusedError extends PosternError {
  readonly status: number;
  readonly reason: string;
  readonly headers: IncomingHttpHeaders;

  constructor(status: number, reason: string, headers: IncomingHttpHeaders) {
    super('POSTERN_UPGRADE_REFUSED', `upgrade refused: ${status} ${reason}`, { retryable: true });
    this.name = 'UpgradeRefusedError';
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }
}

/**
 * Sends `GET path` with `Connection: Upgrade` on an open stream and waits for `101`. Bytes that
 * arrived in the same read as the 101 head are put back on the socket before it is returned, so
 * the protocol that follows loses none.
 */
export function requestUpgrade(options: {
  stream: Duplex;
  path: string;
  host: string;
  token: string;
  headers: Record<string, string>;
  timeoutMs: number;
}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      createConnection: () => options.stream as never,
      method: 'GET',
      path: options.path,
      headers: { ...options.headers, host: options.host, connection: 'Upgrade', upgrade: options.token },
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer to the upgrade request within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    req.once('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      if (head.length > 0) socket.unshift(head);
      resolve({ socket, headers: res.headers });
    });
    req.once('response', (res) => {
      readRefusal(res, (refusal) => {
        clearTimeout(timer);
        options.stream.destroy();
        reject(refusal);
      });
    });
    req.once('error', (error) => {
      clearTimeout(timer);
      options.stream.destroy();
      reject(new ConnectError(`upgrade request failed: ${error.message}`, error));
    });
    req.end();
  });
}

/**
 * Reads the start of a non-101 answer (at most 4 KiB, then stops) and calls `onRefused` once with
 * the status and the body's first line as the reason (the status text when the body is empty).
 */
export function readRefusal(res: IncomingMessage, onRefused: (refusal: UpgradeRefusedError) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    const body = Buffer.concat(chunks).toString('utf8').trim().split('\n')[0] ?? '';
    onRefused(new UpgradeRefusedError(res.statusCode ?? 0, body || (res.statusMessage ?? ''), res.headers));
  };
  res.on('data', (chunk: Buffer) => {
    if (size < MAX_REFUSAL_BODY) chunks.push(chunk.subarray(0, MAX_REFUSAL_BODY - size));
    size += chunk.length;
    if (size >= MAX_REFUSAL_BODY) finish();
  });
  res.once('end', finish);
  res.once('error', finish);
}
