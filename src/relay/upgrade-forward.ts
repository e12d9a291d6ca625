import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { endToEndHeaders } from '../http/headers.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { Header } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { joinDuplex } from '../stream/join-duplex.js';
import type { ForwardContext } from './forward-context.js';
import { scopeCookies } from './http-forward.js';
import { responseFramingProblem } from './response-framing.js';
import { admitStream, admitStreamNow, streamHeaders, visitorAddressOf } from './stream-admission.js';
import { writeRawError } from './visitor-error.js';
import { webSocketBytes, webSocketHandshake } from './websocket-bytes.js';

/**
 * Forwards a visitor's upgrade as one full-duplex stream. For an HTTP tunnel
 * (WebSocket, or any other token) the agent repeats the upgrade to its target and the target's own
 * 101 (or refusal) comes back. For a TCP service it is the preflight: the agent connects to the
 * target first, and only then does the visitor get `101 Switching Protocols` echoing its Upgrade
 * token. From then on bytes flow both ways untouched; half-close and abort propagate.
 */
export async function forwardUpgrade(
  ctx: ForwardContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  route: { label: string; path: string; prefix: string },
): Promise<void> {
  const { options } = ctx;
  socket.pause();
  const token = String(req.headers.upgrade).toLowerCase();
  const request = {
    declaredBodyBytes: 0,
    upgrade: token,
    visitorAddress: visitorAddressOf(ctx, req),
    headers: req.headers,
  };
  const admission =
    admitStreamNow(ctx, route, socket, request) ?? (await admitStream(ctx, route, socket, request));
  if (!admission.ok) {
    if (admission.error !== undefined)
      writeRawError(socket, admission.error, admission.message, admission.headers);
    return;
  }
  const { tunnel, session } = admission;
  for (const name of admission.consumed) delete req.headers[name];
  // A WebSocket to a TCP service is ended here: its binary messages carry the service's bytes
  // (clients that can only speak WebSocket, connect('ws://…')). The agent just sees a preflight.
  const endWebSocketHere = tunnel.kind !== 'http' && token === 'websocket';
  const handshake = webSocketHandshake(req);
  if (endWebSocketHere && !handshake.ok) {
    writeRawError(socket, 'bad_request', handshake.response);
    return;
  }
  const headers = streamHeaders(ctx, req, route, tunnel);
  headers[Header.upgrade] = endWebSocketHere ? 'tcp' : token;

  let stream: MuxStream;
  try {
    stream = session.openStream(headers, { endStream: false });
  } catch (error) {
    writeRawError(socket, 'agent_error', `could not open a stream to the agent: ${(error as Error).message}`);
    return;
  }
  stream.on('error', () => {});
  stream.once('close', ctx.metrics.streamOpened(tunnel.kind === 'http' ? 'websocket' : 'tcp'));
  // Bytes the visitor sent behind its request head are the first bytes of the new protocol (or,
  // for a WebSocket ended here, its first frames, which go to the WebSocket handshake below).
  if (head.length > 0 && !endWebSocketHere) stream.write(head);
  const timer = setTimeout(() => {
    resetStream(stream, 'response timeout');
    writeRawError(
      socket,
      'response_timeout',
      `the agent sent no answer to the upgrade within ${options.responseTimeoutMs} ms`,
    );
  }, options.responseTimeoutMs);
  const onEarlyClose = (): void => resetStream(stream, 'visitor went away');
  socket.once('close', onEarlyClose);

  let answered = false;
  stream.once('response', (responseHeaders: IncomingMuxHeaders) => {
    answered = true;
    clearTimeout(timer);
    socket.off('close', onEarlyClose);
    if (socket.destroyed) {
      resetStream(stream, 'visitor went away');
      return;
    }
    const switched = responseHeaders[Header.status] === '101';
    if (switched && endWebSocketHere) {
      socket.once('close', () => resetStream(stream, 'visitor went away'));
      socket.write(handshake.response);
      const visitor = webSocketBytes(socket, head, options.stallTimeoutMs);
      ctx.stalls.watch(visitor, 'the visitor');
      joinDuplex(visitor, stream);
      return;
    }
    const status = switched ? 101 : Number(responseHeaders[':status']);
    const problem =
      switched || (Number.isInteger(status) && status >= 200 && status <= 599)
        ? responseFramingProblem(status, responseHeaders)
        : `invalid status (${String(responseHeaders[':status'])})`;
    if (problem !== undefined) {
      resetStream(stream, 'invalid response head');
      writeRawError(socket, 'agent_error', `the agent sent an invalid answer to the upgrade: ${problem}`);
      return;
    }
    // A TCP preflight's 101 stays short and bare: some clients (AMPS's own) read only the status
    // and may discard what follows for a moment. A WebSocket 101 carries the target's headers.
    const passOn = switched && tunnel.kind !== 'http' ? {} : endToEndHeaders(responseHeaders);
    if (passOn['set-cookie'] !== undefined) scopeCookies(ctx, req, route, passOn);
    delete passOn[Header.status];
    delete passOn.date;
    const lines = [
      switched
        ? 'HTTP/1.1 101 Switching Protocols'
        : `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`,
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
      ctx.stalls.watch(socket, 'the visitor');
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
        'agent_error',
        `the agent closed the stream before answering (code ${stream.rstCode ?? 0})`,
      );
    }
  });
}
