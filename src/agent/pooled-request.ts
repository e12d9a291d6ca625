import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { endToEndHeaders } from '../http/headers.js';
import { IDEMPOTENT_METHODS } from '../http/methods.js';
import { formatRequestHead } from '../http/request-head.js';
import { ResponseError, type ResponseHead, ResponseParser } from '../http/response-parser.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { countRead } from '../read-buffer-collector.js';
import { resetStream } from '../session/reset-stream.js';
import type { ConnectionUser, PooledConnection, TargetPool } from './target-pool.js';
import type { ExchangeRecord } from './traffic-observer.js';

export interface PooledRequestCallbacks {
  /** The request cannot be written as HTTP/1.1 (a control character in a field…); nothing was sent. */
  onInvalid: (message: string) => void;
  /**
   * The target failed before its response head: it could not be reached (a Node error code), or it
   * answered with bytes that are not a response (a ResponseError).
   */
  onFailed: (error: NodeJS.ErrnoException) => void;
  /** Runs once when the response ended, whole or not. */
  onDone: (status: number, error?: string) => void;
}

/**
 * Sends a request whose body, if it has one, is already whole in hand (most of what a tunnel
 * carries: GET, HEAD, DELETE, and small POSTs such as webhooks and API calls; http-target.ts
 * collects those) to an http://, https:// or unix:// target over a pooled keep-alive connection,
 * and streams the answer back with backpressure: a full stream pauses the target connection until
 * it drains. Head and body go out in one write and the response is read by the agent's own strict
 * parser (response-parser.ts); it costs the agent less CPU than undici, which it replaced, and
 * undici in turn half of `http.request` (docs/benchmarks.md). Larger or chunked bodies and
 * `Expect: 100-continue` keep `http.request`, which streams the body and watches it for stalls.
 */
export function sendPooledRequest(
  stream: MuxStream,
  pool: TargetPool,
  request: { method: string; path: string; host: string; headers: OutgoingHttpHeaders; body?: Buffer },
  record: ExchangeRecord | undefined,
  callbacks: PooledRequestCallbacks,
): void {
  let head: string;
  try {
    head = formatRequestHead(request.method, request.path, request.host, request.headers);
  } catch (error) {
    callbacks.onInvalid(`invalid request for the target: ${(error as Error).message}`);
    return;
  }
  new PooledExchange(stream, pool, request.method, record, callbacks).send(head, request.body);
}

class PooledExchange implements ConnectionUser {
  readonly #stream: MuxStream;
  readonly #pool: TargetPool;
  readonly #record: ExchangeRecord | undefined;
  readonly #callbacks: PooledRequestCallbacks;
  readonly #parser: ResponseParser;
  readonly #idempotent: boolean;
  #connection: PooledConnection | undefined;
  #head: ResponseHead | undefined;
  #finished = false;
  /**
   * What was sent, kept to send again once on a new connection when it went out on a reused one
   * that closed before any byte of the answer: the target most likely closed it as idle just as
   * the request went out (RFC 9112 §9.3.1). Only idempotent methods; others get the 502.
   */
  #request: { head: string; body: Buffer | undefined } | undefined;
  #resent = false;

  constructor(
    stream: MuxStream,
    pool: TargetPool,
    method: string,
    record: ExchangeRecord | undefined,
    callbacks: PooledRequestCallbacks,
  ) {
    this.#stream = stream;
    this.#idempotent = IDEMPOTENT_METHODS.has(method);
    this.#pool = pool;
    this.#record = record;
    this.#callbacks = callbacks;
    this.#parser = new ResponseParser(
      {
        onHead: (head) => this.#respond(head),
        onBody: (chunk) => this.#forward(chunk),
        onEnd: (trailers) => this.#end(trailers),
      },
      { bodiless: method === 'HEAD' },
    );
  }

  send(head: string, body: Buffer | undefined): void {
    if (this.#stream.destroyed) return;
    this.#transmit(head, body, false);
    this.#stream.on('close', () => {
      // A finished exchange leaves its connection in the pool; one cut short is closed.
      if (!this.#finished) this.#abandon();
    });
    this.#stream.on('drain', () => this.#connection?.socket.resume());
  }

  #transmit(head: string, body: Buffer | undefined, fresh: boolean): void {
    const connection = this.#pool.take(this, fresh);
    this.#connection = connection;
    // Only a request on a reused connection may need sending again.
    this.#request = connection.carried > 1 && this.#idempotent ? { head, body } : undefined;
    const { socket } = connection;
    if (body === undefined) socket.write(head, 'latin1');
    else {
      // One writev for head and body.
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body);
      socket.uncork();
    }
  }

  read(chunk: Buffer): void {
    countRead(chunk.length);
    try {
      this.#parser.execute(chunk);
    } catch (error) {
      this.#fail(error as ResponseError);
      return;
    }
    if (this.#parser.done) this.#release();
  }

  ended(): void {
    // A body read until close ends here; any other response was cut short.
    const whole = this.#parser.finish();
    this.#abandon();
    if (!whole) this.#fail(cutShort());
  }

  closed(error: NodeJS.ErrnoException | undefined): void {
    this.#connection = undefined;
    if (!this.#parser.done) this.#fail(error ?? cutShort());
  }

  #respond(head: ResponseHead): void {
    const stream = this.#stream;
    this.#head = head;
    if (stream.destroyed) return;
    try {
      stream.respond(
        { ...endToEndHeaders(head.headers), ':status': head.status },
        { waitForTrailers: head.headers.trailer !== undefined },
      );
    } catch (error) {
      throw new ResponseError(
        'HPE_USER',
        `a response the session cannot carry (${(error as Error).message})`,
      );
    }
    this.#record?.response(head.status, head.packed);
  }

  #forward(chunk: Buffer): void {
    const stream = this.#stream;
    if (stream.destroyed) return;
    this.#record?.toVisitor(chunk);
    if (!stream.write(chunk)) this.#connection?.socket.pause();
  }

  #end(trailers: Record<string, string | string[]> | undefined): void {
    this.#finished = true;
    const stream = this.#stream;
    if (this.#head?.headers.trailer !== undefined) sendTrailersWhenAsked(stream, () => trailers ?? {});
    stream.end();
    this.#callbacks.onDone(this.#head?.status ?? 0);
  }

  /** After a whole response: the connection goes back to the pool if it may carry another request. */
  #release(): void {
    const connection = this.#connection;
    const head = this.#head;
    if (connection !== undefined && head?.reusable === true && !this.#parser.extraBytes) {
      this.#connection = undefined;
      this.#pool.give(connection, head.keepAliveMs);
    } else this.#abandon();
  }

  #abandon(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection === undefined) return;
    connection.user = undefined;
    connection.socket.destroy();
  }

  #fail(error: NodeJS.ErrnoException): void {
    this.#abandon();
    if (this.#finished) return;
    const request = this.#request;
    if (request !== undefined && !this.#resent && !this.#parser.started && !this.#stream.destroyed) {
      this.#resent = true;
      this.#transmit(request.head, request.body, true);
      return;
    }
    this.#finished = true;
    const stream = this.#stream;
    if (stream.headersSent) {
      const message =
        error instanceof ResponseError
          ? `the target sent a malformed response: ${error.message}`
          : `target failed mid-response: ${error.code ?? error.message}`;
      resetStream(stream, message);
      this.#callbacks.onDone(this.#head?.status ?? 0, message);
    } else if (!stream.destroyed) this.#callbacks.onFailed(error);
  }
}

/** As Node's client says it when a connection closes before the response is whole. */
function cutShort(): NodeJS.ErrnoException {
  return Object.assign(new Error('the target closed the connection before the response ended'), {
    code: 'ECONNRESET',
  });
}

/**
 * Sends a response's trailers once the stream asks for them (its body is out); `trailers` is read
 * then, so a response still being read can supply them. Trailers the session cannot carry reset
 * the stream: the visitor sees a cut transfer, never a quietly shortened one.
 */
export function sendTrailersWhenAsked(stream: MuxStream, trailers: () => IncomingHttpHeaders): void {
  stream.once('wantTrailers', () => {
    try {
      stream.sendTrailers(endToEndHeaders(trailers()));
    } catch {
      resetStream(stream, 'trailers the session cannot carry');
    }
  });
}
