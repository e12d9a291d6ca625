import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PosternError } from '../errors.js';
import { localhostLookup } from '../transport/localhost-lookup.js';
import type { TargetService } from './targets.js';
import { packPairs, packRawHeaders } from './traffic-observer.js';

/** A request to send again, as the inspector captured (or the user edited) it. */
export interface ReplayRequest {
  service: string;
  method: string;
  path: string;
  /** As sent to the target, Host included; Content-Length is set from `body`. */
  headers: [string, string][];
  body: Buffer;
  /** The capture this replays. */
  replayOf: string;
}

/** Headers a replay never copies: the body it sends is whole, on a connection of its own kind. */
const NOT_REPLAYED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

/**
 * Sends a captured request to its service's target again, straight from the agent (the relay and
 * the visitor are not involved), recorded like any other exchange. Resolves once the response
 * has ended, with the new capture's id and the status.
 */
export function replayToTarget(
  service: TargetService,
  request: ReplayRequest,
  timeoutMs: number,
): Promise<{ id: string | undefined; status: number }> {
  const headers: [string, string][] = request.headers.filter(
    ([name]) => !NOT_REPLAYED.has(name.toLowerCase()),
  );
  if (request.body.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(request.method))
    headers.push(['content-length', String(request.body.length)]);
  const record = service.observer?.open({
    kind: 'http',
    service: service.name,
    method: request.method,
    path: request.path,
    headers: packPairs(headers),
    visitor: undefined,
    replayOf: request.replayOf,
  });
  const target = service.target;
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => {
      record?.end(error.message);
      reject(
        new PosternError('POSTERN_REPLAY_FAILED', `replay to ${service.targetText} failed: ${error.message}`),
      );
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      const options = {
        agent: service.pool,
        method: request.method,
        path: request.path,
        // A flat [name, value, name, value…] list keeps repeated headers and their order.
        headers: headers.flat(),
        timeout: timeoutMs,
        ...(target.transport === 'unix'
          ? { socketPath: target.socketPath as string }
          : { host: target.host, port: target.port, lookup: localhostLookup }),
      };
      req = target.transport === 'https' ? httpsRequest(options) : httpRequest(options);
    } catch (error) {
      fail(error as Error);
      return;
    }
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', fail);
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      record?.response(status, packRawHeaders(res.rawHeaders));
      res.on('data', (chunk: Buffer) => record?.toVisitor(chunk));
      res.once('end', () => {
        record?.end();
        resolve({ id: record?.id, status });
      });
      res.once('error', fail);
    });
    if (request.body.length > 0) record?.fromVisitor(request.body);
    req.end(request.body);
  });
}
