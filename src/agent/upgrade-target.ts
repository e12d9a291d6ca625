import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { endToEndHeaders } from '../http/headers.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { Header } from '../session/protocol.js';
import { resetStream } from '../session/reset-stream.js';
import { forwardBody } from '../stream/forward-body.js';
import { joinDuplex } from '../stream/join-duplex.js';
import { localhostLookup } from '../transport/localhost-lookup.js';
import { respondTargetUnreachable } from './http-target.js';
import type { TargetService } from './targets.js';
import { packOutgoing, packRawHeaders, visitorOf } from './traffic-observer.js';

/**
 * Serves an upgrade stream (a visitor's WebSocket): repeats the upgrade to the service's HTTP target
 * on a connection of its own (an upgraded socket never goes back to a pool), answers the relay with
 * `:status 200` + `postern-status: 101` and the target's headers, then joins the stream and the
 * target's socket. A target that refuses the upgrade answers with its ordinary response.
 */
export function forwardUpgradeToTarget(
  stream: MuxStream,
  headers: IncomingMuxHeaders,
  service: TargetService,
): void {
  const token = String(headers[Header.upgrade]);
  const outgoing = endToEndHeaders(headers, { dropPostern: true });
  outgoing.host =
    service.hostHeader === 'rewrite'
      ? service.targetAuthority
      : String(headers[':authority'] ?? service.targetAuthority);
  outgoing.connection = 'Upgrade';
  outgoing.upgrade = token;
  const record = service.observer?.open({
    kind: 'websocket',
    service: service.name,
    method: String(headers[':method'] ?? 'GET'),
    path: String(headers[':path'] ?? '/'),
    headers: packOutgoing(outgoing),
    visitor: visitorOf(headers['x-forwarded-for']),
  });
  const target = service.target;
  const options = {
    agent: false as const,
    method: String(headers[':method'] ?? 'GET'),
    path: String(headers[':path'] ?? '/'),
    headers: outgoing,
    timeout: service.connectTimeoutMs,
    ...(target.transport === 'unix'
      ? { socketPath: target.socketPath as string }
      : { host: target.host, port: target.port, lookup: localhostLookup }),
    ...(target.transport === 'https' ? service.tlsOptions : {}),
  };
  // The visitor's early bytes stay in the stream (bounded by the stream's flow-control window) until the target
  // has switched protocols.
  stream.pause();
  const req = target.transport === 'https' ? httpsRequest(options) : httpRequest(options);
  req.once('upgrade', (res: IncomingMessage, socket: Duplex, head: Buffer) => {
    service.reachability.answered();
    req.setTimeout(0);
    if (stream.destroyed) {
      socket.destroy();
      return;
    }
    const answer = endToEndHeaders(res.headers);
    try {
      stream.respond({ ...answer, ':status': 200, [Header.status]: '101' });
    } catch (error) {
      socket.destroy();
      resetStream(stream, `the target's 101 cannot be carried: ${(error as Error).message}`);
      return;
    }
    record?.response(101, packRawHeaders(res.rawHeaders));
    if (head.length > 0) {
      stream.write(head);
      record?.toVisitor(head);
    }
    stream.resume();
    service.stalls.watch(socket, 'the target');
    joinDuplex(stream, socket, (error) => record?.end(error?.message));
    if (record !== undefined) {
      stream.on('data', (chunk: Buffer) => record.fromVisitor(chunk));
      socket.on('data', (chunk: Buffer) => record.toVisitor(chunk));
    }
  });
  req.once('response', (res: IncomingMessage) => {
    service.reachability.answered();
    req.setTimeout(0);
    const status = res.statusCode ?? 502;
    stream.respond({ ...endToEndHeaders(res.headers), ':status': status });
    record?.response(status, packRawHeaders(res.rawHeaders));
    forwardBody(res, stream, (error) => record?.end(error?.message));
    if (record !== undefined) res.on('data', (chunk: Buffer) => record.toVisitor(chunk));
  });
  req.once('timeout', () => req.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
  req.once('error', (error: NodeJS.ErrnoException) => {
    if (stream.headersSent) resetStream(stream, `target failed: ${error.code ?? error.message}`);
    else {
      respondTargetUnreachable(stream, service, error, record);
      record?.end();
    }
  });
  stream.once('close', () => {
    if (!stream.headersSent) {
      req.destroy();
      record?.end('the visitor left before the target answered');
    }
  });
  req.end();
}
