import type { Duplex } from 'node:stream';
import {
  type ConnectionString,
  hostForUrl,
  isTls,
  parseConnectionString,
} from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { DEFAULT_DIAL_TIMEOUT_MS, dialSocket } from './dial.js';
import { preflightHandshake } from './preflight-handshake.js';
import { normalizePreflightHeader, type PreflightHeader } from './preflight-headers.js';
import { connectWebSocket } from './websocket-connect.js';

export interface ConnectOptions {
  /** Extra preflight headers, raw lines or [name, value] pairs. Default none. */
  headers?: readonly PreflightHeader[] | undefined;
  /** The Upgrade token of the preflight. Default 'tcp', or 'tcps' when the connection is TLS. */
  upgradeToken?: string | undefined;
  /** Give up connecting (TCP, and the TLS handshake for tcps://) after this, ms. Default 10 000. */
  connectTimeoutMs?: number | undefined;
  /** Give up waiting for the preflight's answer after this, ms. Default 10 000. */
  handshakeTimeoutMs?: number | undefined;
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Opens a byte stream to a tcp://, tcps:// or unix:// connection string; with
 * `?http_preflight=true`, first the HTTP Upgrade preflight (docs/client.md) through whatever HTTP
 * infrastructure is on the way. ws:// and wss:// open a WebSocket whose binary messages carry the
 * bytes. Resolves with a Duplex ready for the protocol's own bytes (a net.Socket or tls.TLSSocket
 * for tcp/tcps/unix). Headers are validated before anything is sent.
 */
export async function connect(
  connectionString: string | ConnectionString,
  options: ConnectOptions = {},
): Promise<Duplex> {
  const cs =
    typeof connectionString === 'string' ? parseConnectionString(connectionString) : connectionString;
  const headers = (options.headers ?? []).map(normalizePreflightHeader);
  // user:password@ in the connection string is HTTP Basic on the preflight, as curl does for URLs.
  if (cs.username !== undefined && !headers.some(([name]) => name.toLowerCase() === 'authorization')) {
    const credentials = Buffer.from(`${cs.username}:${cs.password ?? ''}`, 'utf8').toString('base64');
    headers.push(['Authorization', `Basic ${credentials}`]);
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (cs.transport === 'ws' || cs.transport === 'wss')
    return connectWebSocket(cs, headers, { connectTimeoutMs, handshakeTimeoutMs });
  if (cs.transport !== 'tcp' && cs.transport !== 'tcps' && cs.transport !== 'unix') {
    throw new OptionError(
      `connect() takes tcp://, tcps://, unix://, ws:// or wss:// (got ${cs.transport}://)`,
    );
  }
  const token = options.upgradeToken ?? (isTls(cs.transport) ? 'tcps' : 'tcp');
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z/]+$/.test(token))
    throw new OptionError(`upgrade token ${JSON.stringify(token)} is not a valid HTTP token`);
  const socket = await dialSocket(cs, { timeoutMs: connectTimeoutMs });
  if (cs.tcpNoDelay !== false) socket.setNoDelay(true);
  if (!cs.httpPreflight) return socket;
  const host = cs.transport === 'unix' ? 'localhost' : `${hostForUrl(cs.host)}:${cs.port}`;
  await preflightHandshake(socket, { path: cs.path, host, token, headers, timeoutMs: handshakeTimeoutMs });
  return socket;
}
