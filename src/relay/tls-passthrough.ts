import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { addForwardingHeaders } from '../http/headers.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { Header } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { joinDuplex } from '../stream/join-duplex.js';
import type { ForwardContext } from './forward-context.js';
import { admitStream, admitStreamNow } from './stream-admission.js';

/**
 * TLS passthrough (docs/tls-passthrough.md): a visitor's TLS connection whose ClientHello names a
 * `tls` tunnel goes to the agent as one raw stream, ClientHello first, and the agent joins it to
 * its target's TLS server. The relay never decrypts it: the certificate the visitor checks is the
 * target's own. Admission is that of a TCP preflight (IP rules, limits, waiting for an agent
 * that is away); a connection refused there is closed, since TLS has no place for an HTTP error.
 */
export async function forwardTlsPassthrough(
  ctx: ForwardContext,
  socket: Socket,
  hello: Buffer,
  route: { label: string; serverName: string },
  onRefused: (reason: string) => void,
): Promise<void> {
  const visitorAddress = socket.remoteAddress ?? '';
  const request = { declaredBodyBytes: 0, upgrade: 'tcp', visitorAddress, headers: {} };
  const where = { label: route.label, path: '/', prefix: '' };
  const admission =
    admitStreamNow(ctx, where, socket, request) ?? (await admitStream(ctx, where, socket, request));
  if (!admission.ok) {
    if (admission.error !== undefined) onRefused(`${admission.error}: ${admission.message}`);
    socket.destroy();
    return;
  }
  const { tunnel, session } = admission;
  const headers: OutgoingHttpHeaders = {};
  addForwardingHeaders(headers, {
    peer: visitorAddress,
    peerTrusted: false,
    proto: 'https',
    host: route.serverName,
    prefix: '',
  });
  headers[':method'] = 'GET';
  headers[':path'] = '/';
  headers[':authority'] = route.serverName;
  headers[Header.service] = tunnel.name;
  headers[Header.upgrade] = 'tcp';
  let stream: MuxStream;
  try {
    stream = session.openStream(headers, { endStream: false });
  } catch (error) {
    onRefused(`could not open a stream to the agent: ${(error as Error).message}`);
    socket.destroy();
    return;
  }
  stream.on('error', () => {});
  stream.once('close', ctx.metrics.streamOpened('tcp'));
  stream.write(hello);
  const timer = setTimeout(() => {
    resetStream(stream, 'response timeout');
    socket.destroy();
  }, ctx.options.responseTimeoutMs);
  const onEarlyClose = (): void => resetStream(stream, 'visitor went away');
  socket.once('close', onEarlyClose);
  let answered = false;
  stream.once('close', () => {
    clearTimeout(timer);
    if (!answered) socket.destroy();
  });
  stream.once('response', (response: IncomingMuxHeaders) => {
    answered = true;
    clearTimeout(timer);
    socket.off('close', onEarlyClose);
    if (socket.destroyed || response[Header.status] !== '101') {
      onRefused(`the agent could not reach the target (status ${String(response[':status'])})`);
      resetStream(stream, 'target unreachable');
      socket.destroy();
      return;
    }
    ctx.stalls.watch(socket, 'the visitor');
    joinDuplex(socket, stream);
    socket.resume();
  });
}
