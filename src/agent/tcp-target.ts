import { connect, type Socket } from 'node:net';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { Header } from '../session/protocol.js';
import { joinDuplex } from '../stream/join-duplex.js';
import { localhostLookup } from '../transport/localhost-lookup.js';
import { respondTargetUnreachable } from './http-target.js';
import type { TargetService } from './targets.js';
import { visitorOf } from './traffic-observer.js';

/**
 * Serves a preflight stream for a TCP service (docs/client.md, "The preflight"): connects to the declared target and,
 * only once that succeeded, answers `:status 200` + `postern-status: 101` so the relay sends the
 * visitor its 101; then joins the stream and the socket. A target that cannot be reached answers
 * 502 `target_unreachable`, and the visitor never sees a 101.
 */
export function forwardToTcpTarget(
  stream: MuxStream,
  headers: IncomingMuxHeaders,
  service: TargetService,
): void {
  const record = service.observer?.open({
    kind: 'tcp',
    service: service.name,
    method: '',
    path: service.targetText,
    headers: '',
    visitor: visitorOf(headers['x-forwarded-for']),
  });
  // Bytes the client sent early wait in the stream (bounded by the stream's flow-control window) until the
  // target is connected.
  stream.pause();
  const target = service.target;
  const socket: Socket =
    target.transport === 'unix'
      ? connect({ path: target.socketPath as string })
      : connect({ host: target.host, port: target.port, lookup: localhostLookup, noDelay: true });
  const timer = setTimeout(
    () => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    service.connectTimeoutMs,
  );
  const onError = (error: NodeJS.ErrnoException): void => {
    clearTimeout(timer);
    if (!stream.headersSent) respondTargetUnreachable(stream, service, error, record);
    record?.end();
  };
  socket.once('error', onError);
  socket.once('connect', () => {
    service.reachability.answered();
    clearTimeout(timer);
    socket.off('error', onError);
    if (stream.destroyed) {
      socket.destroy();
      return;
    }
    stream.respond({ ':status': 200, [Header.status]: '101' });
    record?.response(101, '');
    stream.resume();
    service.stalls.watch(socket, 'the target');
    joinDuplex(stream, socket, (error) => record?.end(error?.message));
    if (record !== undefined) {
      stream.on('data', (chunk: Buffer) => record.fromVisitor(chunk));
      socket.on('data', (chunk: Buffer) => record.toVisitor(chunk));
    }
  });
  stream.once('close', () => {
    if (!stream.headersSent) {
      clearTimeout(timer);
      socket.destroy();
      record?.end('the visitor left before the target was connected');
    }
  });
}
