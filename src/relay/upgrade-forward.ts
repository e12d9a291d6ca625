import type { IncomingMessage } from 'node:http';
import type { ClientHttp2Stream, IncomingHttpHeaders as Http2Headers } from 'node:http2';
import type { Duplex } from 'node:stream';
import { Header } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { joinDuplex } from '../stream/join-duplex.js';
import { addForwardingHeaders, endToEndHeaders } from './headers.js';
import type { ForwardContext } from './http-forward.js';
import { writeRawError } from './visitor-error.js';

/**
 * Forwards a visitor's WebSocket upgrade (DESIGN §4) as one full-duplex h2 stream: the agent
 * repeats the upgrade to its HTTP target, and the target's own 101 (or refusal) comes back. From
 * then on bytes flow both ways untouched; close and abort propagate.
 */
export async function forwardUpgrade(
  ctx: ForwardContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  route: { label: string; path: string; prefix: string },
): Promise<void> {
  const { options, registry } = ctx;
  const tunnel = registry.get(route.label);
  if (tunnel === undefined) {
    writeRawError(socket, 'unknownTunnel', `no tunnel named ${route.label} on this relay`);
    return;
  }
  if (tunnel.kind !== 'http') {
    writeRawError(
      socket,
      'upgradeUnsupported',
      `${route.label} is a TCP service; TCP preflight is not supported by this relay yet`,
    );
    return;
  }
  if (tunnel.activeStreams >= options.maxConcurrentStreamsPerTunnel) {
    writeRawError(
      socket,
      'tooManyStreams',
      `tunnel has ${tunnel.activeStreams} streams open (limit ${options.maxConcurrentStreamsPerTunnel})`,
      {
        'retry-after': '1',
      },
    );
    return;
  }
  tunnel.activeStreams++;
  socket.once('close', () => tunnel.activeStreams--);
  socket.pause();
  let session = registry.pickSession(tunnel);
  if (session === undefined && !ctx.shutdown.aborted) {
    const visitorGone = new AbortController();
    const onClose = (): void => visitorGone.abort();
    socket.once('close', onClose);
    session = await registry.waitForSession(tunnel, options.reconnectWaitMs, visitorGone.signal);
    socket.off('close', onClose);
  }
  if (socket.destroyed) return;
  if (session === undefined) {
    writeRawError(
      socket,
      'tunnelOffline',
      `the agent of ${route.label} is not connected; try again shortly`,
      { 'retry-after': '2' },
    );
    return;
  }

  const peer = req.socket.remoteAddress ?? '';
  const headers = endToEndHeaders(req.headers, { dropPostern: true });
  addForwardingHeaders(headers, {
    peer,
    peerTrusted: ctx.isTrustedProxy(peer),
    proto: 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http',
    host: req.headers.host ?? '',
    prefix: route.prefix,
  });
  headers[':method'] = req.method ?? 'GET';
  headers[':path'] = route.path;
  headers[':authority'] = req.headers.host ?? route.label;
  headers[Header.service] = tunnel.name;
  headers[Header.upgrade] = String(req.headers.upgrade).toLowerCase();

  let stream: ClientHttp2Stream;
  try {
    stream = session.openStream(headers, { endStream: false });
  } catch (error) {
    writeRawError(socket, 'agentFailed', `could not open a stream to the agent: ${(error as Error).message}`);
    return;
  }
  stream.on('error', () => {});
  // Bytes the visitor sent behind its request head are the first bytes of the new protocol.
  if (head.length > 0) stream.write(head);
  const timer = setTimeout(() => {
    resetStream(stream, 'response timeout');
    writeRawError(
      socket,
      'responseTimeout',
      `the agent sent no answer to the upgrade within ${options.responseTimeoutMs} ms`,
    );
  }, options.responseTimeoutMs);
  const onEarlyClose = (): void => resetStream(stream, 'visitor went away');
  socket.once('close', onEarlyClose);

  let answered = false;
  stream.once('response', (responseHeaders: Http2Headers) => {
    answered = true;
    clearTimeout(timer);
    socket.off('close', onEarlyClose);
    if (socket.destroyed) {
      resetStream(stream, 'visitor went away');
      return;
    }
    const switched = responseHeaders[Header.status] === '101';
    const status = switched ? 101 : Number(responseHeaders[':status']);
    const passOn = endToEndHeaders(responseHeaders);
    delete passOn[Header.status];
    const lines = [
      switched ? 'HTTP/1.1 101 Switching Protocols' : `HTTP/1.1 ${status} ${statusText(status)}`,
    ];
    if (switched) lines.push('Connection: Upgrade', `Upgrade: ${String(req.headers.upgrade)}`);
    else lines.push('Connection: close');
    for (const [name, value] of Object.entries(passOn)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && !/[\r\n]/.test(String(one))) lines.push(`${name}: ${String(one)}`);
      }
    }
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (switched) {
      socket.resume();
      joinDuplex(socket, stream);
    } else {
      // A refused upgrade is an ordinary response; its body, then the end of the connection.
      stream.pipe(socket);
      stream.once('close', () => {
        if (!stream.readableEnded) socket.destroy();
      });
    }
  });
  stream.once('close', () => {
    clearTimeout(timer);
    if (!answered && !socket.destroyed) {
      writeRawError(
        socket,
        'agentFailed',
        `the agent closed the stream before answering (code ${stream.rstCode ?? 0})`,
      );
    }
  });
}

function statusText(status: number): string {
  return (
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'Not Found',
      426: 'Upgrade Required',
      502: 'Bad Gateway',
    }[status] ?? 'Error'
  );
}
