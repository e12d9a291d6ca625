import type { Duplex } from 'node:stream';
import { behaveAsFresh } from '../stream/behave-as-fresh.js';

/** A server's reply head, read up to its blank line exactly. */
export interface ReplyHead {
  kind: 'head';
  status: number;
  statusLine: string;
  /** Bytes that came after the blank line in the same reads: the start of what follows. */
  rest: Buffer;
}

/** Why no reply head could be read. */
export type ReplyHeadFailure =
  | { kind: 'timeout' }
  | { kind: 'too-long'; maxBytes: number }
  | { kind: 'closed'; bytes: number }
  | { kind: 'error'; error: NodeJS.ErrnoException }
  | { kind: 'not-http'; statusLine: string };

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})( |$)/;

/**
 * Reads an HTTP/1.1 reply head from `socket` without an HTTP parser, because whatever follows the
 * head (a proxied connection, a protocol where the server speaks first) must stay on the socket
 * byte for byte. Holds at most `maxBytes` while looking for the blank line. On a head the socket
 * is left paused with no listeners of ours; on a failure the caller decides whether to destroy it.
 */
export function readReplyHead(
  socket: Duplex,
  limits: { maxBytes: number; timeoutMs: number },
): Promise<ReplyHead | ReplyHeadFailure> {
  return new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => settle({ kind: 'timeout' }), limits.timeoutMs);
    const settle = (outcome: ReplyHead | ReplyHeadFailure): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(outcome);
    };
    const onError = (error: NodeJS.ErrnoException): void => settle({ kind: 'error', error });
    const onClose = (): void => settle({ kind: 'closed', bytes: received.length });
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (received.length > limits.maxBytes) settle({ kind: 'too-long', maxBytes: limits.maxBytes });
        return;
      }
      socket.pause();
      const statusLine = received.subarray(0, received.indexOf('\r\n')).toString('latin1');
      const status = STATUS_LINE.exec(statusLine)?.[1];
      if (status === undefined) settle({ kind: 'not-http', statusLine });
      else settle({ kind: 'head', status: Number(status), statusLine, rest: received.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/** Hands the socket on after an accepted head: the bytes past the head first, as if never read. */
export function continueAfterHead<S extends Duplex>(socket: S, head: ReplyHead): S {
  if (head.rest.length > 0) socket.unshift(head.rest);
  behaveAsFresh(socket);
  return socket;
}
