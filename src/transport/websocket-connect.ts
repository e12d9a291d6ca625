import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import { type ConnectionString, hostForUrl } from '../connection-string/index.js';
import { ConnectError } from '../errors.js';
import { localhostLookup } from './localhost-lookup.js';
import { PreflightFailedError, PreflightRefusedError } from './preflight-handshake.js';
import { tlsVerifyOptions } from './tls-verify.js';

/** Largest WebSocket message the client accepts (the relay sends at most what the service wrote). */
const MAX_MESSAGE_BYTES = 64 << 20;
/** Of a refusal's body, at most this much is kept for the error message. */
const REFUSAL_BODY_BYTES = 512;

/**
 * ws:// and wss://: a WebSocket whose binary messages carry the service's bytes, for networks that
 * let only WebSockets through. Custom headers go on the WebSocket handshake.
 */
export function connectWebSocket(
  cs: ConnectionString,
  headers: readonly (readonly [string, string])[],
  timeouts: { connectTimeoutMs: number; handshakeTimeoutMs: number },
): Promise<Duplex> {
  const url = `${cs.transport}://${hostForUrl(cs.host)}:${cs.port}${cs.path === '' ? '/' : cs.path}`;
  const ws = new WebSocket(url, {
    headers: Object.fromEntries(headers),
    handshakeTimeout: timeouts.connectTimeoutMs + timeouts.handshakeTimeoutMs,
    maxPayload: MAX_MESSAGE_BYTES,
    lookup: localhostLookup,
    ...(cs.transport === 'wss' ? tlsVerifyOptions(cs) : {}),
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.off('error', onError);
      resolve(createWebSocketStream(ws));
    });
    const onError = (error: Error): void => {
      const timedOut = /timed out/i.test(error.message);
      reject(
        timedOut
          ? new PreflightFailedError(`no WebSocket handshake with ${url}: ${error.message}`)
          : new ConnectError(`cannot connect to ${url}: ${error.message}`, error),
      );
    };
    ws.once('error', onError);
    ws.once('unexpected-response', (_request, response) => {
      ws.off('error', onError);
      ws.on('error', () => {});
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < REFUSAL_BODY_BYTES) body += chunk;
      });
      response.once('end', () => {
        reject(
          new PreflightRefusedError(
            `HTTP/1.1 ${response.statusCode} ${response.statusMessage ?? ''}`.trim(),
            body.slice(0, REFUSAL_BODY_BYTES),
          ),
        );
        ws.terminate();
      });
    });
  });
}
