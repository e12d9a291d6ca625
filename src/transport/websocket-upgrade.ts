import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { ConnectError } from '../errors.js';
import { readRefusal, type UpgradeResult } from './upgrade-request.js';
import { webSocketStream } from './websocket-stream.js';

/**
 * Opens a WebSocket over an already connected stream (plain, TLS, or a proxy tunnel: dialing is
 * the caller's job, so proxies and certificate checks work the same as for the raw upgrade) and
 * returns it as a byte stream whose writes are binary messages. A non-101 answer rejects with the
 * same UpgradeRefusedError as the raw upgrade, so callers treat both transports alike.
 */
export function requestWebSocketUpgrade(options: {
  stream: Duplex;
  /** ws:// or wss:// URL; only its path and scheme matter, the stream is already connected. */
  url: string;
  host: string;
  headers: Record<string, string>;
  timeoutMs: number;
  maxMessageBytes: number;
}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    let headers: UpgradeResult['headers'] = {};
    const ws = new WebSocket(options.url, {
      createConnection: () => options.stream as never,
      headers: { ...options.headers, host: options.host },
      handshakeTimeout: options.timeoutMs,
      maxPayload: options.maxMessageBytes,
      // Session frames are already compact; compression would cost CPU on every message for little.
      perMessageDeflate: false,
      followRedirects: false,
    });
    ws.once('upgrade', (response) => {
      headers = response.headers;
    });
    ws.once('open', () => {
      ws.off('error', onError);
      settle(() => resolve({ socket: webSocketStream(ws), headers }));
    });
    const onError = (error: Error): void => {
      options.stream.destroy();
      settle(() => reject(new ConnectError(`WebSocket upgrade failed: ${error.message}`, error)));
    };
    ws.once('error', onError);
    ws.once('unexpected-response', (_request, response) => {
      ws.off('error', onError);
      ws.on('error', () => {});
      readRefusal(response, (refusal) => {
        ws.terminate();
        options.stream.destroy();
        settle(() => reject(refusal));
      });
    });
  });
}
